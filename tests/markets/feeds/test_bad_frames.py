"""Garbage in any form is status "error" with a reason, never an exception."""

from __future__ import annotations

import gzip
import json

import pytest

from apps.markets.feeds.adapters import ADAPTERS

RECEIVED = 1_700_000_000_000

GARBAGE: list[str | bytes] = [
    "",
    "   ",
    "not json",
    "{",
    '{"type":"ticker","product_id":"BTC-USD","price":"1',  # truncated
    "null",
    "42",
    '"a string"',
    "[]",
    "[1]",
    "{}",
    '{"type":"no-such-type"}',
    '{"price": NaN}',
    b"\x00\xff\xfe garbage",
    b"\x1f\x8b\x08\x00truncated gzip",
]

# Real shapes with one field of the wrong type or value inside.
WRONG_INSIDE: dict[str, list[str]] = {
    "coinbase": [
        '{"type":"ticker","product_id":"BTC-USD","price":"abc","volume_24h":"1","time":"2021-04-17T16:43:30Z"}',
        '{"type":"ticker","product_id":"BTC-USD","price":"1","volume_24h":"1","time":"yesterday"}',
        '{"type":"ticker","product_id":"BTC-USD","price":"1","volume_24h":"1","time":"2021-04-17T16:43:30"}',
        '{"type":"match","product_id":"BTC-USD","price":"1","size":"1","side":"up","time":"2021-04-17T16:43:30Z"}',
        '{"type":"match","product_id":["BTC-USD"],"price":"1","size":"1","side":"buy","time":"2021-04-17T16:43:30Z"}',
        '{"type":"match","product_id":"BTC-USD","price":"-1","size":"1","side":"buy","time":"2021-04-17T16:43:30Z"}',
        '{"type":"error","message":"Failed to subscribe","reason":"BTC-XYZ is not a valid product"}',
    ],
    "binance": [
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","p":"1","q":"1","T":1633998523963,"m":"false"}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","p":1.5e400,"q":"1","T":1633998523963,"m":false}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","p":"1","q":"1","T":1633998523,"m":false}}',
        '{"stream":"btcusdt@miniTicker","data":{"e":"24hrMiniTicker","s":"BTCUSDT","c":null,"v":"1","E":1633998523963}}',
        '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"2","B":"1","a":"1","A":"1"}}',
        '{"stream":"btcxyz@aggTrade","data":{"e":"aggTrade","s":"BTCXYZ","p":"1","q":"1","T":1633998523963,"m":false}}',
        '{"stream":"btcusdt@aggTrade","data":[]}',
        '{"error":{"code":2,"msg":"Invalid request"},"id":1}',
    ],
    "kucoin": [
        '{"type":"message","topic":"/market/ticker:BTC-USDT","subject":"trade.ticker","data":{"price":"x","time":1619378326323}}',
        '{"type":"message","topic":"/market/match:BTC-USDT","data":{"symbol":"BTC-USDT","price":"1","size":"1","side":"buy","time":"soon"}}',
        '{"type":"message","topic":"/market/match:BTC-USDT","data":"nope"}',
        '{"type":"message","topic":"/market/unknown:BTC-USDT","data":{}}',
        '{"type":"error","code":401,"data":"token is invalid"}',
    ],
    "okx": [
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"","vol24h":"1","ts":"1652459224956"}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":{"instId":"BTC-USDT"}}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","px":"1","sz":"1","side":"buy","ts":"1652459224.8"}]}',
        '{"arg":{"channel":"nonsense","instId":"BTC-USDT"},"data":[]}',
        '{"event":"error","code":"60012","msg":"Invalid request"}',
        '{"event":"surprise"}',
    ],
    "huobi": [
        '{"ch":"market.btcusdt.trade.detail","ts":1,"tick":{"data":[{"price":"x","amount":1,"direction":"buy","ts":1618678027940}]}}',
        '{"ch":"market.btcusdt.trade.detail","ts":1,"tick":{"data":[{"price":1.5,"amount":1,"direction":"long","ts":1618678027940}]}}',
        '{"ch":"market.btcusdt.ticker","ts":"later","tick":{"lastPrice":1.5,"amount":1}}',
        '{"ch":"market.btcxyz.trade.detail","ts":1,"tick":{"data":[{"price":1.5,"amount":1,"direction":"buy","ts":1618678027940}]}}',
        '{"ch":"nonsense"}',
        '{"ping":"soon"}',
        '{"status":"error","err-code":"bad-request","err-msg":"invalid topic"}',
    ],
    "kraken": [
        '[1,[["1.0","1.0","not-a-time","b","m",""]],"trade","XBT/USD"]',
        '[1,[["1.0","1.0","1618678142.557535","x","m",""]],"trade","XBT/USD"]',
        '[1,[["1.0"]],"trade","XBT/USD"]',
        '[1,{"c":"1.0","v":["1","2"]},"ticker","XBT/USD"]',
        '[1,{"c":["1.0","1"],"v":["1","2"]},"ticker","XBTUSD"]',
        '[1,{},"nonsense","XBT/USD"]',
        '["one",{},"ticker","XBT/USD"]',
        '{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not supported"}',
        '{"event":"subscriptionStatus","status":"subscribed","channelID":"x","channelName":"trade","pair":"XBT/USD"}',
    ],
}


def huobi_frame(text: str) -> bytes:
    return gzip.compress(text.encode())


@pytest.mark.parametrize("slug", sorted(ADAPTERS))
@pytest.mark.parametrize("frame", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_an_error_not_an_exception(slug: str, frame: str | bytes) -> None:
    adapter = ADAPTERS[slug]()

    result = adapter.parse(frame, RECEIVED)

    assert result.status == "error"
    assert result.error
    assert result.ticks == []


@pytest.mark.parametrize(
    ("slug", "frame"), [(slug, frame) for slug, frames in WRONG_INSIDE.items() for frame in frames]
)
def test_wrong_type_inside_a_real_shape_is_an_error(slug: str, frame: str) -> None:
    adapter = ADAPTERS[slug]()
    wire: str | bytes = huobi_frame(frame) if slug == "huobi" else frame

    result = adapter.parse(wire, RECEIVED)

    assert result.status == "error", result
    assert result.error
    assert result.ticks == []


def test_huobi_gzipped_garbage_is_an_error() -> None:
    result = ADAPTERS["huobi"]().parse(huobi_frame("{not json"), RECEIVED)

    assert result.status == "error"


def test_error_reason_names_the_problem() -> None:
    frame = '{"type":"match","product_id":"BTC-USD","price":"1","size":"1","side":"up","time":"2021-04-17T16:43:30Z"}'

    result = ADAPTERS["coinbase"]().parse(frame, RECEIVED)

    assert result.error is not None and "side" in result.error


def test_a_valid_frame_still_parses_after_garbage() -> None:
    adapter = ADAPTERS["okx"]()
    good = json.dumps(
        {
            "arg": {"channel": "trades", "instId": "ETH-USDT"},
            "data": [
                {"instId": "ETH-USDT", "px": "2000.5", "sz": "0.1", "side": "sell", "ts": "1652459224818"}
            ],
        }
    )

    adapter.parse("{", RECEIVED)
    result = adapter.parse(good, RECEIVED)

    assert result.status == "data"
    assert result.ticks[0].side == "sell"
