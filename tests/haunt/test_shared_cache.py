"""The shared response cache in front of Django (haunt/shared_cache.py)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from apps.markets.services.prices import ticks_ingest
from haunt import shared_cache
from haunt.seeding import seed_defaults
from haunt.shared_cache import SharedResponseCache, max_age_public
from tests.markets.factories import make_tick


def environ(path: str, query: str = "", method: str = "GET", **headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    env.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return env


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Body(list[bytes]):
    closed = False

    def close(self) -> None:
        self.closed = True


class FakeApp:
    """A WSGI app that answers with the headers it is given and counts its calls."""

    def __init__(self, headers: list[tuple[str, str]], status: str = "200 OK") -> None:
        self.headers, self.status, self.calls = headers, status, 0
        self.bodies: list[Body] = []

    def __call__(self, env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        start_response(self.status, list(self.headers))
        body = Body([b"answer ", str(self.calls).encode()])
        self.bodies.append(body)
        return body


def get(app: Any, env: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    sent: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        sent["status"], sent["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response))
    return sent["status"], sent["headers"], body


PUBLIC = [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=2")]


def test_a_public_answer_is_served_from_memory_until_it_expires_with_its_age():
    app, clock = FakeApp(PUBLIC), Clock()
    cache = SharedResponseCache(app, clock=clock)

    first = get(cache, environ("/api/market/prices"))
    clock.now += 1.5
    second = get(cache, environ("/api/market/prices"))
    clock.now += 0.5
    third = get(cache, environ("/api/market/prices"))

    assert first[2] == second[2] == b"answer 1"
    assert "Age" not in first[1] and second[1]["Age"] == "1"
    assert second[1]["Cache-Control"] == "public, max-age=2"
    assert third[2] == b"answer 2"  # max-age passed: asked again
    assert app.calls == 2
    assert app.bodies[0].closed  # the buffered iterable was closed, as WSGI requires


def test_the_query_string_is_part_of_the_key():
    app = FakeApp(PUBLIC)
    cache = SharedResponseCache(app, clock=Clock())

    day = get(cache, environ("/api/crypto/btc/chart", "range=1d"))
    week = get(cache, environ("/api/crypto/btc/chart", "range=1w"))
    day_again = get(cache, environ("/api/crypto/btc/chart", "range=1d"))

    assert (day[2], week[2], day_again[2]) == (b"answer 1", b"answer 2", b"answer 1")


def test_the_host_and_scheme_are_part_of_the_key():
    app = FakeApp(PUBLIC)
    cache = SharedResponseCache(app, clock=Clock())

    first = get(cache, environ("/api/market/prices"))
    other_host = get(cache, environ("/api/market/prices", host="api.example"))
    https = get(cache, {**environ("/api/market/prices"), "wsgi.url_scheme": "https"})
    again = get(cache, environ("/api/market/prices"))

    assert (first[2], other_host[2], https[2], again[2]) == (
        b"answer 1",
        b"answer 2",
        b"answer 3",
        b"answer 1",
    )


@pytest.mark.parametrize(
    "request_env",
    [
        environ("/api/market/prices", authorization="Token abc"),
        environ("/api/market/prices", cookie="sessionid=x"),
        environ("/api/market/prices", method="HEAD"),
        environ("/api/market/prices", method="POST"),
        environ("/static/app.js"),
    ],
    ids=["credentials", "cookie", "head", "post", "outside-api"],
)
def test_requests_that_may_be_personal_or_not_reads_always_reach_django(request_env):
    app = FakeApp(PUBLIC)
    cache = SharedResponseCache(app, clock=Clock())

    get(cache, request_env)
    get(cache, request_env)
    get(cache, environ("/api/market/prices"))

    assert app.calls == 3  # neither served from nor stored for the plain GET


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200 OK", [("Content-Type", "application/json")]),
        ("200 OK", [("Cache-Control", "private, max-age=60")]),
        ("200 OK", [("Cache-Control", "public, max-age=60, no-store")]),
        ("200 OK", [("Cache-Control", "public, max-age=0")]),
        ("200 OK", [("Cache-Control", "public, max-age=60"), ("Set-Cookie", "csrftoken=x")]),
        ("200 OK", [("Cache-Control", "public, max-age=60"), ("Vary", "*")]),
        ("404 Not Found", [("Cache-Control", "public, max-age=60")]),
    ],
    ids=["no-cache-control", "private", "no-store", "max-age-0", "sets-cookie", "vary-star", "not-200"],
)
def test_answers_that_do_not_allow_a_shared_copy_are_not_kept(status, headers):
    app = FakeApp(headers, status=status)
    cache = SharedResponseCache(app, clock=Clock())

    get(cache, environ("/api/market/prices"))
    get(cache, environ("/api/market/prices"))

    assert app.calls == 2
    assert not app.bodies[0].closed  # passed through untouched: the server closes it


def test_vary_keeps_one_copy_per_value_of_the_named_request_header():
    app = FakeApp([*PUBLIC, ("Vary", "Accept, Origin")])
    cache = SharedResponseCache(app, clock=Clock())

    plain = get(cache, environ("/api/market/prices"))
    from_site = get(cache, environ("/api/market/prices", origin="https://app.example"))
    plain_again = get(cache, environ("/api/market/prices"))
    from_site_again = get(cache, environ("/api/market/prices", origin="https://app.example"))

    assert (plain[2], from_site[2]) == (b"answer 1", b"answer 2")
    assert (plain_again[2], from_site_again[2]) == (b"answer 1", b"answer 2")


def test_memory_is_bounded_by_entries_and_body_size(monkeypatch):
    monkeypatch.setattr(shared_cache, "MAX_ENTRIES", 3)
    app, clock = FakeApp(PUBLIC), Clock()
    cache = SharedResponseCache(app, clock=clock)

    for n in range(5):
        get(cache, environ("/api/crypto/btc/chart", f"range={n}"))
    calls = app.calls
    get(cache, environ("/api/crypto/btc/chart", "range=4"))  # newest: still there
    get(cache, environ("/api/crypto/btc/chart", "range=0"))  # oldest: evicted

    assert sum(len(v.entries) for v in cache._store.values()) == cache._size <= 3
    assert app.calls == calls + 1

    monkeypatch.setattr(shared_cache, "MAX_BODY_BYTES", 4)
    get(cache, environ("/api/market/prices"))
    get(cache, environ("/api/market/prices"))
    assert app.calls == calls + 3  # too big to keep


def test_threads_storing_and_evicting_at_once_keep_the_cache_consistent(monkeypatch):
    import threading

    monkeypatch.setattr(shared_cache, "MAX_ENTRIES", 8)
    cache = SharedResponseCache(FakeApp(PUBLIC))
    errors: list[BaseException] = []

    def hammer(worker: int) -> None:
        try:
            for n in range(400):
                get(cache, environ("/api/crypto/btc/chart", f"range={worker}-{n % 50}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert cache._size == sum(len(v.entries) for v in cache._store.values()) <= 8


def test_max_age_public_reads_the_shared_cache_lifetime():
    assert max_age_public([("Cache-Control", "public, max-age=5")]) == 5
    assert max_age_public([("Cache-Control", "public, max-age=5, s-maxage=1")]) == 1
    assert max_age_public([("cache-control", 'PUBLIC, MAX-AGE="3"')]) == 3
    assert max_age_public([("Cache-Control", "max-age=5")]) == 0
    assert max_age_public([("Cache-Control", "public, max-age=soon")]) == 0


# --- In front of Haunt's own views -------------------------------------------------------------


@pytest.fixture
def haunt_app(db: None) -> Iterator[tuple[SharedResponseCache, Clock]]:
    """Haunt's WSGI application behind the cache, run in the test's transaction (as Django's test
    client does, the request signals must not close the test's connection)."""
    seed_defaults()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    clock = Clock()
    try:
        yield SharedResponseCache(WSGIHandler(), clock=clock), clock
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def ingest_price(price: str) -> None:
    import time

    now = time.time_ns() // 1_000_000
    ticks_ingest(ticks=[make_tick(price=Decimal(price), exchange_ts=now)], now_ms=now)


def test_market_prices_are_reused_for_max_age_seconds_then_refreshed(haunt_app, settings):
    app, clock = haunt_app
    settings.HAUNT_PUBLIC_CACHE_SECONDS = 1
    ingest_price("50000")

    first = get(app, environ("/api/market/prices/btc"))
    ingest_price("50100")
    cached = get(app, environ("/api/market/prices/btc"))
    clock.now += 1.0
    fresh = get(app, environ("/api/market/prices/btc"))

    assert first[0] == "200 OK" and first[1]["Cache-Control"] == "public, max-age=1"
    assert cached[2] == first[2] and b'"50000"' in cached[2] and cached[1]["Age"] == "0"
    assert b'"50100"' in fresh[2] and "Age" not in fresh[1]


def test_a_host_django_refuses_is_refused_even_when_an_answer_is_cached(haunt_app):
    app, _ = haunt_app
    ingest_price("50000")
    assert get(app, environ("/api/market/prices/btc"))[0] == "200 OK"

    status, _, _ = get(app, environ("/api/market/prices/btc", host="evil.example"))

    assert status.startswith("400")


def test_a_signed_in_caller_always_gets_a_fresh_answer(haunt_app, settings, user):
    from rest_framework.authtoken.models import Token

    app, _ = haunt_app
    token = Token.objects.create(user=user)
    ingest_price("50000")
    get(app, environ("/api/market/prices/btc"))
    ingest_price("50100")

    signed_in = get(app, environ("/api/market/prices/btc", authorization=f"Token {token.key}"))

    assert b'"50100"' in signed_in[2]


@pytest.mark.parametrize("path", ["/api/v3/time", "/api/udf/time", "/api/market/prices/nope"])
def test_clocks_and_errors_are_never_cached(haunt_app, path):
    app, _ = haunt_app

    _, headers, _ = get(app, environ(path))

    assert "public" not in headers.get("Cache-Control", "")
    assert not app._store


def test_public_caching_can_be_turned_off(haunt_app, settings):
    app, _ = haunt_app
    settings.HAUNT_PUBLIC_CACHE_SECONDS = 0
    ingest_price("50000")

    status, headers, _ = get(app, environ("/api/crypto/btc/chart", "range=1h"))

    assert status == "200 OK" and "Cache-Control" not in headers
    assert not app._store


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/market/prices", ""),
        ("/api/crypto/btc/chart", "range=1d"),
        ("/api/market/klines", "symbol=btc&interval=1m"),
        ("/api/v3/ticker/24hr", ""),
        ("/api/v3/klines", "symbol=BTCUSDT&interval=1m"),
        ("/api/v3/exchangeInfo", ""),
    ],
)
def test_market_data_reads_say_they_may_be_shared(haunt_app, path, query):
    app, _ = haunt_app
    ingest_price("50000")

    status, headers, _ = get(app, environ(path, query))

    assert status == "200 OK", path
    assert headers["Cache-Control"] == "public, max-age=1"
