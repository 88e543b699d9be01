"""Market fills: fees from the configured rates, margin, VWAP entry, realized PnL and flips.

Every expected figure is worked out from the reference formulas (trading.md §1.1, §1.6, §1.8):
fee = qty·price·rate; isolated margin = qty·price/leverage; entry = Σqty·price/Σqty;
realized PnL = s·qty·(fill - entry).
"""

from decimal import Decimal

import pytest

from apps.trading.models import EngineSettings, Fill, MarginHistory, Order, Position
from apps.trading.selectors import engine_settings

pytestmark = pytest.mark.django_db

D = Decimal
TAKER = D("0.0005")  # EngineSettings defaults
MAKER = D("0.0002")


def open_position() -> Position:
    return Position.objects.get(status=Position.Status.OPEN)


def test_market_buy_opens_a_cross_long_at_the_live_price_and_pays_the_taker_fee(place, portfolio):
    order = place(quantity=D("0.5"), leverage=10)

    portfolio.refresh_from_db()
    position = open_position()
    fill = Fill.objects.get()
    fee = D("0.5") * D("50000") * TAKER  # 12.5
    assert order.status == Order.Status.FILLED
    assert order.filled_quantity == D("0.5")
    assert order.average_price == D("50000")
    assert order.fee == fee
    assert (fill.quantity, fill.price, fill.fee, fill.fee_rate, fill.is_maker) == (
        D("0.5"),
        D("50000"),
        fee,
        TAKER,
        False,
    )
    assert (position.side, position.quantity, position.entry_price, position.leverage) == (
        "long",
        D("0.5"),
        D("50000"),
        10,
    )
    assert position.margin_mode == "cross"
    assert position.isolated_margin == 0  # cross margin stays in the wallet
    assert portfolio.cash == D("100000") - fee
    assert portfolio.fees_paid == fee
    history = MarginHistory.objects.get()
    assert (history.delta_type, history.amount) == ("open", D("0.5") * D("50000") / 10)


def test_fees_follow_the_configured_rates(place, portfolio):
    EngineSettings.objects.filter(key="default").update(taker_fee_rate=D("0.001"))

    order = place(quantity=D("0.2"))

    assert order.fee == D("0.2") * D("50000") * D("0.001")  # 10
    portfolio.refresh_from_db()
    assert portfolio.cash == D("99990")


def test_isolated_open_moves_the_initial_margin_from_cash_to_the_position(place, portfolio):
    place(quantity=D("1"), leverage=10, margin_mode="isolated")

    portfolio.refresh_from_db()
    position = open_position()
    margin = D("1") * D("50000") / 10  # 5,000
    fee = D("1") * D("50000") * TAKER  # 25
    assert position.isolated_margin == margin
    assert portfolio.cash == D("100000") - margin - fee
    history = MarginHistory.objects.get()
    assert (history.delta_type, history.amount, history.margin_after, history.leverage) == (
        "open",
        margin,
        margin,
        10,
    )
    # P's refresh ran in the same transaction: long 1 @ 50,000, WB 5,000, bracket 1 (MMR 0.4 %, cum 0):
    # LP = (Q·EP - WB - cum) / (Q·(1 - MMR)) = 45,000 / 0.996
    assert position.liquidation_price.quantize(D("0.01")) == (D("45000") / D("0.996")).quantize(D("0.01"))


def test_increase_averages_the_entry_price(place, btc, portfolio):
    place(quantity=D("0.5"), leverage=5, margin_mode="isolated")
    btc("52000")

    place(quantity=D("0.5"), leverage=20)  # the open position keeps its 5x

    position = open_position()
    assert position.quantity == D("1")
    assert position.entry_price == (D("0.5") * 50000 + D("0.5") * 52000) / 1  # 51,000
    assert position.leverage == 5
    assert position.isolated_margin == D("0.5") * 50000 / 5 + D("0.5") * 52000 / 5  # 10,200
    increase = MarginHistory.objects.get(delta_type="increase")
    assert increase.amount == D("0.5") * 52000 / 5
    portfolio.refresh_from_db()
    fees = (D("0.5") * 50000 + D("0.5") * 52000) * TAKER
    assert portfolio.cash == D("100000") - D("10200") - fees


def test_partial_reduce_realizes_pnl_and_releases_the_margin_share(place, btc, portfolio):
    place(quantity=D("1"), leverage=10, margin_mode="isolated")  # margin 5,000
    btc("51000")

    place(side="sell", quantity=D("0.4"))

    portfolio.refresh_from_db()
    position = open_position()
    pnl = D("0.4") * (D("51000") - D("50000"))  # +400
    released = D("5000") * D("0.4") / D("1")  # 2,000
    open_fee = D("1") * 50000 * TAKER
    reduce_fee = D("0.4") * 51000 * TAKER
    assert position.quantity == D("0.6")
    assert position.entry_price == D("50000")
    assert position.isolated_margin == D("5000") - released
    assert position.realized_pnl == pnl
    assert portfolio.realized_pnl == pnl
    assert portfolio.cash == D("100000") - D("5000") - open_fee + released + pnl - reduce_fee
    reduce = MarginHistory.objects.get(delta_type="reduce")
    assert (reduce.amount, reduce.margin_after) == (-released, D("3000"))
    fill = Fill.objects.get(side="sell")
    assert fill.realized_pnl == pnl


def test_short_profits_when_the_price_falls(place, btc, portfolio):
    place(side="sell", quantity=D("2"), leverage=10)
    btc("48000")

    place(side="buy", quantity=D("2"))

    portfolio.refresh_from_db()
    pnl = -1 * D("2") * (D("48000") - D("50000"))  # s = -1: +4,000
    fees = D("2") * 50000 * TAKER + D("2") * 48000 * TAKER
    assert portfolio.realized_pnl == pnl
    assert portfolio.cash == D("100000") + pnl - fees
    closed = Position.objects.get()
    assert closed.status == Position.Status.CLOSED
    assert closed.quantity == 0
    assert closed.closed_at is not None


def test_a_sell_larger_than_the_long_closes_it_and_opens_a_short_with_the_remainder(place, btc, portfolio):
    place(quantity=D("0.5"), leverage=4, margin_mode="isolated")  # margin 6,250
    btc("49000")

    order = place(side="sell", quantity=D("0.8"))

    portfolio.refresh_from_db()
    closed = Position.objects.get(status=Position.Status.CLOSED)
    short = open_position()
    pnl = D("0.5") * (D("49000") - D("50000"))  # -500
    assert closed.realized_pnl == pnl
    assert closed.isolated_margin == 0
    assert (short.side, short.quantity, short.entry_price) == ("short", D("0.3"), D("49000"))
    assert (short.leverage, short.margin_mode) == (4, "isolated")  # the symbol's settings carry over
    assert short.isolated_margin == D("0.3") * 49000 / 4
    fills = Fill.objects.filter(order=order).order_by("realized_pnl")
    assert [(f.quantity, f.fee) for f in fills] == [
        (D("0.5"), D("0.5") * 49000 * TAKER),
        (D("0.3"), D("0.3") * 49000 * TAKER),
    ]
    assert order.fee == D("0.8") * 49000 * TAKER
    assert order.filled_quantity == D("0.8")
    open_fee = D("0.5") * 50000 * TAKER
    assert portfolio.cash == (
        D("100000") - open_fee + pnl - D("0.8") * 49000 * TAKER - D("0.3") * 49000 / 4
    )  # the long's 6,250 went out and came back


def test_engine_settings_fee_rates_are_the_defaults_assumed_here(seeded):
    settings = engine_settings()

    assert (settings.taker_fee_rate, settings.maker_fee_rate) == (TAKER, MAKER)
