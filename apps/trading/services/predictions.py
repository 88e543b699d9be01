"""Quant bots' predictions: recorded when made, resolved against the price once the horizon passes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from apps.markets.models import AGGREGATE_SOURCE
from apps.markets.selectors_candles import bars_select
from apps.trading.exceptions import PriceUnavailable
from apps.trading.models import PredictionHistory, Strategy
from apps.trading.selectors import mark_price, owned_here

logger = logging.getLogger(__name__)

# Predictions examined per run (oldest first); the rest wait for the next minute.
RESOLVE_BATCH = 1000
# A prediction resolved this long after its horizon uses the 1m candle of the horizon's minute; a
# prediction resolved sooner, whose minute may still be forming, uses the live price.
LIVE_PRICE_GRACE = timedelta(minutes=2)


def prediction_record(
    *,
    strategy: Strategy,
    symbol: str,
    direction: str,
    confidence: Decimal,
    horizon_seconds: int,
    price: Decimal,
    target_price: Decimal | None = None,
    now: datetime | None = None,
) -> PredictionHistory:
    """Insert one prediction (append-only until resolved)."""
    prediction = PredictionHistory(
        strategy=strategy,
        symbol=symbol,
        predicted_at=now or timezone.now(),
        horizon_seconds=horizon_seconds,
        direction=direction,
        confidence=confidence,
        price_at_prediction=price,
        target_price=target_price,
    )
    prediction.save()
    return prediction


def predictions_resolve(*, now: datetime) -> int:
    """Fill actual_price, correct and resolved_at of every prediction of this node's bots (whose
    portfolio it owns, as bots_run_due) whose horizon has passed; returns how many were resolved.

    The actual price is the close of the 1m candle at the horizon when one is stored, else the live
    price. A prediction with neither stays open for the next run. Each prediction is claimed with a
    skip-locked row lock and resolved only once, so concurrent runs do not collide.
    """
    candidates = list(
        PredictionHistory.objects.filter(
            owned_here("strategy__portfolio"), resolved_at__isnull=True, predicted_at__lte=now
        )
        .order_by("predicted_at")
        .values_list("pk", "predicted_at", "horizon_seconds")[:RESOLVE_BATCH]
    )
    due = [pk for pk, at, horizon in candidates if at + timedelta(seconds=horizon) <= now]
    resolved = 0
    for pk in due:
        resolved += _prediction_resolve(pk=pk, now=now)
    return resolved


@transaction.atomic
def _prediction_resolve(*, pk: UUID, now: datetime) -> int:
    prediction = (
        PredictionHistory.objects.select_for_update(skip_locked=True)
        .filter(pk=pk, resolved_at__isnull=True)
        .first()
    )
    if prediction is None:
        return 0
    horizon_at = prediction.predicted_at + timedelta(seconds=prediction.horizon_seconds)
    actual = _price_at(symbol=prediction.symbol, at=horizon_at, now=now)
    if actual is None:
        return 0
    went_up = actual > prediction.price_at_prediction
    went_down = actual < prediction.price_at_prediction
    prediction.actual_price = actual
    prediction.correct = went_up if prediction.direction == PredictionHistory.Direction.UP else went_down
    prediction.resolved_at = now
    prediction.save(update_fields=["actual_price", "correct", "resolved_at"])
    return 1


def _price_at(*, symbol: str, at: datetime, now: datetime) -> Decimal | None:
    """The price of a symbol at a past time: its 1m candle close, else (shortly after) the live one."""
    at_ms = int(at.timestamp() * 1000)
    minute_ms = at_ms - at_ms % 60_000
    if now - at >= LIVE_PRICE_GRACE:
        bars = bars_select(
            source=AGGREGATE_SOURCE,
            symbol=symbol,
            interval="1m",
            start_ms=minute_ms,
            end_ms=minute_ms,
            limit=1,
            newest=True,
            now_ms=int(now.timestamp() * 1000),
        )
        if bars:
            return bars[-1].close
    try:
        return mark_price(symbol)
    except PriceUnavailable:
        return None
