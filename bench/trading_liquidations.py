"""Re-evaluating 100,000 open positions for liquidation after one price move, on PostgreSQL.

Usage (a PostgreSQL database of your own: the bench deletes its previous data, users "bench-liq-*"):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/haunt_p REDIS_URL=redis://127.0.0.1:6379/2 \\
    HAUNT_DATA_DIR=/tmp/hd_p /tmp/venv/bin/python bench/trading_liquidations.py \\
        [--positions 100000] [--liquidate 100] [--rounds 5]

Builds N open BTC positions (bulk_create through the managers, replication capture off for the
starting state only): one per portfolio, mixed long/short, isolated/cross (60/40), leverage 2x to
125x within the bracket caps, entries within ±1% of 50,000, margins and cash such that nothing is
liquidatable at 50,000, liquidation prices computed with the engine's formula. Then times
`liquidations_check(symbol="btc", mark=...)`:

1. a move where nothing liquidates (up to a price below every short's liquidation price);
2. a move down to the liquidation price of the K-th most exposed long, so K positions
   (--liquidate, default 100 = 0.1%) are liquidated, each in its own transaction with replication
   capture on, and the rest are filtered out by the database.

Then, for comparison in the same run, the quiet move again without the model's partial index
`position_open_liquidation` (symbol, side, liquidation_price WHERE status = 'open'), which is
dropped for that measurement and recreated.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from apps.markets.services.aggregation import AggregatedPrice  # noqa: E402
from apps.markets.services.store import price_store  # noqa: E402
from apps.sync.models import current_node_id  # noqa: E402
from apps.sync.models.base import capture_disabled  # noqa: E402
from apps.trading.engine import margin  # noqa: E402
from apps.trading.models import Liquidation, Portfolio, Position  # noqa: E402
from apps.trading.services.liquidations import CANDIDATE_PAGE, liquidations_check  # noqa: E402
from apps.trading.services.risk import bracket_tables  # noqa: E402
from haunt.seeding import seed_defaults  # noqa: E402

START = Decimal(50000)
LEVERAGES = [2, 3, 5, 10, 20, 25, 50, 75, 100, 125]
WEIGHTS = [5, 5, 15, 25, 20, 10, 10, 4, 4, 2]
PORTFOLIOS_PER_USER = 1000
BATCH = 5000


def cleanup() -> None:
    with capture_disabled():
        users = User.objects.filter(username__startswith="bench-liq-")
        for user_id in list(users.values_list("pk", flat=True)):
            User.objects.filter(pk=user_id).delete()


def build(count: int, rng: random.Random) -> None:
    table = bracket_tables(["btc"])["btc"]
    users = User.objects.bulk_create(
        [
            User(username=f"bench-liq-{i}")
            for i in range((count + PORTFOLIOS_PER_USER - 1) // PORTFOLIOS_PER_USER)
        ]
    )
    portfolios, positions = [], []
    for index in range(count):
        side = "long" if rng.random() < 0.5 else "short"
        mode = "isolated" if rng.random() < 0.6 else "cross"
        quantity = Decimal(rng.randint(1, 2000)) / 1000
        entry = (START * Decimal(1 + rng.uniform(-0.01, 0.01))).quantize(Decimal("0.01"))
        leverage = min(
            rng.choices(LEVERAGES, WEIGHTS)[0], margin.max_leverage_for_notional(table, quantity * entry)
        )
        while True:
            initial = quantity * entry / leverage
            wallet = initial if mode == "isolated" else initial * Decimal(rng.uniform(1.05, 3))
            price = margin.liquidation_price(
                side=side, quantity=quantity, entry=entry, wallet=wallet, brackets=table
            )
            safe = price is None or (price < START if side == "long" else price > START)
            if safe or leverage == 1:
                break
            leverage = max(1, leverage // 2)
        cash = wallet * Decimal(rng.uniform(0.5, 3)) if mode == "isolated" else wallet
        portfolio = Portfolio(
            user=users[index // PORTFOLIOS_PER_USER],
            name=f"p{index}",
            cash=cash.quantize(Decimal("0.000000000001")),
            initial_cash=cash.quantize(Decimal("0.000000000001")),
            home_node=current_node_id(),
        )
        portfolios.append(portfolio)
        positions.append(
            Position(
                portfolio=portfolio,
                symbol="btc",
                side=side,
                quantity=quantity,
                entry_price=entry,
                leverage=leverage,
                margin_mode=mode,
                isolated_margin=wallet.quantize(Decimal("0.000000000001")) if mode == "isolated" else 0,
                liquidation_price=None if price is None else price.quantize(Decimal("0.000000000001")),
            )
        )
    with capture_disabled():
        Portfolio.objects.bulk_create(portfolios, batch_size=BATCH)
        Position.objects.bulk_create(positions, batch_size=BATCH)


def set_mark(price: Decimal) -> None:
    price_store().prices_put(
        [
            AggregatedPrice(
                symbol="btc",
                price=price,
                previous_price=None,
                direction="up",
                source="bench",
                sources=("bench",),
                timestamp=int(time.time() * 1000),
            )
        ]
    )


def timed(mark: Decimal) -> tuple[float, int]:
    set_mark(mark)
    started = time.perf_counter()
    done = liquidations_check(symbol="btc", mark=mark)
    return time.perf_counter() - started, len(done)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--liquidate", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database.")

    call_command("migrate", verbosity=0)
    seed_defaults()
    cleanup()
    started = time.perf_counter()
    build(args.positions, random.Random(args.seed))
    built_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trading_position")

    open_btc = Position.objects.filter(symbol="btc", status="open")
    longs = open_btc.filter(side="long", liquidation_price__isnull=False).order_by("-liquidation_price")
    shorts = open_btc.filter(side="short", liquidation_price__isnull=False).order_by("liquidation_price")
    lowest_short = shorts.values_list("liquidation_price", flat=True).first()
    assert lowest_short is not None
    quiet_mark = ((START + lowest_short) / 2).quantize(Decimal("0.01"))
    kth_long = longs.values_list("liquidation_price", flat=True)[args.liquidate - 1] - Decimal("0.01")
    plan = (
        open_btc.filter(side="long", liquidation_price__gte=quiet_mark)
        .order_by("-liquidation_price")
        .values_list("pk", "portfolio_id", "liquidation_price")[:CANDIDATE_PAGE]
        .explain(analyze=True)
    )

    quiet = [timed(quiet_mark) for _ in range(args.rounds)]
    assert all(n == 0 for _, n in quiet)
    before = Liquidation.objects.count()
    crash_s, crashed = timed(kth_long)
    assert Liquidation.objects.count() - before == crashed
    after = [timed(kth_long) for _ in range(args.rounds)]  # the same price again: all filtered
    index = next(i for i in Position._meta.indexes if i.name == "position_open_liquidation")
    with connection.schema_editor() as editor:
        editor.remove_index(Position, index)
    try:
        unindexed = [timed(quiet_mark) for _ in range(args.rounds)]
    finally:
        with connection.schema_editor() as editor:
            editor.add_index(Position, index)

    quiet_ms = [s * 1000 for s, _ in quiet]
    after_ms = [s * 1000 for s, _ in after]
    print(
        f"## Liquidation check over {args.positions:,} open positions (PostgreSQL {getattr(connection, 'pg_version', '?')})"
    )
    print()
    unindexed_ms = [t * 1000 for t, _ in unindexed]
    print(f"- built in {built_s:.1f} s; isolated {open_btc.filter(margin_mode='isolated').count():,}, "
          f"cross {open_btc.filter(margin_mode='cross').count():,}")  # fmt: skip
    print(f"- move 50,000 -> {quiet_mark} (nothing liquidates): median {statistics.median(quiet_ms):.1f} ms, "
          f"min {min(quiet_ms):.1f} ms over {args.rounds} rounds")  # fmt: skip
    print(f"- move 50,000 -> {kth_long.quantize(Decimal('0.01'))}: {crashed} liquidated "
          f"({crashed / args.positions:.2%}) in {crash_s * 1000:.1f} ms "
          f"({crash_s * 1000 / max(1, crashed):.2f} ms per liquidation, everything included)")  # fmt: skip
    print(f"- same price again (all filtered): median {statistics.median(after_ms):.1f} ms")
    print(f"- quiet move without the partial liquidation-price index: median "
          f"{statistics.median(unindexed_ms):.1f} ms ({statistics.median(unindexed_ms) / statistics.median(quiet_ms):.1f}x)")  # fmt: skip
    print()
    print("Candidate query plan (longs, quiet move):")
    print(plan)


if __name__ == "__main__":
    main()
