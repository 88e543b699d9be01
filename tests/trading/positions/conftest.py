"""Fixtures of the positions & risk tests: instruments carrying Binance's published cross example
brackets, and engine settings tweaks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from apps.markets.models import Exchange
from apps.trading.models import EngineSettings, Instrument, LeverageBracket

D = Decimal

# Binance's cross example (research §1.3) states ETH at MMR 10% / cum 135,365 and BTC at
# MMR 2.5% / cum 16,300. Two-bracket continuous tables that give exactly those figures at the
# example's notionals: cum_2 = floor_2 x (MMR_2 - MMR_1).
FAQ_TABLES = {
    "ethfaq": [
        (D(0), D(2_707_300), D("0.05"), D(0), 20),
        (D(2_707_300), D(10**10), D("0.10"), D(135_365), 10),
    ],
    "btcfaq": [(D(0), D(815_000), D("0.005"), D(0), 100), (D(815_000), D(10**10), D("0.025"), D(16_300), 20)],
}


@pytest.fixture
def faq_instruments(seeded: None) -> dict[str, list[Any]]:
    """Instruments "ethfaq" and "btcfaq" with the example's brackets (see FAQ_TABLES)."""
    binance = Exchange.objects.get(slug="binance")
    for symbol, table in FAQ_TABLES.items():
        Instrument.objects.create(symbol=symbol, bracket_exchange=binance, bracket_symbol=symbol.upper())
        for number, (floor, cap, mmr, cum, leverage) in enumerate(table, start=1):
            LeverageBracket.objects.create(
                exchange=binance,
                symbol=symbol.upper(),
                effective_from=date(2020, 1, 1),
                bracket=number,
                initial_leverage=leverage,
                notional_floor=floor,
                notional_cap=cap,
                maint_margin_ratio=mmr,
                cum=cum,
            )
    return FAQ_TABLES


@pytest.fixture
def engine(seeded: None) -> EngineSettings:
    """The engine settings row (tests change and save it)."""
    return EngineSettings.objects.get(key="default")


@pytest.fixture
def account_events(user) -> Any:
    """Events sent to the user's WebSocket group: call it to drain what arrived so far."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from haunt.events import user_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.pk), channel)

    async def _drain() -> list[dict[str, Any]]:
        received = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=0.02)
            except TimeoutError:
                return received
            received.append(message["event"])

    return lambda: async_to_sync(_drain)()
