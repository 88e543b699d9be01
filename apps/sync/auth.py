"""HMAC-SHA256 signing of requests between peers, and the DRF authentication of peer endpoints.

The signature covers the method, the path with its query string, a timestamp, a one-time nonce
and the SHA-256 of the body as sent (after compression):

    HMAC-SHA256(secret, "METHOD\\n/path?query\\ntimestamp\\nnonce\\nsha256hex(body)")

carried in X-Haunt-Key / X-Haunt-Timestamp / X-Haunt-Nonce / X-Haunt-Signature. A request is
accepted within HAUNT_SYNC_SIGNATURE_WINDOW_S (60 s) of the receiver's clock, and each nonce
only once (the cache remembers it for twice the window). Responses are signed the same way,
bound to the request's nonce, so a peer's answer cannot be replayed or forged either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.sync.models import Peer, PeerSecretUnreadable

KEY_HEADER = "X-Haunt-Key"
TIMESTAMP_HEADER = "X-Haunt-Timestamp"
NONCE_HEADER = "X-Haunt-Nonce"
SIGNATURE_HEADER = "X-Haunt-Signature"
NONCE_MAX_LENGTH = 64


class SignatureInvalid(Exception):
    """A signed request or response failed verification; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def signature_window_s() -> int:
    return int(getattr(settings, "HAUNT_SYNC_SIGNATURE_WINDOW_S", 60))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, body_digest(body)]).encode()


def signature_compute(*, secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical request string."""
    message = _canonical(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_sign(
    *,
    key_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four auth headers for a request; `path` includes the query string exactly as sent."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    signature = signature_compute(
        secret=secret, method=method, path=path, timestamp=ts, nonce=nonce, body=body
    )
    return {KEY_HEADER: key_id, TIMESTAMP_HEADER: ts, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature}


def response_sign(*, secret: str, status: int, request_nonce: str, body: bytes) -> dict[str, str]:
    """Headers signing a response to the request that carried `request_nonce`."""
    ts = str(int(time.time()))
    signature = signature_compute(
        secret=secret, method="RESPONSE", path=str(status), timestamp=ts, nonce=request_nonce, body=body
    )
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature}


def response_verify(
    *, secret: str, status: int, request_nonce: str, headers: Any, body: bytes, now: float | None = None
) -> None:
    """Check a peer's signed response; raises SignatureInvalid."""
    ts, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not ts or not signature:
        raise SignatureInvalid("signature_missing", "The response is not signed.")
    _timestamp_check(ts, now)
    expected = signature_compute(
        secret=secret, method="RESPONSE", path=str(status), timestamp=ts, nonce=request_nonce, body=body
    )
    if not hmac.compare_digest(expected, signature):
        raise SignatureInvalid("bad_signature", "The response signature does not match.")


def _timestamp_check(ts: str, now: float | None) -> None:
    try:
        stamp = int(ts)
    except ValueError:
        raise SignatureInvalid("bad_timestamp", "X-Haunt-Timestamp is not an integer.") from None
    now = time.time() if now is None else now
    if abs(now - stamp) > signature_window_s():
        raise SignatureInvalid(
            "stale_timestamp", f"The timestamp is more than {signature_window_s()} s from this node's clock."
        )


def _nonce_claim(key_id: str, nonce: str) -> bool:
    # cache.add is atomic on Redis (SET NX): of two copies of one request, exactly one wins.
    return bool(cache.add(f"sync:nonce:{key_id}:{nonce}", 1, timeout=2 * signature_window_s()))


def request_verify(*, method: str, path: str, headers: Any, body: bytes, now: float | None = None) -> Peer:
    """The enabled peer that signed this request; raises SignatureInvalid.

    The nonce is claimed last, after the signature matched, so forged requests cannot burn a
    legitimate caller's nonces.
    """
    key_id, ts = headers.get(KEY_HEADER), headers.get(TIMESTAMP_HEADER)
    nonce, signature = headers.get(NONCE_HEADER), headers.get(SIGNATURE_HEADER)
    if not (key_id and ts and nonce and signature):
        raise SignatureInvalid("signature_missing", "The request is not signed for a peer.")
    if len(nonce) > NONCE_MAX_LENGTH:
        raise SignatureInvalid("bad_nonce", "X-Haunt-Nonce is too long.")
    _timestamp_check(ts, now)
    peer = Peer.objects.filter(key_id=key_id, enabled=True).first()
    if peer is None:
        raise SignatureInvalid("unknown_key", "No enabled peer has this key id.")
    try:
        secret = peer.secret
    except PeerSecretUnreadable:
        raise SignatureInvalid("unknown_key", "This peer's secret cannot be read on this node.") from None
    expected = signature_compute(
        secret=secret, method=method, path=path, timestamp=ts, nonce=nonce, body=body
    )
    if not hmac.compare_digest(expected, signature):
        raise SignatureInvalid("bad_signature", "The request signature does not match.")
    if not _nonce_claim(key_id, nonce):
        raise SignatureInvalid("replayed_nonce", "This nonce was already used.")
    return peer


@dataclass(frozen=True)
class PeerUser:
    """request.user of a peer request: authenticated, but no Django user and no staff rights."""

    peer: Peer
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_staff: bool = False
    is_superuser: bool = False
    is_active: bool = True

    @property
    def pk(self) -> str:
        return f"peer:{self.peer.name}"


class PeerHmacAuthentication(BaseAuthentication):
    """Authenticates peer endpoints by the HMAC headers; any failure is a 401 with its code."""

    def authenticate(self, request: Request) -> tuple[PeerUser, Peer]:
        django_request = request._request
        try:
            peer = request_verify(
                method=django_request.method or "GET",
                path=django_request.get_full_path(),
                headers=django_request.headers,
                body=django_request.body,
            )
        except SignatureInvalid as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        return PeerUser(peer=peer), peer

    def authenticate_header(self, request: Request) -> str:
        return 'HMAC-SHA256 realm="haunt-sync"'


class IsPeer(BasePermission):
    """Only requests signed by a known peer."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Peer)


def request_peer(request: Request) -> Peer:
    """The peer behind a request that passed PeerHmacAuthentication."""
    assert isinstance(request.auth, Peer), "view must use PeerHmacAuthentication"
    return request.auth


class PeerHmacScheme(OpenApiAuthenticationExtension):
    """OpenAPI description of the peer signature (registered by being defined)."""

    target_class = PeerHmacAuthentication
    name = "peerHmac"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": (
                "HMAC-SHA256 of METHOD, path?query, X-Haunt-Timestamp, X-Haunt-Nonce and sha256(body), "
                "with the link secret of the peer named by X-Haunt-Key. Peers only."
            ),
        }
