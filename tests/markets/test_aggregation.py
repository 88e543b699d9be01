from dataclasses import replace
from decimal import Decimal

from apps.markets.services.aggregation import price_aggregate
from tests.markets.factories import NOW, make_quote

WEIGHTS = {
    "coinbase": Decimal("1.0"),
    "binance": Decimal("1.0"),
    "huobi": Decimal("0.7"),
    "coingecko": Decimal("0.5"),
}


def aggregate(*quotes, previous=None, weights=WEIGHTS, **kwargs):
    return price_aggregate(
        symbol="btc",
        quotes={q.source: q for q in quotes},
        weights=weights,
        previous=previous,
        now_ms=NOW,
        **kwargs,
    )


def test_weighted_average_by_source_weight():
    price = aggregate(make_quote("coinbase", "100.00"), make_quote("huobi", "110.00"))

    assert price.price == Decimal("104.12")  # (100 * 1.0 + 110 * 0.7) / 1.7
    assert price.sources == ("coinbase", "huobi")


def test_quotes_older_than_30s_by_source_timestamp_are_dropped():
    price = aggregate(
        make_quote("coinbase", "100.00", age_ms=30_001), make_quote("binance", "102.00", age_ms=30_000)
    )

    assert price.price == Decimal("102.00")
    assert price.sources == ("binance",)


def test_staleness_uses_the_source_timestamp_not_the_receive_time():
    late = make_quote("coinbase", "100.00", age_ms=31_000, received_ts=NOW)  # received just now, but old

    assert aggregate(late) is None


def test_clock_far_in_the_future_is_not_trusted():
    price = aggregate(make_quote("coinbase", "100.00", age_ms=-6_000), make_quote("binance", "101.00"))

    assert price.sources == ("binance",)


def test_single_source_symbol():
    price = aggregate(make_quote("huobi", "0.000001234"))

    assert (price.price, price.source, price.sources) == (Decimal("0.000001234"), "huobi", ("huobi",))
    assert price.previous_price is None


def test_disabled_or_unknown_source_does_not_count():
    price = aggregate(make_quote("coinbase", "100.00"), make_quote("kraken", "900.00"))

    assert price.price == Decimal("100.00")


def test_direction_against_the_previous_price():
    first = aggregate(make_quote("coinbase", "100.00"))

    down = aggregate(make_quote("coinbase", "99.50"), previous=first)
    flat = aggregate(make_quote("coinbase", "99.50"), previous=down)
    up = aggregate(make_quote("coinbase", "101.00"), previous=flat)

    assert (down.direction, down.previous_price) == ("down", Decimal("100.00"))
    assert flat.direction == "down"  # unchanged keeps the last move
    assert up.direction == "up"


def test_all_sources_stale_keeps_the_last_price_marked_stale():
    previous = aggregate(make_quote("coinbase", "100.00"))

    price = aggregate(make_quote("coinbase", "100.00", age_ms=60_000), previous=previous)

    assert price.stale is True
    assert price.price == Decimal("100.00")
    assert price == replace(previous, stale=True)


def test_no_fresh_quote_and_no_history_invents_nothing():
    assert aggregate(make_quote("coinbase", "100.00", age_ms=60_000)) is None


def test_source_is_the_one_that_spoke_last():
    price = aggregate(
        make_quote("coinbase", "100.00", age_ms=500), make_quote("binance", "100.00", age_ms=10)
    )

    assert price.source == "binance"


def test_volume_and_24h_change():
    price = aggregate(
        make_quote("coinbase", "110.00", volume_24h=Decimal("10")),
        make_quote("binance", "110.00", volume_24h=Decimal("2.5")),
        open_24h=Decimal("100"),
    )

    assert price.volume_24h == Decimal("12.5")
    assert (price.change_24h, price.change_percent_24h) == (Decimal("10.00"), Decimal("10.00"))
