from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from apps.markets.feeds.supervisor import Backoff, FeedSupervisor, HealthRules
from apps.markets.feeds.types import FeedAdapter, ParseResult, Tick
from tests.markets.feeds.fake_exchange import (
    FakeExchange,
    PingingToyAdapter,
    ToyAdapter,
    eventually,
    trade_frame,
)

FAST = Backoff(base=0.01, cap=0.04, floor=0.005)
SUBSCRIBE = json.dumps({"op": "subscribe", "args": ["BTC-USD"]})


class MaxRandom(random.Random):
    """Jitter that always draws the ceiling, so delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


def make_supervisor(
    url: str, adapter: type[FeedAdapter] = ToyAdapter, **options: Any
) -> tuple[FeedSupervisor, list[Tick]]:
    ticks: list[Tick] = []

    async def on_ticks(batch: list[Tick]) -> None:
        ticks.extend(batch)

    options.setdefault("backoff", FAST)
    supervisor = FeedSupervisor(adapter(url=url), ["BTC-USD"], on_ticks, **options)
    return supervisor, ticks


@contextlib.asynccontextmanager
async def running(supervisor: FeedSupervisor) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(supervisor.run())
    try:
        yield task
    finally:
        await supervisor.stop()
        await task


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


def test_subscribes_on_connect_and_delivers_ticks() -> None:
    async def scenario() -> None:
        async with FakeExchange([trade_frame(price="101.25"), trade_frame(price="102")]) as fake:
            supervisor, ticks = make_supervisor(fake.url)

            async with running(supervisor):
                await eventually(lambda: len(ticks) == 2, what="two ticks")
                snapshot = supervisor.snapshot()

        assert fake.connections[0].received[0] == SUBSCRIBE
        assert [t.price for t in ticks] == [Decimal("101.25"), Decimal("102")]
        assert snapshot["state"] == "healthy"
        assert snapshot["counters"]["frames"] == 2
        assert snapshot["counters"]["by_status"]["data"] == 2
        assert snapshot["last_message_at"] is not None

    asyncio.run(scenario())


def test_resubscribes_after_every_reconnect() -> None:
    async def scenario() -> None:
        async with FakeExchange([trade_frame()] * 3, drop_after=1) as fake:
            supervisor, ticks = make_supervisor(fake.url)

            async with running(supervisor):
                await eventually(lambda: len(fake.connections) >= 3, what="three connections")
                await eventually(lambda: len(ticks) >= 3, what="a tick per connection")

        # The connection opened just as the supervisor stopped may have sent nothing yet.
        spoke = [conn for conn in fake.connections if conn.received]
        assert len(spoke) >= 3
        assert all(conn.received[0] == SUBSCRIBE for conn in spoke)
        assert supervisor.link.reconnects >= 2

    asyncio.run(scenario())


def test_answers_server_pings_immediately() -> None:
    async def scenario() -> None:
        async with FakeExchange(ping_every=0.03) as fake:
            supervisor, _ = make_supervisor(fake.url)

            async with running(supervisor):
                await eventually(lambda: '{"pong": 2}' in fake.received, what="two pongs")

        assert fake.received[:3] == [SUBSCRIBE, '{"pong": 1}', '{"pong": 2}']
        assert supervisor.link.replies_sent >= 2
        assert supervisor.handler.counters.by_status["heartbeat"] >= 2

    asyncio.run(scenario())


def test_sends_keepalive_pings_at_the_adapter_interval() -> None:
    async def scenario() -> None:
        async with FakeExchange(replies={"ping": "pong"}) as fake:
            supervisor, _ = make_supervisor(fake.url, adapter=PingingToyAdapter)
            started = time.monotonic()

            async with running(supervisor):
                await eventually(lambda: fake.received.count("ping") >= 3, what="three pings")
                elapsed = time.monotonic() - started
                await eventually(lambda: supervisor.handler.counters.by_status["heartbeat"] >= 3)

        assert elapsed >= 3 * 0.05 * 0.9  # one ping per interval, not a burst
        assert supervisor.link.pings_sent >= 3

    asyncio.run(scenario())


def test_backoff_ceiling_doubles_up_to_the_cap_and_jitter_spreads_below_it() -> None:
    backoff = Backoff(base=1.0, cap=8.0, floor=0.1)
    rng = random.Random(0)

    draws = [backoff.delay(3, rng) for _ in range(500)]

    assert [backoff.ceiling(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.ceiling(10_000) == 8.0
    assert all(0.1 <= d <= 8.0 for d in draws)
    assert min(draws) < 1.0 < 7.0 < max(draws)  # full jitter: the whole range is used


def test_dropped_connections_reconnect_with_growing_delays_up_to_the_cap() -> None:
    async def scenario() -> None:
        sleep = RecordingSleep()
        async with FakeExchange([trade_frame()], drop_after=0) as fake:
            supervisor, _ = make_supervisor(fake.url, rng=MaxRandom(), sleep=sleep)

            async with running(supervisor):
                await eventually(lambda: len(sleep.delays) >= 5, what="five reconnects")

        assert sleep.delays[:5] == pytest.approx([0.01, 0.02, 0.04, 0.04, 0.04])
        assert all(conn.received[:1] == [SUBSCRIBE] for conn in fake.connections)

    asyncio.run(scenario())


def test_reconnect_delays_are_jittered_below_the_growing_ceiling() -> None:
    async def scenario() -> None:
        sleep = RecordingSleep()
        backoff = Backoff(base=0.01, cap=0.08, floor=0.001)
        async with FakeExchange(drop_after=0) as fake:
            supervisor, _ = make_supervisor(fake.url, backoff=backoff, rng=random.Random(7), sleep=sleep)

            async with running(supervisor):
                await eventually(lambda: len(sleep.delays) >= 6, what="six reconnects")

        delays = sleep.delays[:6]
        assert all(0.001 <= d <= backoff.ceiling(n) for n, d in enumerate(delays))
        assert len(set(delays)) == 6
        assert any(d < backoff.ceiling(n) * 0.9 for n, d in enumerate(delays))

    asyncio.run(scenario())


def test_backoff_resets_after_a_connection_stayed_up() -> None:
    async def scenario() -> None:
        sleep = RecordingSleep()
        backoff = Backoff(base=0.01, cap=0.04, floor=0.005, reset_after=0.05)
        fake = FakeExchange([trade_frame()] * 3, drop_after=3, frame_interval=0.03)
        async with fake:
            supervisor, _ = make_supervisor(fake.url, backoff=backoff, rng=MaxRandom(), sleep=sleep)

            async with running(supervisor):
                await eventually(lambda: len(sleep.delays) >= 3, what="three reconnects")

        assert sleep.delays[:3] == pytest.approx([0.01, 0.01, 0.01])

    asyncio.run(scenario())


def test_watchdog_reconnects_a_silent_stream() -> None:
    async def scenario() -> None:
        async with FakeExchange([trade_frame()], silent=True) as fake:
            supervisor, ticks = make_supervisor(fake.url, idle_timeout=0.15)
            started = time.monotonic()

            async with running(supervisor):
                await eventually(lambda: supervisor.link.idle_timeouts >= 1, what="idle timeout")
                detected_after = time.monotonic() - started
                fake.silent = False
                await eventually(lambda: len(ticks) >= 1, what="a tick after reconnecting")

        assert 0.15 <= detected_after < 0.6
        assert len(fake.connections) >= 2
        assert fake.connections[0].closed
        assert "no frame" in (supervisor.snapshot()["last_error"] or "")

    asyncio.run(scenario())


def test_health_degrades_then_goes_down_and_recovers_when_the_server_returns() -> None:
    async def scenario() -> None:
        backoff = Backoff(base=0.05, cap=0.1, floor=0.01)
        health = HealthRules(down_after_failures=3, down_after=60)
        fake = FakeExchange([trade_frame()])
        await fake.start()
        supervisor, ticks = make_supervisor(fake.url, backoff=backoff, health=health, rng=MaxRandom())

        async with running(supervisor):
            assert supervisor.state() == "down"  # not connected yet
            await eventually(lambda: supervisor.state() == "healthy", what="healthy")

            await fake.stop()
            await eventually(lambda: supervisor.state() == "degraded", what="degraded")
            await eventually(lambda: supervisor.state() == "down", what="down")
            failures = supervisor.link.connect_failures

            await fake.start()
            await eventually(lambda: supervisor.state() == "healthy", what="healthy again")

        await fake.stop()
        assert failures >= 3
        assert len(ticks) == 2  # one per connection
        assert supervisor.state() == "down"  # stopped

    asyncio.run(scenario())


def test_disconnected_longer_than_down_after_is_down() -> None:
    async def scenario() -> None:
        health = HealthRules(down_after_failures=1000, down_after=0.1)
        fake = FakeExchange([trade_frame()])
        await fake.start()
        supervisor, _ = make_supervisor(fake.url, health=health)

        async with running(supervisor):
            await eventually(lambda: supervisor.state() == "healthy", what="healthy")
            await fake.stop()
            await eventually(lambda: supervisor.state() == "degraded", what="degraded")
            lost_at = time.monotonic()
            await eventually(lambda: supervisor.state() == "down", what="down")

        assert time.monotonic() - lost_at >= 0.05

    asyncio.run(scenario())


def test_unreachable_exchange_is_down_and_keeps_retrying() -> None:
    async def scenario() -> None:
        supervisor, _ = make_supervisor(closed_port_url())

        async with running(supervisor):
            await eventually(lambda: supervisor.link.connect_failures >= 3, what="three failures")
            snapshot = supervisor.snapshot()

        assert snapshot["state"] == "down"
        assert snapshot["last_error"].startswith("connect failed")
        assert snapshot["counters"]["connects"] == 0

    asyncio.run(scenario())


class FragileAdapter(ToyAdapter):
    """Breaks the never-raise contract on one frame."""

    def parse(self, frame: str | bytes, received_ts: int) -> ParseResult:
        if frame == "boom":
            raise RuntimeError("adapter bug")
        return super().parse(frame, received_ts)


def test_bad_frames_and_a_failing_callback_do_not_stop_the_loop() -> None:
    async def scenario() -> None:
        frames = ["garbage", "[1, 2]", "boom", trade_frame(price="1"), trade_frame(price="2")]
        frames += [trade_frame(price="3")]
        delivered: list[Tick] = []

        async def on_ticks(batch: list[Tick]) -> None:
            if batch[0].price == 1:
                raise ValueError("downstream failure")
            delivered.extend(batch)

        async with FakeExchange(frames) as fake:
            supervisor = FeedSupervisor(FragileAdapter(url=fake.url), ["BTC-USD"], on_ticks, backoff=FAST)

            async with running(supervisor):
                await eventually(lambda: len(delivered) == 2, what="the later ticks")
                snapshot = supervisor.snapshot()

        assert [t.price for t in delivered] == [Decimal("2"), Decimal("3")]
        assert snapshot["counters"]["by_status"]["error"] == 3
        assert snapshot["counters"]["callback_errors"] == 1
        assert snapshot["counters"]["ticks"] == 3
        assert snapshot["counters"]["connects"] == 1  # no reconnect needed
        assert snapshot["last_frame_error"].startswith("parse raised RuntimeError")

    asyncio.run(scenario())


def test_mostly_error_frames_degrade_a_connected_feed() -> None:
    async def scenario() -> None:
        health = HealthRules(min_error_samples=10, max_error_ratio=0.5)
        async with FakeExchange(["junk"] * 20 + [trade_frame()]) as fake:
            supervisor, ticks = make_supervisor(fake.url, health=health)

            async with running(supervisor):
                await eventually(lambda: len(ticks) == 1, what="the trade after the junk")
                snapshot = supervisor.snapshot()

        assert snapshot["connected"] is True
        assert snapshot["state"] == "degraded"

    asyncio.run(scenario())


def test_stop_closes_the_socket_and_run_returns() -> None:
    async def scenario() -> None:
        async with FakeExchange([trade_frame()]) as fake:
            supervisor, ticks = make_supervisor(fake.url)
            task = asyncio.create_task(supervisor.run())
            await eventually(lambda: len(ticks) == 1, what="a tick")

            await supervisor.stop()

            await eventually(lambda: fake.connections[0].closed, what="server sees the close")
            assert task.done() and task.exception() is None
            snapshot = supervisor.snapshot()
            assert snapshot["state"] == "down"
            assert snapshot["connected"] is False

    asyncio.run(scenario())


def test_stop_interrupts_a_backoff_wait() -> None:
    async def scenario() -> None:
        slow = Backoff(base=30, cap=30, floor=30)
        supervisor, _ = make_supervisor(closed_port_url(), backoff=slow)
        task = asyncio.create_task(supervisor.run())
        await eventually(lambda: supervisor.link.connect_failures == 1, what="a failed dial")
        started = time.monotonic()

        await supervisor.stop()

        assert task.done()
        assert time.monotonic() - started < 0.5
        await task

    asyncio.run(scenario())


def test_snapshot_is_json_safe() -> None:
    async def scenario() -> None:
        async with FakeExchange([trade_frame()]) as fake:
            supervisor, ticks = make_supervisor(fake.url)

            async with running(supervisor):
                await eventually(lambda: len(ticks) == 1, what="a tick")
                snapshot = supervisor.snapshot()

        assert json.loads(json.dumps(snapshot)) == snapshot
        assert snapshot["source"] == "toy" and snapshot["mode"] == "live"
        assert isinstance(snapshot["connected_since"], int)

    asyncio.run(scenario())
