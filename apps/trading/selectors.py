"""Trading reads: live marks, instruments, bracket tables and engine settings."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from apps.markets.services.store import price_store
from apps.sync.models import current_node_id
from apps.trading.engine.margin import Bracket
from apps.trading.exceptions import PortfolioHomedElsewhere, PriceUnavailable, UnknownSymbol
from apps.trading.models import EngineSettings, Instrument, LeverageBracket, Order, Portfolio

# Orders still working: waiting for their trigger (pending) or resting on the book (open).
RESTING_ORDER_STATUSES = (Order.Status.OPEN, Order.Status.PENDING)


def portfolio_owned_here(portfolio: Portfolio) -> None:
    """PortfolioHomedElsewhere (409) unless this node is the portfolio's home node: only the home
    node moves a portfolio's money, so two nodes never write conflicting rows for it."""
    if portfolio.home_node != current_node_id():
        raise PortfolioHomedElsewhere(
            "This portfolio is managed by another node; send the request to its home node.",
            home_node=portfolio.home_node,
        )


def owned_here(relation: str = "portfolio") -> Q:
    """Rows whose portfolio (reached through `relation`; "" for portfolios) this node owns: the
    filter of every periodic job and price evaluation, so each portfolio is processed by its home
    node only."""
    prefix = f"{relation}__" if relation else ""
    return Q(**{f"{prefix}home_node": current_node_id()})


def engine_settings() -> EngineSettings:
    """The engine's settings row (created with defaults on first use)."""
    settings, _ = EngineSettings.objects.get_or_create(key="default")
    return settings


def instrument_get(symbol: str) -> Instrument:
    instrument = Instrument.objects.filter(symbol=symbol.lower(), enabled=True).first()
    if instrument is None:
        raise UnknownSymbol(f"{symbol!r} is not a tradable symbol.", symbol=symbol)
    return instrument


def _bracket_tables_of(instruments: Iterable[Instrument]) -> dict[str, list[Bracket]]:
    """The bracket table in force today of each instrument, lowest bracket first, in one query."""
    instruments = list(instruments)
    if not instruments:
        return {}
    match = Q()
    for instrument in instruments:
        match |= Q(exchange_id=instrument.bracket_exchange_id, symbol=instrument.bracket_symbol)
    rows = LeverageBracket.objects.filter(match, effective_from__lte=timezone.localdate()).order_by(
        "exchange_id", "symbol", "-effective_from", "bracket"
    )
    latest: dict[tuple[int, str], date] = {}
    tables: dict[tuple[int, str], list[Bracket]] = defaultdict(list)
    for row in rows:
        key = (row.exchange_id, row.symbol)
        if latest.setdefault(key, row.effective_from) != row.effective_from:
            continue  # an older table of the same symbol
        tables[key].append(
            Bracket(
                bracket=row.bracket,
                initial_leverage=row.initial_leverage,
                floor=row.notional_floor,
                cap=row.notional_cap,
                mmr=row.maint_margin_ratio,
                cum=row.cum,
            )
        )
    return {i.symbol: tables[(i.bracket_exchange_id, i.bracket_symbol)] for i in instruments}


def brackets_for(instrument: Instrument) -> list[Bracket]:
    """The instrument's bracket table in force today, lowest bracket first."""
    return _bracket_tables_of([instrument])[instrument.symbol]


def bracket_tables(symbols: Iterable[str]) -> dict[str, list[Bracket]]:
    """The bracket table in force today of each symbol's instrument (enabled or not: open
    positions of a delisted symbol still need their margins), in two queries."""
    return _bracket_tables_of(Instrument.objects.filter(symbol__in=set(symbols)))


def brackets_of(symbol: str) -> list[Bracket]:
    """One symbol's bracket table; UnknownSymbol when it has no instrument or no table."""
    table = bracket_tables([symbol]).get(symbol)
    if not table:
        raise UnknownSymbol(f"{symbol!r} has no leverage bracket table.", symbol=symbol)
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
