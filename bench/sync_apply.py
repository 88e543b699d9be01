"""Sync data-plane benchmark: capture overhead per write, and batch_apply throughput node to node.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/haunt_d HAUNT_DATA_DIR=/tmp/hd_d \
        /tmp/venv/bin/python bench/sync_apply.py [--orders 10000] [--fills 30000] [--page 1000]

Creates two scratch databases next to DATABASE_URL's (<name>_bench_a / _bench_b), migrates them,
and drops them at the end. Node A writes; node B applies A's pages (feed_page -> batch_apply, the
worker's hot path without HTTP). Reported: ORM save() per row with and without capture; apply
rows/s for inserts, updates (guarded upsert) and append-only rows; and feed read rows/s.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")
os.environ.setdefault("HAUNT_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnop")

import django

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from apps.sync.apply import batch_apply  # noqa: E402
from apps.sync.feed import cursor_get, feed_page  # noqa: E402
from apps.sync.models import capture_disabled  # noqa: E402
from apps.trading.models import Fill, Order, Portfolio  # noqa: E402

A, B = "osaka", "seoul"


def admin(params: dict) -> psycopg.Connection:
    return psycopg.connect(
        dbname="postgres",
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        autocommit=True,
    )


def databases_create() -> tuple[str, str, list[str]]:
    base = copy.deepcopy(connections["default"].settings_dict)
    if connections["default"].vendor != "postgresql":
        raise SystemExit("The apply benchmark needs PostgreSQL (DATABASE_URL=postgres://...).")
    names = []
    for alias in ("bench_a", "bench_b"):
        params = copy.deepcopy(base)
        params["NAME"] = f"{base['NAME']}_{alias}"
        params["OPTIONS"] = {k: v for k, v in params.get("OPTIONS", {}).items() if k != "pool"}
        with admin(params) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{params["NAME"]}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{params["NAME"]}"')
        connections.settings[alias] = params
        settings.DATABASES[alias] = params
        call_command("migrate", database=alias, verbosity=0, interactive=False)
        names.append(params["NAME"])
    return "bench_a", "bench_b", names


def databases_drop(names: list[str]) -> None:
    for alias in ("bench_a", "bench_b"):
        connections[alias].close()
    params = connections["default"].settings_dict
    with admin(params) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def capture_overhead(db: str, portfolio: Portfolio, rows: int) -> dict[str, float]:
    """Microseconds per ORM save() inside one transaction (so the commit's fsync, the same with or
    without capture, does not drown the difference), capture on vs off."""
    runs = iter(range(1_000_000))

    def run(capture: bool) -> float:
        order = Order.objects.using(db).create(
            portfolio=portfolio,
            client_order_id=f"ov-{next(runs)}",
            symbol="btc",
            side="buy",
            type="limit",
            quantity=Decimal("1"),
            price=Decimal("1"),
        )
        started = time.perf_counter()
        with transaction.atomic(using=db):
            for i in range(rows):
                order.price = Decimal(i + 1)
                if capture:
                    order.save(using=db)
                else:
                    with capture_disabled():
                        order.save(using=db)
        return (time.perf_counter() - started) / rows * 1e6

    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):
        for capture in (False, True):
            samples[capture].append(run(capture))
    return {
        "save_us_without_capture": statistics.median(samples[False]),
        "save_us_with_capture": statistics.median(samples[True]),
    }


class Meter:
    """Wall seconds, and CPU seconds of this process and of the database backend serving `alias`
    (read from /proc: the server runs on this machine). On a loaded machine wall time mostly
    measures the other processes; rows / (client CPU + server CPU) is what this single connection
    would do on an idle machine."""

    def __init__(self) -> None:
        self.wall = self.client = self.server = 0.0

    @staticmethod
    def _backend_cpu(alias: str) -> float:
        connection = connections[alias]
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measure(self, alias: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        server, client, wall = self._backend_cpu(alias), time.process_time(), time.perf_counter()
        try:
            return fn(**kwargs)
        finally:
            self.wall += time.perf_counter() - wall
            self.client += time.process_time() - client
            self.server += self._backend_cpu(alias) - server

    def add(self, *others: Meter) -> Meter:
        for other in others:
            self.wall += other.wall
            self.client += other.client
            self.server += other.server
        return self

    def rates(self, rows: int) -> str:
        cpu = self.client + self.server
        return (
            f"{rows / self.wall:,.0f} rows/s wall; CPU per row {self.client * 1e6 / rows:,.0f} us client "
            f"+ {self.server * 1e6 / rows:,.0f} us server = {rows / cpu if cpu else 0:,.0f} rows/s CPU-bound"
        )


def pull(*, src: str, dst: str, lane: int, page_size: int) -> tuple[int, Meter, Meter]:
    """Apply every page of `lane`; returns (rows, reading pages, applying them)."""
    rows = 0
    read, apply = Meter(), Meter()
    with connections[src].cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM sync_syncfeed WHERE lane = %s", [lane])
        top = int(cursor.fetchone()[0])
    while True:
        since = cursor_get(peer=A, lane=lane, using=dst)
        with override_settings(HAUNT_NODE_ID=A):
            page = read.measure(
                src, feed_page, lane=lane, since=since, limit=page_size, exclude_origin=B, using=src
            )
        if page["next"] == since:
            if since >= top:
                return rows, read, apply
            time.sleep(0.01)  # another transaction on the server holds the safe head back: lag
            continue
        with override_settings(HAUNT_NODE_ID=B):
            apply.measure(dst, batch_apply, peer=A, lane=lane, page=page, using=dst)
        rows += len(page["rows"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--fills", type=int, default=30_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--saves", type=int, default=1000)
    args = parser.parse_args()
    src, dst, names = databases_create()
    try:
        with override_settings(HAUNT_NODE_ID=A):
            user = User.objects.db_manager(src).create_user("bench", password="x")
            User.objects.db_manager(dst).create(id=user.id, username="bench", password=user.password)
            portfolio = Portfolio.objects.using(src).create(
                user=user, name="bench", cash=Decimal(10**9), initial_cash=Decimal(10**9), home_node=A
            )
            overhead = capture_overhead(src, portfolio, args.saves)
            pull(src=src, dst=dst, lane=2, page_size=args.page)  # the portfolio
            pull(src=src, dst=dst, lane=0, page_size=args.page)  # the overhead orders
            with transaction.atomic(using=src):
                Order.objects.using(src).bulk_create(
                    [
                        Order(
                            portfolio=portfolio,
                            client_order_id=f"bulk-{i}",
                            symbol="btc",
                            side="buy",
                            type="limit",
                            quantity=Decimal("1"),
                            price=Decimal("100"),
                        )
                        for i in range(args.orders)
                    ],
                    batch_size=2000,
                )
        inserted, read_i, apply_i = pull(src=src, dst=dst, lane=0, page_size=args.page)
        with override_settings(HAUNT_NODE_ID=A), transaction.atomic(using=src):
            Order.objects.using(src).filter(client_order_id__startswith="bulk-").update(price=Decimal("101"))
        updated, read_u, apply_u = pull(src=src, dst=dst, lane=0, page_size=args.page)
        with override_settings(HAUNT_NODE_ID=A), transaction.atomic(using=src):
            Fill.objects.using(src).bulk_create(
                [
                    Fill(
                        portfolio=portfolio,
                        symbol="btc",
                        side="buy",
                        quantity=Decimal("1"),
                        price=Decimal("100"),
                    )
                    for _ in range(args.fills)
                ],
                batch_size=5000,
            )
        appended, read_f, apply_f = pull(src=src, dst=dst, lane=3, page_size=args.page)
        assert Order.objects.using(dst).filter(price=Decimal("101")).count() == args.orders
        assert Fill.objects.using(dst).count() == args.fills
        print(
            f"capture overhead: ORM save() {overhead['save_us_without_capture']:.0f} us without capture, "
            f"{overhead['save_us_with_capture']:.0f} us with capture "
            f"(+{overhead['save_us_with_capture'] - overhead['save_us_without_capture']:.0f} us per write)"
        )
        print(f"apply inserts (orders, {inserted} rows, page {args.page}): {apply_i.rates(inserted)}")
        print(f"apply updates (orders, {updated} rows): {apply_u.rates(updated)}")
        print(f"apply append-only (trades, {appended} rows): {apply_f.rates(appended)}")
        total = inserted + updated + appended
        print(f"feed read (pages built, {total} rows): {Meter().add(read_i, read_u, read_f).rates(total)}")
        print(f"end to end, read + apply, updates: {Meter().add(read_u, apply_u).rates(updated)}")
        print(f"end to end, read + apply, append-only: {Meter().add(read_f, apply_f).rates(appended)}")
    finally:
        databases_drop(names)


if __name__ == "__main__":
    main()
