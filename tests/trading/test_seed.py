from decimal import Decimal

import pytest

from apps.trading.engine.margin import maintenance_margin
from apps.trading.exceptions import PriceUnavailable, UnknownSymbol
from apps.trading.selectors import brackets_for, instrument_get, mark_price


def test_seeded_instruments_have_continuous_bracket_tables(seeded):
    btc = brackets_for(instrument_get("btc"))
    assert [b.initial_leverage for b in btc][:3] == [125, 100, 75]
    eth = brackets_for(instrument_get("ETH"))
    # The Binance FAQ example on the 2021 table: 500,000 USDT -> MMR 1 %, maintenance amount 1,300.
    assert maintenance_margin(eth, Decimal("500000")) == Decimal("500000") * Decimal("0.01") - 1300


def test_unknown_symbol_and_missing_price_are_clear_errors(seeded, set_price):
    with pytest.raises(UnknownSymbol):
        instrument_get("nope")
    with pytest.raises(PriceUnavailable):
        mark_price("btc")
    set_price("btc", "50000", age_ms=120_000)
    with pytest.raises(PriceUnavailable):
        mark_price("btc")
    set_price("btc", "50000")
    assert mark_price("btc") == Decimal("50000")
