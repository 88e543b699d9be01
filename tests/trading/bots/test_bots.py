"""Bots: seeding, scheduled runs through the order service, errors recorded, predictions resolved."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.trading.models import Order, Portfolio, PredictionHistory, Strategy
from apps.trading.services.bots import bot_definitions, bots_ensure, bots_run_due, strategy_run
from apps.trading.services.predictions import prediction_record, predictions_resolve
from tests.conftest import make_user
from tests.trading.bots.personas import GRANDMA, MINUTE_MS, QUANT, SCALPER, definition, store_closes

pytestmark = pytest.mark.django_db


# --- seeding -----------------------------------------------------------------------------------


def test_ensure_bots_creates_the_four_personas_once(seeded):
    created = bots_ensure()

    assert sorted(s.persona for s in created) == ["crypto_bro", "grandma", "quant", "scalper"]
    grandma = Strategy.objects.select_related("portfolio__user__profile").get(name="grandma")
    user = grandma.portfolio.user
    assert not user.is_active
    assert not user.has_usable_password()
    assert user.profile.username == "Grandma Bot"
    assert grandma.portfolio.cash == Decimal(100000)  # EngineSettings.starting_cash
    assert grandma.parameters == next(d for d in bot_definitions() if d["name"] == "grandma")["parameters"]

    grandma.parameters = {"edited": "in the admin"}
    grandma.save()
    assert bots_ensure() == []
    grandma.refresh_from_db()
    assert grandma.parameters == {"edited": "in the admin"}
    assert Strategy.objects.count() == 4
    assert Portfolio.objects.filter(user__username__startswith="bot_").count() == 4


def test_ensure_bots_command_prints_a_summary(seeded, capsys):
    call_command("ensure_bots")
    call_command("ensure_bots")

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Bots: 4 created")
    assert out[1].startswith("Bots: 0 created (none), 4 in total")


# --- running -----------------------------------------------------------------------------------


def test_grandma_buys_the_dip_through_the_order_service(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("granny", "grandma", GRANDMA)])
    store_closes("btc", [100] * 30 + [98])
    set_price("btc", 97)
    now = timezone.now()

    ran = bots_run_due(now=now)

    assert ran == 1
    order = Order.objects.get(portfolio=bot.portfolio)
    assert order.placed_by == "bot:granny"
    assert (order.side, order.type, order.status) == ("buy", "market", "filled")
    assert order.quantity == Decimal("20.618")  # 2 % of 100,000 at 97, on the 0.001 lot
    assert order.leverage == 1
    bot.refresh_from_db()
    assert bot.last_run_at == now
    assert bot.last_error == ""


def test_a_bot_runs_again_only_after_its_interval(seeded, set_price):
    bots_ensure(definitions=[definition("granny", "grandma", GRANDMA, interval=60)])
    set_price("btc", 100)
    now = timezone.now()

    assert bots_run_due(now=now) == 1
    assert bots_run_due(now=now + timedelta(seconds=59)) == 0
    assert bots_run_due(now=now + timedelta(seconds=60)) == 1


def test_disabled_bots_do_not_run(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("granny", "grandma", GRANDMA)])
    Strategy.objects.filter(pk=bot.pk).update(enabled=False)

    assert bots_run_due(now=timezone.now()) == 0


def test_errors_are_recorded_and_do_not_stop_the_batch(seeded, set_price):
    bots_ensure(
        definitions=[
            definition("no-price", "grandma", GRANDMA, symbols=["eth"]),
            definition("bad-params", "grandma", {"dip_percent": "2"}),
            definition("granny", "grandma", GRANDMA),
        ]
    )
    store_closes("btc", [100] * 30)
    set_price("btc", 97)

    ran = bots_run_due(now=timezone.now())

    assert ran == 3
    errors = dict(Strategy.objects.values_list("name", "last_error"))
    assert errors["no-price"].startswith("eth: price_unavailable")
    assert errors["bad-params"].startswith("invalid parameters: missing parameter")
    assert errors["granny"] == ""
    assert Order.objects.filter(placed_by="bot:granny").count() == 1


def test_an_order_refused_by_the_service_is_recorded(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("granny", "grandma", GRANDMA)])
    Portfolio.objects.filter(pk=bot.portfolio_id).update(cash=Decimal("0.5"))  # too little for one lot
    store_closes("btc", [100] * 30)
    set_price("btc", 97)

    bots_run_due(now=timezone.now())

    bot.refresh_from_db()
    assert not Order.objects.filter(portfolio=bot.portfolio, status="filled").exists()
    assert bot.last_run_at is not None


def test_quant_writes_a_prediction_and_trades_on_it(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("quanty", "quant", QUANT)])
    store_closes("btc", [100] * 15 + [101, 102, 103, 104, 105])
    set_price("btc", 105)
    now = timezone.now()

    bots_run_due(now=now)

    prediction = PredictionHistory.objects.get(strategy=bot)
    assert prediction.direction == "up"
    assert prediction.price_at_prediction == Decimal(105)
    assert prediction.horizon_seconds == 3600
    assert prediction.predicted_at == now
    assert Decimal("0.5") < prediction.confidence <= Decimal("0.9999")
    order = Order.objects.get(portfolio=bot.portfolio)
    assert (order.placed_by, order.side, order.leverage) == ("bot:quanty", "buy", 3)


def test_scalper_quotes_limits_and_requotes_them_when_stale(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("scalpy", "scalper", SCALPER)])
    set_price("btc", 50000)
    now = timezone.now()

    strategy_run(strategy_id=bot.pk, now=now)

    quotes = {o.side: o for o in Order.objects.filter(portfolio=bot.portfolio)}
    assert quotes["buy"].price == Decimal("49975")  # 50,000 - 0.05 %
    assert quotes["sell"].price == Decimal("50025")
    assert {o.status for o in quotes.values()} == {"open"}
    assert {o.placed_by for o in quotes.values()} == {"bot:scalpy"}

    Order.objects.filter(portfolio=bot.portfolio).update(created_at=now - timedelta(minutes=5))
    strategy_run(strategy_id=bot.pk, now=now + timedelta(minutes=1), force=True)

    old = Order.objects.filter(pk__in=[o.pk for o in quotes.values()])
    assert sorted(old.values_list("status", flat=True)) == ["cancelled", "cancelled"]
    fresh = Order.objects.filter(portfolio=bot.portfolio).exclude(pk__in=[o.pk for o in quotes.values()])
    assert sorted(fresh.values_list("side", "status")) == [("buy", "open"), ("sell", "open")]


# --- predictions -------------------------------------------------------------------------------


def test_predictions_resolve_once_their_horizon_passes(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("quanty", "quant", QUANT)])
    now = timezone.now()
    up = prediction_record(
        strategy=bot,
        symbol="btc",
        direction="up",
        confidence=Decimal("0.8"),
        horizon_seconds=3600,
        price=Decimal(100),
        now=now - timedelta(hours=2),
    )
    down = prediction_record(
        strategy=bot,
        symbol="btc",
        direction="down",
        confidence=Decimal("0.6"),
        horizon_seconds=3600,
        price=Decimal(100),
        now=now - timedelta(hours=2),
    )
    pending = prediction_record(
        strategy=bot,
        symbol="btc",
        direction="up",
        confidence=Decimal("0.7"),
        horizon_seconds=3600,
        price=Decimal(100),
        now=now - timedelta(minutes=30),
    )
    horizon_ms = int((now - timedelta(hours=1)).timestamp() * 1000)
    store_closes("btc", [103], end_ms=horizon_ms + MINUTE_MS)  # the candle of the horizon's minute
    set_price("btc", 90)

    resolved = predictions_resolve(now=now)

    assert resolved == 2
    up.refresh_from_db()
    down.refresh_from_db()
    pending.refresh_from_db()
    assert (up.actual_price, up.correct, up.resolved_at) == (Decimal(103), True, now)
    assert (down.actual_price, down.correct) == (Decimal(103), False)
    assert pending.resolved_at is None
    assert predictions_resolve(now=now) == 0


def test_a_just_due_prediction_resolves_at_the_live_price(seeded, set_price):
    (bot,) = bots_ensure(definitions=[definition("quanty", "quant", QUANT)])
    now = timezone.now()
    prediction = prediction_record(
        strategy=bot,
        symbol="btc",
        direction="down",
        confidence=Decimal("0.6"),
        horizon_seconds=60,
        price=Decimal(100),
        now=now - timedelta(seconds=61),
    )
    set_price("btc", 99)

    predictions_resolve(now=now)

    prediction.refresh_from_db()
    assert (prediction.actual_price, prediction.correct) == (Decimal(99), True)


def test_a_person_holding_a_bot_login_name_is_not_turned_into_a_bot(seeded):
    person = make_user("bot_grandma")

    bots_ensure()

    person.refresh_from_db()
    assert person.is_active
    assert not Strategy.objects.filter(name="grandma").exists()
    assert Strategy.objects.count() == 3
