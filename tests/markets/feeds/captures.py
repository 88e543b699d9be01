"""Read the recorded exchange traffic in tests/fixtures/feeds (a copy of shared/fixtures/feeds)."""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

# `ts: payload` is a received message; sent frames, connects and HTTP bodies start with a URL.
RECEIVED = re.compile(r"^(\d+(?:\.\d+)?): (.*)$")


def fixtures_dir() -> Path:
    """HAUNT_FIXTURES_DIR, else the copy kept in the repository (tests/fixtures/feeds)."""
    override = os.environ.get("HAUNT_FIXTURES_DIR")
    return Path(override) if override else Path(settings.BASE_DIR) / "tests/fixtures/feeds"


def received_frames(name: str) -> Iterator[tuple[int, str | bytes]]:
    """(received ms, frame) for each message the client received, in file order.

    HTX frames are gzip bytes recorded as Python bytes literals; they come back as bytes.
    """
    with (fixtures_dir() / name).open(encoding="utf-8") as lines:
        for line in lines:
            match = RECEIVED.match(line.rstrip("\n"))
            if match is None:
                continue
            received_ts = int(Decimal(match[1]) * 1000)
            frame: str | bytes = match[2]
            if match[2].startswith(("b'", 'b"')):
                frame = ast.literal_eval(match[2])
            yield received_ts, frame


def http_body(name: str, url_part: str) -> Any:
    """The decoded JSON of the first recorded HTTP response (`URL -> ts: body`) whose URL has url_part."""
    with (fixtures_dir() / name).open(encoding="utf-8") as lines:
        for line in lines:
            url, arrow, rest = line.partition(" -> ")
            if arrow and url_part in url:
                return json.loads(rest.partition(": ")[2])
    raise LookupError(f"no response from {url_part!r} in {name}")
