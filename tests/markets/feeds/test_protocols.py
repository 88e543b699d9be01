"""Subscribe frames, keepalives and connection state of each exchange's protocol."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

from apps.markets.feeds.adapters import (
    ADAPTERS,
    BinanceAdapter,
    CoinbaseAdapter,
    HuobiAdapter,
    KrakenAdapter,
    KucoinAdapter,
    OkxAdapter,
)

RECEIVED = 1_700_000_000_000


def test_registry_has_every_exchange_by_slug() -> None:
    assert sorted(ADAPTERS) == ["binance", "coinbase", "huobi", "kraken", "kucoin", "okx"]
    assert all(adapter.slug == slug for slug, adapter in ADAPTERS.items())


def test_url_can_be_overridden_for_a_local_fake() -> None:
    adapter = OkxAdapter(url="ws://127.0.0.1:9/ws")

    assert adapter.url == "ws://127.0.0.1:9/ws"
    assert OkxAdapter().url == "wss://ws.okx.com:8443/ws/v5/public"


def test_coinbase_subscribes_to_ticker_matches_and_heartbeat() -> None:
    (frame,) = CoinbaseAdapter().subscribe_frames(["BTC-USD", "ETH-EUR"])

    assert json.loads(frame) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-EUR"],
        "channels": ["ticker", "matches", "heartbeat"],
    }
    assert CoinbaseAdapter.ping_interval is None


def test_coinbase_heartbeat_and_subscriptions() -> None:
    adapter = CoinbaseAdapter()
    heartbeat = '{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}'

    assert adapter.parse(heartbeat, RECEIVED).status == "heartbeat"
    assert adapter.parse('{"type":"subscriptions","channels":[]}', RECEIVED).status == "control"


def test_binance_subscribes_to_agg_trade_and_mini_ticker_streams() -> None:
    (frame,) = BinanceAdapter().subscribe_frames(["BTCUSDT"])

    assert json.loads(frame) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@aggTrade", "btcusdt@miniTicker"],
        "id": 1,
    }
    assert BinanceAdapter().ping_frame() is None


def test_binance_mini_ticker_and_24hr_ticker_use_the_last_price() -> None:
    adapter = BinanceAdapter()
    mini = {"e": "24hrMiniTicker", "E": 1672515782136, "s": "BNBBTC", "c": "0.0025", "o": "0.0010"}
    full = {
        "e": "24hrTicker",
        "E": 1672515782136,
        "s": "BTCFDUSD",
        "c": "42000.01",
        "b": "41999",
        "a": "42001",
    }

    (tick,) = adapter.parse(
        json.dumps({"stream": "bnbbtc@miniTicker", "data": mini | {"v": "10000"}}), RECEIVED
    ).ticks
    (other,) = adapter.parse(json.dumps({"stream": "x@ticker", "data": full | {"v": "3.5"}}), RECEIVED).ticks

    assert (tick.base, tick.quote, tick.price, tick.volume_24h) == (
        "bnb",
        "btc",
        Decimal("0.0025"),
        Decimal("10000"),
    )
    assert tick.exchange_ts == 1672515782136
    assert (other.base, other.quote, other.price) == ("btc", "fdusd", Decimal("42000.01"))


def test_binance_seller_taker_when_buyer_is_maker() -> None:
    frame = {"e": "aggTrade", "E": 1, "s": "ETHBTC", "p": "0.05", "q": "2", "T": 1672515782136, "m": True}

    (tick,) = BinanceAdapter().parse(json.dumps({"stream": "ethbtc@aggTrade", "data": frame}), RECEIVED).ticks

    assert tick.side == "sell"


def test_binance_subscribe_reply_is_control() -> None:
    assert BinanceAdapter().parse('{"result":null,"id":1}', RECEIVED).status == "control"


def test_kucoin_subscribes_in_chunks_of_one_hundred_symbols_with_unique_ids() -> None:
    symbols = [f"C{n}-USDT" for n in range(150)]

    frames = [json.loads(f) for f in KucoinAdapter().subscribe_frames(symbols)]

    assert [f["topic"].split(":")[0] for f in frames] == ["/market/ticker"] * 2 + ["/market/match"] * 2
    assert frames[0]["topic"].split(":")[1].split(",") == symbols[:100]
    assert all(f["type"] == "subscribe" and f["privateChannel"] is False and f["response"] for f in frames)
    assert len({f["id"] for f in frames}) == 4


def test_kucoin_ping_pong_and_welcome() -> None:
    adapter = KucoinAdapter()

    first, second = json.loads(str(adapter.ping_frame())), json.loads(str(adapter.ping_frame()))

    assert first["type"] == "ping" and first["id"] != second["id"]
    assert adapter.parse('{"id":"1","type":"pong"}', RECEIVED).status == "heartbeat"
    assert adapter.parse('{"id":"hQvf8jkno","type":"welcome"}', RECEIVED).status == "control"
    assert adapter.parse('{"id":"1","type":"ack"}', RECEIVED).status == "control"


def test_kucoin_all_symbols_ticker_names_the_symbol_in_subject() -> None:
    frame = {
        "type": "message",
        "topic": "/market/ticker:all",
        "subject": "BTC-USDT",
        "data": {"price": "67000.1", "size": "0.01", "time": 1711356300123},
    }

    (tick,) = KucoinAdapter().parse(json.dumps(frame), RECEIVED).ticks

    assert (tick.instrument, tick.base, tick.quote, tick.price) == (
        "BTC-USDT",
        "btc",
        "usdt",
        Decimal("67000.1"),
    )


def test_okx_subscribes_and_pings_with_text() -> None:
    adapter = OkxAdapter()

    (frame,) = adapter.subscribe_frames(["BTC-USDT"])

    assert json.loads(frame) == {
        "op": "subscribe",
        "args": [{"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USDT"}],
    }
    assert adapter.ping_frame() == "ping"
    assert adapter.ping_interval is not None and adapter.ping_interval < 30
    assert adapter.parse("pong", RECEIVED).status == "heartbeat"


def test_okx_drops_futures_and_swaps() -> None:
    adapter = OkxAdapter()
    trade = {"px": "30218.8", "sz": "1", "side": "buy", "ts": "1652459199958"}

    futures = adapter.parse(
        json.dumps({"arg": {"channel": "trades"}, "data": [trade | {"instId": "BTC-USD-220527"}]}), RECEIVED
    )
    swap = adapter.parse(
        json.dumps({"arg": {"channel": "trades"}, "data": [trade | {"instId": "UNI-USD-SWAP"}]}), RECEIVED
    )

    assert (futures.status, futures.ticks) == ("ignored", [])
    assert (swap.status, swap.ticks) == ("ignored", [])


def test_huobi_subscribes_to_ticker_and_trade_detail_in_lower_case() -> None:
    frames = [json.loads(f) for f in HuobiAdapter().subscribe_frames(["BTCUSDT"])]

    assert [f["sub"] for f in frames] == ["market.btcusdt.ticker", "market.btcusdt.trade.detail"]
    assert len({f["id"] for f in frames}) == 2


def test_huobi_ping_is_answered_with_pong() -> None:
    result = HuobiAdapter().parse(gzip.compress(b'{"ping":1492420473027}'), RECEIVED)

    assert result.status == "heartbeat"
    assert result.replies == ['{"pong":1492420473027}']


def test_huobi_ticker_and_detail_channels() -> None:
    adapter = HuobiAdapter()
    ticker = b'{"ch":"market.btcusdt.ticker","ts":1630982370526,"tick":{"open":51732,"close":52000.5,"amount":13991.1,"vol":7.2e8,"lastPrice":52003.1,"lastSize":0.01}}'
    detail = b'{"ch":"market.ethbtc.detail","ts":1630982370526,"tick":{"open":0.07,"close":0.0725,"amount":5800.25,"vol":420.5}}'

    (tick,) = adapter.parse(gzip.compress(ticker), RECEIVED).ticks
    (other,) = adapter.parse(gzip.compress(detail), RECEIVED).ticks

    assert (tick.price, tick.volume_24h, tick.exchange_ts) == (
        Decimal("52003.1"),
        Decimal("13991.1"),
        1630982370526,
    )
    assert (other.base, other.quote, other.price) == ("eth", "btc", Decimal("0.0725"))


def test_huobi_accepts_an_uncompressed_text_frame() -> None:
    subbed = '{"id":"1","status":"ok","subbed":"market.btcusdt.ticker","ts":1}'

    assert HuobiAdapter().parse(subbed, RECEIVED).status == "control"


def test_kraken_subscribes_to_ticker_and_trade() -> None:
    frames = [json.loads(f) for f in KrakenAdapter().subscribe_frames(["XBT/USD"])]

    assert frames == [
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "ticker"}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}},
    ]


def kraken_status(channel_id: int, name: str, pair: str, status: str = "subscribed") -> str:
    return json.dumps(
        {
            "channelID": channel_id,
            "channelName": name,
            "event": "subscriptionStatus",
            "pair": pair,
            "status": status,
        }
    )


def test_kraken_maps_channel_ids_from_subscription_status() -> None:
    adapter = KrakenAdapter()
    trade = '[42,[["50000.10000","0.01000000","1618678142.557535","b","m",""]]]'  # no trailing name/pair

    before = adapter.parse(trade, RECEIVED)
    adapter.parse(kraken_status(42, "trade", "XBT/USD"), RECEIVED)
    after = adapter.parse(trade, RECEIVED)

    assert before.status == "error"
    assert adapter.channels == {42: ("trade", "XBT/USD")}
    (tick,) = after.ticks
    assert (tick.instrument, tick.base, tick.quote, tick.side) == ("XBT/USD", "btc", "usd", "buy")
    assert tick.exchange_ts == 1618678142557


def test_kraken_channel_map_wins_over_the_trailing_names() -> None:
    adapter = KrakenAdapter()
    adapter.parse(kraken_status(7, "ticker", "XDG/USD"), RECEIVED)

    result = adapter.parse('[7,{"c":["0.25","100"],"v":["1000","2000"]},"ticker","stale"]', RECEIVED)

    (tick,) = result.ticks
    assert (tick.base, tick.quote, tick.price, tick.volume_24h) == (
        "doge",
        "usd",
        Decimal("0.25"),
        Decimal("2000"),
    )
    assert tick.exchange_ts == RECEIVED  # v1 tickers carry no time


def test_kraken_unsubscribe_and_resubscribe_forget_channels() -> None:
    adapter = KrakenAdapter()
    adapter.parse(kraken_status(1, "trade", "XBT/USD"), RECEIVED)
    adapter.parse(kraken_status(2, "ticker", "XBT/USD"), RECEIVED)

    adapter.parse(kraken_status(1, "trade", "XBT/USD", status="unsubscribed"), RECEIVED)
    assert adapter.channels == {2: ("ticker", "XBT/USD")}
    adapter.subscribe_frames(["XBT/USD"])  # a reconnection
    assert adapter.channels == {}


def test_kraken_heartbeat_and_system_status() -> None:
    adapter = KrakenAdapter()

    assert adapter.parse('{"event":"heartbeat"}', RECEIVED).status == "heartbeat"
    assert adapter.parse('{"event":"systemStatus","status":"online"}', RECEIVED).status == "control"
