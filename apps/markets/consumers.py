"""/ws/prices: live prices and forming candles for the symbols a client follows."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.markets import events
from apps.markets.events_seeding import seeding_group
from apps.markets.fanout import Mailbox, Subscriber, hub
from apps.markets.services.store import price_store
from haunt.consumers import HauntConsumer
from haunt.events import error_frame


class PriceConsumer(HauntConsumer):
    requires_auth = False  # prices are public; a token still identifies the user if given

    async def connect(self) -> None:
        self.mailbox = Mailbox(self._send_text)
        self.subscriber = Subscriber(self.mailbox)
        self.seeding_symbols: set[str] = set()  # symbols whose seeding progress groups we joined
        await super().connect()
        self.mailbox.start()
        await hub.ensure_started(self.channel_layer, settings.REDIS_URL)

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def disconnect(self, code: int) -> None:
        hub.remove(self.subscriber)
        await self._seeding_unfollow("all")
        await self.mailbox.close()
        await super().disconnect(code)

    async def handle_command(self, content: dict[str, Any]) -> None:
        if content.get("type") not in ("subscribe", "unsubscribe"):
            await super().handle_command(content)
            return
        command = events.SubscribeCommand(data=content)
        if not command.is_valid():
            await self.send_json(error_frame("invalid", "Invalid subscription message.", command.errors))
            return
        symbols, channels = command.validated_data["symbols"], set(command.validated_data["channels"])
        if content["type"] == "unsubscribe":
            hub.unsubscribe(self.subscriber, symbols)
            await self._seeding_unfollow(symbols)
            await self.send_json({"type": "unsubscribed", "data": self._subscription()})
            return
        limit = settings.HAUNT_WS_MAX_SUBSCRIPTIONS
        if symbols != "all" and len(self.subscriber.symbols | set(symbols)) > limit:
            await self.send_json(
                error_frame(
                    "too_many_subscriptions", f"At most {limit} symbols per connection.", {"limit": limit}
                )
            )
            return
        self.subscriber.channels = channels
        await self._seeding_follow(symbols)
        # Updates that arrive while the ack and snapshot go out wait in the mailbox, so the
        # client never sees an update before the snapshot it would overwrite.
        self.mailbox.hold()
        try:
            hub.subscribe(self.subscriber, symbols)
            await self.send_json({"type": "subscribed", "data": self._subscription()})
            await self.send_json(await self._snapshot(symbols))
        finally:
            self.mailbox.release()

    async def _seeding_follow(self, symbols: list[str] | str) -> None:
        """Join the seeding progress groups of the symbols (not for "all": every symbol's backfill)."""
        if symbols == "all":
            return
        for symbol in set(symbols) - self.seeding_symbols:
            await self.channel_layer.group_add(seeding_group(symbol), self.channel_name)
            self.seeding_symbols.add(symbol)

    async def _seeding_unfollow(self, symbols: list[str] | str) -> None:
        followed = self.seeding_symbols if symbols == "all" else self.seeding_symbols & set(symbols)
        for symbol in sorted(followed):
            await self.channel_layer.group_discard(seeding_group(symbol), self.channel_name)
            self.seeding_symbols.discard(symbol)

    def _subscription(self) -> dict[str, Any]:
        return {
            "symbols": "all" if self.subscriber.all_symbols else sorted(self.subscriber.symbols),
            "channels": sorted(self.subscriber.channels),
        }

    async def _snapshot(self, symbols: list[str] | str) -> dict[str, Any]:
        """The current state of what was just subscribed to, before any update arrives."""
        wanted = list(hub.latest) if symbols == "all" else symbols
        frames = {s: hub.latest[s] for s in wanted if s in hub.latest}
        missing = [s for s in wanted if s not in frames] if symbols != "all" else []
        if missing or (symbols == "all" and not frames):
            stored = await sync_to_async(_stored_prices)(None if symbols == "all" else missing)
            frames.update({s: dict(events.price_update(events.price_data(p))) for s, p in stored.items()})
        data: dict[str, Any] = {"prices": [frame["data"] for frame in frames.values()]}
        if "candles" in self.subscriber.channels:
            data["candles"] = [hub.forming[s]["data"] for s in frames if s in hub.forming]
        return {"type": "snapshot", "data": data}


def _stored_prices(symbols: list[str] | None) -> dict[str, Any]:
    store = price_store()
    return store.prices_get(store.symbols() if symbols is None else symbols)
