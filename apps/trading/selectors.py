"""Trading reads: live marks, instruments, bracket tables and engine settings."""

from __future__ import annotations

import time
from decimal import Decimal

from django.utils import timezone

from apps.markets.services.store import price_store
from apps.trading.engine.margin import Bracket
from apps.trading.exceptions import PriceUnavailable, UnknownSymbol
from apps.trading.models import EngineSettings, Instrument, LeverageBracket


def engine_settings() -> EngineSettings:
    """The engine's settings row (created with defaults on first use)."""
    settings, _ = EngineSettings.objects.get_or_create(key="default")
    return settings


def instrument_get(symbol: str) -> Instrument:
    instrument = Instrument.objects.filter(symbol=symbol.lower(), enabled=True).first()
    if instrument is None:
        raise UnknownSymbol(f"{symbol!r} is not a tradable symbol.", symbol=symbol)
    return instrument


def brackets_for(instrument: Instrument) -> list[Bracket]:
    """The instrument's bracket table in force today, lowest bracket first."""
    rows = LeverageBracket.objects.filter(
        exchange_id=instrument.bracket_exchange_id,
        symbol=instrument.bracket_symbol,
        effective_from__lte=timezone.localdate(),
    ).order_by("-effective_from", "bracket")
    latest = None
    table: list[Bracket] = []
    for row in rows:
        if latest is None:
            latest = row.effective_from
        if row.effective_from != latest:
            break
        table.append(
            Bracket(
                bracket=row.bracket,
                initial_leverage=row.initial_leverage,
                floor=row.notional_floor,
                cap=row.notional_cap,
                mmr=row.maint_margin_ratio,
                cum=row.cum,
            )
        )
    return table


def mark_prices(symbols: list[str], *, max_age_seconds: int | None = None) -> dict[str, Decimal]:
    """Fresh aggregated prices of the symbols that have one (missing or stale ones are left out)."""
    max_age_ms = 1000 * (
        max_age_seconds if max_age_seconds is not None else engine_settings().max_price_age_seconds
    )
    now_ms = int(time.time() * 1000)
    prices = price_store().prices_get(symbols)
    return {
        symbol: price.price
        for symbol, price in prices.items()
        if not price.stale and now_ms - price.timestamp <= max_age_ms
    }


def mark_price(symbol: str) -> Decimal:
    """The live aggregated price of a symbol, or PriceUnavailable (503) when none is fresh."""
    price = mark_prices([symbol]).get(symbol)
    if price is None:
        raise PriceUnavailable(f"No fresh price for {symbol!r}; try again shortly.", symbol=symbol)
    return price
