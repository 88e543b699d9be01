"""Markets fixtures: a clean price store per test, and a fake REST provider on 127.0.0.1.

The fake answers the four REST sources' real response shapes (those of
tests/markets/feeds/test_rest.py, stamped with the current time so aggregation finds them
fresh). Prices for btc: CoinGecko 67187.3358936566, CoinMarketCap 67190.12,
CryptoCompare 69000.12, Kraken 30303.20000.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from string import Template
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.markets.clients import REST_CLIENTS
from apps.markets.feeds.types import Tick
from apps.markets.models import Exchange
from apps.markets.selectors import source_weights_reset
from apps.markets.services.store import _memory_store, redis_client

TEST_REDIS_DB = 12


@pytest.fixture(autouse=True)
def _clean_price_store(settings: Any) -> Iterator[None]:
    """No prices, quotes or health reports left from another test; source weights re-read."""
    _memory_store.cache_clear()
    source_weights_reset()
    if settings.REDIS_URL:
        # Same server, own database: a developer's live prices in db 0 survive the suite.
        settings.REDIS_URL = urlsplit(settings.REDIS_URL)._replace(path=f"/{TEST_REDIS_DB}").geturl()
        redis_client(settings.REDIS_URL).flushdb()
    yield
    source_weights_reset()


# --- Provider bodies -------------------------------------------------------------------------

COINGECKO = Template("""{
  "bitcoin": {"usd": 67187.3358936566, "usd_24h_vol": 31260929299.5248, "last_updated_at": $ts},
  "ethereum": {"usd": 3432.21, "usd_market_cap": 412000000000.1, "last_updated_at": $ts}
}""")

COINMARKETCAP = Template("""{
  "status": {"timestamp": "$iso", "error_code": 0, "error_message": null, "elapsed": 10, "credit_count": 1},
  "data": {
    "1": {"id": 1, "name": "Bitcoin", "symbol": "BTC", "slug": "bitcoin", "last_updated": "$iso",
      "quote": {"USD": {"price": 67190.12, "volume_24h": 4314444687.5194, "last_updated": "$iso"}}},
    "1027": {"id": 1027, "name": "Ethereum", "symbol": "ETH", "slug": "ethereum", "last_updated": "$iso",
      "quote": {"USD": {"price": 3432.2100123, "volume_24h": 1.2e10, "last_updated": "$iso"}}}
  }
}""")

CRYPTOCOMPARE = Template("""{
  "RAW": {
    "BTC": {"USD": {"TYPE": "5", "MARKET": "CCCAGG", "FROMSYMBOL": "BTC", "TOSYMBOL": "USD", "FLAGS": "2049",
            "PRICE": 69000.12, "LASTUPDATE": $ts, "VOLUME24HOUR": 21234.5678, "VOLUME24HOURTO": 1465000000.1}},
    "ETH": {"USD": {"TYPE": "5", "MARKET": "CCCAGG", "FROMSYMBOL": "ETH", "TOSYMBOL": "USD", "FLAGS": "2049",
            "PRICE": 3431.5, "LASTUPDATE": $ts, "VOLUME24HOUR": 310000.5, "VOLUME24HOURTO": 1063000000.2}}},
  "DISPLAY": {"BTC": {"USD": {"PRICE": "$$ 69,000.1"}}}
}""")

KRAKEN = """{"error": [], "result": {
  "XXBTZUSD": {"a": ["30300.10000", "1", "1.000"], "b": ["30300.00000", "1", "1.000"], "c": ["30303.20000", "0.00067643"],
               "v": ["4083.67001100", "4412.73601799"], "p": ["30706.77771", "30689.13205"], "t": [34619, 38907],
               "l": ["29868.30000", "29868.30000"], "h": ["31631.00000", "31631.00000"], "o": "30502.80000"},
  "XDGUSD": {"a": ["0.0712", "1", "1.000"], "b": ["0.0711", "1", "1.000"], "c": ["0.07115", "500"],
             "v": ["1000", "2500000.5"], "p": ["0.07", "0.07"], "t": [1, 2], "l": ["0.07", "0.07"], "h": ["0.08", "0.08"], "o": "0.07"}
}}"""


def _fresh(template: Template) -> Callable[[], str]:
    def body() -> str:
        now = datetime.now(UTC)
        iso = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return template.substitute(ts=int(now.timestamp()), iso=iso)

    return body


# --- The fake provider -----------------------------------------------------------------------


@dataclass
class Reply:
    """What the fake answers on one path."""

    body: str | Callable[[], str] = "{}"
    status: int = 200
    delay: float = 0.0  # seconds before answering; longer than the client's timeout makes one
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeenRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass(frozen=True)
class RestSource:
    path: str  # the provider's API prefix, part of the Exchange's rest_url
    endpoint: str  # the price endpoint under it
    symbol_map: dict[str, str]
    body: str | Callable[[], str]


REST_SOURCES = {
    "coingecko": RestSource(
        "/api/v3", "/simple/price", {"btc": "bitcoin", "eth": "ethereum"}, _fresh(COINGECKO)
    ),
    "coinmarketcap": RestSource(
        "", "/v2/cryptocurrency/quotes/latest", {"btc": "1", "eth": "1027"}, _fresh(COINMARKETCAP)
    ),
    "cryptocompare": RestSource(
        "", "/data/pricemultifull", {"btc": "BTC", "eth": "ETH"}, _fresh(CRYPTOCOMPARE)
    ),
    "kraken": RestSource("", "/0/public/Ticker", {"btc": "XBT/USD", "doge": "XDG/USD"}, KRAKEN),
}


class FakeProvider:
    """An HTTP server on 127.0.0.1 that answers `routes` by path and records every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[SeenRequest] = []
        self.released = threading.Event()  # cuts delays short when the test ends
        self._server = _Server(self)
        # A short poll interval: shutdown() waits up to one, at every test's teardown.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def answer(
        self,
        slug: str,
        body: str | None = None,
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Set how the source's price endpoint answers; by default with its real, fresh body."""
        source = REST_SOURCES[slug]
        reply = Reply(source.body if body is None else body, status, delay, headers or {})
        self.routes[source.path + source.endpoint] = reply

    def requests_for(self, slug: str) -> list[SeenRequest]:
        source = REST_SOURCES[slug]
        return [r for r in self.requests if r.path == source.path + source.endpoint]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()  # joins the request threads (daemon_threads is off)
        self._thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = False

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.provider = provider


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        provider = self.server.provider
        url = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        provider.requests.append(SeenRequest(url.path, query, headers))
        reply = provider.routes.get(url.path, Reply('{"error": "not found"}', status=404))
        if reply.delay:
            provider.released.wait(reply.delay)
        body = (reply.body() if callable(reply.body) else reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:
            pass  # the client stopped waiting (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """The fake provider, answering every REST source's price endpoint with its real body."""
    fake = FakeProvider()
    for slug in REST_SOURCES:
        fake.answer(slug)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def rest_exchange(db: None, provider: FakeProvider) -> Callable[..., Exchange]:
    """Make the Exchange row of a REST source, its rest_url pointing at the fake provider."""

    def make(slug: str, **overrides: Any) -> Exchange:
        source = REST_SOURCES[slug]
        fields = {
            "name": slug.title(),
            "kind": Exchange.Kind.REST,
            "weight": Decimal("0.50"),
            "rest_url": provider.url + source.path,
            "symbol_map": source.symbol_map,
        }
        return Exchange.objects.create(slug=slug, **(fields | overrides))

    return make


@pytest.fixture
def fetch(provider: FakeProvider) -> Callable[[str], list[Tick]]:
    """Call a source's REST client against the fake provider, with the source's usual symbol map."""

    def call(slug: str) -> list[Tick]:
        source = REST_SOURCES[slug]
        return REST_CLIENTS[slug](base_url=provider.url + source.path, symbol_map=source.symbol_map)

    return call
