"""GET /api/sync/feed: signed zstd pages, at once when rows exist, long-polled otherwise."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.sync.auth import request_sign, response_verify
from apps.sync.clients import PeerClient, PeerEndpoint, PeerUnavailable
from apps.sync.models import Peer
from apps.sync.transport import body_decode, body_encode, feed_notifier
from tests.conftest import skip_or_fail
from tests.sync.databases import raw_connect
from tests.sync.transport.conftest import SECRET, PlaneDouble
from tests.sync.transport.fakes import FakeFeed, fake_page_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed(plane_double: PlaneDouble) -> FakeFeed:
    fake = FakeFeed(node="osaka")
    plane_double("feed_page", fake.feed_page)
    plane_double("page_verify", fake_page_verify)
    return fake


def test_feed_answers_at_once_when_rows_exist(feed: FakeFeed, peer_client: PeerClient, peer: Peer):
    feed.write(data={"qty": "1"})
    feed.write(data={"qty": "2"})

    started = time.monotonic()
    response = peer_client.feed(lane=0, since=0, limit=100, wait=10)
    elapsed = time.monotonic() - started

    assert elapsed < 2
    page = response.body
    assert [row["seq"] for row in page["rows"]] == [1, 2]
    assert page["next"] == 2
    fake_page_verify(page)  # checksums survive the trip
    assert feed.calls[-1] == {"lane": 0, "since": 0, "limit": 100, "exclude_origin": peer.name}


def test_the_callers_own_rows_are_left_out_but_the_cursor_moves_past_them(
    feed: FakeFeed, peer_client: PeerClient, peer: Peer
):
    feed.write(origin=peer.name)
    feed.write(origin="osaka")

    page = peer_client.feed(lane=0, since=0, limit=100, wait=0).body

    assert [row["origin"] for row in page["rows"]] == ["osaka"]
    assert page["next"] == 2


def test_long_poll_returns_early_when_a_row_is_written(feed: FakeFeed, peer_client: PeerClient):
    def write_later() -> None:
        time.sleep(0.4)
        feed.write(data={"qty": "late"})

    writer = threading.Thread(target=write_later)
    started = time.monotonic()
    writer.start()
    page = peer_client.feed(lane=0, since=0, limit=100, wait=10).body
    elapsed = time.monotonic() - started
    writer.join()

    assert [row["data"]["qty"] for row in page["rows"]] == ["late"]
    assert 0.35 <= elapsed < 2.5  # waited for the write, not for the 10 s long-poll


def test_long_poll_wakes_on_notify_from_the_writing_transaction(feed: FakeFeed, peer_client: PeerClient):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only")
    feed_notifier.ensure_listening()
    deadline = time.monotonic() + 5
    while not feed_notifier.listening and time.monotonic() < deadline:
        time.sleep(0.02)
    if not feed_notifier.listening:
        skip_or_fail("the LISTEN connection did not come up")
    params = connection.settings_dict

    def write_and_notify() -> None:
        time.sleep(0.3)
        feed.write(data={"qty": "notified"})
        with raw_connect(params) as conn:
            conn.execute("NOTIFY haunt_sync_feed, '0'")

    writer = threading.Thread(target=write_and_notify)
    started = time.monotonic()
    writer.start()
    page = peer_client.feed(lane=0, since=0, limit=100, wait=10).body
    elapsed = time.monotonic() - started
    writer.join()

    assert [row["data"]["qty"] for row in page["rows"]] == ["notified"]
    assert elapsed < 0.9  # the NOTIFY woke it: the fallback poll is 1 s when listening


def test_long_poll_gives_up_after_wait_with_an_empty_page(feed: FakeFeed, peer_client: PeerClient):
    started = time.monotonic()
    page = peer_client.feed(lane=0, since=0, limit=100, wait=0.3).body
    elapsed = time.monotonic() - started

    assert page["rows"] == [] and page["next"] == 0
    assert 0.3 <= elapsed < 2


def test_feed_body_is_zstd_json_with_a_signed_answer(feed: FakeFeed, peer: Peer, api_client: APIClient):
    feed.write()
    path = "/api/sync/feed?lane=0&since=0&limit=10"
    headers = request_sign(key_id=peer.key_id, secret=SECRET, method="GET", path=path, body=b"")

    response = api_client.get(path, headers=headers)

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "zstd"
    response_verify(
        secret=SECRET,
        status=200,
        request_nonce=headers["X-Haunt-Nonce"],
        headers=response.headers,
        body=response.content,
    )
    assert body_decode(response.content, content_encoding="zstd")["rows"][0]["seq"] == 1
    assert int(response.headers["X-Haunt-Time"]) == pytest.approx(time.time() * 1000, abs=5000)


def test_feed_parameters_are_validated(feed: FakeFeed, peer: Peer, api_client: APIClient):
    def get(path: str):
        headers = request_sign(key_id=peer.key_id, secret=SECRET, method="GET", path=path, body=b"")
        return api_client.get(path, headers=headers)

    negative = get("/api/sync/feed?lane=-1&since=0")
    unknown = get("/api/sync/feed?lane=0&since=0&bogus=1")

    assert (negative.status_code, negative.json()["error"]["code"]) == (400, "invalid")
    assert set(negative.json()["error"]["detail"]) == {"lane"}
    assert set(unknown.json()["error"]["detail"]) == {"bogus"}
    assert feed.calls == []


def test_the_client_rejects_an_answer_whose_body_was_altered(
    feed: FakeFeed, peer: Peer, wsgi_transport: httpx.WSGITransport
):
    feed.write()

    def tamper(request: httpx.Request) -> httpx.Response:
        real = wsgi_transport.handle_request(request)
        real.read()
        forged = body_encode({"rows": [], "next": 10**9})
        return httpx.Response(real.status_code, headers=real.headers, stream=httpx.ByteStream(forged))

    endpoint = PeerEndpoint(name=peer.name, url="http://testserver", key_id=peer.key_id, secret=SECRET)
    client = PeerClient(endpoint, transport=httpx.MockTransport(tamper))

    with pytest.raises(PeerUnavailable) as exc:
        client.feed(lane=0, since=0, limit=10, wait=0)

    assert exc.value.code == "bad_signature"
    client.close()


def test_an_unreachable_peer_is_a_transient_error(db: None):
    endpoint = PeerEndpoint(name="gone", url="http://127.0.0.1:9", key_id="k", secret=SECRET)
    client = PeerClient(endpoint, connect_timeout_s=0.5)

    with pytest.raises(PeerUnavailable) as exc:
        client.ack(acks=[{"lane": 0, "seq": 1}])

    assert exc.value.transient and exc.value.code == "unreachable"
    client.close()


class _HeldTransport(httpx.HTTPTransport):
    """Holds each request after httpx's closed-client check until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        self.release.wait(5)
        return super().handle_request(request)


def test_closing_again_after_the_threads_stop_closes_a_connection_opened_during_the_first_close(db: None):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NoContent(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open in the pool

        def do_POST(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NoContent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = _HeldTransport()
    endpoint = PeerEndpoint(
        name="held", url=f"http://127.0.0.1:{server.server_port}", key_id="k", secret=SECRET
    )
    client = PeerClient(endpoint, transport=transport)
    errors: list[Exception] = []

    def ack() -> None:
        try:
            client.ack(acks=[{"lane": 0, "seq": 1}])
        except Exception as exc:  # an unsigned 204 is refused; the connection stays in the pool
            errors.append(exc)

    thread = threading.Thread(target=ack)
    thread.start()
    try:
        assert transport.entered.wait(5)
        client.close()  # the worker's shutdown, while the request is past the client's check
        transport.release.set()
        thread.join(5)
        assert errors and transport._pool.connections  # opened after the first close

        client.close()  # once the thread has stopped

        assert transport._pool.connections == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_write_wakes_only_the_waiters_of_its_lane():
    from apps.sync.transport import FeedNotifier

    notifier = FeedNotifier()
    lane0, lane3 = notifier.generation(0), notifier.generation(3)

    notifier.notify(3)

    assert not notifier.wait(0, lane0, 0.05)
    assert notifier.wait(3, lane3, 0.05)
    lane0 = notifier.generation(0)
    notifier.notify(None)  # a notification naming no lane wakes every lane
    assert notifier.wait(0, lane0, 0.05)


def test_echoes_are_stepped_over_while_waiting_for_rows_the_caller_lacks(
    feed: FakeFeed, peer_client: PeerClient, peer: Peer, plane_double: PlaneDouble
):
    plane_double("page_rebase", lambda page, *, since: {**page, "since": since})
    feed.write(origin=peer.name)
    feed.write(origin=peer.name)

    def write_later() -> None:
        time.sleep(0.3)
        feed.write(data={"qty": "theirs"})
        feed_notifier.notify(0)

    writer = threading.Thread(target=write_later)
    started = time.monotonic()
    writer.start()
    page = peer_client.feed(lane=0, since=0, limit=100, wait=10).body
    elapsed = time.monotonic() - started
    writer.join()

    assert [row["data"]["qty"] for row in page["rows"]] == ["theirs"]
    assert (page["since"], page["next"]) == (0, 3)  # one page over the echoes and the new row
    assert 0.25 <= elapsed < 2.5
    assert [call["since"] for call in feed.calls][:2] == [0, 2]
