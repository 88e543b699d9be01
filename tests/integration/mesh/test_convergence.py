"""Three real nodes (osaka, seoul, nyc) converge under concurrent writes and faults.

Each node is a PostgreSQL database, a gunicorn web process and a `manage.py sync_worker` process;
peers reach each other through the nemesis proxy. Clients write through the REST API on all
three nodes, some to the same rows at once. The CI profile cuts nyc off and heals it, and kills
seoul's worker mid-batch; `--soak` adds 30 minutes of random faults. Afterwards every replicated
table (and the conflict log) hashes the same on all nodes and the oracle holds.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from django.apps import apps

from apps.sync.models import ReplicatedModel
from tests.integration.mesh import checks, harness, scenario
from tests.integration.mesh.workload import Oracle, PriceFeeder, Workload, mesh_users

pytestmark = [pytest.mark.mesh, pytest.mark.integration, pytest.mark.postgres]

NODES = [("osaka", "ap-northeast-3"), ("seoul", "ap-northeast-2"), ("nyc", "us-east-1")]
CI = {"warmup_s": 8, "users": 9, "rate": 25.0, "partition_s": 15, "after_kill_s": 8, "converge_s": 60}


def test_replicated_tables_are_the_thirteen_entities():
    tables = {
        m._meta.db_table
        for m in apps.get_models()
        if issubclass(m, ReplicatedModel) and m._meta.app_label != "sync"
    }
    assert tables == set(checks.REPLICATED_TABLES.values())
    assert apps.get_model("sync", "SyncConflict")._meta.db_table == checks.CONFLICT_TABLE


def test_three_nodes_converge_under_partition_and_worker_kill(
    mesh_template, mesh_seed, soak_seconds, mesh_artifacts, mesh_keep, mesh_home_trading
):
    started = time.monotonic()
    mesh = harness.mesh_build(NODES, primary="osaka", template=mesh_template)
    prices = PriceFeeder(mesh_seed).start()
    log = scenario.FaultLog()
    oracle = Oracle(mesh_artifacts / "oracle.jsonl")
    timings: dict[str, float] = {"build_s": round(time.monotonic() - started, 1)}
    try:
        users = mesh_users(CI["users"], [name for name, _ in NODES])
        scenario.accounts_create(list(mesh), users)
        log.add(f"accounts created (mesh built in {timings['build_s']} s)")
        workload = Workload(list(mesh), users, oracle, seed=mesh_seed, home_trading=mesh_home_trading)

        async def run() -> None:
            await workload.open()
            try:
                await workload.setup_users()
                log.add("profiles and portfolios created on home nodes")
                await asyncio.to_thread(checks.wait_converged, list(mesh), timeout=60)
                log.add("setup replicated")
                await workload.run(seconds=CI["warmup_s"], rate=CI["rate"])
                # Fault phase: writes continue on all three nodes throughout.
                faults = asyncio.to_thread(scenario.partition, mesh, "nyc", CI["partition_s"], log)
                await asyncio.gather(workload.run(seconds=CI["partition_s"] + 3, rate=CI["rate"]), faults)
                kill = asyncio.to_thread(scenario.kill_worker_mid_batch, mesh, "seoul", 2.0, log)
                await asyncio.gather(workload.run(seconds=CI["after_kill_s"], rate=CI["rate"] * 2), kill)
                if soak_seconds:
                    soak = scenario.soak_faults(mesh, seconds=soak_seconds, seed=mesh_seed, log=log)
                    await asyncio.gather(workload.run(seconds=soak_seconds, rate=CI["rate"]), soak)
            finally:
                await workload.close()

        asyncio.run(run())
        timings["workload_s"] = round(time.monotonic() - started - timings["build_s"], 1)
        scenario.heal_everything(mesh, log)
        problems: list[str] = []
        try:
            converged = checks.wait_converged(list(mesh), timeout=CI["converge_s"])
            timings["converge_s"] = converged["seconds"]
        except checks.NotConverged as exc:
            problems.append(str(exc))
        # The oracle checks run even when the hashes differ: they tell lost writes from stuck ones.
        problems += scenario.acknowledged_rows_present(mesh, oracle)
        problems += scenario.last_writer_wins_holds(mesh, oracle)
        conflict_problems, per_strategy = scenario.conflicts_consistent(mesh)
        problems += conflict_problems
        print(f"oracle: {oracle.summary()}")
        print(
            f"rows per table: { {t: v[mesh.primary][0] for t, v in checks.mesh_hashes(list(mesh)).items()} }"
        )
        print(f"conflicts per strategy: {per_strategy}")
        print(f"timings: {timings}, total {time.monotonic() - started:.1f} s")
        assert sum(r.outcome == "ok" for r in oracle.records) > 100, oracle.summary()
        assert not problems, "\n".join(problems)
    finally:
        prices.stop()
        scenario.save_artifacts(mesh, mesh_artifacts, log=log, extra={"seed": mesh_seed, "timings": timings})
        mesh.stop()
        if not mesh_keep:
            for node in mesh:
                node.drop()
