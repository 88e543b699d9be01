"""/ws/events: authentication by query token, first message or session; error frames."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from haunt.asgi import application
from haunt.services import notification_send

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_query_token_authenticates_and_receives_notifications(user, token):
    ws = await connect(f"/ws/events?token={token}")

    hello = await ws.receive_json_from()
    await database_sync_to_async(notification_send)(user=user, kind="info", title="hello there")
    frame = await ws.receive_json_from(timeout=2)

    assert hello == {"type": "authenticated", "data": {"userId": user.pk}}
    assert frame["type"] == "notification"
    assert frame["data"]["title"] == "hello there"
    await ws.disconnect()


async def test_first_message_auth(user, token):
    ws = await connect("/ws/events")

    await ws.send_json_to({"type": "auth", "token": token})

    assert (await ws.receive_json_from())["type"] == "authenticated"
    await ws.disconnect()


async def test_bad_token_in_first_message_closes_with_4401(user):
    ws = await connect("/ws/events")

    await ws.send_json_to({"type": "auth", "token": "wrong"})

    assert await ws.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_commands_before_auth_get_an_error_frame(user):
    ws = await connect("/ws/events")

    await ws.send_json_to({"type": "subscribe"})

    frame = await ws.receive_json_from()
    assert frame["data"]["code"] == "not_authenticated"
    await ws.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [("{not json", "parse_error"), ('["a list"]', "invalid"), ('{"type": "dance"}', "unknown_type")],
)
async def test_bad_messages_get_error_frames_and_the_socket_stays_open(user, token, raw, code):
    ws = await connect(f"/ws/events?token={token}")
    await ws.receive_json_from()

    await ws.send_to(text_data=raw)
    error = await ws.receive_json_from()
    await ws.send_json_to({"type": "ping"})

    assert error["type"] == "error"
    assert error["data"]["code"] == code
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_session_cookie_authenticates(user, client):
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    ws = await connect("/ws/events", headers=[(b"cookie", cookie), (b"host", b"localhost")])

    assert (await ws.receive_json_from())["type"] == "authenticated"
    await ws.disconnect()


async def test_foreign_browser_origin_is_refused(user, token):
    communicator = WebsocketCommunicator(
        application, f"/ws/events?token={token}", headers=[(b"origin", b"https://evil.example")]
    )

    connected, _ = await communicator.connect()

    assert not connected
