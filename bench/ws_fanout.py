"""WebSocket fan-out of /ws/prices on one node, against real processes, in one run.

Usage (Redis on 127.0.0.1:6379; uses and flushes db 11 only):

    /tmp/venv/bin/python bench/ws_fanout.py [--clients 1000] [--symbols-per-client 10] [--rate 100]
        [--seconds 30] [--idle 10000] [--skip-naive] [--skip-idle]

Load test, once per server (the same clients, symbols and publisher schedule for both):
  * "design": daphne serving haunt.asgi (PriceHub + per-client Mailbox, apps/markets/fanout.py);
    the publisher sends one `prices.batch` message per flush through prices_batch_send, from a
    worker thread, as the feed runner does.
  * "naive": daphne serving bench/naive_asgi.py (one layer group per symbol); the publisher does
    one group_send per price update, i.e. one layer message per subscribed client per update.

`--rate` updates/s in total go round-robin over `--universe` symbols (s000, s001, ...), flushed
every `--flush-ms`. Each price_update frame's data carries `sentAt` (wall-clock ms when the
batch was handed to the layer) and `timestamp` (ms when the update became due, so the flush wait
is included); load clients, in separate processes, subtract them from their receive time.

Idle test: `--idle` connections to one daphne serving haunt.asgi, each subscribed to one symbol,
held `--idle-seconds` while the publisher sends `--idle-rate` updates/s; reports how many stay
open and daphne's RSS per connection.

Every child runs in its own process group and is killed at the end, error or not. Prints a
Markdown section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path("/tmp/haunt-bench-ws")
REDIS_URL = "redis://127.0.0.1:6379/11"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARVED_BELOW = 0.5  # a client that got less than half of what was sent for its symbols


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def stop_requested(spec: dict[str, Any]) -> bool:
    return time.time() >= spec["deadline"] or Path(spec["stop_file"]).exists()


async def publisher(spec: dict[str, Any]) -> None:
    """`rate` updates/s round-robin over the symbols, one publish per flush, until told to stop."""
    import django

    django.setup()
    from apps.markets.services.prices import prices_batch_send

    if spec["mode"] == "naive":
        from bench.naive_asgi import naive_publish

        def send(frames: list[dict[str, Any]]) -> None:
            naive_publish(frames)
    else:

        def send(frames: list[dict[str, Any]]) -> None:
            prices_batch_send({"type": "prices.batch", "prices": frames, "candles": []})

    symbols: list[str] = spec["symbols"]
    rate, flush_s = spec["rate"], spec["flush_ms"] / 1000
    prices = [100.0 + i for i in range(len(symbols))]
    sent_symbol, sent_at, publish_ms = array.array("i"), array.array("d"), array.array("d")
    start_mono, start_wall = time.monotonic(), time.time()
    published = cursor = tick = 0
    rng = random.Random(7)
    while not stop_requested(spec):
        tick += 1
        await asyncio.sleep(max(0.0, start_mono + tick * flush_s - time.monotonic()))
        due = int(rate * (time.monotonic() - start_mono)) - published
        if due <= 0:
            continue
        frames = []
        now_ms = time.time() * 1000
        for j in range(due):
            index = cursor % len(symbols)
            cursor += 1
            previous = prices[index]
            prices[index] = round(previous * (1 + rng.uniform(-0.001, 0.001)), 6)
            symbol = symbols[index]
            frames.append(
                {
                    "type": "price_update",
                    "data": {
                        "id": symbol,
                        "symbol": symbol,
                        "price": prices[index],
                        "previousPrice": previous,
                        "tradeDirection": "up" if prices[index] >= previous else "down",
                        "source": "bench",
                        "sources": ["bench"],
                        # when this update became due: includes the wait for the flush
                        "timestamp": int(start_wall * 1000 + (published + j + 1) * 1000 / rate),
                        "sentAt": now_ms,  # handed to the channel layer
                    },
                }
            )
            sent_symbol.append(index)
            sent_at.append(now_ms)
        began = time.perf_counter()
        await asyncio.to_thread(send, frames)
        publish_ms.append((time.perf_counter() - began) * 1000)
        published += due
    out = spec["out"]
    with open(out + ".symbol", "wb") as fh:
        sent_symbol.tofile(fh)
    with open(out + ".sent", "wb") as fh:
        sent_at.tofile(fh)
    with open(out + ".publish", "wb") as fh:
        publish_ms.tofile(fh)


async def load_clients(spec: dict[str, Any]) -> None:
    """One process's share of the WebSocket clients; records every price_update received."""
    from websockets.asyncio.client import connect
    from websockets.protocol import State

    raise_nofile()
    assignments: list[list[str]] = spec["assignments"]
    first_id: int = spec["first_id"]
    url = f"ws://{HOST}:{spec['port']}/ws/prices"
    cid, sent, latency, tick_latency = (array.array(t) for t in ("i", "d", "d", "d"))
    subscribed_at: dict[int, float] = {}
    closed_early: dict[str, int] = {}
    errors: dict[str, int] = {}
    sockets: list[Any] = []
    pending = len(assignments)
    all_ready = asyncio.Event()
    gate = asyncio.Semaphore(spec["connect_concurrency"])

    def count(table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def settled() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            all_ready.set()

    async def client(index: int, symbols: list[str]) -> None:
        me = first_id + index
        try:
            async with gate:
                ws = await connect(
                    url,
                    open_timeout=spec["open_timeout"],
                    ping_interval=None,
                    compression=None,
                    close_timeout=2,
                )
                sockets.append(ws)
                await ws.send(json.dumps({"type": "subscribe", "symbols": symbols}))
        except Exception as exc:
            count(errors, f"connect: {type(exc).__name__}")
            settled()
            return
        ready = False
        try:
            async for raw in ws:
                now = time.time() * 1000
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "price_update":
                    data = message["data"]
                    cid.append(me)
                    sent.append(data["sentAt"])
                    latency.append(now - data["sentAt"])
                    tick_latency.append(now - data["timestamp"])
                elif kind == "subscribed":
                    subscribed_at[me] = now
                    ready = True
                    settled()
                elif kind != "snapshot":
                    count(errors, f"frame: {kind}")
            count(closed_early, str(ws.close_code))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            count(closed_early, type(exc).__name__)
        finally:
            if not ready:
                settled()

    started = time.time()
    tasks = [asyncio.create_task(client(i, symbols)) for i, symbols in enumerate(assignments)]
    while not all_ready.is_set() and not stop_requested(spec):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_ready.wait(), 0.2)
    Path(spec["ready_file"]).write_text(
        json.dumps({"subscribed": len(subscribed_at), "seconds": time.time() - started})
    )
    while not stop_requested(spec):
        await asyncio.sleep(0.2)
    open_at_stop = sum(1 for ws in sockets if ws.state is State.OPEN)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), 10)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = spec["out"]
    for suffix, values in (("cid", cid), ("sent", sent), ("latency", latency), ("tick", tick_latency)):
        with open(f"{out}.{suffix}", "wb") as fh:
            values.tofile(fh)
    summary = {
        "clients": len(assignments),
        "subscribed_at": subscribed_at,
        "open_at_stop": open_at_stop,
        "closed_early": closed_early,
        "errors": errors,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }
    Path(out + ".json").write_text(json.dumps(summary))


def child_main(role: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    asyncio.run(publisher(spec) if role == "_publish" else load_clients(spec))


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DATABASE_URL", "REDIS_URL"))}
    base.update(
        DJANGO_SETTINGS_MODULE="haunt.settings",
        HAUNT_DEBUG="false",
        HAUNT_DATA_DIR=str(DATA_DIR),
        REDIS_URL=REDIS_URL,
        DATABASE_URL=f"sqlite:///{DATA_DIR}/db.sqlite3",
        HAUNT_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    return base


class Processes:
    """Children in their own process groups; all killed on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path, *, high_nofile: bool = False) -> subprocess.Popen[bytes]:
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                argv,
                env=server_env(),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=raise_nofile if high_nofile else None,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc, timeout=5)
        self.procs.clear()


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}; see {DATA_DIR}/*.log")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_timeout=5)


def layer_backlog(client: Any) -> int:
    """Messages waiting in channels-redis channel queues (not group membership sets)."""
    keys = [k for k in client.scan_iter(match=b"haunt:ws:*", count=1000) if b":group:" not in k]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zcard(key)
        return int(sum(n or 0 for n in pipe.execute()))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def read_array(path: str, typecode: str) -> array.array[Any]:
    values = array.array(typecode)
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
        values.frombytes(fh.read())
    return values


def write_spec(name: str, spec: dict[str, Any]) -> str:
    path = DATA_DIR / f"{name}.spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def wait_files(paths: list[Path], timeout: float, procs: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(p.exists() for p in paths):
            return True
        if any(proc.poll() is not None for proc in procs):
            return False
        time.sleep(0.2)
    return False


def chunks(items: list[Any], parts: int) -> Iterator[tuple[int, list[Any]]]:
    size = -(-len(items) // parts)
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


class Phase:
    """One server, one publisher, N client processes; returns the measurements."""

    def __init__(self, args: argparse.Namespace, procs: Processes, name: str, port: int) -> None:
        self.args, self.procs, self.name, self.port = args, procs, name, port
        self.prefix = str(DATA_DIR / name)
        self.stop_clients = Path(self.prefix + ".stop-clients")
        self.stop_publisher = Path(self.prefix + ".stop-publisher")

    def start_server(self, app: str) -> subprocess.Popen[bytes]:
        return self.start_servers(app, 1)[0]

    def server_port(self, index: int) -> int:
        return self.port + 10 * index  # leaves room for the other phases' ports (+1, +2)

    def start_servers(self, app: str, count: int) -> list[subprocess.Popen[bytes]]:
        """`count` daphne processes, as a node would run behind its reverse proxy."""
        for path in DATA_DIR.glob(f"{self.name}.*"):
            path.unlink()
        redis_client().flushdb()
        servers = []
        for index in range(count):
            port = self.server_port(index)
            argv = [sys.executable, "-m", "daphne", "-v", "0", "-b", HOST, "-p", str(port), app]
            server = self.procs.start(argv, Path(f"{self.prefix}.daphne{index}.log"), high_nofile=True)
            wait_port(port, server)
            servers.append(server)
        return servers

    def start_publisher(self, mode: str, rate: float, budget: float) -> subprocess.Popen[bytes]:
        spec = {
            "mode": mode,
            "rate": rate,
            "flush_ms": self.args.flush_ms,
            "symbols": symbols(self.args.universe),
            "out": self.prefix + ".pub",
            "stop_file": str(self.stop_publisher),
            "deadline": time.time() + budget,
        }
        argv = [sys.executable, __file__, "_publish", write_spec(self.name + ".pub", spec)]
        return self.procs.start(argv, Path(self.prefix + ".publisher.log"))

    def start_clients(
        self, assignments: list[list[str]], processes: int, budget: float, servers: int = 1
    ) -> list[subprocess.Popen[bytes]]:
        clients = []
        per_proc_gate = max(4, self.args.connect_concurrency // processes)
        for n, (first, part) in enumerate(chunks(assignments, processes)):
            spec = {
                "port": self.server_port(n % servers),
                "first_id": first,
                "assignments": part,
                "open_timeout": 60,
                "connect_concurrency": per_proc_gate,
                "out": f"{self.prefix}.c{n}",
                "ready_file": f"{self.prefix}.c{n}.ready",
                "stop_file": str(self.stop_clients),
                "deadline": time.time() + budget,
            }
            argv = [sys.executable, __file__, "_clients", write_spec(f"{self.name}.c{n}", spec)]
            clients.append(self.procs.start(argv, Path(f"{self.prefix}.c{n}.log")))
        return clients

    def finish(self, publisher: subprocess.Popen[bytes], clients: list[subprocess.Popen[bytes]]) -> None:
        self.stop_publisher.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            publisher.wait(timeout=15)
        time.sleep(self.args.drain)
        self.stop_clients.touch()
        for proc in clients:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def client_results(self, processes: int) -> dict[str, Any]:
        merged: dict[str, Any] = {"subscribed_at": {}, "open_at_stop": 0, "closed_early": {}, "errors": {}}
        arrays: dict[str, array.array[Any]] = {
            "cid": array.array("i"),
            "sent": array.array("d"),
            "latency": array.array("d"),
            "tick": array.array("d"),
        }
        cpu = 0.0
        for n in range(processes):
            out = f"{self.prefix}.c{n}"
            with contextlib.suppress(FileNotFoundError):
                summary = json.loads(Path(out + ".json").read_text())
                merged["subscribed_at"].update({int(k): v for k, v in summary["subscribed_at"].items()})
                merged["open_at_stop"] += summary["open_at_stop"]
                for key in ("closed_early", "errors"):
                    for reason, n_ in summary[key].items():
                        merged[key][reason] = merged[key].get(reason, 0) + n_
                cpu += summary["cpu_s"]
            for suffix, values in arrays.items():
                values.extend(read_array(f"{out}.{suffix}", values.typecode))
        merged.update(arrays)
        merged["cpu_s"] = cpu
        return merged


def symbols(universe: int) -> list[str]:
    return [f"s{i:03d}" for i in range(universe)]


def load_phase(args: argparse.Namespace, procs: Processes, name: str, app: str, port: int) -> dict[str, Any]:
    phase = Phase(args, procs, name, port)
    log(f"[{name}] starting daphne {app} on :{port}")
    servers = phase.start_servers(app, args.servers)
    universe = symbols(args.universe)
    assignments = [
        random.Random(args.seed * 1_000_003 + i).sample(universe, args.symbols_per_client)
        for i in range(args.clients)
    ]
    budget = args.connect_timeout + args.warmup + args.seconds + args.drain + 60
    publisher = phase.start_publisher("naive" if name == "naive" else "design", args.rate, budget)
    clients = phase.start_clients(assignments, args.client_procs, budget, args.servers)
    ready = [Path(f"{phase.prefix}.c{n}.ready") for n in range(len(clients))]
    if not wait_files(ready, args.connect_timeout, [*servers, publisher, *clients]):
        log(f"[{name}] not every client process reported ready in {args.connect_timeout} s")
    log(f"[{name}] clients connected; warm-up {args.warmup} s, then measuring {args.seconds} s")
    time.sleep(args.warmup)
    rds = redis_client()
    watched = {
        "daphne": [server.pid for server in servers],
        "publisher": [publisher.pid],
        "clients": [c.pid for c in clients],
    }
    redis_pid = int(rds.info("server").get("process_id", 0))
    if redis_pid and Path(f"/proc/{redis_pid}").exists():
        watched["redis"] = [redis_pid]
    cpu_before = {k: sum(cpu_seconds(p) for p in pids) for k, pids in watched.items()}
    rss_start = sum(rss_mb(server.pid) for server in servers)
    window_start = time.time() * 1000
    backlog: list[int] = []
    while time.time() * 1000 < window_start + args.seconds * 1000:
        time.sleep(1)
        with contextlib.suppress(Exception):
            backlog.append(layer_backlog(rds))
    window_end = time.time() * 1000
    elapsed = (window_end - window_start) / 1000
    cpu = {k: (sum(cpu_seconds(p) for p in pids) - cpu_before[k]) / elapsed for k, pids in watched.items()}
    rss_end = sum(rss_mb(server.pid) for server in servers)
    server_alive = all(server.poll() is None for server in servers)
    phase.finish(publisher, clients)
    for server in servers:
        procs.stop(server)
    log(f"[{name}] done; analysing")

    pub_symbol = read_array(phase.prefix + ".pub.symbol", "i")
    pub_sent = read_array(phase.prefix + ".pub.sent", "d")
    publish_ms = sorted(read_array(phase.prefix + ".pub.publish", "d"))
    per_symbol = [0] * len(universe)
    for index, at in zip(pub_symbol, pub_sent, strict=True):
        if window_start <= at < window_end:
            per_symbol[index] += 1
    result = phase.client_results(len(clients))
    eligible = {c for c, at in result["subscribed_at"].items() if at < window_start}
    position = {s: i for i, s in enumerate(universe)}
    expected = {c: sum(per_symbol[position[s]] for s in assignments[c]) for c in eligible}
    received = dict.fromkeys(eligible, 0)
    third = (window_end - window_start) / 3
    latencies: list[float] = []
    tick_latencies: list[float] = []
    by_third: list[list[float]] = [[], [], []]
    for c, at, lat, tick in zip(
        result["cid"], result["sent"], result["latency"], result["tick"], strict=True
    ):
        if c in received and window_start <= at < window_end:
            received[c] += 1
            latencies.append(lat)
            tick_latencies.append(tick)
            by_third[min(2, int((at - window_start) // third))].append(lat)
    latencies.sort()
    tick_latencies.sort()
    for part in by_third:
        part.sort()
    ratios = sorted(received[c] / expected[c] for c in eligible if expected[c]) or [0.0]
    total_expected = sum(expected.values())
    return {
        "name": name,
        "clients": args.clients,
        "subscribed": len(eligible),
        "open_at_stop": result["open_at_stop"],
        "closed_early": result["closed_early"],
        "errors": result["errors"],
        "expected_per_s": total_expected / elapsed,
        "delivered_per_s": len(latencies) / elapsed,
        "delivered_share": len(latencies) / total_expected if total_expected else 0.0,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
        "tick_p99": percentile(tick_latencies, 0.99),
        "p99_thirds": [percentile(part, 0.99) for part in by_third],
        "min_ratio": ratios[0],
        "median_ratio": ratios[len(ratios) // 2],
        "starved": sum(1 for r in ratios if r < STARVED_BELOW),
        "cpu": cpu,
        "backlog_first": backlog[0] if backlog else 0,
        "backlog_max": max(backlog, default=0),
        "backlog_last": backlog[-1] if backlog else 0,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "server_alive": server_alive,
        "publish_p99_ms": percentile(publish_ms, 0.99),
        "updates_per_s": sum(per_symbol) / elapsed,
    }


def idle_phase(args: argparse.Namespace, procs: Processes, port: int) -> dict[str, Any]:
    phase = Phase(args, procs, "idle", port)
    log(f"[idle] starting daphne haunt.asgi on :{port}")
    server = phase.start_server("haunt.asgi:application")
    # One connection first so the consumer, the hub and the layer are loaded before the baseline.
    asyncio.run(probe(port))
    time.sleep(1)
    fds_before, rss_before = open_fds(server.pid), rss_mb(server.pid)
    universe = symbols(args.universe)
    rng = random.Random(args.seed)
    assignments = [[rng.choice(universe)] for _ in range(args.idle)]
    processes = max(1, -(-args.idle // args.idle_per_proc))
    budget = args.idle_connect_timeout + args.idle_seconds + args.drain + 60
    publisher = phase.start_publisher("design", args.idle_rate, budget)
    started = time.time()
    clients = phase.start_clients(assignments, processes, budget)
    ready = [Path(f"{phase.prefix}.c{n}.ready") for n in range(len(clients))]
    if not wait_files(ready, args.idle_connect_timeout, [server, publisher, *clients]):
        log("[idle] not every client process reported ready in time")
    connect_s = time.time() - started
    fds_open, rss_open = open_fds(server.pid), rss_mb(server.pid)
    log(f"[idle] {fds_open - fds_before} sockets open after {connect_s:.0f} s; holding {args.idle_seconds} s")
    hold_start = time.time() * 1000
    cpu_before = cpu_seconds(server.pid)
    time.sleep(args.idle_seconds)
    hold_end = time.time() * 1000
    cpu = (cpu_seconds(server.pid) - cpu_before) / ((hold_end - hold_start) / 1000)
    fds_after, rss_after = open_fds(server.pid), rss_mb(server.pid)
    server_alive = server.poll() is None
    phase.finish(publisher, clients)
    procs.stop(server)
    result = phase.client_results(len(clients))
    held = [
        lat for at, lat in zip(result["sent"], result["latency"], strict=True) if hold_start <= at < hold_end
    ]
    held.sort()
    opened = len(result["subscribed_at"])
    return {
        "requested": args.idle,
        "client_procs": processes,
        "opened": opened,
        "open_at_stop": result["open_at_stop"],
        "closed_early": result["closed_early"],
        "errors": result["errors"],
        "connect_s": connect_s,
        "fds_before": fds_before,
        "fds_open": fds_open,
        "fds_after": fds_after,
        "rss_before": rss_before,
        "rss_open": rss_open,
        "rss_after": rss_after,
        "kb_per_conn": (rss_after - rss_before) * 1024 / opened if opened else float("nan"),
        "cpu": cpu,
        "deliveries_per_s": len(held) / ((hold_end - hold_start) / 1000),
        "p99": percentile(held, 0.99),
        "server_alive": server_alive,
    }


async def probe(port: int) -> None:
    from websockets.asyncio.client import connect

    async with asyncio.timeout(20):
        async with connect(f"ws://{HOST}:{port}/ws/prices", compression=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["s000"]}))
            await ws.recv()
            await ws.recv()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def migrate() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        env=server_env(),
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def ms(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def report(args: argparse.Namespace, rows: list[dict[str, Any]], idle: dict[str, Any] | None) -> str:
    cpu_model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    command = " ".join(["bench/ws_fanout.py", *map(shlex.quote, sys.argv[1:])])
    lines = [
        "## WebSocket fan-out (/ws/prices)",
        "",
        f"Command: `python {command}`",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu_model}), shared and noisy; Python "
        f"{platform.python_version()}, Redis on 127.0.0.1, everything (daphne, Redis, publisher, "
        f"load clients) on the same cores. Load average at start: {args.loadavg}.",
        "",
    ]
    if rows:
        per_client = args.rate * args.symbols_per_client / args.universe
        lines += [
            f"{args.clients:,} clients, each subscribed to {args.symbols_per_client} random symbols of "
            f"{args.universe}; {args.rate:g} price updates/s in total (round-robin, {per_client:g}/s per "
            f"client), flushed every {args.flush_ms} ms; {args.servers} daphne process(es), clients split evenly; {args.client_procs} load-client "
            f"processes; {args.warmup} s warm-up, then {args.seconds} s measured. Latency is publish → "
            f'client receive (`sentAt`); "tick p99" also counts the wait for the flush. Starved: a client '
            f"that received < {STARVED_BELOW:.0%} of the updates sent for its symbols. Only updates sent "
            f"in the window count, and only if they arrived by {args.drain:g} s after it (drain); layer "
            f"backlog = messages waiting in channels-redis queues, sampled every second.",
            "",
            "| fan-out | clients | deliveries/s (expected) | delivered by window end + drain | p50 | p99 | max | tick p99 "
            "| p99 1st → last third | per client min / median | starved | layer backlog 1st → last second | daphne CPU "
            "| clients CPU | daphne RSS |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        labels = {
            "design": "design: PriceHub + Mailbox (haunt.asgi)",
            "naive": "naive: group per symbol (bench/naive_asgi.py)",
        }
        for r in rows:
            first, _, last = r["p99_thirds"]
            lines.append(
                f"| {labels[r['name']]} | {r['subscribed']:,}/{r['clients']:,} "
                f"| {r['delivered_per_s']:,.0f} ({r['expected_per_s']:,.0f}) | {r['delivered_share']:.1%} "
                f"| {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['max'])} | {ms(r['tick_p99'])} "
                f"| {ms(first)} → {ms(last)} | {r['min_ratio']:.0%} / {r['median_ratio']:.0%} "
                f"| {r['starved']:,} | {r['backlog_first']:,} → {r['backlog_last']:,} (max {r['backlog_max']:,}) | {r['cpu'].get('daphne', 0):.0%} "
                f"| {r['cpu'].get('clients', 0):.0%} | {r['rss_start']:.0f} → {r['rss_end']:.0f} MB |"
            )
        lines.append("")
        for r in rows:
            notes = [f"publisher {r['updates_per_s']:.0f} updates/s, publish p99 {ms(r['publish_p99_ms'])}"]
            notes.append(f"CPU: {', '.join(f'{k} {v:.0%}' for k, v in r['cpu'].items())}")
            if r["closed_early"] or r["errors"]:
                notes.append(f"closed early {r['closed_early']}, errors {r['errors']}")
            if not r["server_alive"]:
                notes.append("daphne exited during the run")
            lines.append(f"- {r['name']}: {'; '.join(notes)}.")
        lines.append("")
    if idle is not None:
        lines += [
            f"Idle connections: {idle['requested']:,} WebSocket connections to one daphne (haunt.asgi) from "
            f"{idle['client_procs']} client processes, each subscribed to 1 symbol, held {args.idle_seconds} s "
            f"while {args.idle_rate:g} updates/s are published (daphne RLIMIT_NOFILE = hard limit "
            f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}).",
            "",
            "| requested | subscribed | open at end | connect time | daphne RSS before → all open → end of hold "
            "| memory per connection | daphne fds | daphne CPU while held | deliveries/s, p99 while held |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {idle['requested']:,} | {idle['opened']:,} | {idle['open_at_stop']:,} | {idle['connect_s']:.0f} s "
            f"| {idle['rss_before']:.0f} → {idle['rss_open']:.0f} → {idle['rss_after']:.0f} MB "
            f"| {idle['kb_per_conn']:.0f} KB | {idle['fds_before']:,} → {idle['fds_after']:,} "
            f"| {idle['cpu']:.0%} | {idle['deliveries_per_s']:,.0f}, {ms(idle['p99'])} |",
            "",
        ]
        if idle["closed_early"] or idle["errors"] or not idle["server_alive"]:
            lines += [
                f"Idle run: closed early {idle['closed_early']}, errors {idle['errors']}, "
                f"daphne alive {idle['server_alive']}.",
                "",
            ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--symbols-per-client", type=int, default=10)
    parser.add_argument("--universe", type=int, default=100, help="symbols s000... in play")
    parser.add_argument("--rate", type=float, default=100, help="price updates/s in total")
    parser.add_argument("--flush-ms", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30, help="measured window")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--drain", type=float, default=3, help="seconds to let in-flight frames arrive")
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument(
        "--servers", type=int, default=1, help="daphne processes per phase (clients split evenly)"
    )
    parser.add_argument("--connect-concurrency", type=int, default=64, help="handshakes in flight, total")
    parser.add_argument("--connect-timeout", type=float, default=90)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--idle-per-proc", type=int, default=2500)
    parser.add_argument("--idle-seconds", type=int, default=20)
    parser.add_argument("--idle-rate", type=float, default=10)
    parser.add_argument("--idle-connect-timeout", type=float, default=240)
    parser.add_argument("--port", type=int, default=18301, help="design; naive +1, idle +2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    if args.symbols_per_client > args.universe:
        parser.error("--symbols-per-client must not exceed --universe")
    args.loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())

    procs = Processes()

    def on_signal(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    rows: list[dict[str, Any]] = []
    idle = None
    try:
        migrate()
        if not args.skip_load:
            rows.append(load_phase(args, procs, "design", "haunt.asgi:application", args.port))
            procs.stop_all()
            if not args.skip_naive:
                rows.append(load_phase(args, procs, "naive", "bench.naive_asgi:application", args.port + 1))
                procs.stop_all()
        if not args.skip_idle:
            idle = idle_phase(args, procs, args.port + 2)
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            redis_client().flushdb()
    print(report(args, rows, idle))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("_publish", "_clients"):
        child_main(sys.argv[1], sys.argv[2])
    else:
        main()
