"""Price evaluation and the periodic jobs process this node's portfolios only: another node's
crossed orders stay open, its positions past their liquidation price stay open, and it gets no
funding, snapshots, settlements or resolutions from here, while this node's portfolios are
processed as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.trading.models import (
    EngineSettings,
    Fill,
    FundingPayment,
    Liquidation,
    OptionPosition,
    Order,
    PortfolioSnapshot,
    Position,
    PredictionHistory,
    Strategy,
)
from apps.trading.selectors import brackets_of
from apps.trading.services.funding import funding_settle, funding_unpaid_count
from apps.trading.services.liquidations import liquidations_check, margin_calls_check
from apps.trading.services.options import option_open, options_settle_expired
from apps.trading.services.predictions import prediction_record, predictions_resolve
from apps.trading.services.risk import cross_liquidation_prices_refresh
from apps.trading.services.snapshots import snapshots_take
from apps.trading.services.triggers import EvaluationResult, prices_evaluate, resting_orders_sweep
from tests.trading.factories import make_order, make_position, open_position
from tests.trading.ownership.conftest import AsNode
from tests.trading.ownership.rows import ELSEWHERE, money_of

pytestmark = pytest.mark.django_db

D = Decimal
FUNDING_TIME = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
BTC_MMR = D("0.004")  # the seeded BTC table's first bracket (cum 0)


def isolated_lp(entry: Decimal, wallet: Decimal) -> Decimal:
    """A lone isolated long of 1 unit: its liquidation price solves (LP - EP) + WB = LP*MMR."""
    return (entry - wallet) / (1 - BTC_MMR)


# --- resting orders -----------------------------------------------------------------------------


def _evaluate_at(set_price: Any, price: str) -> EvaluationResult:
    set_price("btc", price)
    return prices_evaluate(prices={"btc": D(price)})


def _sweep_at(set_price: Any, price: str) -> EvaluationResult:
    set_price("btc", price)
    return resting_orders_sweep()


@pytest.mark.parametrize("evaluate", [_evaluate_at, _sweep_at], ids=["price batch", "sweep"])
def test_crossed_orders_of_a_portfolio_homed_elsewhere_stay_open(
    portfolio, foreign, set_price, evaluate: Callable[[Any, str], EvaluationResult]
):
    mine = make_order(portfolio, symbol="btc", side="buy", price="49000", reserved_margin="49009.8")
    theirs = make_order(foreign, symbol="btc", side="buy", price="49000", reserved_margin="49009.8")
    their_stop = make_order(
        foreign, symbol="btc", side="sell", type="stop", price=None, stop_price="49000", status="pending"
    )
    money = money_of(foreign)

    result = evaluate(set_price, "48900")  # crosses the buy limits at 49,000 and the sell stop

    assert (result.crossed, result.filled) == (1, 1)
    assert Order.objects.get(pk=mine.pk).status == Order.Status.FILLED
    assert Fill.objects.get().order_id == mine.pk
    for order in (theirs, their_stop):
        row = Order.objects.get(pk=order.pk)
        assert (row.status, row.version, row.triggered_at) == (order.status, order.version, None)
    assert not Position.objects.filter(portfolio=foreign).exists()
    assert money_of(foreign) == money


# --- liquidations and margin calls --------------------------------------------------------------


def test_a_position_homed_elsewhere_past_its_liquidation_price_is_not_liquidated(portfolio, foreign):
    mine = open_position(portfolio, side="long", entry="50000", leverage=10)  # wallet 5,000
    theirs = open_position(foreign, side="long", entry="50000", leverage=10)
    lp = isolated_lp(D(50000), D(5000))  # 45,180.72...
    assert theirs.liquidation_price is not None and abs(theirs.liquidation_price - lp) < D("0.01")
    money = money_of(foreign)

    done = liquidations_check(symbol="btc", mark=D(45100))  # past both liquidation prices

    assert [liquidation.position_id for liquidation in done] == [mine.pk]
    assert Liquidation.objects.get().position_id == mine.pk
    row = Position.objects.get(pk=theirs.pk)
    assert (row.status, row.isolated_margin, row.version) == ("open", D(5000), theirs.version)
    assert money_of(foreign) == money


def test_the_price_batch_liquidates_only_this_nodes_positions(portfolio, foreign, set_price):
    mine = open_position(portfolio, side="long", entry="50000", leverage=10)
    theirs = open_position(foreign, side="long", entry="50000", leverage=10)

    result = _evaluate_at(set_price, "45100")

    assert result.liquidations == 1
    assert Position.objects.get(pk=mine.pk).status == Position.Status.LIQUIDATED
    assert Position.objects.get(pk=theirs.pk).status == Position.Status.OPEN


def test_margin_calls_are_sent_for_this_nodes_positions_only(portfolio, foreign):
    open_position(portfolio, side="long", entry="50000", leverage=10)
    open_position(foreign, side="long", entry="50000", leverage=10)
    mark = D(45200)  # above the LP 45,180.72, within the margin-call band
    # Both ratios: MM / balance = 45,200 * 0.004 / (5,000 - 4,800) = 0.904 >= 0.8.
    assert mark * BTC_MMR / (D(5000) - (D(50000) - mark)) >= D("0.8")

    sent = margin_calls_check(symbol="btc", mark=mark, table=brackets_of("btc"))

    assert sent == 1


def test_cross_liquidation_prices_of_a_portfolio_homed_elsewhere_are_left_alone(
    portfolio, foreign, set_price
):
    set_price("btc", "50000")
    mine = open_position(portfolio, side="long", entry="50000", mode="cross")
    theirs = open_position(foreign, side="long", entry="50000", mode="cross")
    expected = mine.liquidation_price
    stale = D(1234)
    Position.objects.filter(pk__in=[mine.pk, theirs.pk]).update(liquidation_price=stale)

    changed = cross_liquidation_prices_refresh()

    assert changed == 1
    assert Position.objects.get(pk=mine.pk).liquidation_price == expected
    assert Position.objects.get(pk=theirs.pk).liquidation_price == stale


# --- funding, snapshots -------------------------------------------------------------------------


def test_funding_pays_this_nodes_positions_only(portfolio, foreign, set_price):
    EngineSettings.objects.filter(key="default").update(
        funding_rate_source=EngineSettings.FundingRateSource.FIXED, default_funding_rate=D("0.0001")
    )
    set_price("btc", "52000")
    opened = FUNDING_TIME - timedelta(hours=3)
    mine = make_position(portfolio, side="long", quantity="2", entry="50000", opened_at=opened)
    theirs = make_position(foreign, side="long", quantity="2", entry="50000", opened_at=opened)
    money = money_of(foreign)

    paid = funding_settle(funding_time=FUNDING_TIME)

    assert paid == 1
    payment = FundingPayment.objects.get()
    assert payment.position_id == mine.pk
    assert payment.amount == -2 * D(52000) * D("0.0001")  # -s*Q*mark*rate = -10.4
    assert Position.objects.get(pk=theirs.pk).funding_paid == 0
    assert money_of(foreign) == money
    # Nothing left to pay here: the task does not retry for the other node's positions.
    assert funding_unpaid_count(funding_time=FUNDING_TIME) == 0


def test_snapshots_are_taken_of_this_nodes_portfolios_only(portfolio, foreign):
    at = datetime(2024, 5, 1, 12, 15, tzinfo=UTC)

    written = snapshots_take(taken_at=at)

    assert written == 1
    assert list(PortfolioSnapshot.objects.values_list("portfolio_id", flat=True)) == [portfolio.pk]
    assert snapshots_take(taken_at=at) == 0


# --- options, predictions -----------------------------------------------------------------------


def test_expired_options_of_a_portfolio_homed_elsewhere_are_not_settled(
    portfolio, foreign, set_price, as_node: AsNode
):
    set_price("btc", "42")
    expiry = timezone.now() + timedelta(days=30)
    terms: dict[str, Any] = {
        "underlying": "btc",
        "option_type": "call",
        "side": "long",
        "strike": D(40),
        "expiry": expiry,
        "quantity": D(2),
    }
    mine = option_open(portfolio=portfolio, **terms)
    with as_node(ELSEWHERE):
        theirs = option_open(portfolio=foreign, **terms)
    money = money_of(foreign)
    set_price("btc", "45")

    settled = options_settle_expired(now=expiry + timedelta(seconds=1))

    assert settled == 1
    mine.refresh_from_db()
    assert (mine.status, mine.settlement_amount) == (OptionPosition.Status.SETTLED, (45 - 40) * D(2))
    assert OptionPosition.objects.get(pk=theirs.pk).status == OptionPosition.Status.OPEN
    assert money_of(foreign) == money


def test_predictions_of_bots_homed_elsewhere_are_not_resolved(portfolio, foreign, set_price):
    now = timezone.now()
    predictions = {}
    for name, owner in (("here", portfolio), ("there", foreign)):
        bot = Strategy.objects.create(name=name, persona=Strategy.Persona.QUANT, portfolio=owner)
        predictions[name] = prediction_record(
            strategy=bot,
            symbol="btc",
            direction="down",
            confidence=D("0.6"),
            horizon_seconds=60,
            price=D(100),
            now=now - timedelta(seconds=61),
        )
    set_price("btc", 99)

    resolved = predictions_resolve(now=now)

    assert resolved == 1
    here = PredictionHistory.objects.get(pk=predictions["here"].pk)
    assert (here.actual_price, here.correct) == (D(99), True)
    assert PredictionHistory.objects.get(pk=predictions["there"].pk).resolved_at is None


def test_every_job_is_a_no_op_for_a_node_that_owns_no_portfolio(foreign, set_price, as_node: AsNode):
    """Run as a third node: nothing is anyone's business here."""
    set_price("btc", "45100")
    position = open_position(foreign, side="long", entry="50000", leverage=10)
    make_order(foreign, symbol="btc", side="buy", price="49000")
    money = money_of(foreign)

    with as_node("third"):
        swept = resting_orders_sweep()
        snapshots = snapshots_take(taken_at=datetime(2024, 5, 1, 12, 15, tzinfo=UTC))
        refreshed = cross_liquidation_prices_refresh()

    assert (swept.crossed, swept.liquidations, snapshots, refreshed) == (0, 0, 0, 0)
    assert Position.objects.get(pk=position.pk).status == Position.Status.OPEN
    assert money_of(foreign) == money
