"""Options and fixtures of the mesh tests: `--soak` (30 minutes of faults instead of the CI
profile's ~1 minute) and `--mesh-seed` (replay a run: the seed is printed on every run)."""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.integration.mesh import harness


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mesh", "multi-node sync tests")
    group.addoption(
        "--soak", action="store_true", default=False, help="Run the mesh convergence test for 30 minutes."
    )
    group.addoption("--soak-minutes", type=float, default=30.0, help="Length of the --soak fault phase.")
    group.addoption("--mesh-seed", type=int, default=None, help="Seed of the workload and fault schedule.")
    group.addoption(
        "--mesh-keep", action="store_true", default=False, help="Keep the databases after the run."
    )
    group.addoption(
        "--mesh-home-trading",
        action="store_true",
        default=False,
        help="Place orders and close positions only on the portfolio's home node (profile and "
        "portfolio edits still go to every node).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mesh: multi-process sync mesh test (PostgreSQL + Redis, several minutes)"
    )


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def mesh_services() -> None:
    """PostgreSQL and Redis on loopback, or skip (fail in CI)."""
    if not _reachable("127.0.0.1", 5432):
        skip_or_fail("the mesh test needs PostgreSQL on 127.0.0.1:5432")
    if not _reachable("127.0.0.1", 6379):
        skip_or_fail("the mesh test needs Redis on 127.0.0.1:6379")
    try:
        harness.databases_existing()
    except Exception as exc:  # psycopg.OperationalError and friends: a server we cannot use
        skip_or_fail(f"cannot administer PostgreSQL at {harness.PG_ADMIN_URL}: {exc}")


@pytest.fixture(scope="session")
def mesh_template(mesh_services: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.template_database(log_dir=tmp_path_factory.mktemp("mesh-template"))


@pytest.fixture
def mesh_seed(request: pytest.FixtureRequest) -> int:
    seed = request.config.getoption("--mesh-seed")
    if seed is None:
        seed = int(os.environ.get("HAUNT_MESH_SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"\nmesh seed: {seed} (replay with --mesh-seed {seed})")
    return int(seed)


@pytest.fixture
def soak_seconds(request: pytest.FixtureRequest) -> float | None:
    if not request.config.getoption("--soak"):
        return None
    return float(request.config.getoption("--soak-minutes")) * 60


@pytest.fixture
def mesh_artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where a run leaves its oracle, timeline and the nodes' logs (under HAUNT_MESH_DATA_DIR)."""
    path = harness.DATA_ROOT / "artifacts" / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path


@pytest.fixture
def mesh_keep(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--mesh-keep"))


@pytest.fixture
def mesh_home_trading(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--mesh-home-trading"))
