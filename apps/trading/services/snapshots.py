"""Portfolio snapshots: the points of each portfolio's equity curve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.trading.models import Portfolio, PortfolioSnapshot
from apps.trading.selectors import owned_here
from apps.trading.services.accounts import account_summaries

SNAPSHOT_INTERVAL = timedelta(minutes=15)
# Portfolios valued per round of queries: bounds memory and the size of the IN (...) lists.
BATCH_SIZE = 500


def snapshot_slot(*, now: datetime, interval: timedelta = SNAPSHOT_INTERVAL) -> datetime:
    """The start of the snapshot interval containing `now` (UTC), so a retried task reuses it."""
    step = int(interval.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)


def snapshots_take(*, taken_at: datetime) -> int:
    """One snapshot per portfolio of this node (other nodes snapshot their own) at `taken_at`,
    valued at the live marks; returns how many were written. Idempotent per (portfolio,
    taken_at): portfolios already snapshotted are skipped, and the unique constraint makes a
    racing run's duplicates no-ops."""
    pending = Portfolio.objects.filter(owned_here("")).exclude(snapshots__taken_at=taken_at).order_by("id")
    written = 0
    last_id = None
    while True:
        batch = list((pending.filter(pk__gt=last_id) if last_id else pending)[:BATCH_SIZE])
        if not batch:
            return written
        last_id = batch[-1].pk
        summaries = account_summaries(portfolios=batch)
        snapshots = [
            PortfolioSnapshot(
                portfolio=portfolio,
                taken_at=taken_at,
                equity=summaries[portfolio.pk].equity,
                cash=summaries[portfolio.pk].balance,
                unrealized_pnl=summaries[portfolio.pk].unrealized_pnl,
                realized_pnl=summaries[portfolio.pk].realized_pnl,
                used_margin=summaries[portfolio.pk].used_margin,
            )
            for portfolio in batch
        ]
        PortfolioSnapshot.objects.bulk_create(snapshots, ignore_conflicts=True)
        written += len(snapshots)
