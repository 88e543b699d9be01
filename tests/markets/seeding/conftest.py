"""Seeding fixtures: fake CoinGecko and CryptoCompare history APIs on 127.0.0.1.

Bodies have the providers' real shapes, stamped relative to now so the candles land in closed
buckets of the last day / month / year:
- CoinGecko `/api/v3/coins/{id}/market_chart?vs_currency=usd&days=N`:
  {"prices": [[ms, price], ...], "market_caps": [...], "total_volumes": [...]}; points every
  5 minutes for days=1, hourly for days<=90, at unaligned times like CoinGecko's.
- CryptoCompare `/data/v2/histohour|histoday?fsym=BTC&tsym=USD&limit=N`: {"Response": "Success",
  "Data": {"Aggregated": false, "TimeFrom", "TimeTo", "Data": [{time, high, low, open,
  volumefrom, volumeto, close, conversionType, conversionSymbol}]}} with limit + 1 rows, the
  last one the still-open bucket; errors as {"Response": "Error", "Message": ...} with HTTP 200.

Prices tell the sources apart: CoinGecko around 50,000, CryptoCompare hourly around 60,000,
daily around 40,000.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.markets.models import Exchange

HOUR_S, DAY_S = 3600, 86_400
CG_PRICE, CC_HOUR_PRICE, CC_DAY_PRICE = 50_000, 60_000, 40_000


def now_s() -> int:
    return int(time.time())


def coingecko_chart(days: int, *, now: int | None = None) -> dict[str, Any]:
    """A market_chart body: 5-minute points for 1 day, hourly up to 90 days (CoinGecko's rule)."""
    now = now or now_s()
    step = 300 if days == 1 else HOUR_S
    count = days * DAY_S // step
    times = [(now - k * step) * 1000 - 1234 for k in range(count, -1, -1)]  # unaligned, like CoinGecko
    prices = [[t, CG_PRICE + (t // 1000 % 1000) / 10] for t in times]
    return {
        "prices": prices,
        "market_caps": [[t, 1.3e12] for t in times],
        "total_volumes": [[t, 28_800_000_000.5] for t in times],
    }


def cryptocompare_histo(unit: str, limit: int, *, now: int | None = None) -> dict[str, Any]:
    """A histohour/histoday body: limit + 1 rows ending with the open bucket."""
    now = now or now_s()
    step = HOUR_S if unit == "hour" else DAY_S
    base = CC_HOUR_PRICE if unit == "hour" else CC_DAY_PRICE
    last = now - now % step
    rows = []
    for k in range(limit, -1, -1):
        t = last - k * step
        open_ = base + k
        rows.append(
            {
                "time": t,
                "high": open_ + 10.5,
                "low": open_ - 10.25,
                "open": open_,
                "volumefrom": 123.45,
                "volumeto": 123.45 * open_,
                "close": open_ + 1,
                "conversionType": "direct",
                "conversionSymbol": "",
            }
        )
    return {
        "Response": "Success",
        "Message": "",
        "HasWarning": False,
        "Type": 100,
        "RateLimit": {},
        "Data": {"Aggregated": False, "TimeFrom": rows[0]["time"], "TimeTo": rows[-1]["time"], "Data": rows},
    }


CRYPTOCOMPARE_ERROR = {
    "Response": "Error",
    "Message": "You are over your rate limit please upgrade your account!",
    "HasWarning": False,
    "Type": 99,
    "RateLimit": {"calls_made": {"second": 1, "minute": 301}},
    "Data": {},
}


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or None for the default body of the endpoint
    raw: str | None = None  # sent as is (e.g. not JSON)


@dataclass
class FakeHistory:
    """CoinGecko and CryptoCompare history endpoints; `override[path]` changes one answer."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    override: dict[str, Answer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str]:
        override = self.override.get(path)
        if override is not None and override.raw is not None:
            return override.status, override.raw
        if override is not None and override.body is not None:
            return override.status, json.dumps(override.body)
        status = override.status if override is not None else 200
        if path.startswith("/api/v3/coins/") and path.endswith("/market_chart"):
            return status, json.dumps(coingecko_chart(int(query["days"])))
        if path in ("/data/v2/histohour", "/data/v2/histoday"):
            unit = "hour" if path.endswith("hour") else "day"
            return status, json.dumps(cryptocompare_histo(unit, int(query["limit"])))
        return 404, json.dumps({"error": "Not found"})

    def seen(self, prefix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        with fake.lock:
            fake.requests.append(Seen(url.path, query, {k.lower(): v for k, v in self.headers.items()}))
        status, body = fake.answer(url.path, query)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = False

    def __init__(self, fake: FakeHistory) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@pytest.fixture
def history() -> Iterator[FakeHistory]:
    fake = FakeHistory()
    server = _Server(fake)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def history_exchanges(db: None, history: FakeHistory) -> Callable[..., None]:
    """Create the CoinGecko and CryptoCompare rows pointing at the fake (btc, eth mapped)."""

    def make(**symbol_maps: dict[str, str]) -> None:
        rows = {
            "coingecko": (history.url + "/api/v3", {"btc": "bitcoin", "eth": "ethereum"}),
            "cryptocompare": (history.url, {"btc": "BTC", "eth": "ETH"}),
        }
        for slug, (url, symbol_map) in rows.items():
            Exchange.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": slug.title(),
                    "kind": Exchange.Kind.REST,
                    "weight": Decimal("0.50"),
                    "rest_url": url,
                    "symbol_map": symbol_maps.get(slug, symbol_map),
                },
            )

    make()
    return make
