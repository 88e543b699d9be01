"""Coalescing and isolation of slow clients (the per-process fan-out)."""

import asyncio
import json

from apps.markets.fanout import Mailbox, PriceHub, RedisBatchReader, Subscriber


def frame(symbol: str, price: float) -> dict:
    return {"type": "price_update", "data": {"symbol": symbol, "price": price}}


def text(symbol: str, price: float) -> str:
    return json.dumps(frame(symbol, price))


async def test_a_busy_client_gets_the_latest_value_per_symbol_not_a_queue():
    gate, sent = asyncio.Event(), []

    async def slow_send(t: str) -> None:
        await gate.wait()
        sent.append(json.loads(t))

    mailbox = Mailbox(slow_send)
    mailbox.start()
    mailbox.offer("btc", text("btc", 0))
    await asyncio.sleep(0)  # the sender takes the first frame and blocks on the gate

    for i in range(1, 1001):  # a flash crash: 1000 updates while the client is stuck
        mailbox.offer("btc", text("btc", i))
        mailbox.offer("eth", text("eth", i))
    backlog = mailbox.backlog
    gate.set()
    await asyncio.sleep(0.05)
    await mailbox.close()

    assert backlog == 2  # bounded by symbols, not by updates
    assert [f["data"]["price"] for f in sent] == [0, 1000, 1000]
    assert mailbox.coalesced == 1998


async def test_a_stuck_client_does_not_hold_up_the_others():
    never = asyncio.Event()
    fast_sent: list[dict] = []

    async def stuck(t: str) -> None:
        await never.wait()

    async def fast(t: str) -> None:
        fast_sent.append(json.loads(t))

    hub = PriceHub()
    slow_sub, fast_sub = Subscriber(Mailbox(stuck)), Subscriber(Mailbox(fast))
    for sub in (slow_sub, fast_sub):
        sub.mailbox.start()
        hub.subscribe(sub, ["btc"])

    for i in range(100):
        hub.dispatch({"prices": [frame("btc", i)], "candles": []})
        await asyncio.sleep(0)

    assert len(fast_sent) == 100
    assert slow_sub.mailbox.backlog <= 1
    await slow_sub.mailbox.close()
    await fast_sub.mailbox.close()


async def test_remove_forgets_the_subscriber_everywhere():
    hub = PriceHub()
    sub = Subscriber(Mailbox(lambda f: asyncio.sleep(0)))
    hub.subscribe(sub, ["btc", "eth"])
    hub.subscribe(sub, "all")

    hub.remove(sub)

    assert hub.by_symbol == {}
    assert hub.everything == set()


async def test_batches_arriving_while_the_loop_is_busy_merge_to_the_latest_per_symbol():
    hub, sent = PriceHub(), []

    async def record(t: str) -> None:
        sent.append(json.loads(t))

    sub = Subscriber(Mailbox(record))
    sub.mailbox.start()
    hub.subscribe(sub, ["btc", "eth"])
    loop = asyncio.get_running_loop()
    hub._reader = RedisBatchReader("redis://127.0.0.1:1/0", hub, loop)  # attached, never started

    for i in range(50):  # the reader thread delivers 50 batches before the loop gets a turn
        hub.merge_from_thread({"prices": [frame("btc", i), frame("eth", i)], "candles": []}, loop)
    await asyncio.sleep(0.05)

    assert hub.batches == 1  # one dispatch on the loop for all 50 batches
    assert hub.merged_away == 98
    assert sorted((f["data"]["symbol"], f["data"]["price"]) for f in sent) == [("btc", 49), ("eth", 49)]
    await sub.mailbox.close()


async def test_a_stopped_reader_can_no_longer_feed_the_hub():
    hub = PriceHub()
    loop = asyncio.get_running_loop()
    old = RedisBatchReader("redis://127.0.0.1:1/0", hub, loop)
    hub._reader = old
    hub.stop()

    hub.merge_from_thread({"prices": [frame("btc", 1)], "candles": []}, loop)
    await asyncio.sleep(0.01)

    assert hub.batches == 0


async def test_held_mailbox_keeps_frames_until_released():
    sent: list[dict] = []

    async def record(t: str) -> None:
        sent.append(json.loads(t))

    mailbox = Mailbox(record)
    mailbox.start()
    mailbox.hold()
    mailbox.offer("btc", text("btc", 1))
    mailbox.offer("btc", text("btc", 2))
    await asyncio.sleep(0.01)
    held = list(sent)

    mailbox.release()
    await asyncio.sleep(0.01)
    await mailbox.close()

    assert held == []
    assert [f["data"]["price"] for f in sent] == [2]
