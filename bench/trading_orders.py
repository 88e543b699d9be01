"""Orders placed per second through the service layer (order_place) on PostgreSQL.

Usage (PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, whose db 7 it flushes):

    .venv/bin/python bench/trading_orders.py [--orders 2000] [--portfolios 50] [--threads 4]

Prepares the database `haunt_bench_orders` (created if missing, migrated, seeded), Redis db 7
(flushed; the live BTC price the orders fill at is put there), and `--portfolios` funded
portfolios (cash 10^9, so no order is refused). Then, in this process:

1. market orders, one thread: buys and sells of 0.01 BTC round-robin over the portfolios
   (each fill opens, increases, reduces or closes a cross position: a Fill, a position write,
   margin history, the portfolio, the liquidation-price refresh, one Redis read of the mark);
2. resting limit orders, one thread: buys far below the price (each reserves margin and fee
   after summing the portfolio's reservations);
3. both again with `--threads` threads, each on its own share of the portfolios;
4. market orders with `--threads` threads all on ONE portfolio (they queue on its row lock);
5. prices_evaluate at a price that crosses none of the resting orders left by 2 and 3.

Prints one result line per phase (orders/s, p50 and p99 latency).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "haunt_bench_orders"
REDIS_URL = "redis://127.0.0.1:6379/7"
PRICE = Decimal("50000")

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "haunt.settings",
    "HAUNT_ENV": "development",
    "HAUNT_DEBUG": "false",
    "HAUNT_DATA_DIR": "/tmp/haunt-bench-orders",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
}


def django_setup() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DATABASE_URL", "REDIS_URL"))}
    os.environ.clear()
    os.environ.update(base | BENCH_ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def prepare(portfolios: int) -> list[Any]:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f"CREATE DATABASE {DB_NAME}")
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from apps.markets.services.store import redis_client
    from apps.sync.models import current_node_id
    from apps.trading.models import Portfolio

    redis_client(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    call_command("seed", stdout=open(os.devnull, "w"))  # noqa: SIM115
    User.objects.filter(username__startswith="bench-orders-").delete()  # cascades to their rows
    rows = []
    for i in range(portfolios):
        user = User.objects.create_user(username=f"bench-orders-{i}")
        rows.append(
            Portfolio.objects.create(
                user=user,
                name="bench",
                cash=Decimal("1000000000"),
                initial_cash=Decimal("1000000000"),
                is_active=True,
                home_node=current_node_id(),
            )
        )
    return rows


def price_set() -> None:
    from apps.markets.services.aggregation import AggregatedPrice
    from apps.markets.services.store import price_store

    now_ms = int(time.time() * 1000)
    price_store().prices_put(
        [AggregatedPrice("btc", PRICE, None, "up", "bench", ("bench",), now_ms)]  # type: ignore[call-arg]
    )


def price_keep_fresh(stop: threading.Event) -> None:
    """The price expires after max_price_age_seconds: re-put it, as the feed runner would."""
    while not stop.wait(5):
        price_set()


def market(portfolio: Any, i: int) -> None:
    from apps.trading.services.orders import order_place

    order_place(
        portfolio=portfolio,
        symbol="btc",
        side="buy" if (i // 2) % 2 == 0 else "sell",
        type="market",
        quantity=Decimal("0.01"),
        leverage=10,
    )


def limit(portfolio: Any, i: int) -> None:
    from apps.trading.services.orders import order_place

    order_place(
        portfolio=portfolio,
        symbol="btc",
        side="buy",
        type="limit",
        quantity=Decimal("0.01"),
        price=Decimal(30000 + i % 1000),
        leverage=10,
    )


def run(
    name: str, action: Callable[[Any, int], None], portfolios: list[Any], orders: int, threads: int
) -> tuple[float, list[float]]:
    """Place `orders` orders with `threads` threads, each thread on its share of the portfolios."""
    from django.db import connection

    price_set()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        mine = portfolios[index::threads] or portfolios
        try:
            barrier.wait()
            for i in range(index, orders, threads):
                started = time.perf_counter()
                action(mine[i % len(mine)], i)
                latencies[index].append(time.perf_counter() - started)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = [value for values in latencies for value in values]
    rate = len(flat) / elapsed
    print(
        f"RESULT {name}: {len(flat)} orders, {threads} thread(s), {len({id(p) for p in portfolios})} "
        f"portfolio(s): {rate:,.0f} orders/s, p50 {statistics.median(flat) * 1000:.2f} ms, "
        f"p99 {pct(flat, 99) * 1000:.2f} ms",
        flush=True,
    )
    return rate, flat


def evaluate_idle(repeats: int = 50) -> None:
    from apps.trading.models import Order
    from apps.trading.services.triggers import crossed_orders, prices_evaluate

    price_set()
    resting = Order.objects.filter(status__in=["open", "pending"], symbol="btc").count()
    timings, query = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = prices_evaluate(prices={"btc": PRICE})
        timings.append(time.perf_counter() - started)
        assert result.crossed == 0
        started = time.perf_counter()
        crossed_orders(prices={"btc": PRICE})
        query.append(time.perf_counter() - started)
    print(
        f"RESULT prices_evaluate, nothing crossed, {resting} resting btc orders: "
        f"p50 {statistics.median(timings) * 1000:.2f} ms (of which the crossed-orders query "
        f"{statistics.median(query) * 1000:.2f} ms, the rest is the liquidation check)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--portfolios", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    django_setup()
    portfolios = prepare(args.portfolios)
    print(f"Prepared {len(portfolios)} portfolios in {DB_NAME}; BTC at {PRICE}", flush=True)
    stop = threading.Event()
    threading.Thread(target=price_keep_fresh, args=(stop,), daemon=True).start()

    run("market orders", market, portfolios, args.orders, 1)
    run("resting limit orders", limit, portfolios, args.orders, 1)
    run("market orders", market, portfolios, args.orders, args.threads)
    run("resting limit orders", limit, portfolios, args.orders, args.threads)
    run("market orders, one shared portfolio", market, portfolios[:1], args.orders // 2, args.threads)
    evaluate_idle()
    stop.set()


if __name__ == "__main__":
    main()
