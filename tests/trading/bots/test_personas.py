"""Each persona's decide() on synthetic price series (pure: no database)."""

import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.trading.engine.personas import (
    CancelOrder,
    ClosePosition,
    Holding,
    Market,
    ParametersInvalid,
    PlaceOrder,
    Predict,
    RestingOrder,
    Situation,
    decide,
    quant_signal,
)
from apps.trading.services.bots import bot_definitions
from tests.trading.bots.personas import BRO, GRANDMA, QUANT, SCALPER

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CASH = Decimal(100000)


def market(closes, price=None):
    closes = tuple(Decimal(str(c)) for c in closes)
    return Market(
        symbol="btc",
        price=Decimal(str(price)) if price is not None else closes[-1],
        closes=closes,
        price_decimals=2,
        quantity_decimals=3,
        min_quantity=Decimal("0.001"),
    )


def situation(closes, price=None, holding=None, orders=(), cash=CASH):
    return Situation(market=market(closes, price), holding=holding, orders=orders, cash=cash, now=NOW)


def long(entry, quantity="1", leverage=1):
    return Holding(side="long", quantity=Decimal(quantity), entry_price=Decimal(entry), leverage=leverage)


# --- grandma -----------------------------------------------------------------------------------


def test_grandma_buys_a_small_unleveraged_position_on_a_dip():
    closes = [100] * 30 + [99, 98, 97]  # 3 % under the 60-minute high of 100; dip threshold 2 %

    intents = decide("grandma", situation(closes), GRANDMA)

    # 2 % of 100,000 at 97 = 20.6185... -> 20.618 on the 0.001 lot
    assert intents == [
        PlaceOrder(
            "btc", "buy", "market", Decimal("20.618"), leverage=1, margin_mode="cross", reason="buy the dip"
        )
    ]


def test_grandma_does_nothing_without_a_dip():
    assert decide("grandma", situation([100] * 30 + [99]), GRANDMA) == []


def test_grandma_takes_a_quarter_of_profit_once_up_six_percent():
    intents = decide("grandma", situation([100] * 10, price=96, holding=long(90, "10")), GRANDMA)

    # 96 >= 90 * 1.06 = 95.4: sell 25 % of 10
    assert intents == [
        PlaceOrder("btc", "sell", "market", Decimal("2.5"), reduce_only=True, reason="take some profit")
    ]


def test_grandma_stops_buying_at_her_exposure_limit():
    closes = [100] * 30 + [97]
    holding = long(100, "1100")  # 1,100 * 97 = 106,700 > 50 % of (100,000 + 106,700)

    assert decide("grandma", situation(closes, holding=holding), GRANDMA) == []


# --- crypto-bro --------------------------------------------------------------------------------


def test_crypto_bro_chases_an_upward_move_with_high_leverage():
    closes = [100 + i * 0.15 for i in range(15)]  # 100 -> 102.1: +2.1 % over the lookback

    intents = decide("crypto_bro", situation(closes), BRO)

    # 10 % of cash at 50x: 500,000 of notional at 102.1 -> 4897.160 (floored to the lot)
    expected_quantity = (Decimal(500000) / Decimal("102.1")).quantize(
        Decimal("0.001"), rounding="ROUND_FLOOR"
    )
    assert len(intents) == 1
    order = intents[0]
    assert isinstance(order, PlaceOrder)
    assert (order.side, order.type, order.leverage, order.margin_mode) == ("buy", "market", 50, "isolated")
    assert order.quantity == expected_quantity


def test_crypto_bro_shorts_a_fall_and_ignores_a_flat_market():
    falling = [100 - i * 0.2 for i in range(15)]

    assert decide("crypto_bro", situation(falling), BRO)[0].side == "sell"
    assert decide("crypto_bro", situation([100] * 15), BRO) == []


def test_crypto_bro_is_stopped_out_on_margin():
    # 50x long from 100 at 99.1: ROE = -0.9 % * 50 = -45 %, past the 40 % stop
    intents = decide("crypto_bro", situation([100] * 15, price="99.1", holding=long(100, "1", 50)), BRO)

    assert intents == [ClosePosition("btc", reason="stopped out")]


# --- quant -------------------------------------------------------------------------------------


def test_quant_predicts_up_on_a_crossover_and_trades_a_strong_signal():
    closes = [Decimal(100)] * 15 + [Decimal(101 + i) for i in range(5)]  # last 5 climb to 105

    intents = decide("quant", situation(closes), QUANT)

    fast, slow = statistics.mean(closes[-5:]), statistics.mean(closes[-20:])
    z = (fast - slow) / (statistics.pstdev(closes[-20:]) / Decimal(5).sqrt())
    assert z > 2
    prediction, order = intents
    assert isinstance(prediction, Predict)
    assert prediction.direction == "up"
    assert prediction.horizon_seconds == 3600
    assert prediction.price == Decimal(105)
    assert prediction.confidence == min(
        Decimal(repr(statistics.NormalDist().cdf(float(z)))).quantize(Decimal("0.0001")), Decimal("0.9999")
    )
    assert isinstance(order, PlaceOrder)
    assert (order.side, order.leverage) == ("buy", 3)


def test_quant_flips_a_short_when_the_signal_turns_up():
    closes = [100] * 15 + [101, 102, 103, 104, 105]
    short = Holding(side="short", quantity=Decimal(1), entry_price=Decimal(100), leverage=3)

    intents = decide("quant", situation(closes, holding=short), QUANT)

    assert [type(i) for i in intents] == [Predict, ClosePosition, PlaceOrder]


def test_quant_predicts_without_trading_a_weak_signal():
    closes = [100, 101] * 10  # oscillating: a small crossover

    intents = decide("quant", situation(closes), QUANT)

    signal = quant_signal([Decimal(c) for c in closes], fast=5, slow=20)
    assert signal is not None and abs(signal[0]) < 2
    assert [type(i) for i in intents] == [Predict]


def test_quant_needs_enough_history_and_a_moving_market():
    assert decide("quant", situation([100, 101, 102]), QUANT) == []
    assert decide("quant", situation([100] * 30), QUANT) == []


# --- scalper -----------------------------------------------------------------------------------


def test_scalper_quotes_both_sides_tightly_when_flat():
    intents = decide("scalper", situation([100] * 5, price="50000"), SCALPER)

    # +-0.05 % of 50,000 = 25; 5 % of cash at 10x = 50,000 of notional -> 1 BTC
    assert intents == [
        PlaceOrder(
            "btc",
            "buy",
            "limit",
            Decimal(1),
            price=Decimal("49975.00"),
            leverage=10,
            margin_mode="cross",
            reason="quote",
        ),
        PlaceOrder(
            "btc",
            "sell",
            "limit",
            Decimal(1),
            price=Decimal("50025.00"),
            leverage=10,
            margin_mode="cross",
            reason="quote",
        ),
    ]


def test_scalper_rests_a_reduce_only_exit_with_a_position():
    intents = decide("scalper", situation([100] * 5, price="50010", holding=long(50000, "1", 10)), SCALPER)

    assert intents == [
        PlaceOrder(
            "btc",
            "sell",
            "limit",
            Decimal(1),
            price=Decimal("50050.00"),
            reduce_only=True,
            reason="take profit",
        )
    ]


def test_scalper_cancels_stale_quotes_and_keeps_fresh_ones():
    stale = RestingOrder("o-1", "buy", Decimal(49975), Decimal(1), False, NOW - timedelta(seconds=121))
    fresh = RestingOrder("o-2", "sell", Decimal(50025), Decimal(1), False, NOW - timedelta(seconds=10))

    intents = decide("scalper", situation([100] * 5, price="50000", orders=(stale, fresh)), SCALPER)

    assert intents == [CancelOrder("o-1", reason="stale quote")]


# --- parameters --------------------------------------------------------------------------------


def test_missing_or_bad_parameters_are_refused():
    with pytest.raises(ParametersInvalid):
        decide("grandma", situation([100] * 5), {k: v for k, v in GRANDMA.items() if k != "dip_percent"})
    with pytest.raises(ParametersInvalid):
        decide("crypto_bro", situation([100] * 5), BRO | {"leverage": "lots"})
    with pytest.raises(ParametersInvalid):
        decide("oracle", situation([100] * 5), {})


def test_the_seeded_personas_have_valid_parameters():
    closes = [100 + (i % 7) for i in range(300)]

    for bot in bot_definitions():
        decide(bot["persona"], situation(closes), bot["parameters"])  # raises if one is malformed
