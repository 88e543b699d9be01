"""HTTP client of one peer's sync endpoints: keep-alive httpx, signed requests, signed answers.

No ORM here: the worker builds a PeerEndpoint from the Peer row and hands it in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from apps.sync.auth import NONCE_HEADER, SignatureInvalid, request_sign, response_verify
from apps.sync.gcpause import gc_held
from apps.sync.transport import ZSTD, PayloadInvalid, body_decode, body_encode

TIME_HEADER = "X-Haunt-Time"  # the server's wall clock (ms) when it answered
ELAPSED_HEADER = "X-Haunt-Elapsed-Ms"  # time the server spent on the request, long-poll wait included


@dataclass(frozen=True)
class PeerEndpoint:
    name: str
    url: str
    key_id: str
    secret: str


class PeerError(Exception):
    """A request to a peer failed. `transient` errors are retried with backoff."""

    transient = True

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class PeerUnavailable(PeerError):
    """Connection refused or reset, timeout, 5xx, a body that failed to decode."""


class PeerRefused(PeerError):
    """The peer answered 4xx: our key, signature or request is wrong. Retrying won't fix it soon."""

    transient = False


@dataclass(frozen=True)
class PeerResponse:
    body: Any
    status: int
    wire_bytes: int
    rtt_ms: float
    server_elapsed_ms: float | None
    clock_offset_ms: float | None

    @property
    def latency_ms(self) -> float:
        """Network round trip: the wall time minus what the server spent (its long-poll wait)."""
        return max(0.0, self.rtt_ms - (self.server_elapsed_ms or 0.0))


class PeerClient:
    """One keep-alive connection pool per peer, shared by that peer's lane pullers."""

    def __init__(
        self,
        endpoint: PeerEndpoint,
        *,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._read_timeout_s = read_timeout_s
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport or httpx.HTTPTransport(limits=limits)
        self._http = httpx.Client(
            base_url=endpoint.url.rstrip("/"),
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            transport=self._transport,
            headers={"Accept-Encoding": ZSTD, "User-Agent": "haunt-sync"},
        )

    def close(self) -> None:
        """Close the pool, interrupting requests in flight. Call it again once the threads using
        this client have stopped: a request that passed the client's closed check just before the
        first call opens its connection in the emptied pool, and only a second close reaches it."""
        self._http.close()
        self._transport.close()

    def feed(self, *, lane: int, since: int, limit: int, wait: float) -> PeerResponse:
        """GET /api/sync/feed: a page of the peer's feed after `since`, long-polling up to `wait` s."""
        query = {"lane": lane, "since": since, "limit": limit, "wait": f"{wait:g}"}
        # The long-poll wait is on top of the usual read timeout.
        return self._request("GET", "/api/sync/feed", query=query, read_timeout_s=self._read_timeout_s + wait)

    def ack(self, *, acks: list[dict[str, int]]) -> PeerResponse:
        """POST /api/sync/ack: the seqs of the peer's feed this node has applied, per lane."""
        return self._request("POST", "/api/sync/ack", payload={"acks": acks})

    def buckets(self, *, entity: str, buckets: int) -> PeerResponse:
        """GET /api/sync/buckets: the peer's bucket checksums of one entity."""
        return self._request("GET", "/api/sync/buckets", query={"entity": entity, "buckets": buckets})

    def bucket_rows(self, *, entity: str, bucket: int, buckets: int) -> PeerResponse:
        """GET /api/sync/rows: [id, version, hlc] of the peer's rows in one bucket."""
        query = {"entity": entity, "bucket": bucket, "buckets": buckets}
        return self._request("GET", "/api/sync/rows", query=query)

    def rows_export(self, *, entity: str, ids: list[str]) -> PeerResponse:
        """POST /api/sync/rows: a page-shaped export of the peer's rows with these ids."""
        return self._request("POST", "/api/sync/rows", payload={"entity": entity, "ids": ids})

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        payload: Any = None,
        read_timeout_s: float | None = None,
    ) -> PeerResponse:
        target = f"{path}?{urlencode(query)}" if query else path
        body = body_encode(payload) if payload is not None else b""
        headers = request_sign(
            key_id=self.endpoint.key_id, secret=self.endpoint.secret, method=method, path=target, body=body
        )
        if payload is not None:
            headers |= {"Content-Type": "application/json", "Content-Encoding": ZSTD}
        timeout = httpx.Timeout(read_timeout_s or self._read_timeout_s, connect=3.0)
        sent_wall, started = time.time() * 1000, time.perf_counter()
        try:
            request = self._http.build_request(method, target, content=body, headers=headers, timeout=timeout)
            response = self._http.send(request, stream=True)
            try:
                # Raw bytes: the signature covers the body as sent, before httpx would decode zstd.
                raw = b"".join(response.iter_raw())
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise PeerUnavailable("timeout", f"{self.endpoint.name}: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise PeerUnavailable(
                "unreachable", f"{self.endpoint.name}: {type(exc).__name__}: {exc}"
            ) from None
        except RuntimeError as exc:  # httpx: the client was closed (the worker is shutting down)
            raise PeerUnavailable("closed", f"{self.endpoint.name}: {exc}") from None
        rtt_ms = (time.perf_counter() - started) * 1000
        with gc_held():
            decoded = self._decode(response, raw)
        if response.status_code >= 400:
            self._raise_for(response.status_code, decoded)
        try:
            response_verify(
                secret=self.endpoint.secret,
                status=response.status_code,
                request_nonce=headers[NONCE_HEADER],
                headers=response.headers,
                body=raw,
            )
        except SignatureInvalid as exc:
            raise PeerUnavailable(exc.code, f"{self.endpoint.name}: {exc.message}") from None
        elapsed = _float_header(response.headers, ELAPSED_HEADER)
        return PeerResponse(
            body=decoded,
            status=response.status_code,
            wire_bytes=len(raw),
            rtt_ms=rtt_ms,
            server_elapsed_ms=elapsed,
            clock_offset_ms=_clock_offset(response.headers, sent_wall, rtt_ms, elapsed),
        )

    def _decode(self, response: httpx.Response, raw: bytes) -> Any:
        try:
            return body_decode(raw, content_encoding=response.headers.get("Content-Encoding"))
        except PayloadInvalid as exc:
            if response.status_code >= 400:
                return None
            raise PeerUnavailable(exc.code, f"{self.endpoint.name}: {exc.message}") from None

    def _raise_for(self, status: int, decoded: Any) -> None:
        error = decoded.get("error", {}) if isinstance(decoded, dict) else {}
        code = str(error.get("code") or f"http_{status}")
        message = f"{self.endpoint.name}: HTTP {status} {code}: {error.get('message', '')}".rstrip(": ")
        if status >= 500 or status in (408, 429):
            raise PeerUnavailable(code, message, status=status)
        raise PeerRefused(code, message, status=status)


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def _clock_offset(
    headers: httpx.Headers, sent_wall_ms: float, rtt_ms: float, elapsed_ms: float | None
) -> float | None:
    """Peer clock minus ours (ms), NTP-style: its answer time against the midpoint of the wire time.

    The server stamps the time just before answering, so the reply spent half the network round
    trip (rtt minus the server's own time) on the way back.
    """
    server_ms = _float_header(headers, TIME_HEADER)
    if server_ms is None:
        return None
    network_ms = max(0.0, rtt_ms - (elapsed_ms or 0.0))
    received_wall_ms = sent_wall_ms + rtt_ms
    return server_ms - (received_wall_ms - network_ms / 2)
