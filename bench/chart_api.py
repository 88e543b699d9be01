"""Chart and price API under 100 concurrent clients, with the production process layout.

Usage (PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, whose db 4 it flushes; needs `wrk`):

    .venv/bin/python bench/chart_api.py [--seconds 10] [--connections 100] [--think MS ...] [--builds 50]

Prepares the database `haunt_bench_chart` (created if missing, migrated, seeded), Redis db 4
(flushed), "haunt" candles for 10 symbols filling every chart range (1m for 2 h, 5m for 2 days,
1h for 31 days) and a live price per symbol through `ticks_ingest` (re-ingested every 10 s by a
background thread, so the 60 s ticker keys never expire). Then, in one run:

1. the uncached build in this process: `chart_get` after `chart_cache_invalidate`, per range;
2. gunicorn with 2 sync workers (REST in production), Redis caches, pooled PostgreSQL, and wrk on
   the same machine, twice: every request through Django (HAUNT_PUBLIC_CACHE_SECONDS=0), then
   with the shared response cache (the default, 1 s). Each time: one cached chart, charts across
   10 symbols x 5 ranges with and without a thread invalidating every chart cache,
   /api/market/prices, and the 10 x 5 charts from 100 clients with think time. The first
   (uncached) request per chart over HTTP on the first server. Last, the same load on a WSGI
   app that answers a constant body of the chart's size: the floor gunicorn and wrk set here.
   Prints a Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "haunt_bench_chart"
REDIS_URL = "redis://127.0.0.1:6379/4"
PORT = 18201
SYMBOLS = {
    "btc": 65_000.0,
    "eth": 3_400.0,
    "sol": 150.0,
    "xrp": 0.52,
    "doge": 0.16,
    "ada": 0.45,
    "ltc": 85.0,
    "link": 17.0,
    "dot": 7.0,
    "avax": 35.0,
}
RANGE_NAMES = ("1h", "4h", "1d", "1w", "1m")
# interval, bucket ms, how far back: covers 1h (60 x 1m), 4h/1d (288 x 5m), 1w/1m (720 x 1h).
HISTORY = (("1m", 60_000, 2 * 3_600_000), ("5m", 300_000, 2 * 86_400_000), ("1h", 3_600_000, 31 * 86_400_000))

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "haunt.settings",
    "HAUNT_ENV": "development",  # no HTTPS redirect on 127.0.0.1
    "HAUNT_DEBUG": "false",
    "HAUNT_DATA_DIR": "/tmp/haunt-bench-chart",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "HAUNT_THROTTLE_ANON": "100000000/s",  # throttles stay on, as in production
    "HAUNT_THROTTLE_USER": "100000000/s",
}


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DATABASE_URL", "REDIS_URL"))}
    base.update(BENCH_ENV)
    return base


def django_setup() -> None:
    os.environ.clear()
    os.environ.update(env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- Preparation -----------------------------------------------------------------------------


def prepare() -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    from django.core.management import call_command

    from apps.markets.services.store import redis_client

    redis_client(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    call_command("seed", stdout=open(os.devnull, "w"))  # noqa: SIM115
    candles_seed()


def candles_seed() -> int:
    from apps.markets.models import AGGREGATE_SOURCE, Candle

    rng = random.Random(7)
    now_ms = time.time_ns() // 1_000_000
    Candle.objects.filter(source=AGGREGATE_SOURCE, symbol__in=list(SYMBOLS)).delete()
    rows = []
    for symbol, price in SYMBOLS.items():
        for interval, step, span in HISTORY:
            current = now_ms - now_ms % step
            close = price
            for open_time in range(current - span, current, step):  # closed buckets only
                open_ = close
                close = open_ * (1 + rng.gauss(0, 0.002))
                high = max(open_, close) * (1 + abs(rng.gauss(0, 0.001)))
                low = min(open_, close) * (1 - abs(rng.gauss(0, 0.001)))
                rows.append(
                    Candle(
                        source=AGGREGATE_SOURCE,
                        symbol=symbol,
                        interval=interval,
                        open_time=open_time,
                        open=Decimal(f"{open_:.8f}"),
                        high=Decimal(f"{high:.8f}"),
                        low=Decimal(f"{low:.8f}"),
                        close=Decimal(f"{close:.8f}"),
                        volume=Decimal(f"{rng.uniform(1, 100):.8f}"),
                    )
                )
    Candle.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def prices_ingest(rng: random.Random) -> None:
    from apps.markets.feeds.types import Tick
    from apps.markets.services.prices import ticks_ingest

    now_ms = time.time_ns() // 1_000_000
    ticks = [
        Tick(
            source=source,
            instrument=instrument,
            base=symbol,
            quote=quote,
            price=Decimal(f"{price * (1 + rng.gauss(0, 0.0005)):.8f}"),
            size=Decimal(0),
            kind="ticker",
            exchange_ts=now_ms,
            received_ts=now_ms,
            volume_24h=Decimal(1000),
        )
        for symbol, price in SYMBOLS.items()
        for source, instrument, quote in (
            ("coinbase", f"{symbol.upper()}-USD", "usd"),
            ("binance", f"{symbol.upper()}USDT", "usdt"),
        )
    ]
    ticks_ingest(ticks=ticks)


def ingest_loop(stop: threading.Event) -> None:
    from django.db import connection

    rng = random.Random(11)
    try:
        while not stop.wait(10):
            prices_ingest(rng)
    finally:
        connection.close()


# --- In-process builds -----------------------------------------------------------------------


def builds_time(builds: int) -> list[tuple[str, float, float, int]]:
    """(range, p50 ms, p99 ms, points) of `chart_get` after `chart_cache_invalidate`."""
    from apps.markets.services.charts import chart_cache_invalidate, chart_get

    symbols = list(SYMBOLS)
    rows = []
    for range_name in RANGE_NAMES:
        times, points = [], 0
        for i in range(builds):
            symbol = symbols[i % len(symbols)]
            chart_cache_invalidate(symbol=symbol)
            started = time.perf_counter()
            chart = chart_get(symbol=symbol, range_name=range_name)
            times.append((time.perf_counter() - started) * 1000)
            points = len(chart.body["candles"])
            assert chart.body["dataCompleteness"] >= 90, chart.body["dataCompleteness"]
        rows.append((range_name, pct(times, 50), pct(times, 99), points))
    return rows


def redis_hits_time(samples: int) -> tuple[float, float]:
    """p50/p99 ms of `chart_get` served from the Redis entry (process memory cleared)."""
    from apps.markets.services.charts import chart_cache_clear, chart_get

    chart_get(symbol="btc", range_name="1d")
    times = []
    for _ in range(samples):
        chart_cache_clear()
        started = time.perf_counter()
        chart_get(symbol="btc", range_name="1d")
        times.append((time.perf_counter() - started) * 1000)
    return pct(times, 50), pct(times, 99)


# --- HTTP ------------------------------------------------------------------------------------


def get(path: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000


def body_bytes(path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as response:
        return len(response.read())


def wait_up() -> None:
    for _ in range(100):
        try:
            get("/api/market/prices")  # /api/health is 503 here: no Celery worker runs
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {PORT} did not start")


def first_requests(rounds: int) -> list[tuple[str, float, float, int]]:
    """Per range, the latency of the first request for a chart whose caches were dropped."""
    from apps.markets.services.charts import chart_cache_invalidate

    times: dict[str, list[float]] = {name: [] for name in RANGE_NAMES}
    for range_name in RANGE_NAMES:  # untimed: each worker's first requests open connections
        for symbol in SYMBOLS:
            get(f"/api/crypto/{symbol}/chart?range={range_name}")
    for _ in range(rounds):
        for symbol in SYMBOLS:
            chart_cache_invalidate(symbol=symbol)
        time.sleep(2.2)  # past the workers' 2 s process-memory entries
        for range_name in RANGE_NAMES:
            for symbol in SYMBOLS:
                times[range_name].append(get(f"/api/crypto/{symbol}/chart?range={range_name}"))
    return [(name, pct(v, 50), pct(v, 99), len(v)) for name, v in times.items()]


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def run_wrk(target: str, seconds: int, connections: int, script: str) -> dict[str, float]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", script]
    out = subprocess.run([*argv, target], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses for {target}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


# Each request from one of 100 client addresses (X-Forwarded-For, which DRF's throttles key on
# without NUM_PROXIES), so every client's throttle window stays short, as with real clients.
# `Connection: close` as a well-behaved client does with a sync worker, which closes every
# connection: without it wrk writes its next request into the closing socket, and gunicorn's
# graceful close waits to drain it, which adds stalls no real client sees.
# `delay()` (think time) makes each connection a client that waits between its requests.
WRK_LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  local headers = {["X-Forwarded-For"] = "10.0.0." .. (i %% 100), ["Connection"] = "close"}
  return wrk.format("GET", paths[(i %% #paths) + 1], headers)
end
%s
"""


def wrk_script(directory: str, paths: list[str], think_ms: int) -> str:
    path = os.path.join(directory, f"paths{len(os.listdir(directory))}.lua")
    delay = f"delay = function() return {think_ms} end" if think_ms else ""
    with open(path, "w") as f:
        f.write(WRK_LUA % (", ".join(f'"{p}"' for p in paths), delay))
    return path


def invalidate_loop(stop: threading.Event, every_s: float) -> None:
    from apps.markets.services.charts import chart_cache_invalidate

    while not stop.wait(every_s):
        for symbol in SYMBOLS:
            chart_cache_invalidate(symbol=symbol)


Row = tuple[str, str, int, int, dict[str, float]]  # what, path shown, clients, think ms, wrk figures


def http_measure(args: argparse.Namespace, scripts: str) -> list[Row]:
    base = f"http://127.0.0.1:{PORT}/"
    c, s = args.connections, args.seconds
    rows: list[Row] = []
    mixed = [f"/api/crypto/{sym}/chart?range={r}" for sym in SYMBOLS for r in RANGE_NAMES]
    shown_mixed = "/api/crypto/{10 symbols}/chart?range={5 ranges}"

    def measure(name: str, shown: str, paths: list[str], think_ms: int = 0) -> None:
        script = wrk_script(scripts, paths, think_ms)
        prices_ingest(random.Random())  # the ticker keys live 60 s
        run_wrk(base, 2, c, script)  # warm-up
        rows.append((name, shown, c, think_ms, run_wrk(base, s, c, script)))

    for range_name in ("1d", "1m"):
        path = f"/api/crypto/btc/chart?range={range_name}"
        measure("one chart", path, [path])
    measure("10 symbols x 5 ranges", shown_mixed, mixed)
    stop = threading.Event()
    thread = threading.Thread(target=invalidate_loop, args=(stop, args.invalidate_every), daemon=True)
    thread.start()
    try:
        measure(f"10 x 5, chart caches dropped every {args.invalidate_every:g} s", shown_mixed, mixed)
    finally:
        stop.set()
        thread.join()
    measure("market prices", "/api/market/prices", ["/api/market/prices"])
    for think_ms in args.think:
        measure("10 symbols x 5 ranges", shown_mixed, mixed, think_ms)
    return rows


@contextlib.contextmanager
def gunicorn(app: str, extra_env: dict[str, str], cwd: Path | str) -> Iterator[None]:
    """gunicorn as in production: 2 sync workers."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
            raise RuntimeError(f"something already listens on 127.0.0.1:{PORT}")
    argv = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{PORT}", app]
    server = subprocess.Popen(
        argv,
        env={**env(), **extra_env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up()
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def server_run(
    args: argparse.Namespace, scripts: str, cache_seconds: int, firsts: bool
) -> tuple[list[Row], list, int]:
    """Haunt with the shared response cache on (1 s) or off (0); also the 1d chart's size."""
    with gunicorn("haunt.wsgi", {"HAUNT_PUBLIC_CACHE_SECONDS": str(cache_seconds)}, ROOT):
        first = first_requests(args.rounds) if firsts else []
        return http_measure(args, scripts), first, body_bytes("/api/crypto/btc/chart?range=1d")


FLOOR_APP = """
BODY = b"x" * %d


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
"""


def floor_run(args: argparse.Namespace, scripts: str, size: int) -> list[Row]:
    """The same load on a WSGI app that answers a constant body of the 1d chart's size: what
    gunicorn and wrk alone cost on these two cores, the floor for any Python handler."""
    with open(os.path.join(scripts, "floor_app.py"), "w") as f:
        f.write(FLOOR_APP % size)
    rows: list[Row] = []
    path = "/api/crypto/btc/chart?range=1d"
    with gunicorn("floor_app:app", {}, scripts):
        for think_ms in [0, *args.think]:
            script = wrk_script(scripts, [path], think_ms)
            run_wrk(f"http://127.0.0.1:{PORT}/", 2, args.connections, script)
            figures = run_wrk(f"http://127.0.0.1:{PORT}/", args.seconds, args.connections, script)
            rows.append((f"constant {size / 1024:.0f} KB body", "any", args.connections, think_ms, figures))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--think", type=int, action="append", help="think-time runs, ms (default 100 and 50)")
    parser.add_argument("--builds", type=int, default=50, help="in-process uncached builds per range")
    parser.add_argument("--rounds", type=int, default=3, help="first-request rounds over HTTP")
    parser.add_argument("--invalidate-every", type=float, default=1.0)
    args = parser.parse_args()
    args.think = args.think or [100, 50]
    django_setup()
    prepare()
    rng = random.Random(3)
    prices_ingest(rng)
    stop = threading.Event()
    ingester = threading.Thread(target=ingest_loop, args=(stop,), daemon=True)
    ingester.start()

    builds = builds_time(args.builds)
    redis_p50, redis_p99 = redis_hits_time(200)

    scripts = tempfile.mkdtemp(prefix="haunt-bench-wrk-")
    try:
        django_rows, firsts, _ = server_run(args, scripts, cache_seconds=0, firsts=True)
        cached_rows, _, chart_bytes = server_run(args, scripts, cache_seconds=1, firsts=False)
        floor_rows = floor_run(args, scripts, size=chart_bytes)
    finally:
        stop.set()
        ingester.join(timeout=15)
        shutil.rmtree(scripts, ignore_errors=True)

    command = "python bench/chart_api.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    print("## Charts and prices API\n")
    print(f"Command: `{command.strip()}`\n")
    print(
        f"Machine: {os.cpu_count()} shared cores; gunicorn with 2 sync workers (`gunicorn haunt.wsgi -w 2`, "
        "the production REST layout), pooled PostgreSQL, Redis caches (db 4), throttles on but raised "
        f"(100000000/s), 100 client addresses (X-Forwarded-For); wrk `-t2 -c{args.connections} --latency` "
        "on the same two cores, each request with `Connection: close` (a sync worker closes every "
        "connection). Two servers in one run: every request through Django "
        "(`HAUNT_PUBLIC_CACHE_SECONDS=0`), then the production default (public market data kept "
        f"1 s by the shared response cache). Load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.\n"
    )
    print("### Over HTTP\n")
    print(
        "Think 0: every client sends its next request as soon as it has the answer (closed loop: "
        "the server's throughput; latency is mostly queueing). Think N ms: each client waits N ms "
        "between requests.\n"
    )
    print("| GET | what | clients | think | server | requests/s | per worker | p50 | p99 | socket errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    servers = (("Django", django_rows), ("shared cache", cached_rows), ("no-op WSGI app", floor_rows))
    for label, rows in servers:
        for name, path, connections, think, r in rows:
            print(
                f"| `{path}` | {name} | {connections} | {think} ms | {label} | {r['rps']:,.0f} | "
                f"{r['rps'] / 2:,.0f} | {r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['errors']:.0f} |"
            )
    print("\n### Full history build (uncached)\n")
    print(
        f"In this process: `chart_get` right after `chart_cache_invalidate` (Redis entry and process "
        f"memory dropped), {args.builds} builds per range over the 10 symbols, machine otherwise idle. "
        f"Over HTTP: the first request for each symbol and range after dropping every cache, "
        f"{args.rounds} rounds, one request at a time.\n"
    )
    print(
        "| range | points | in-process p50 | in-process p99 | first HTTP request p50 | first HTTP request p99 |"
    )
    print("|---|---|---|---|---|---|")
    by_range = {name: (p50, p99) for name, p50, p99, _ in firsts}
    for name, p50, p99, points in builds:
        hp50, hp99 = by_range[name]
        print(f"| {name} | {points} | {p50:.1f} ms | {p99:.1f} ms | {hp50:.1f} ms | {hp99:.1f} ms |")
    print(
        f"\nServed from the Redis entry (process memory cleared; forming bucket rebuilt), "
        f"in this process: p50 {redis_p50:.2f} ms, p99 {redis_p99:.2f} ms over 200 reads."
    )


if __name__ == "__main__":
    main()
