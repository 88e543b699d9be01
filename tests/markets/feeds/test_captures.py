"""Every recorded frame of every exchange goes through its adapter (tests/fixtures/feeds)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from decimal import Decimal

import pytest

from apps.markets.feeds.adapters import ADAPTERS
from apps.markets.feeds.types import ParseResult, Tick
from tests.markets.feeds.captures import received_frames

CAPTURES = {
    "coinbase": ["COINBASE.ws.28.0"],
    "binance": ["BINANCE.ws.1.0"],
    "kraken": ["KRAKEN.ws.48.0", "KRAKEN.ws.49.0", "KRAKEN.ws.50.0"],
    "okx": ["OKX.ws.1.0"],
    "kucoin": ["KUCOIN.ws.1.0"],
    "huobi": ["HUOBI.ws.44.0"],
}

# Counted from the raw files; OKX counts only its BTC-USDT spot messages (the future and
# the swap are dropped), Binance tickers are its bookTicker messages.
EXPECTED_TICKS = {  # (tickers, trades)
    "coinbase": (107, 107),  # 97 match + 10 last_match
    "binance": (84, 2),
    "kraken": (18, 10),
    "okx": (25, 69),
    "kucoin": (830, 18),
    "huobi": (0, 73),  # 44 trade.detail messages, some with several trades
}

EXPECTED_STATUSES = {
    "coinbase": {"control": 3, "data": 214, "ignored": 9729},  # l2update + snapshot ignored
    "binance": {"data": 86, "ignored": 179},  # depth + kline ignored
    "kraken": {"control": 33, "heartbeat": 92, "data": 26, "ignored": 4279},
    "okx": {"control": 18, "data": 94, "ignored": 298},  # books + derivative-only frames
    "kucoin": {"control": 14, "data": 848, "ignored": 3859},
    "huobi": {"control": 20, "heartbeat": 6, "data": 44, "ignored": 292},
}


def replay(slug: str) -> list[tuple[int, str | bytes, ParseResult]]:
    results = []
    for name in CAPTURES[slug]:
        adapter = ADAPTERS[slug]()  # one adapter per recorded connection
        for received_ts, frame in received_frames(name):
            results.append((received_ts, frame, adapter.parse(frame, received_ts)))
    return results


def ticks_of(results: list[tuple[int, str | bytes, ParseResult]]) -> list[Tick]:
    return [tick for _, _, result in results for tick in result.ticks]


def find(ticks: list[Tick], **fields: object) -> Tick:
    matches = [t for t in ticks if all(getattr(t, k) == v for k, v in fields.items())]
    assert len(matches) >= 1, fields
    return matches[0]


@pytest.mark.parametrize("slug", sorted(CAPTURES))
def test_every_recorded_frame_gets_the_expected_status(slug: str) -> None:
    results = replay(slug)

    statuses = Counter(result.status for _, _, result in results)
    errors = [(frame, result.error) for _, frame, result in results if result.status == "error"]
    assert errors == []
    assert statuses == EXPECTED_STATUSES[slug]


@pytest.mark.parametrize("slug", sorted(CAPTURES))
def test_every_ticker_and_trade_becomes_a_tick(slug: str) -> None:
    ticks = ticks_of(replay(slug))

    kinds = Counter(tick.kind for tick in ticks)
    assert (kinds["ticker"], kinds["trade"]) == EXPECTED_TICKS[slug]


@pytest.mark.parametrize("slug", sorted(CAPTURES))
def test_ticks_are_well_formed(slug: str) -> None:
    results = replay(slug)

    for received_ts, _, result in results:
        for tick in result.ticks:
            assert tick.source == slug
            assert tick.received_ts == received_ts
            assert isinstance(tick.price, Decimal) and tick.price > 0
            assert isinstance(tick.size, Decimal)
            assert tick.base and tick.quote and tick.base == tick.base.lower()
            # Exchange time is ms and close to receipt (HTX replays trades up to minutes old).
            assert abs(received_ts - tick.exchange_ts) < 3_600_000
            if tick.kind == "trade":
                assert tick.side in ("buy", "sell") and tick.size > 0
            else:
                assert tick.side is None and tick.size == 0


def test_coinbase_values_and_taker_side() -> None:
    ticks = ticks_of(replay("coinbase"))

    ticker = find(ticks, kind="ticker", instrument="BAND-GBP", received_ts=1618677817079)
    assert (ticker.base, ticker.quote) == ("band", "gbp")
    assert ticker.price == Decimal("14.7775")
    assert ticker.volume_24h == Decimal("94381.28000000")
    assert ticker.exchange_ts == 1618677810244  # 2021-04-17T16:43:30.244075Z
    # match side "sell" is the maker's: the taker bought.
    match = find(ticks, kind="trade", instrument="SKL-BTC", received_ts=1618677817129)
    assert (match.price, match.size, match.side) == (Decimal("0.00001305"), Decimal("985"), "buy")
    assert match.exchange_ts == 1618677817089


def test_coinbase_trade_side_agrees_with_the_ticker_for_the_same_trade() -> None:
    ticker_side: dict[int, str] = {}  # trade_id → the ticker's (taker) side
    trade_side: dict[int, str] = {}
    adapter = ADAPTERS["coinbase"]()
    for received_ts, frame in received_frames("COINBASE.ws.28.0"):
        message = json.loads(frame)
        if message["type"] == "ticker":
            ticker_side[message["trade_id"]] = message["side"]
        elif message["type"] in ("match", "last_match"):
            (tick,) = adapter.parse(frame, received_ts).ticks
            trade_side[message["trade_id"]] = str(tick.side)

    shared = ticker_side.keys() & trade_side.keys()
    assert len(shared) >= 10
    assert all(ticker_side[t] == trade_side[t] for t in shared)


def test_binance_values() -> None:
    ticks = ticks_of(replay("binance"))

    trade = find(ticks, kind="trade", instrument="NKNUSDT")
    assert (trade.base, trade.quote) == ("nkn", "usdt")
    assert (trade.price, trade.size, trade.side) == (Decimal("0.35280000"), Decimal("58.00000000"), "buy")
    assert trade.exchange_ts == 1633998523963
    lrc = find(ticks, kind="trade", instrument="LRCBTC")
    assert (lrc.base, lrc.quote, lrc.price) == ("lrc", "btc", Decimal("0.00000638"))
    # bookTicker: bid 0.35210000 / ask 0.35260000, no event time in spot.
    book = find(ticks, kind="ticker", instrument="NKNUSDT", received_ts=1633998513377)
    assert book.price == Decimal("0.35235")
    assert book.exchange_ts == book.received_ts
    assert {t.instrument for t in ticks if t.kind == "ticker"} <= {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}


def test_kraken_values() -> None:
    ticks = ticks_of(replay("kraken"))

    trade = find(ticks, kind="trade", instrument="XMR/USD", exchange_ts=1618678142557)
    assert (trade.base, trade.quote) == ("xmr", "usd")
    assert (trade.price, trade.size, trade.side) == (Decimal("354.11000000"), Decimal("0.89594024"), "sell")
    bought = find(ticks, kind="trade", instrument="XMR/USD", exchange_ts=1618678145715)
    assert bought.side == "buy"
    ticker = find(ticks, kind="ticker", instrument="WAVES/EUR")
    assert ticker.price == Decimal("13.253900")
    assert ticker.volume_24h == Decimal("72035.05488104")
    assert {(t.base, t.quote) for t in ticks if t.instrument == "KSM/XBT"} <= {("ksm", "btc")}


def test_okx_values_and_derivatives_dropped() -> None:
    ticks = ticks_of(replay("okx"))

    assert {t.instrument for t in ticks} == {"BTC-USDT"}
    ticker = find(ticks, kind="ticker", exchange_ts=1652459224956)
    assert (ticker.base, ticker.quote) == ("btc", "usdt")
    assert (ticker.price, ticker.volume_24h) == (Decimal("30236"), Decimal("17602.13085371"))
    trade = find(ticks, kind="trade", exchange_ts=1652459224818)
    assert (trade.price, trade.size, trade.side) == (Decimal("30236"), Decimal("0.0002"), "buy")


def test_kucoin_values() -> None:
    ticks = ticks_of(replay("kucoin"))

    ticker = find(ticks, kind="ticker", instrument="SNX-BTC", exchange_ts=1619378326323)
    assert (ticker.base, ticker.quote, ticker.price) == ("snx", "btc", Decimal("0.00028676"))
    trade = find(ticks, kind="trade", instrument="DAPPT-BTC", size=Decimal("81.8814"))
    assert (trade.price, trade.side) == (Decimal("0.0000001117"), "buy")
    assert trade.exchange_ts == 1619378327739  # from "1619378327739050725" ns
    renamed = find(ticks, instrument="BCHSV-USDT")
    assert (renamed.base, renamed.quote) == ("bsv", "usdt")  # KuCoin's old code for BSV


def test_huobi_values() -> None:
    ticks = ticks_of(replay("huobi"))

    trade = find(ticks, instrument="trioeth", exchange_ts=1618678027940)
    assert (trade.base, trade.quote) == ("trio", "eth")
    assert (trade.price, trade.size, trade.side) == (Decimal("9.2E-7"), Decimal("20995.88"), "buy")
    assert str(trade.price) == "9.2E-7"  # the float's exact text, no binary rounding
    yfi = find(ticks, instrument="yfihusd")
    assert (yfi.base, yfi.quote) == ("yfi", "husd")
    assert len([t for t in ticks if t.instrument == "zeneth"]) == 3


def test_huobi_pings_are_answered_with_the_same_number() -> None:
    pings = []
    for received_ts, frame in received_frames("HUOBI.ws.44.0"):
        assert isinstance(frame, bytes)
        message = json.loads(gzip.decompress(frame))
        if "ping" in message:
            pings.append((message["ping"], ADAPTERS["huobi"]().parse(frame, received_ts)))

    assert len(pings) == 6
    for number, result in pings:
        assert result.status == "heartbeat"
        assert [json.loads(reply) for reply in result.replies] == [{"pong": number}]
