"""Fixtures of the sync transport tests: a peer with its secret, signed in-process clients, and
stand-ins for functions of the data plane (apps.sync.services)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.test import APIClient

from apps.sync import services as data_plane
from apps.sync.clients import PeerClient, PeerEndpoint
from apps.sync.models import Peer
from apps.sync.transport import feed_notifier
from tests.conftest import make_user

SECRET = "s3cret-for-tests-0123456789abcdef0123456789"


def make_peer(name: str = "seoul", *, key_id: str | None = None, secret: str = SECRET, **fields: Any) -> Peer:
    peer = Peer(name=name, url=f"http://{name}.test", key_id=key_id or f"key-{name}", **fields)
    peer.secret = secret
    peer.save()
    return peer


@pytest.fixture
def peer(db: None) -> Peer:
    return make_peer()


@pytest.fixture(autouse=True)
def _feed_listener_stopped() -> Iterator[None]:
    """A long-poll starts the LISTEN connection; close it, or the test database cannot be dropped."""
    yield
    feed_notifier.stop_listening()


@pytest.fixture
def wsgi_transport() -> Iterator[httpx.WSGITransport]:
    """This node's Django app as an httpx transport: requests run in-process, in the test's
    transaction. Like Django's test client, keep the request signals from closing the connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield httpx.WSGITransport(app=WSGIHandler())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def peer_client(peer: Peer, wsgi_transport: httpx.WSGITransport) -> Iterator[PeerClient]:
    """The peer calling this node's endpoints, through Django in-process (no sockets)."""
    endpoint = PeerEndpoint(name=peer.name, url="http://testserver", key_id=peer.key_id, secret=SECRET)
    client = PeerClient(endpoint, transport=wsgi_transport)
    yield client
    client.close()


@pytest.fixture
def staff(db: None) -> User:
    user = make_user("operator")
    user.is_staff = True
    user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def staff_client(staff: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


PlaneDouble = Callable[..., None]


@pytest.fixture
def plane_double(monkeypatch: pytest.MonkeyPatch) -> PlaneDouble:
    """Stand in for data-plane functions of apps.sync.services (feed_page, batch_apply, ...).

    `only_if_missing=True` keeps the real function once the data plane has it.
    """

    def install(name: str, value: Any, *, only_if_missing: bool = False) -> None:
        if only_if_missing and hasattr(data_plane, name):
            return
        monkeypatch.setattr(data_plane, name, value, raising=False)

    return install
