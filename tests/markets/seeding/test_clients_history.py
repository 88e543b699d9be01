"""History REST clients against the fake providers' real response shapes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.markets.clients_history import coingecko_market_chart_fetch, cryptocompare_history_fetch
from apps.markets.exceptions import SourceUnavailable
from tests.markets.seeding.conftest import CRYPTOCOMPARE_ERROR, Answer, FakeHistory

CHART = "/api/v3/coins/bitcoin/market_chart"


def chart(history: FakeHistory, days: int = 1):
    return coingecko_market_chart_fetch(base_url=history.url + "/api/v3", coin_id="bitcoin", days=days)


def histo(history: FakeHistory, unit: str = "hour", limit: int = 720):
    return cryptocompare_history_fetch(base_url=history.url, fsym="BTC", unit=unit, limit=limit)  # type: ignore[arg-type]


def test_market_chart_is_parsed_into_decimal_points_oldest_first(history):
    result = chart(history, days=1)

    (request,) = history.requests
    assert (request.path, request.query) == (CHART, {"vs_currency": "usd", "days": "1"})
    assert len(result.prices) == len(result.total_volumes) == 289  # 24 h of 5-minute points
    assert all(isinstance(price, Decimal) for _, price in result.prices)
    assert [t for t, _ in result.prices] == sorted(t for t, _ in result.prices)
    assert result.total_volumes[0][1] == Decimal("28800000000.5")


def test_market_chart_keeps_decimal_precision(history):
    history.override[CHART] = Answer(
        raw='{"prices": [[1704067200000, 67187.3358936566]], "market_caps": [], "total_volumes": []}'
    )

    result = chart(history)

    assert result.prices == [(1704067200000, Decimal("67187.3358936566"))]


@pytest.mark.parametrize(
    "answer",
    [
        Answer(status=500),
        Answer(
            status=429,
            body={"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}},
        ),
        Answer(status=404, body={"error": "coin not found"}),
        Answer(body={"status": {"error_code": 10002, "error_message": "API Key Missing"}}),
        Answer(raw="<html>Cloudflare</html>"),
        Answer(body={"prices": "nope"}),
    ],
)
def test_market_chart_failures_raise_source_unavailable(history, answer):
    history.override[CHART] = answer

    with pytest.raises(SourceUnavailable) as caught:
        chart(history)

    assert caught.value.code == "source_unavailable"


def test_histohour_gives_real_ohlc_in_ms_and_limit_plus_one_rows(history, settings):
    settings.HAUNT_CRYPTOCOMPARE_API_KEY = "cc-key"

    rows = histo(history, "hour", 720)

    (request,) = history.requests
    assert request.path == "/data/v2/histohour"
    assert request.query == {"fsym": "BTC", "tsym": "USD", "limit": "720"}
    assert request.headers["authorization"] == "Apikey cc-key"
    assert len(rows) == 721
    first = rows[0]
    assert first.time_ms % 3_600_000 == 0
    assert (first.open, first.high, first.low, first.close) == (
        Decimal(60720),
        Decimal("60730.5"),
        Decimal("60709.75"),
        Decimal(60721),
    )
    assert first.volume == Decimal("123.45")  # volumefrom: in coins, like exchange candles


def test_histoday_without_api_key_sends_no_authorization(history, settings):
    settings.HAUNT_CRYPTOCOMPARE_API_KEY = None

    rows = histo(history, "day", 30)

    assert history.requests[0].path == "/data/v2/histoday"
    assert "authorization" not in history.requests[0].headers
    assert len(rows) == 31 and rows[-1].time_ms % 86_400_000 == 0


def test_histo_rows_before_listing_are_skipped(history):
    body = {
        "Response": "Success",
        "Data": {
            "Aggregated": False,
            "TimeFrom": 0,
            "TimeTo": 3600,
            "Data": [
                {"time": 0, "high": 0, "low": 0, "open": 0, "volumefrom": 0, "volumeto": 0, "close": 0},
                {
                    "time": 3600,
                    "high": 2,
                    "low": 1,
                    "open": 1.5,
                    "volumefrom": 3,
                    "volumeto": 4,
                    "close": 1.75,
                },
            ],
        },
    }
    history.override["/data/v2/histohour"] = Answer(body=body)

    rows = histo(history)

    assert [(r.time_ms, r.close) for r in rows] == [(3_600_000, Decimal("1.75"))]


@pytest.mark.parametrize(
    "answer",
    [
        Answer(body=CRYPTOCOMPARE_ERROR),  # errors come with HTTP 200
        Answer(status=500),
        Answer(body={"Response": "Success", "Data": {"Data": [{"time": 1}]}}),
        Answer(raw="not json"),
    ],
)
def test_histo_failures_raise_source_unavailable(history, answer):
    history.override["/data/v2/histohour"] = answer

    with pytest.raises(SourceUnavailable) as caught:
        histo(history)

    if answer.body is CRYPTOCOMPARE_ERROR:
        assert "over your rate limit" in caught.value.message


def test_unreachable_provider_raises_source_unavailable():
    with pytest.raises(SourceUnavailable):
        cryptocompare_history_fetch(base_url="http://127.0.0.1:9", fsym="BTC", unit="day", limit=1)
