from __future__ import annotations

import asyncio
import gzip
import importlib
import json
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from apps.markets.feeds.replay import (
    CapturedFrame,
    FrameRecorder,
    ReplaySupervisor,
    read_capture,
)
from apps.markets.feeds.supervisor import Backoff, FeedSupervisor, OnTicks, now_ms
from apps.markets.feeds.types import FeedAdapter, ParseResult, Tick
from tests.markets.feeds.captures import fixtures_dir
from tests.markets.feeds.fake_exchange import FakeExchange, ToyAdapter, eventually, trade_frame

STALE_MS = 30_000  # aggregation drops ticks whose exchange_ts is older than this


def capture(name: str) -> Path:
    return fixtures_dir() / name


class MiniCoinbase(FeedAdapter):
    """Just enough of the Coinbase Exchange feed to replay COINBASE.ws.28.0."""

    slug = "minicb"
    default_url = "ws://127.0.0.1:9/"
    kinds = {"ticker": "ticker", "match": "trade", "last_match": "trade"}

    def subscribe_frames(self, instruments: Sequence[str]) -> list[str]:
        return []

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        message = json.loads(frame)
        kind = self.kinds.get(message.get("type"))
        if kind is None:
            return ParseResult(status="ignored")
        base, quote = message["product_id"].lower().split("-")
        tick = Tick(
            source=self.slug,
            instrument=message["product_id"],
            base=base,
            quote=quote,
            price=Decimal(message["price"]),
            size=Decimal(message.get("size", "0")) if kind == "trade" else Decimal(0),
            kind="trade" if kind == "trade" else "ticker",
            exchange_ts=int(datetime.fromisoformat(message["time"]).timestamp() * 1000),
            received_ts=received_ts,
        )
        return ParseResult(status="data", ticks=[tick])


def collector() -> tuple[list[Tick], OnTicks]:
    ticks: list[Tick] = []

    async def on_ticks(batch: list[Tick]) -> None:
        ticks.extend(batch)

    return ticks, on_ticks


def toy_frames(*gaps: float) -> list[CapturedFrame]:
    """Toy trades recorded at 1000.0 plus the running sum of gaps."""
    stamps = [1000.0]
    for gap in gaps:
        stamps.append(stamps[-1] + gap)
    return [
        CapturedFrame(ts, trade_frame(price=str(i + 1), ts=int(ts * 1000))) for i, ts in enumerate(stamps)
    ]


def assert_shifted_to_now(ticks: list[Tick], now: int) -> None:
    """2021 ticks now look live: received now, with the latency they had when recorded.

    A few were stale when recorded too: on subscribe, Coinbase sends a ticker carrying the last
    trade's time, up to 107 s old in COINBASE.ws.28.0; and exchange clocks run a little ahead.
    """
    assert all(now - 120_000 < t.exchange_ts < t.received_ts + 1_000 for t in ticks)
    assert all(t.received_ts <= now for t in ticks)
    fresh = [t for t in ticks if t.received_ts - t.exchange_ts < STALE_MS]
    assert len(fresh) / len(ticks) > 0.95


def test_read_capture_keeps_only_received_frames() -> None:
    frames = read_capture(capture("COINBASE.ws.28.0"))

    assert len(frames) == 9946  # 9,952 lines: 1 connect, 3 sent, 2 blank
    assert frames[0].ts == 1618677817.061845
    assert all(isinstance(f.frame, str) and f.frame.startswith("{") for f in frames)


def test_read_capture_turns_htx_bytes_literals_into_gzip_bytes() -> None:
    frames = read_capture(capture("HUOBI.ws.44.0"))

    messages = [json.loads(gzip.decompress(f.frame)) for f in frames if isinstance(f.frame, bytes)]
    assert len(messages) == len(frames) == 362
    assert sum("ping" in m for m in messages) == 6


def test_replay_loops_and_shifts_timestamps_to_now() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        replay = ReplaySupervisor.from_file(MiniCoinbase(), capture("COINBASE.ws.28.0"), on_ticks, speed=0)
        before = now_ms()

        task = asyncio.create_task(replay.run())
        await eventually(lambda: replay.passes >= 2, timeout=5, what="two passes")
        await replay.stop()
        await task
        after = now_ms()

        per_pass = 107 + 97 + 10  # ticker, match, last_match frames in the capture
        assert len(ticks) >= 2 * per_pass
        assert ticks[0].instrument == ticks[per_pass].instrument  # the second pass starts over
        assert all(before <= t.received_ts <= after for t in ticks)
        assert_shifted_to_now(ticks, after)

    asyncio.run(scenario())


def test_replay_keeps_the_recorded_latency() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        frames = [CapturedFrame(1000.0, trade_frame(ts=999_250))]  # 750 ms exchange -> receipt
        replay = ReplaySupervisor(ToyAdapter(), frames, on_ticks, speed=0, loop=False)

        await replay.run()

        assert ticks[0].received_ts - ticks[0].exchange_ts == 750
        assert abs(ticks[0].received_ts - now_ms()) < 1000

    asyncio.run(scenario())


def test_replay_follows_the_recorded_timing_at_the_chosen_speed() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        replay = ReplaySupervisor(ToyAdapter(), toy_frames(0.2, 0.2), on_ticks, speed=2.0, loop=False)
        started = time.monotonic()

        await replay.run()

        elapsed = time.monotonic() - started
        assert 0.19 <= elapsed < 0.4  # 0.4 s recorded at double speed
        assert [t.price for t in ticks] == [1, 2, 3]

    asyncio.run(scenario())


def test_long_recorded_gaps_are_capped() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        replay = ReplaySupervisor(ToyAdapter(), toy_frames(3600), on_ticks, max_gap=0.1, loop=False)
        started = time.monotonic()

        await replay.run()

        assert 0.09 <= time.monotonic() - started < 0.4
        assert len(ticks) == 2

    asyncio.run(scenario())


def test_replay_snapshot_counts_and_is_json_safe() -> None:
    async def scenario() -> None:
        calls: list[int] = []

        async def on_ticks(batch: list[Tick]) -> None:
            calls.append(len(batch))
            if len(calls) == 1:
                raise ValueError("downstream failure")

        frames = [*toy_frames(0, 0), CapturedFrame(1000.0, "garbage")]
        replay = ReplaySupervisor(ToyAdapter(), frames, on_ticks, speed=0, loop=False, capture="toy")

        await replay.run()
        snapshot = replay.snapshot()

        assert json.loads(json.dumps(snapshot)) == snapshot
        assert snapshot["mode"] == "replay" and snapshot["state"] == "down"  # finished
        assert snapshot["passes"] == 1
        assert snapshot["counters"]["frames"] == 4
        assert snapshot["counters"]["by_status"]["error"] == 1
        assert snapshot["counters"]["callback_errors"] == 1
        assert calls == [1, 1, 1]

    asyncio.run(scenario())


def test_instrument_filter_drops_other_instruments() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        frames = [
            CapturedFrame(1000.0, trade_frame("BTC-USD")),
            CapturedFrame(1000.0, trade_frame("ETH-USD")),
        ]
        replay = ReplaySupervisor(
            ToyAdapter(),
            frames,
            on_ticks,
            speed=0,
            loop=False,
            instruments={"ETH-USD"},
        )

        await replay.run()

        assert [t.instrument for t in ticks] == ["ETH-USD"]

    asyncio.run(scenario())


def test_stop_ends_a_real_time_replay_and_reports_down() -> None:
    async def scenario() -> None:
        ticks, on_ticks = collector()
        replay = ReplaySupervisor(ToyAdapter(), toy_frames(10, 10), on_ticks, speed=1.0)
        task = asyncio.create_task(replay.run())
        await eventually(lambda: len(ticks) == 1, what="the first frame")
        assert replay.snapshot()["state"] == "healthy"

        await replay.stop()

        assert task.done()
        await task
        assert replay.snapshot()["state"] == "down"

    asyncio.run(scenario())


def test_recorder_round_trip_keeps_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "toy.capture"
    binary = gzip.compress(b'{"ping": 1}') + b"\n\r'\""

    with FrameRecorder(path, clock=lambda: 1700000000.25) as recorder:
        recorder.connected("ws://127.0.0.1:1/ws")
        recorder.sent("ws://127.0.0.1:1/ws", '{"op": "subscribe"}')
        recorder.received('{"a": 1}')
        recorder.received(binary, ts=1700000001.5)
        recorder.received('{"b":\n 2}')

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == [
        "ws://127.0.0.1:1/ws <-> 1700000000.25",
        'ws://127.0.0.1:1/ws <- 1700000000.25: {"op": "subscribe"}',
    ]
    assert read_capture(path) == [
        CapturedFrame(1700000000.25, '{"a": 1}'),
        CapturedFrame(1700000001.5, binary),
        CapturedFrame(1700000000.25, '{"b":  2}'),  # raw newline flattened; same JSON
    ]


def test_live_recording_replays_to_the_same_ticks(tmp_path: Path) -> None:
    path = tmp_path / "live.capture"
    frames = [trade_frame(price="10"), '{"ping": 7}', trade_frame(price="11")]

    async def record() -> list[Tick]:
        live, on_ticks = collector()
        async with FakeExchange(frames) as fake:
            with FrameRecorder(path) as recorder:
                supervisor = FeedSupervisor(
                    ToyAdapter(url=fake.url),
                    ["BTC-USD"],
                    on_ticks,
                    backoff=Backoff(base=0.01, cap=0.04, floor=0.005),
                    recorder=recorder,
                )
                task = asyncio.create_task(supervisor.run())
                await eventually(lambda: len(live) == 2 and '{"pong": 7}' in fake.received)
                await supervisor.stop()
                await task
        return live

    async def replay() -> list[Tick]:
        replayed, on_ticks = collector()
        await ReplaySupervisor.from_file(ToyAdapter(), path, on_ticks, speed=0, loop=False).run()
        return replayed

    live = asyncio.run(record())
    replayed = asyncio.run(replay())

    text = path.read_text(encoding="utf-8")
    assert " <-> " in text and "<- " in text and '{"pong": 7}' in text
    assert [(t.instrument, t.price, t.size) for t in replayed] == [
        (t.instrument, t.price, t.size) for t in live
    ]


def test_replay_of_a_real_capture_with_the_coinbase_adapter() -> None:
    try:
        adapters = importlib.import_module("apps.markets.feeds.adapters")
    except ImportError:
        pytest.skip("apps.markets.feeds.adapters is not there yet")
    adapter_class = getattr(adapters, "ADAPTERS", {}).get("coinbase")
    if adapter_class is None:
        pytest.skip("no coinbase adapter yet")

    async def scenario() -> list[Tick]:
        ticks, on_ticks = collector()
        replay = ReplaySupervisor.from_file(adapter_class(), capture("COINBASE.ws.28.0"), on_ticks, speed=0)
        task = asyncio.create_task(replay.run())
        await eventually(lambda: replay.passes >= 1 and len(ticks) > 0, timeout=5, what="a pass")
        await replay.stop()
        await task
        return ticks

    ticks = asyncio.run(scenario())

    assert {t.source for t in ticks} == {"coinbase"}
    assert all(isinstance(t.price, Decimal) and t.price > 0 for t in ticks)
    assert_shifted_to_now(ticks, now_ms())
