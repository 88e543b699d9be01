"""Funding: amount = -s * Q * mark * rate (trading.md §1.7): with a positive rate longs pay and
shorts receive; cross positions settle against cash, isolated ones against their wallet."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.trading.exceptions import FundingIncomplete
from apps.trading.models import EngineSettings, FundingPayment, FundingRate, Portfolio, Position
from apps.trading.services.funding import funding_period_start, funding_settle, funding_unpaid_count
from apps.trading.tasks.accounts import funding_settle_task
from tests.trading.factories import make_position

pytestmark = pytest.mark.django_db

D = Decimal
FUNDING_TIME = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
BEFORE = FUNDING_TIME - timedelta(hours=3)


def _source(source: str, default_rate: str = "0.0001") -> None:
    EngineSettings.objects.filter(key="default").update(
        funding_rate_source=source, default_funding_rate=D(default_rate)
    )


@pytest.fixture
def marks(set_price):
    set_price("btc", "52000")
    set_price("eth", "3100")


def test_fixed_rate_long_cross_pays_short_isolated_receives(portfolio, marks):
    _source("fixed", "0.0001")
    long = make_position(portfolio, symbol="btc", side="long", quantity="2", entry="50000", opened_at=BEFORE)
    short = make_position(
        portfolio,
        symbol="eth",
        side="short",
        quantity="10",
        entry="3000",
        leverage=5,
        margin_mode="isolated",
        isolated_margin="6000",
        opened_at=BEFORE,
    )

    paid = funding_settle(funding_time=FUNDING_TIME)

    # long: -(+1) * 2 * 52,000 * 0.0001 = -10.4 (from cash); short: -(-1) * 10 * 3,100 * 0.0001 = +3.1
    assert paid == 2
    portfolio.refresh_from_db()
    long.refresh_from_db()
    short.refresh_from_db()
    assert portfolio.cash == D("100000") - D("10.4")
    assert short.isolated_margin == D("6000") + D("3.1")
    assert long.funding_paid == D("10.4")
    assert short.funding_paid == D("-3.1")
    assert portfolio.funding_paid == D("10.4") - D("3.1")
    payment = FundingPayment.objects.get(position=long)
    assert (payment.amount, payment.rate, payment.rate_source) == (D("-10.4"), D("0.0001"), "fixed")
    assert (payment.mark_price, payment.quantity, payment.funding_time) == (D("52000"), D("2"), FUNDING_TIME)
    assert FundingPayment.objects.get(position=short).amount == D("3.1")


def test_negative_recorded_rate_long_receives_short_pays(portfolio, marks):
    _source("table")
    FundingRate.objects.create(symbol="btc", funding_time=FUNDING_TIME, rate=D("-0.0003"), source="binance")
    FundingRate.objects.create(symbol="eth", funding_time=FUNDING_TIME, rate=D("-0.0003"), source="binance")
    long = make_position(portfolio, symbol="btc", side="long", quantity="2", entry="50000", opened_at=BEFORE)
    short = make_position(
        portfolio, symbol="eth", side="short", quantity="10", entry="3000", opened_at=BEFORE
    )

    funding_settle(funding_time=FUNDING_TIME)

    # long: -(+1) * 2 * 52,000 * -0.0003 = +31.2; short: -(-1) * 10 * 3,100 * -0.0003 = -9.3
    assert FundingPayment.objects.get(position=long).amount == D("31.2")
    assert FundingPayment.objects.get(position=short).amount == D("-9.3")
    assert FundingPayment.objects.get(position=long).rate_source == "table:binance"
    portfolio.refresh_from_db()
    assert portfolio.cash == D("100000") + D("31.2") - D("9.3")


def test_table_source_without_a_recorded_rate_uses_the_default(portfolio, marks):
    _source("table", "0.0002")
    FundingRate.objects.create(symbol="btc", funding_time=FUNDING_TIME - timedelta(hours=8), rate=D("0.01"))
    position = make_position(portfolio, symbol="btc", side="short", quantity="1", opened_at=BEFORE)

    funding_settle(funding_time=FUNDING_TIME)

    payment = FundingPayment.objects.get(position=position)
    assert (payment.rate, payment.rate_source) == (D("0.0002"), "default")
    assert payment.amount == D("1") * D("52000") * D("0.0002")  # a short receives a positive rate


def test_fixed_source_ignores_recorded_rates(portfolio, marks):
    _source("fixed", "0.0001")
    FundingRate.objects.create(symbol="btc", funding_time=FUNDING_TIME, rate=D("0.005"))
    position = make_position(portfolio, symbol="btc", opened_at=BEFORE)

    funding_settle(funding_time=FUNDING_TIME)

    assert FundingPayment.objects.get(position=position).rate == D("0.0001")


def test_a_second_run_pays_nothing(portfolio, marks):
    _source("fixed")
    make_position(portfolio, symbol="btc", quantity="2", opened_at=BEFORE)
    funding_settle(funding_time=FUNDING_TIME)
    portfolio.refresh_from_db()
    cash = portfolio.cash

    again = funding_settle(funding_time=FUNDING_TIME)

    portfolio.refresh_from_db()
    assert again == 0
    assert portfolio.cash == cash
    assert FundingPayment.objects.count() == 1


def test_the_next_period_pays_again(portfolio, marks):
    _source("fixed")
    make_position(portfolio, symbol="btc", quantity="2", opened_at=BEFORE)

    funding_settle(funding_time=FUNDING_TIME)
    funding_settle(funding_time=FUNDING_TIME + timedelta(hours=8))

    portfolio.refresh_from_db()
    assert FundingPayment.objects.count() == 2
    assert portfolio.cash == D("100000") - 2 * D("10.4")


def test_positions_opened_after_the_funding_time_or_closed_do_not_pay(portfolio, marks):
    _source("fixed")
    make_position(portfolio, symbol="btc", opened_at=FUNDING_TIME + timedelta(seconds=1))
    closed = make_position(portfolio, symbol="eth", opened_at=BEFORE)
    closed.status = Position.Status.CLOSED
    closed.save()
    at_the_boundary = make_position(portfolio, symbol="sol", entry="150", opened_at=FUNDING_TIME)

    paid = funding_settle(funding_time=FUNDING_TIME)

    assert paid == 0  # sol has no mark: it waits (see below); the others are not due
    assert funding_unpaid_count(funding_time=FUNDING_TIME) == 1
    assert not FundingPayment.objects.exclude(position=at_the_boundary).exists()


def test_a_position_without_a_fresh_mark_waits_and_is_paid_later(portfolio, set_price):
    _source("fixed", "0.0001")
    set_price("btc", "52000")
    make_position(portfolio, symbol="btc", opened_at=BEFORE)
    waiting = make_position(portfolio, symbol="eth", quantity="10", opened_at=BEFORE)

    assert funding_settle(funding_time=FUNDING_TIME) == 1
    assert funding_unpaid_count(funding_time=FUNDING_TIME) == 1

    set_price("eth", "3100")
    assert funding_settle(funding_time=FUNDING_TIME) == 1
    assert FundingPayment.objects.get(position=waiting).amount == D("-3.1")
    assert funding_unpaid_count(funding_time=FUNDING_TIME) == 0


def test_a_payment_larger_than_the_isolated_wallet_takes_only_the_wallet(portfolio, marks):
    _source("fixed", "0.01")
    position = make_position(
        portfolio, symbol="btc", quantity="2", margin_mode="isolated", isolated_margin="500", opened_at=BEFORE
    )

    funding_settle(funding_time=FUNDING_TIME)  # owes 2 * 52,000 * 0.01 = 1,040

    position.refresh_from_db()
    assert position.isolated_margin == 0
    assert FundingPayment.objects.get(position=position).amount == D("-500")


def test_each_portfolio_pays_its_own(portfolio, outsider, marks):
    _source("fixed")
    other = Portfolio.objects.create(
        user=outsider, name="main", cash=D("5000"), initial_cash=D("5000"), home_node="local"
    )
    make_position(portfolio, symbol="btc", quantity="1", opened_at=BEFORE)
    make_position(other, symbol="btc", side="short", quantity="1", opened_at=BEFORE)

    assert funding_settle(funding_time=FUNDING_TIME) == 2

    other.refresh_from_db()
    portfolio.refresh_from_db()
    assert portfolio.cash == D("100000") - D("5.2")
    assert other.cash == D("5000") + D("5.2")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 5, 1, 7, 59, 59, tzinfo=UTC), datetime(2024, 5, 1, 0, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC), datetime(2024, 5, 1, 8, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 23, 30, tzinfo=UTC), datetime(2024, 5, 1, 16, 0, tzinfo=UTC)),
        (datetime(2024, 5, 2, 3, 0, tzinfo=UTC), datetime(2024, 5, 2, 0, 0, tzinfo=UTC)),
    ],
)
def test_the_period_is_the_last_8_hour_boundary(now, expected):
    assert funding_period_start(now=now, interval_hours=8) == expected


def test_four_hour_interval():
    now = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    assert funding_period_start(now=now, interval_hours=4) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_task_settles_the_period_that_just_ended(portfolio, marks):
    _source("fixed")
    last = funding_period_start(now=timezone.now(), interval_hours=8)
    make_position(portfolio, symbol="btc", opened_at=last - timedelta(minutes=1))

    paid = funding_settle_task()

    assert paid == 1
    assert FundingPayment.objects.get().funding_time == last
    assert funding_settle_task() == 0  # a retry or a second beat pays nothing more


def test_task_catches_up_the_period_before(portfolio, marks):
    _source("fixed")
    last = funding_period_start(now=timezone.now(), interval_hours=8)
    make_position(portfolio, symbol="btc", opened_at=last - timedelta(hours=9))

    assert funding_settle_task() == 2

    times = sorted(FundingPayment.objects.values_list("funding_time", flat=True))
    assert times == [last - timedelta(hours=8), last]


def test_task_for_a_given_period(portfolio, marks):
    _source("fixed")
    make_position(portfolio, symbol="btc", opened_at=BEFORE)

    assert funding_settle_task(funding_time=FUNDING_TIME.isoformat()) == 1
    assert FundingPayment.objects.get().funding_time == FUNDING_TIME


def test_task_retries_while_positions_are_unpaid(portfolio):
    _source("fixed")
    make_position(portfolio, symbol="btc", opened_at=BEFORE)  # no btc price

    with pytest.raises(FundingIncomplete):
        funding_settle_task(funding_time=FUNDING_TIME.isoformat())


def test_funding_moves_the_isolated_liquidation_price(portfolio, marks):
    _source("fixed", "0.001")
    position = make_position(
        portfolio,
        symbol="btc",
        quantity="1",
        entry="50000",
        margin_mode="isolated",
        isolated_margin="5000",
        opened_at=BEFORE,
    )

    funding_settle(funding_time=FUNDING_TIME)  # pays 1 * 52,000 * 0.001 = 52 from the wallet

    position.refresh_from_db()
    assert position.isolated_margin == D("4948")
    # Isolated long: LP = (Q*EP - WB - cum) / (Q * (1 - MMR)) = (50,000 - 4,948 - 0) / 0.996 in
    # bracket 1 (notional 45,233 <= 50,000, MMR 0.4%, cum 0).
    expected = (D("50000") - D("4948")) / (D("1") - D("0.004"))
    assert position.liquidation_price is not None
    assert abs(position.liquidation_price - expected) < D("1e-6")
