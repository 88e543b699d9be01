"""GET /api/bootstrap: everything a client preloader needs, in one round trip."""

import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.markets.services.aggregation import AggregatedPrice
from apps.markets.services.store import price_store
from apps.trading.models import Portfolio, Profile
from tests.markets.factories import make_quote
from tests.trading.factories import make_order, make_position

pytestmark = pytest.mark.django_db

D = Decimal
# profile (1 + its transaction's savepoint and release: 3), portfolios (1), resting orders (1),
# the summary (positions, options, resting-order totals, engine settings, instruments, brackets:
# 6), with the market data cached: 11, whatever the number of positions or orders.
MAX_QUERIES = 11


def _mover(symbol: str, price: str, change_percent: str) -> AggregatedPrice:
    return AggregatedPrice(
        symbol=symbol,
        price=D(price),
        previous_price=None,
        direction="up",
        source="test",
        sources=("test",),
        timestamp=int(time.time() * 1000),
        change_percent_24h=D(change_percent),
    )


@pytest.fixture
def trading(portfolio, set_price):
    Profile.objects.create(user=portfolio.user, username="Alice", theme="dark")
    make_position(
        portfolio,
        symbol="btc",
        side="long",
        quantity="2",
        entry="50000",
        leverage=10,
        margin_mode="isolated",
        isolated_margin="10000",
    )
    make_position(portfolio, symbol="eth", side="short", quantity="10", entry="3000", leverage=5)
    make_order(portfolio, status="open", reserved_margin="500")
    make_order(portfolio, type="stop", price=None, stop_price="90", status="pending")
    make_order(portfolio, status="filled")
    make_order(portfolio, status="cancelled")
    movers = [_mover("btc", "52000", "4"), _mover("eth", "3100", "-2.5")]
    store = price_store()
    store.quotes_put({m.symbol: [make_quote(price=str(m.price), exchange_ts=m.timestamp)] for m in movers})
    store.prices_put(movers)
    return portfolio


def test_bootstrap_content(trading, market_up, auth_client):
    response = auth_client.get("/api/bootstrap")

    assert response.status_code == 200
    body = response.json()
    assert body["profile"]["username"] == "Alice"
    assert body["profile"]["theme"] == "dark"
    assert body["activePortfolioId"] == str(trading.pk)
    assert [p["id"] for p in body["portfolios"]] == [str(trading.pk)]
    assert sorted(p["symbol"] for p in body["positions"]) == ["btc", "eth"]
    btc = next(p for p in body["positions"] if p["symbol"] == "btc")
    assert (btc["markPrice"], btc["unrealizedPnl"], btc["markLive"]) == ("52000", "4000", True)
    assert sorted(o["status"] for o in body["orders"]) == ["open", "pending"]
    # cash 100,000 + isolated 10,000 + btc 2 * (52,000 - 50,000) - eth 10 * (3,100 - 3,000)
    assert body["account"]["equity"] == "113000"
    assert body["account"]["pendingOrders"] == 2
    market = body["market"]
    assert market["global"]["btcDominance"] == "50.4465263233584"
    assert market["global"]["activeCryptocurrencies"] == 13690
    assert market["fearGreed"]["value"] == 40
    assert market["fearGreed"]["classification"] == "Fear"
    assert [m["symbol"] for m in market["movers"]["gainers"]] == ["btc"]
    assert [m["symbol"] for m in market["movers"]["losers"]] == ["eth"]


def test_market_parts_are_null_when_providers_are_down(trading, market_down, auth_client):
    response = auth_client.get("/api/bootstrap")

    assert response.status_code == 200
    market = response.json()["market"]
    assert market["global"] is None
    assert market["fearGreed"] is None
    assert market["movers"] is not None  # from Haunt's own live prices
    assert response.json()["account"]["equity"] == "113000"


def test_first_bootstrap_creates_profile_and_active_portfolio(seeded, market_down, auth_client, user):
    body = auth_client.get("/api/bootstrap").json()

    portfolio = Portfolio.objects.get(user=user)
    assert body["activePortfolioId"] == str(portfolio.pk)
    assert body["portfolios"][0]["isActive"] is True
    assert body["positions"] == []
    assert body["orders"] == []
    assert body["account"]["equity"] == "100000"
    assert body["profile"]["username"] == user.username
    assert Profile.objects.filter(user=user).exists()


def test_query_count_is_bounded(trading, market_up, auth_client, django_assert_max_num_queries):
    auth_client.get("/api/bootstrap")  # fills the market-data cache, as any earlier request would

    with django_assert_max_num_queries(MAX_QUERIES):
        auth_client.get("/api/bootstrap")
    with CaptureQueriesContext(connection) as two_positions:
        auth_client.get("/api/bootstrap")
    for symbol in ("sol", "bnb"):
        make_position(trading, symbol=symbol, quantity="1", entry="100")
        make_order(trading, symbol=symbol, status="open")
    with CaptureQueriesContext(connection) as four_positions:
        auth_client.get("/api/bootstrap")

    assert len(four_positions.captured_queries) == len(two_positions.captured_queries)


def test_anonymous_is_401(seeded, api_client):
    assert api_client.get("/api/bootstrap").status_code == 401
