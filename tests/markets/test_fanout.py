"""Coalescing and isolation of slow clients (the per-process fan-out)."""

import asyncio

from apps.markets.fanout import Mailbox, PriceHub, Subscriber


def frame(symbol: str, price: float) -> dict:
    return {"type": "price_update", "data": {"symbol": symbol, "price": price}}


async def test_a_busy_client_gets_the_latest_value_per_symbol_not_a_queue():
    gate, sent = asyncio.Event(), []

    async def slow_send(f: dict) -> None:
        await gate.wait()
        sent.append(f)

    mailbox = Mailbox(slow_send)
    mailbox.start()
    mailbox.offer("btc", frame("btc", 0))
    await asyncio.sleep(0)  # the sender takes the first frame and blocks on the gate

    for i in range(1, 1001):  # a flash crash: 1000 updates while the client is stuck
        mailbox.offer("btc", frame("btc", i))
        mailbox.offer("eth", frame("eth", i))
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

    async def stuck(f: dict) -> None:
        await never.wait()

    async def fast(f: dict) -> None:
        fast_sent.append(f)

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
