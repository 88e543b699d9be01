"""REST throughput of one node, in one run: daphne vs gunicorn, pooled vs per-request connections.

Usage (PostgreSQL on 127.0.0.1:5432; needs `wrk`, e.g. `apt-get install wrk`):

    .venv/bin/python bench/rest_throughput.py [--seconds 10] [--connections 32]

Each server gets the same two GETs, one after the other, with wrk on the same machine:
/api/market/prices (public, no database: framework overhead) and /api/auth/me (token lookup and
profile read in a transaction: three queries). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "haunt_bench"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DATABASE_URL", "REDIS_URL"))}
    base.update(
        DJANGO_SETTINGS_MODULE="haunt.settings",
        HAUNT_DEBUG="false",
        HAUNT_DATA_DIR="/tmp/haunt-bench",
        DATABASE_URL=DATABASE_URL,
        HAUNT_THROTTLE_USER="100000000/min",
        **extra,
    )
    return base


def prepare() -> str:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env(), check=True, cwd=ROOT)
    script = (
        "from django.contrib.auth.models import User; from haunt.accounts import api_token_get_or_create;"
        "u, _ = User.objects.get_or_create(username='bench'); print(api_token_get_or_create(user=u))"
    )
    out = subprocess.run(
        [*manage, "shell", "-c", script], env=env(), check=True, cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def wait_up(port: int) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


PATHS = ("/api/market/prices", "/api/auth/me")


def run_wrk(port: int, token: str, seconds: int, connections: int, path: str) -> tuple[float, str]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Token {token}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses on port {port}")
    return rps, p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    token = prepare()
    py = sys.executable
    cases = [
        ("daphne, 1 process, pooled", [py, "-m", "daphne", "-p", "{port}", "haunt.asgi:application"], {}),
        (
            "gunicorn, 2 sync workers, pooled",
            [py, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "haunt.wsgi"],
            {},
        ),
        (
            "gunicorn, 2 sync workers, connection per request",
            [py, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "haunt.wsgi"],
            {"HAUNT_DB_POOL": "false"},
        ),
    ]
    rows = []
    for port, (name, command, extra) in enumerate(cases, start=18101):
        argv = [part.replace("{port}", str(port)) for part in command]
        server = subprocess.Popen(
            argv,
            env=env(**extra),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_up(port)
            for path in PATHS:
                run_wrk(port, token, 2, args.connections, path)  # warm-up
                rows.append((name, path, *run_wrk(port, token, args.seconds, args.connections, path)))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    base = {path: rps for name, path, rps, _ in rows if name == cases[0][0]}
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s per row, PostgreSQL 15\n")
    print("| server | GET | requests/s | p99 latency | vs daphne |\n|---|---|---|---|---|")
    for name, path, rps, p99 in rows:
        print(f"| {name} | {path} | {rps:,.0f} | {p99} | {rps / base[path]:.1f}x |")


if __name__ == "__main__":
    main()
