import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.markets.models import Exchange
from apps.storage.models import RetentionPolicy
from apps.trading.models import LeverageBracket

pytestmark = pytest.mark.django_db


def test_seed_loads_defaults_from_data_files():
    call_command("seed", stdout=io.StringIO())

    weights = dict(Exchange.objects.values_list("slug", "weight"))
    assert weights["coinbase"] == weights["binance"] == Decimal("1.00")
    assert (weights["kucoin"], weights["okx"], weights["huobi"], weights["coingecko"]) == (
        Decimal("0.80"),
        Decimal("0.80"),
        Decimal("0.70"),
        Decimal("0.50"),
    )
    assert RetentionPolicy.objects.get(entity="trades").retention_days == 90
    assert RetentionPolicy.objects.get(entity="portfolio_snapshots").retention_days == 180
    assert LeverageBracket.objects.filter(symbol="BTCUSDT").count() == 12


def test_reseeding_keeps_what_an_operator_changed():
    call_command("seed", stdout=io.StringIO())
    Exchange.objects.filter(slug="huobi").update(weight=Decimal("0.10"), enabled=False)

    call_command("seed", stdout=io.StringIO())

    huobi = Exchange.objects.get(slug="huobi")
    assert (huobi.weight, huobi.enabled) == (Decimal("0.10"), False)
    assert Exchange.objects.count() == 9


def test_bracket_with_inconsistent_maintenance_amount_is_refused():
    call_command("seed", stdout=io.StringIO())
    second = LeverageBracket.objects.get(symbol="BTCUSDT", bracket=2)

    second.cum = Decimal("49")

    with pytest.raises(ValidationError, match="50"):
        second.full_clean()


def test_bracket_gap_is_refused():
    call_command("seed", stdout=io.StringIO())
    third = LeverageBracket.objects.get(symbol="BTCUSDT", bracket=3)

    third.notional_floor = Decimal("650000")

    with pytest.raises(ValidationError, match="cap of bracket 2"):
        third.full_clean()
