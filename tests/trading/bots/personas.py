"""Shared by the bots tests: persona parameters spelled out (the seeded values may change) and
helpers that build a bot definition and store closed 1m candles."""

import time
from decimal import Decimal

from apps.markets.services.store import Candle, price_store

MINUTE_MS = 60_000


def store_closes(symbol: str, closes: list[int | str], *, end_ms: int | None = None) -> None:
    """Closed 1m candles ending at the minute before end_ms (now), one per close, oldest first."""
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    last_open = end_ms - end_ms % MINUTE_MS - MINUTE_MS
    first_open = last_open - (len(closes) - 1) * MINUTE_MS
    candles = [
        Candle(symbol, "1m", first_open + i * MINUTE_MS, *(Decimal(str(c)),) * 4, Decimal(1), True)
        for i, c in enumerate(closes)
    ]
    price_store().candles_put([], candles)


def definition(name: str, persona: str, parameters: dict, symbols=("btc",), interval=60) -> dict:
    return {
        "name": name,
        "persona": persona,
        "username": f"{name.title()} Test Bot",
        "symbols": list(symbols),
        "interval_seconds": interval,
        "parameters": parameters,
    }


GRANDMA = {
    "lookback_minutes": 60,
    "dip_percent": "2",
    "buy_cash_fraction": "0.02",
    "max_exposure_fraction": "0.5",
    "take_profit_percent": "6",
    "take_profit_fraction": "0.25",
}
BRO = {
    "lookback_minutes": 15,
    "momentum_percent": "1",
    "leverage": 50,
    "margin_mode": "isolated",
    "order_cash_fraction": "0.1",
    "stop_loss_percent": "40",
    "take_profit_percent": "80",
}
QUANT = {
    "fast_window": 5,
    "slow_window": 20,
    "z_entry": "2",
    "horizon_seconds": 3600,
    "leverage": 3,
    "margin_mode": "cross",
    "order_cash_fraction": "0.05",
}
SCALPER = {
    "spread_percent": "0.05",
    "order_cash_fraction": "0.05",
    "leverage": 10,
    "margin_mode": "cross",
    "take_profit_percent": "0.1",
    "stop_loss_percent": "10",
    "order_ttl_seconds": 120,
}
