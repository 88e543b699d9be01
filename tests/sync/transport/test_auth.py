"""HMAC request signing: what a peer endpoint accepts and the 401 code of each refusal."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.sync.auth import SignatureInvalid, request_sign, response_sign, response_verify
from apps.sync.models import Peer, PeerAck
from apps.sync.transport import body_encode
from tests.sync.transport.conftest import SECRET, make_peer

pytestmark = pytest.mark.django_db

ACK_PATH = "/api/sync/ack"


def post_ack(client: APIClient, body: bytes, headers: dict[str, str]):
    return client.generic(
        "POST",
        ACK_PATH,
        data=body,
        content_type="application/json",
        headers={"Content-Encoding": "zstd", **headers},
    )


def signed(body: bytes, *, secret: str = SECRET, key_id: str = "key-seoul", **overrides) -> dict[str, str]:
    return request_sign(key_id=key_id, secret=secret, method="POST", path=ACK_PATH, body=body, **overrides)


def ack_body(seq: int = 7) -> bytes:
    return body_encode({"acks": [{"lane": 0, "seq": seq}]})


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_signature_is_hmac_sha256_of_the_canonical_request():
    body = b'{"x":1}'

    headers = request_sign(
        key_id="k",
        secret="topsecret",
        method="post",
        path="/api/sync/ack?a=1",
        body=body,
        timestamp=1700000000,
        nonce="n1",
    )

    canonical = "\n".join(["POST", "/api/sync/ack?a=1", "1700000000", "n1", hashlib.sha256(body).hexdigest()])
    expected = hmac.new(b"topsecret", canonical.encode(), hashlib.sha256).hexdigest()
    assert headers == {
        "X-Haunt-Key": "k",
        "X-Haunt-Timestamp": "1700000000",
        "X-Haunt-Nonce": "n1",
        "X-Haunt-Signature": expected,
    }


def test_a_correctly_signed_request_is_accepted(peer: Peer, api_client: APIClient):
    body = ack_body(7)

    response = post_ack(api_client, body, signed(body))

    assert response.status_code == 200
    assert PeerAck.objects.get(peer=peer, lane=0).seq == 7


def test_a_wrong_secret_is_refused(peer: Peer, api_client: APIClient):
    body = ack_body()

    response = post_ack(api_client, body, signed(body, secret="not-the-secret"))

    assert response.status_code == 401
    assert error_code(response) == "bad_signature"
    assert response.headers["WWW-Authenticate"].startswith("HMAC-SHA256")
    assert not PeerAck.objects.exists()


def test_a_tampered_body_is_refused(peer: Peer, api_client: APIClient):
    headers = signed(ack_body(7))

    response = post_ack(api_client, ack_body(9_999_999), headers)

    assert response.status_code == 401
    assert error_code(response) == "bad_signature"
    assert not PeerAck.objects.exists()


def test_a_tampered_query_string_is_refused(peer: Peer, api_client: APIClient):
    headers = request_sign(
        key_id=peer.key_id, secret=SECRET, method="GET", path="/api/sync/feed?lane=0&since=5", body=b""
    )

    response = api_client.get("/api/sync/feed?lane=0&since=0", headers=headers)

    assert response.status_code == 401
    assert error_code(response) == "bad_signature"


@pytest.mark.parametrize("skew", [-61, 61, 3600])
def test_a_timestamp_outside_the_window_is_refused(peer: Peer, api_client: APIClient, skew: int):
    body = ack_body()

    response = post_ack(api_client, body, signed(body, timestamp=int(time.time()) + skew))

    assert response.status_code == 401
    assert error_code(response) == "stale_timestamp"


def test_a_timestamp_inside_the_window_is_accepted(peer: Peer, api_client: APIClient):
    body = ack_body()

    response = post_ack(api_client, body, signed(body, timestamp=int(time.time()) - 50))

    assert response.status_code == 200


def test_a_replayed_nonce_is_refused(peer: Peer, api_client: APIClient):
    body = ack_body()
    headers = signed(body)

    first = post_ack(api_client, body, headers)
    replay = post_ack(api_client, body, headers)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert error_code(replay) == "replayed_nonce"


def test_a_forged_request_does_not_burn_the_nonce(peer: Peer, api_client: APIClient):
    body = ack_body()
    good = signed(body, nonce="nonce-1")
    forged = {**good, "X-Haunt-Signature": "0" * 64}

    assert post_ack(api_client, body, forged).status_code == 401
    assert post_ack(api_client, body, good).status_code == 200


def test_missing_headers_are_refused(peer: Peer, api_client: APIClient):
    body = ack_body()
    headers = signed(body)
    del headers["X-Haunt-Nonce"]

    response = post_ack(api_client, body, headers)

    assert response.status_code == 401
    assert error_code(response) == "signature_missing"


def test_an_unknown_or_disabled_key_is_refused(peer: Peer, api_client: APIClient):
    body = ack_body()
    unknown = post_ack(api_client, body, signed(body, key_id="key-nobody"))
    Peer.objects.filter(pk=peer.pk).update(enabled=False)
    disabled = post_ack(api_client, body, signed(body))

    assert (unknown.status_code, error_code(unknown)) == (401, "unknown_key")
    assert (disabled.status_code, error_code(disabled)) == (401, "unknown_key")


def test_a_staff_token_does_not_open_peer_endpoints(peer: Peer, staff, api_client: APIClient):
    token = Token.objects.create(user=staff).key

    response = api_client.generic(
        "POST",
        ACK_PATH,
        data=ack_body(),
        content_type="application/json",
        headers={"Authorization": f"Token {token}"},
    )

    assert response.status_code == 401
    assert error_code(response) == "signature_missing"


def test_responses_are_signed_and_bound_to_the_request_nonce():
    headers = response_sign(secret=SECRET, status=200, request_nonce="n1", body=b"page")

    response_verify(secret=SECRET, status=200, request_nonce="n1", headers=headers, body=b"page")
    for kwargs in (
        {"request_nonce": "n2", "body": b"page", "status": 200},
        {"request_nonce": "n1", "body": b"other", "status": 200},
        {"request_nonce": "n1", "body": b"page", "status": 500},
    ):
        with pytest.raises(SignatureInvalid) as exc:
            response_verify(secret=SECRET, headers=headers, **kwargs)
        assert exc.value.code == "bad_signature"


def test_the_secret_is_encrypted_at_rest(db: None):
    peer = make_peer("nyc", secret="plain-secret-value-that-must-not-be-stored-0000")

    stored = Peer.objects.values_list("secret_encrypted", flat=True).get(pk=peer.pk)

    assert "plain-secret" not in stored
    assert Peer.objects.get(pk=peer.pk).secret == "plain-secret-value-that-must-not-be-stored-0000"


def test_an_explicit_encryption_key_still_reads_secrets_written_before_it(db: None):
    peer = make_peer("nyc", secret="written-under-the-secret-key-derived-key-000")

    with override_settings(HAUNT_SYNC_ENCRYPTION_KEY="a-dedicated-encryption-key"):
        assert Peer.objects.get(pk=peer.pk).secret == "written-under-the-secret-key-derived-key-000"
        peer.secret = "rotated-under-the-dedicated-key-000000000000"
        peer.save()
        assert Peer.objects.get(pk=peer.pk).secret == "rotated-under-the-dedicated-key-000000000000"

    from apps.sync.models import PeerSecretUnreadable

    with pytest.raises(PeerSecretUnreadable):
        _ = Peer.objects.get(pk=peer.pk).secret  # without the dedicated key it cannot be read
