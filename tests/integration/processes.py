"""Helpers to run real Haunt processes (daphne, Celery) against the test database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.db import connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_db(url: str, db: int) -> str:
    """The same Redis server, another database, so tests never meet a developer's stack."""
    return urlunparse(urlparse(url)._replace(path=f"/{db}"))


def child_database_url() -> str:
    """A DATABASE_URL for the database pytest-django created, for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(*, redis_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="haunt.settings",
        HAUNT_ENV="development",
        HAUNT_SECRET_KEY="integration-test-secret-key-0123456789-abcdefghijklmnop",
        HAUNT_DATA_DIR=str(data_dir),
        HAUNT_NODE_ID="itest",
        DATABASE_URL=child_database_url(),
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def start(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def daphne_command(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "haunt.asgi:application"]


def worker_command(name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "haunt",
        "worker",
        "-Q",
        "default",
        "--concurrency",
        "1",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_healthy(base_url: str, *, timeout: float, logs: list[Path]) -> dict:
    """Poll /api/health until 200; on timeout fail with the last answer and the logs."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get_json(f"{base_url}/api/health")
            if status == 200:
                return body
            last = str(body)
        except (OSError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    tails = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists()
    )
    raise AssertionError(f"not healthy after {timeout} s: {last}\n{tails}")


def wait_port(port: int, *, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    tails = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists()
    )
    raise AssertionError(f"nothing listening on {port} after {timeout} s\n{tails}")
