"""The trading admin: every model registered, replicated rows read-only, bracket table import."""

import json
from datetime import date
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin

from apps.markets.models import Exchange
from apps.trading.exceptions import BracketTableInvalid
from apps.trading.models import LeverageBracket, Strategy
from apps.trading.services.brackets import leverage_brackets_import
from tests.trading.factories import make_order, make_position

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/trading/leveragebracket/import/"
DAY = date(2025, 1, 15)

# Binance's documented /fapi/v1/leverageBracket example shape, with the 2021 default MMRs:
# cum_n = floor_n * (MMR_n - MMR_{n-1}) + cum_{n-1}: 0; 50,000 * 0.001 = 50; 50 + 250,000 * 0.005 = 1,300.
GOOD_TABLE = [
    {
        "symbol": "ETHUSDT",
        "notionalCoef": 1.50,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": 125,
                "notionalCap": 50000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.004,
                "cum": 0.0,
            },
            {
                "bracket": 2,
                "initialLeverage": 100,
                "notionalCap": 250000,
                "notionalFloor": 50000,
                "maintMarginRatio": 0.005,
                "cum": 50.0,
            },
            {
                "bracket": 3,
                "initialLeverage": 50,
                "notionalCap": 1000000,
                "notionalFloor": 250000,
                "maintMarginRatio": 0.01,
                "cum": 1300.0,
            },
        ],
    }
]


def _bad_cum() -> list[dict]:
    table = json.loads(json.dumps(GOOD_TABLE))
    table[0]["brackets"][2]["cum"] = 1250.0
    return table


@pytest.fixture
def binance(seeded) -> Exchange:
    return Exchange.objects.get(slug="binance")


def test_every_trading_model_is_registered():
    models = set(apps.get_app_config("trading").get_models())

    assert models - set(admin.site._registry) == set()


def test_replicated_rows_are_read_only(admin_client, portfolio):
    position = make_position(portfolio)

    detail = admin_client.get(f"/admin/trading/position/{position.pk}/change/")
    changed = admin_client.post(f"/admin/trading/position/{position.pk}/change/", {"quantity": "99"})
    add = admin_client.get("/admin/trading/portfolio/add/")

    assert detail.status_code == 200  # viewable
    assert changed.status_code == 403
    assert add.status_code == 403
    position.refresh_from_db()
    assert position.quantity == Decimal("1")


@pytest.mark.parametrize(
    "model",
    [
        "portfolio",
        "order",
        "position",
        "fill",
        "optionposition",
        "fundingpayment",
        "liquidation",
        "marginhistory",
        "portfoliosnapshot",
        "insurancefundentry",
        "predictionhistory",
        "leveragechange",
        "strategy",
        "enginesettings",
        "instrument",
        "fundingrate",
        "leveragebracket",
        "profile",
    ],
)
def test_changelists_render(admin_client, portfolio, model):
    make_position(portfolio)
    make_order(portfolio)

    assert admin_client.get(f"/admin/trading/{model}/").status_code == 200


def test_strategy_admin_edits_only_the_operator_fields(admin_client, portfolio):
    strategy = Strategy.objects.create(
        name="grandma", persona="grandma", portfolio=portfolio, parameters={"risk": 1}, interval_seconds=300
    )

    response = admin_client.post(
        f"/admin/trading/strategy/{strategy.pk}/change/",
        {"parameters": '{"risk": 2}', "interval_seconds": "60", "enabled": "", "name": "hacked"},
    )

    assert response.status_code == 302
    strategy.refresh_from_db()
    assert (strategy.parameters, strategy.interval_seconds, strategy.enabled) == ({"risk": 2}, 60, False)
    assert strategy.name == "grandma"
    assert strategy.version == 2


def test_import_a_good_table(admin_client, binance):
    response = admin_client.post(
        IMPORT_URL,
        {"exchange": "binance", "effective_from": DAY.isoformat(), "table": json.dumps(GOOD_TABLE)},
    )

    assert response.status_code == 302
    rows = LeverageBracket.objects.filter(exchange=binance, symbol="ETHUSDT", effective_from=DAY).order_by(
        "bracket"
    )
    assert [(r.bracket, r.initial_leverage, r.notional_cap, r.maint_margin_ratio, r.cum) for r in rows] == [
        (1, 125, Decimal("50000"), Decimal("0.004"), Decimal("0")),
        (2, 100, Decimal("250000"), Decimal("0.005"), Decimal("50")),
        (3, 50, Decimal("1000000"), Decimal("0.01"), Decimal("1300")),
    ]


def test_a_table_with_a_wrong_cum_is_rejected_whole(admin_client, binance):
    before = LeverageBracket.objects.count()

    response = admin_client.post(
        IMPORT_URL,
        {"exchange": "binance", "effective_from": DAY.isoformat(), "table": json.dumps(_bad_cum())},
    )

    assert response.status_code == 200  # the form again, with the errors
    text = response.content.decode()
    assert "rejected" in text
    assert "Must be 1300" in text
    assert LeverageBracket.objects.count() == before  # not even brackets 1 and 2


def test_a_reimport_replaces_the_table_of_that_date_and_a_bad_one_keeps_it(binance):
    leverage_brackets_import(exchange=binance, effective_from=DAY, text=json.dumps(GOOD_TABLE))

    with pytest.raises(BracketTableInvalid) as refused:
        leverage_brackets_import(exchange=binance, effective_from=DAY, text=json.dumps(_bad_cum()))
    result = leverage_brackets_import(exchange=binance, effective_from=DAY, text=json.dumps(GOOD_TABLE[0]))

    assert "ETHUSDT bracket 3" in refused.value.detail["errors"][0]
    assert (result.created, result.replaced) == (3, 3)
    assert LeverageBracket.objects.filter(symbol="ETHUSDT", effective_from=DAY).count() == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "Not JSON"),
        ("[]", "empty"),
        ('[{"symbol": "X"}]', "no brackets"),
        ('[{"symbol": "X", "brackets": [{"bracket": 1}]}]', "lacks"),
        (
            '[{"symbol": "X", "brackets": [{"bracket": 1, "initialLeverage": 20, "notionalCap": 100, '
            '"notionalFloor": 10, "maintMarginRatio": 0.01, "cum": 0}]}]',
            "starts at notional 0",
        ),
        (
            '[{"symbol": "X", "brackets": [{"bracket": 1, "initialLeverage": 20, "notionalCap": 100, '
            '"notionalFloor": 0, "maintMarginRatio": 0.01, "cum": 0}, {"bracket": 2, "initialLeverage": 10, '
            '"notionalCap": 1000, "notionalFloor": 150, "maintMarginRatio": 0.02, "cum": 1.5}]}]',
            "Must equal the cap",
        ),
    ],
)
def test_malformed_tables_are_rejected(binance, text, fragment):
    with pytest.raises(BracketTableInvalid) as refused:
        leverage_brackets_import(exchange=binance, effective_from=DAY, text=text)

    assert fragment in refused.value.message + " ".join(refused.value.detail.get("errors", []))
    assert not LeverageBracket.objects.filter(symbol="X").exists()
