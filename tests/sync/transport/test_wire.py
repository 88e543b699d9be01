"""zstd JSON bodies: round trip, bad frames, size limits."""

from __future__ import annotations

import json

import pytest
import zstandard
from django.test import override_settings

from apps.sync.transport import PayloadInvalid, body_decode, body_encode


def test_zstd_round_trip_keeps_the_json_value():
    page = {"lane": 0, "rows": [{"seq": i, "data": {"qty": "1.50000000", "note": "ü"}} for i in range(500)]}

    wire = body_encode(page)

    assert wire[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    assert len(wire) < len(json.dumps(page)) / 5  # repetitive row JSON compresses well
    assert body_decode(wire, content_encoding="zstd") == page


def test_identity_bodies_are_plain_json():
    assert body_decode(b'{"a":1}', content_encoding=None) == {"a": 1}
    assert body_decode(b"", content_encoding="identity") is None


@pytest.mark.parametrize(
    ("data", "encoding", "code"),
    [
        (b"not zstd at all", "zstd", "bad_payload"),
        (zstandard.ZstdCompressor().compress(b"{not json"), "zstd", "bad_payload"),
        (b'{"a":1}', "br", "unsupported_encoding"),
    ],
)
def test_undecodable_bodies_are_refused(data: bytes, encoding: str, code: str):
    with pytest.raises(PayloadInvalid) as exc:
        body_decode(data, content_encoding=encoding)

    assert exc.value.code == code


@override_settings(HAUNT_SYNC_MAX_BODY_BYTES=10_000)
def test_a_small_frame_that_expands_past_the_limit_is_refused():
    bomb = zstandard.ZstdCompressor().compress(b"[" + b"0," * 50_000 + b"0]")
    assert len(bomb) < 1_000

    with pytest.raises(PayloadInvalid) as exc:
        body_decode(bomb, content_encoding="zstd")

    assert exc.value.code == "payload_too_large"
