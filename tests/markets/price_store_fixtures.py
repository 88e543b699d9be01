"""A clean price store per test: process memory without REDIS_URL, Redis db 12 with it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from apps.markets.selectors import source_weights_reset
from apps.markets.services.store import _memory_store
from tests.integration.processes import redis_db


@pytest.fixture(autouse=True)
def fresh_price_store(settings) -> Iterator[None]:
    _memory_store.cache_clear()
    source_weights_reset()
    url = os.environ.get("REDIS_URL")
    if url:
        settings.REDIS_URL = redis_db(url, 12)
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    else:
        settings.REDIS_URL = None
    yield
    _memory_store.cache_clear()
    source_weights_reset()
