"""A small shared HTTP cache in front of Django for hot public reads (nginx-style micro-caching).

A response under /api/ that says `Cache-Control: public, max-age=N` (the market-data views do,
see `PublicCacheMixin`) is kept in this process for N seconds and served again without entering
Django: no middleware, no view, no throttle, which is what lets one sync worker answer thousands of
chart and price requests a second. The cache honours `Vary` and adds `Age` to every hit. Requests
that carry credentials (Authorization or Cookie) and anything but GET always go to Django, so a
cached copy never stands in for a user's own response; responses that set a cookie are never kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.cache import patch_cache_control
from rest_framework.request import Request
from rest_framework.response import Response

WsgiHeaders = list[tuple[str, str]]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PATH_PREFIX = "/api/"
MAX_ENTRIES = 1024
MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    status: str
    headers: WsgiHeaders
    body: bytes
    stored_at: float
    expires_at: float


@dataclass(slots=True)
class _Variants:
    vary: tuple[str, ...]  # WSGI environ keys of the request headers the response varies on
    entries: dict[tuple[str, ...], _Entry]


def max_age_public(headers: WsgiHeaders) -> int:
    """Seconds a shared cache may keep a response with these headers (0: not at all)."""
    directives: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered == "set-cookie":
            return 0
        if lowered == "cache-control":
            for part in value.split(","):
                key, _, arg = part.strip().lower().partition("=")
                directives[key] = arg.strip('"')
    if "public" not in directives or {"private", "no-store", "no-cache"} & directives.keys():
        return 0
    seconds = directives.get("s-maxage") or directives.get("max-age") or "0"
    return int(seconds) if seconds.isdigit() else 0


def _cache_key(environ: dict[str, Any]) -> str:
    """Scheme, host and target, as a proxy keys its cache: a Host that Django would refuse never
    gets another host's copy (it reaches Django and its ALLOWED_HOSTS check)."""
    scheme, host = environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST", "")
    return f"{scheme}://{host}{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"


def _vary_keys(headers: WsgiHeaders) -> tuple[str, ...] | None:
    names: list[str] = []
    for name, value in headers:
        if name.lower() == "vary":
            names.extend(part.strip() for part in value.split(",") if part.strip())
    if "*" in names:
        return None
    return tuple(sorted({"HTTP_" + n.upper().replace("-", "_") for n in names}))


class SharedResponseCache:
    """WSGI middleware: serve fresh public responses from this process's memory."""

    def __init__(self, app: WsgiApp, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self._store: dict[str, _Variants] = {}
        self._size = 0
        self._lock = threading.Lock()  # threaded workers (gthread) store and evict concurrently

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._eligible(environ):
            return self.app(environ, start_response)
        key = _cache_key(environ)
        now = self.clock()
        entry = self._lookup(key, environ, now)
        if entry is not None:
            start_response(entry.status, [*entry.headers, ("Age", str(int(now - entry.stored_at)))])
            return [entry.body]
        return self._fetch(key, environ, start_response, now)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._size = 0

    @staticmethod
    def _eligible(environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO", "").startswith(PATH_PREFIX)
            and "HTTP_AUTHORIZATION" not in environ
            and "HTTP_COOKIE" not in environ
        )

    def _lookup(self, key: str, environ: dict[str, Any], now: float) -> _Entry | None:
        variants = self._store.get(key)
        if variants is None:
            return None
        entry = variants.entries.get(tuple(environ.get(name, "") for name in variants.vary))
        return entry if entry is not None and entry.expires_at > now else None

    def _fetch(
        self, key: str, environ: dict[str, Any], start_response: StartResponse, now: float
    ) -> Iterable[bytes]:
        sent: dict[str, Any] = {}

        def capture(status: str, headers: WsgiHeaders, exc_info: Any = None) -> Any:
            sent["status"], sent["headers"] = status, headers
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        status, headers = sent.get("status", ""), sent.get("headers", [])
        seconds = max_age_public(headers) if status.startswith("200 ") else 0
        vary = _vary_keys(headers) if seconds else None
        if vary is None:
            return result
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if len(body) <= MAX_BODY_BYTES:
            entry = _Entry(status, list(headers), body, now, now + seconds)
            with self._lock:
                self._remember(key, vary, tuple(environ.get(name, "") for name in vary), entry)
        return [body]

    def _remember(self, key: str, vary: tuple[str, ...], values: tuple[str, ...], entry: _Entry) -> None:
        if self._size >= MAX_ENTRIES:
            self._evict(entry.stored_at)
        variants = self._store.get(key)
        if variants is None or variants.vary != vary:
            if variants is not None:
                self._size -= len(variants.entries)
            variants = self._store[key] = _Variants(vary, {})
        if values not in variants.entries:
            self._size += 1
        variants.entries[values] = entry

    def _evict(self, now: float) -> None:
        """Drop expired entries; if none had expired, drop the oldest key's."""
        for key in list(self._store):
            variants = self._store[key]
            for values in [v for v, e in variants.entries.items() if e.expires_at <= now]:
                del variants.entries[values]
                self._size -= 1
            if not variants.entries:
                del self._store[key]
        if self._size >= MAX_ENTRIES:
            oldest = next(iter(self._store))
            self._size -= len(self._store.pop(oldest).entries)


class PublicCacheMixin:
    """For APIViews whose GET answer is the same for every caller (market data): a 200 says
    `Cache-Control: public, max-age=HAUNT_PUBLIC_CACHE_SECONDS`, so this cache, a proxy or a
    browser may reuse it that long (0 turns it off)."""

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        seconds = settings.HAUNT_PUBLIC_CACHE_SECONDS
        if seconds and request.method == "GET" and response.status_code == 200:
            patch_cache_control(response, public=True, max_age=seconds)
        return response
