"""A seeded workload of concurrent writes through the nodes' real REST API, and its oracle.

Every request is logged as ok (2xx), fail (4xx: refused, nothing written) or info (timeout,
reset, 5xx: may or may not have been written), Jepsen style, so the final state of every node
can be checked against what clients were told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.integration.mesh.harness import REDIS_URL, Node

PASSWORD = "mesh-password-not-secret-123"
SYMBOLS = {"btc": Decimal("60000"), "eth": Decimal("3000"), "sol": Decimal("150")}
THEMES = ["dark", "light", "system"]
TIMEFRAMES = ["1h", "4h", "1d", "1w", "1m"]
INDICATORS = ["RSI", "MACD", "EMA(20)", "SMA(50)", "BB", "VWAP", "ATR"]


# --- Users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshUser:
    index: int
    username: str
    token: str
    home: str  # the node that creates its profile and portfolio

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


def mesh_users(count: int, homes: list[str]) -> list[MeshUser]:
    return [
        MeshUser(i, f"mesh{i:03d}", f"{i:04d}" + "0" * 32 + "mesh", homes[i % len(homes)])
        for i in range(count)
    ]


USERS_SCRIPT = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
for username, token in {pairs!r}:
    user, _ = User.objects.get_or_create(username=username, defaults={{"email": username + "@mesh.test"}})
    user.set_password({password!r})
    user.save()
    Token.objects.get_or_create(user=user, defaults={{"key": token}})
print("users", User.objects.filter(username__startswith="mesh").count())
"""


def users_script(users: list[MeshUser]) -> str:
    pairs = [(user.username, user.token) for user in users]
    return USERS_SCRIPT.format(pairs=pairs, password=PASSWORD)


def users_create(node: Node, users: list[MeshUser]) -> None:
    """The same users (same order, so the same integer ids) and API tokens on a node: accounts
    are node-local, the profiles and portfolios that point at them are replicated."""
    node.shell(users_script(users))


# --- Prices -------------------------------------------------------------------------------------


class PriceFeeder:
    """Keeps fresh prices of SYMBOLS in the shared Redis price store (the engine refuses stale
    marks), with a small random walk, until stopped."""

    def __init__(self, seed: int, interval_s: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.prices = dict(SYMBOLS)
        self.interval_s = interval_s
        self.client = redis.Redis.from_url(REDIS_URL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prices", daemon=True)

    def put(self) -> None:
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for symbol, price in self.prices.items():
            previous = price
            price = (price * Decimal(1 + self.rng.uniform(-0.0005, 0.0005))).quantize(Decimal("0.01"))
            self.prices[symbol] = price
            value = {
                "symbol": symbol,
                "price": str(price),
                "previous_price": str(previous),
                "direction": "up" if price >= previous else "down",
                "source": "mesh",
                "sources": ["mesh"],
                "timestamp": now_ms,
                "volume_24h": None,
                "change_24h": None,
                "change_percent_24h": None,
                "stale": False,
            }
            pipe.set(f"ticker:{symbol}", json.dumps(value), ex=60)
        pipe.execute()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(redis.RedisError):
                self.put()

    def start(self) -> PriceFeeder:
        self.put()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


# --- Oracle -------------------------------------------------------------------------------------


OK, FAIL, INFO = "ok", "fail", "info"


@dataclass
class Record:
    seq: int
    kind: str
    node: str
    user: str
    method: str
    path: str
    body: Any
    started: float
    elapsed_ms: float = 0.0
    status: int | None = None
    outcome: str = INFO
    entity: str | None = None  # the replicated table written
    row_id: str | None = None
    response: Any = None
    error: str | None = None


@dataclass
class Oracle:
    path: Path
    records: list[Record] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.records.append(record)
        with self.path.open("a") as handle:
            handle.write(json.dumps(asdict(record), default=str) + "\n")

    def by_outcome(self, outcome: str) -> list[Record]:
        return [r for r in self.records if r.outcome == outcome]

    def summary(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for record in self.records:
            result.setdefault(record.kind, {OK: 0, FAIL: 0, INFO: 0})[record.outcome] += 1
        return result


# --- The workload -----------------------------------------------------------------------------------


@dataclass
class State:
    """What the clients know: each user's portfolios and resting orders."""

    portfolios: dict[str, list[str]] = field(default_factory=dict)  # username -> ids
    open_orders: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict
    )  # username -> (portfolio, order)
    portfolio_seq: int = 0


Operation = Callable[["Workload", MeshUser, str], "asyncio.Future[None] | Any"]


class Workload:
    """Random operations on random nodes; a share of them on a few hot users, on every node at
    once, to force concurrent writes to the same rows."""

    def __init__(
        self,
        nodes: list[Node],
        users: list[MeshUser],
        oracle: Oracle,
        *,
        seed: int,
        hot_users: int = 2,
        hot_share: float = 0.3,
        timeout_s: float = 10.0,
        home_trading: bool = False,
    ) -> None:
        self.nodes = {node.name: node for node in nodes}
        self.users = users
        self.hot = users[:hot_users]
        self.hot_share = hot_share
        self.oracle = oracle
        self.rng = random.Random(seed)
        self.state = State()
        self.timeout_s = timeout_s
        # Orders and closes only on the portfolio's home node (the other writes still go anywhere).
        self.home_trading = home_trading
        self._seq = 0
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.operations: list[tuple[float, str, Operation]] = [
            (20, "profile_edit", Workload.op_profile_edit),
            (10, "preferences_edit", Workload.op_preferences_edit),
            (20, "portfolio_edit", Workload.op_portfolio_edit),
            (4, "portfolio_create", Workload.op_portfolio_create),
            (25, "order_place", Workload.op_order_place),
            (10, "order_cancel", Workload.op_order_cancel),
            (6, "position_close", Workload.op_position_close),
        ]

    # --- HTTP and the oracle
    async def request(
        self,
        kind: str,
        node: str,
        user: MeshUser,
        method: str,
        path: str,
        body: Any = None,
        *,
        entity: str | None = None,
    ) -> Record:
        self._seq += 1
        record = Record(self._seq, kind, node, user.username, method, path, body, time.time(), entity=entity)
        client = self.clients[node]
        started = time.perf_counter()
        try:
            response = await client.request(method, path, json=body, headers=user.headers)
            record.status = response.status_code
            try:
                record.response = response.json()
            except ValueError:
                record.response = response.text[:500]
            if response.status_code < 300:
                record.outcome = OK
                if isinstance(record.response, dict) and "id" in record.response:
                    record.row_id = str(record.response["id"])
            elif response.status_code < 500:
                record.outcome = FAIL
            else:
                record.outcome = INFO
        except httpx.HTTPError as exc:
            record.outcome, record.error = INFO, f"{type(exc).__name__}: {exc}"
        record.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        self.oracle.add(record)
        return record

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        for name, node in self.nodes.items():
            self.clients[name] = httpx.AsyncClient(base_url=node.url, timeout=self.timeout_s, limits=limits)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    # --- setup on each user's home node
    async def setup_users(self) -> None:
        """Profile and a first portfolio per user, created on the user's home node only."""
        for user in self.users:
            await self.request("profile_ensure", user.home, user, "GET", "/api/auth/me")
            record = await self.request(
                "portfolio_create",
                user.home,
                user,
                "POST",
                "/api/trading/portfolios",
                {"name": "main"},
                entity="portfolios",
            )
            if record.outcome == OK and record.row_id:
                self.state.portfolios.setdefault(user.username, []).append(record.row_id)
                await self.request(
                    "portfolio_activate",
                    user.home,
                    user,
                    "POST",
                    f"/api/trading/portfolios/{record.row_id}/activate",
                )

    # --- operations
    async def op_profile_edit(self, user: MeshUser, node: str) -> None:
        body = {
            "theme": self.rng.choice(THEMES),
            "defaultTimeframe": self.rng.choice(TIMEFRAMES),
            "indicators": self.rng.sample(INDICATORS, self.rng.randint(0, 3)),
        }
        await self.request("profile_edit", node, user, "PATCH", "/api/auth/me", body, entity="profiles")

    async def op_preferences_edit(self, user: MeshUser, node: str) -> None:
        body = {"theme": self.rng.choice(THEMES)}
        await self.request(
            "preferences_edit", node, user, "PATCH", "/api/trading/preferences", body, entity="profiles"
        )

    async def op_portfolio_edit(self, user: MeshUser, node: str) -> None:
        portfolios = self.state.portfolios.get(user.username)
        if not portfolios:
            return
        body = {"isPublic": self.rng.random() < 0.5, "costBasis": self.rng.choice(["average", "fifo"])}
        path = f"/api/trading/portfolios/{self.rng.choice(portfolios)}"
        await self.request("portfolio_edit", node, user, "PATCH", path, body, entity="portfolios")

    async def op_portfolio_create(self, user: MeshUser, node: str) -> None:
        self.state.portfolio_seq += 1
        body = {"name": f"p{self.state.portfolio_seq}-{node}"}
        record = await self.request(
            "portfolio_create", node, user, "POST", "/api/trading/portfolios", body, entity="portfolios"
        )
        if record.outcome == OK and record.row_id:
            self.state.portfolios.setdefault(user.username, []).append(record.row_id)

    async def op_order_place(self, user: MeshUser, node: str) -> None:
        portfolios = self.state.portfolios.get(user.username)
        if not portfolios:
            return
        symbol = self.rng.choice(list(SYMBOLS))
        price = SYMBOLS[symbol]
        limit = self.rng.random() < 0.6
        side = self.rng.choice(["buy", "sell"])
        body: dict[str, Any] = {
            "portfolio": portfolios[0],
            "symbol": symbol,
            "side": side,
            "type": "limit" if limit else "market",
            "quantity": str(Decimal("0.01") if symbol != "sol" else Decimal("1")),
            "leverage": self.rng.choice([1, 2, 5]),
        }
        if limit:  # far from the market: it rests, so it can be cancelled
            body["price"] = str(
                (price * (Decimal("0.8") if side == "buy" else Decimal("1.2"))).quantize(Decimal("0.01"))
            )
        record = await self.request(
            "order_place", node, user, "POST", "/api/trading/orders", body, entity="orders"
        )
        if record.outcome == OK and record.row_id and limit:
            self.state.open_orders.setdefault(user.username, []).append((portfolios[0], record.row_id))

    async def op_order_cancel(self, user: MeshUser, node: str) -> None:
        orders = self.state.open_orders.get(user.username)
        if not orders:
            return
        _, order_id = orders.pop(self.rng.randrange(len(orders)))
        path = f"/api/trading/orders/{order_id}/cancel"
        await self.request("order_cancel", node, user, "POST", path, entity="orders")

    async def op_position_close(self, user: MeshUser, node: str) -> None:
        """Close one of the user's open positions at market (a trade, the position, margin history)."""
        record = await self.request("positions_list", node, user, "GET", "/api/trading/positions")
        body = record.response
        items = body.get("results", body) if isinstance(body, dict) else body
        if record.outcome != OK or not isinstance(items, list) or not items:
            return
        position = self.rng.choice(items)
        path = f"/api/trading/positions/{position['id']}/close"
        # The answer is the reduce-only order that closed it.
        await self.request("position_close", node, user, "POST", path, {}, entity="orders")

    # --- the loop
    def _pick(self) -> tuple[str, Operation, MeshUser, str]:
        choices = self.operations
        weights = [w for w, _, _ in choices]
        _, kind, operation = self.rng.choices(choices, weights)[0]
        hot = self.rng.random() < self.hot_share
        user = self.rng.choice(self.hot if hot else self.users)
        node = self.rng.choice(list(self.nodes))
        if self.home_trading and kind in ("order_place", "order_cancel", "position_close"):
            node = user.home
        return kind, operation, user, node

    async def run(
        self, *, seconds: float, rate: float, concurrency: int = 6, stop: asyncio.Event | None = None
    ) -> None:
        """About `rate` operations per second for `seconds`, from `concurrency` clients. A hot-key
        burst sends the same edit to every node at once every few seconds."""
        deadline = time.monotonic() + seconds
        interval = concurrency / rate

        async def client(index: int) -> None:
            next_at = time.monotonic() + index * interval / concurrency
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                _, operation, user, node = self._pick()
                await operation(self, user, node)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        async def hot_bursts() -> None:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                await asyncio.sleep(self.rng.uniform(1.0, 3.0))
                user = self.rng.choice(self.hot)
                _kind, operation = self.rng.choice(
                    [
                        ("profile_edit", Workload.op_profile_edit),
                        ("portfolio_edit", Workload.op_portfolio_edit),
                    ]
                )
                await asyncio.gather(*(operation(self, user, node) for node in self.nodes))

        await asyncio.gather(*(client(i) for i in range(concurrency)), hot_bursts())
