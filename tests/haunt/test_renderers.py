"""FastJSONRenderer renders what DRF's JSONRenderer renders."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.utils.functional import lazy
from rest_framework.renderers import JSONRenderer

from haunt.renderers import FastJSONRenderer

lazy_text = lazy(lambda: "lazy café", str)()

SAMPLES = {
    "chart-like": {
        "id": "btc",
        "candles": [{"time": 1_700_000_000_000 + i, "open": "1.5", "status": "real"} for i in range(3)],
        "dataCompleteness": 99.5,
        "seeding": None,
        "needsSeeding": False,
    },
    "drf-encoder-types": {
        "at": dt.datetime(2026, 11, 22, 2, 31, 5, 123456, tzinfo=dt.UTC),
        "day": dt.date(2026, 11, 22),
        "clock": dt.time(2, 31, 5, 123456),
        "price": Decimal("50000.12345678"),
        "id": uuid.UUID("01934b1c-0000-7000-8000-000000000001"),
        "lazy": lazy_text,
        "span": dt.timedelta(seconds=90),
    },
    "unicode": ["Ωmega", "日本", "emoji 🚀", 'quote " and \\ backslash'],
    "line-separators": {"note": "one\u2028two\u2029three"},
    "big-int-falls-back": {"n": 2**70},
    "int-keys-fall-back": {1: "a", 2: "b"},
    "list": [1, 2.5, True, None, "x"],
}


@pytest.mark.parametrize("data", SAMPLES.values(), ids=SAMPLES.keys())
def test_same_bytes_as_drf(data):
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_indented_output_is_drfs():
    context = {"indent": 2}

    fast = FastJSONRenderer().render({"a": [1]}, "application/json", context)

    assert fast == JSONRenderer().render({"a": [1]}, "application/json", context)
    assert b"\n" in fast


def test_nothing_renders_as_empty_body():
    assert FastJSONRenderer().render(None) == b""


def test_what_drf_cannot_encode_is_still_an_error():
    with pytest.raises(TypeError):
        FastJSONRenderer().render({"x": object()})
