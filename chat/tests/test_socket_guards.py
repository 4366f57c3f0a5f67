"""What guards the chat socket, through the full ASGI application: a budget of frames per socket, connection
slots freed whatever ends a consumer, lone surrogates refused, no exception closing a socket unannounced,
sockets closed when their sign-in ends, and the Origin matched by scheme, host and port.

tests/test_socket_attacks.py makes the same attacks against a real daphne."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from chat import limits, services
from chat.consumers import CLOSE_SIGNED_OUT
from chat.models import Conversation, Message
from chat.origin import origin_allowed
from chat.protocol import ProtocolError, parse
from chat.tests.conftest import Client

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_counts():
    limits.reset()
    yield
    limits.reset()


async def closed_with(client: Client, timeout: float = 10) -> int:
    """The close code the server sent, skipping the text frames before it (kept in client.frames)."""
    while True:
        output = await client.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
        client.frames.append(json.loads(output["text"]))


async def answers(client: Client) -> bool:
    """The socket is open and answers: a `stop` with nothing to stop gets `not_running`."""
    await client.send({"type": "stop"})
    return (await client.until("error", timeout=10))["code"] == "not_running"


# --- lone surrogates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frame, field", [
    ({"type": "send", "conversation": None, "content": "hi \ud800"}, "content"),
    ({"type": "edit", "message": 1, "content": "\udfff"}, "content"),
    ({"type": "send", "content": "hi", "options": {"system": "be \udc00 nice"}}, "options.system"),
    ({"type": "send", "conversation": None, "content": "hi", "options": {"\ud800": 1}}, "options.\\ud800"),
])
def test_a_lone_surrogate_is_refused_naming_the_field(frame, field):
    with pytest.raises(ProtocolError) as refused:
        parse(json.dumps(frame))  # json.dumps writes it as the escape "\ud800", as an attacker's script does
    assert refused.value.code == "invalid_field"
    assert refused.value.message.startswith(f"`{field}` holds a lone surrogate")
    refused.value.message.encode("utf-8")  # the answer itself is valid text


def test_a_surrogate_pair_is_a_character_and_is_accepted():
    assert parse(json.dumps({"type": "send", "content": "smile \U0001f600"})).content == "smile \U0001f600"


async def test_a_lone_surrogate_in_content_or_system_gets_an_error_and_changes_nothing(ws):
    for frame in ({"type": "send", "conversation": None, "content": "\ud800"},
                  {"type": "send", "conversation": None, "content": "hi", "options": {"system": "\ud800"}}):
        await ws.send(frame)
        assert (await ws.until("error"))["code"] == "invalid_field"
        assert await answers(ws)
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    assert await database_sync_to_async(Message.objects.count)() == 0


# --- exceptions -------------------------------------------------------------------------------------------
async def test_an_exception_while_handling_a_frame_is_answered_and_the_socket_stays_open(ws, monkeypatch):
    async def broken(user, message_id):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "get_reply", broken)
    await ws.send({"type": "resume", "message": 1})
    error = await ws.until("error")
    assert error["code"] == "internal_error" and "stays open" in error["message"]
    assert await answers(ws)


# --- the frame budget and connection slots ------------------------------------------------------------------
FRAMES = [{"type": "stop"}, {"type": "resume", "message": 999_999}, "not json", {"type": "nonsense"},
          {"type": "send", "conversation": 999_999, "content": "x"},
          {"type": "edit", "message": 999_999, "content": "x"},
          {"type": "regenerate", "message": 999_999}, {"type": "send", "content": ""}]


async def open_another(username: str) -> Client:
    """A new socket for a person (a frame budget is read when a socket opens)."""
    _user, cookie = await database_sync_to_async(_cookie_of)(username)
    client = Client(cookie)
    assert (await client.connect())[0]
    return client


@pytest.mark.parametrize("flood", FRAMES, ids=lambda f: f if isinstance(f, str) else f["type"])
async def test_every_frame_type_counts_and_a_socket_past_its_budget_gets_an_error_and_is_closed(ws, settings, flood):
    settings.LLMSITE_FRAME_BURST = 12
    settings.LLMSITE_FRAMES_PER_SECOND = 0.001  # nothing comes back during the test
    settings.LLMSITE_RATE_PER_MINUTE = 10_000
    flooder = await open_another("alice")
    for _ in range(12):  # one at a time, each answered
        await flooder.send(flood)
        assert (await flooder.until("error"))["code"] != "too_many_frames"
    await flooder.send(flood)
    assert await closed_with(flooder) == limits.CLOSE_TOO_MANY_FRAMES
    error = flooder.frames[-1]
    assert error["code"] == "too_many_frames" and "bursts of 12" in error["message"]
    assert await answers(ws), "a socket opened before is not affected"
    await flooder.close()


async def test_a_backlog_of_frames_past_the_budget_closes_the_socket_at_its_first_frame(ws, settings):
    settings.LLMSITE_FRAME_BURST = 12
    flooder = await open_another("alice")
    for _ in range(40):  # sent at once, as a flood is: they wait in daphne's queue
        await flooder.communicator.send_input({"type": "websocket.receive", "text": json.dumps({"type": "stop"})})
    assert await closed_with(flooder) == limits.CLOSE_TOO_MANY_FRAMES
    assert [f["code"] for f in flooder.frames if f["type"] == "error"] == ["too_many_frames"], "none was handled"
    await flooder.close()


async def test_after_a_flood_the_persons_new_sockets_wait_out_the_cool_down(ws, settings):
    settings.LLMSITE_FRAME_BURST = 1
    settings.LLMSITE_FLOOD_COOLDOWN_S = 3600
    flooder = await open_another("alice")
    for _ in range(2):
        await flooder.send({"type": "stop"})
    assert await closed_with(flooder) == limits.CLOSE_TOO_MANY_FRAMES
    await flooder.close()
    refused = Client(flooder.cookie)
    assert not (await refused.connect())[0], "the same session is refused before the database"
    other_session = Client((await database_sync_to_async(_cookie_of)("alice"))[1])
    assert not (await other_session.connect())[0], "and the same person"
    limits.reset()  # the cool-down is over
    assert (await other_session.connect())[0]
    await other_session.close()


def _cookie_of(username: str):
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username=username)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return user, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def test_the_frame_budget_refills_at_its_rate_up_to_its_burst():
    now = [100.0]
    budget = limits.FrameBudget(rate=2, burst=3, clock=lambda: now[0])
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one frame's worth
    assert [budget.take(), budget.take()] == [True, False]
    now[0] += 60
    assert [budget.take() for _ in range(4)] == [True, True, True, False], "never more than the burst"


async def test_a_consumer_killed_without_disconnect_frees_its_connection_slot(login, settings):
    settings.LLMSITE_MAX_CONNECTIONS_PER_USER = 1
    user, cookie = await login("carol")
    first = Client(cookie)
    assert (await first.connect())[0]
    assert limits.open_connections(user.pk) == 1
    # What daphne does to a consumer still busy 10 s after its client went: cancel it, no disconnect().
    first.communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.communicator.future
    assert limits.open_connections(user.pk) == 0
    second = Client(cookie)
    assert (await second.connect())[0], "the slot is free again"
    await second.close()


async def test_a_consumer_that_crashes_frees_its_connection_slot(login, settings, monkeypatch):
    settings.LLMSITE_MAX_CONNECTIONS_PER_USER = 1
    user, cookie = await login("dave")
    client = Client(cookie)
    assert (await client.connect())[0]

    async def crash(self, message):
        raise RuntimeError("a bug in an event handler")

    monkeypatch.setattr("chat.consumers.ChatConsumer.worker_status", crash)
    from channels.layers import get_channel_layer

    from chat.worker.manager import STATUS_GROUP

    await get_channel_layer().group_send(STATUS_GROUP, {"type": "worker.status", "state": "ready"})
    with pytest.raises(RuntimeError):
        await client.communicator.future
    assert limits.open_connections(user.pk) == 0


# --- sign-in ended ------------------------------------------------------------------------------------------
async def test_deactivating_an_account_closes_its_sockets_with_an_error_first(ws, login):
    _bob, bob_cookie = await login("bob")
    bob = Client(bob_cookie)
    assert (await bob.connect())[0]
    alice = await database_sync_to_async(get_user_model().objects.get)(username="alice")
    alice.is_active = False
    await database_sync_to_async(alice.save)()  # what staff do in the admin
    assert await closed_with(ws) == CLOSE_SIGNED_OUT
    assert ws.frames[-1]["type"] == "error" and ws.frames[-1]["code"] == "account_inactive"
    assert await answers(bob), "someone else's socket stays open"
    await bob.close()


async def test_a_socket_whose_session_ended_is_closed_at_its_next_frame(ws):
    await database_sync_to_async(Session.objects.all().delete)()  # expired, or flushed by another process
    await ws.send({"type": "send", "conversation": None, "content": "Still here?"})
    assert await closed_with(ws) == CLOSE_SIGNED_OUT
    assert ws.frames[-1]["code"] == "signed_out"
    assert not [f for f in ws.frames if f["type"] == "accepted"]
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_a_socket_of_an_account_deactivated_by_an_update_is_closed_at_its_next_frame(ws):
    # A queryset update() sends no signal: the check before each frame still catches it.
    await database_sync_to_async(get_user_model().objects.filter(username="alice").update)(is_active=False)
    await ws.send({"type": "resume", "message": 1})
    assert await closed_with(ws) == CLOSE_SIGNED_OUT
    assert ws.frames[-1]["code"] == "signed_out"


# --- origin -------------------------------------------------------------------------------------------------
def scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> dict:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize("origin, host, scheme", [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
    ("HTTP://LOCALHOST:8000", "localhost:8000", "ws"),
    ("https://localhost", "localhost:443", "wss"),
    ("http://localhost", "localhost", "ws"),
])
def test_the_sites_own_origin_may_open_a_socket(origin, host, scheme):
    assert origin_allowed(scope(origin, host, scheme))


@pytest.mark.parametrize("origin, host, scheme", [
    ("http://127.0.0.1:9999", "127.0.0.1:8000", "ws"),  # another port of the same machine
    ("https://127.0.0.1:8000", "127.0.0.1:8000", "ws"),  # another scheme
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "wss"),
    ("http://localhost:8000", "127.0.0.1:8000", "ws"),  # another host name, though both are allowed hosts
    ("null", "127.0.0.1:8000", "ws"),
    (None, "127.0.0.1:8000", "ws"),
    ("http://evil.example:8000", "evil.example:8000", "ws"),  # a Host the site does not answer to
    ("http://127.0.0.1:8000/path", "127.0.0.1:8000", "ws"),
    ("http://127.0.0.1:notaport", "127.0.0.1:8000", "ws"),
])
def test_any_other_origin_is_refused(origin, host, scheme):
    assert not origin_allowed(scope(origin, host, scheme))


def test_csrf_trusted_origins_may_open_a_socket(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://llm.example.lan", "https://*.office.lan"]
    assert origin_allowed(scope("https://llm.example.lan", "127.0.0.1:8000"))  # behind a TLS proxy
    assert origin_allowed(scope("https://a.office.lan", "127.0.0.1:8000"))
    assert not origin_allowed(scope("http://llm.example.lan", "127.0.0.1:8000"))
    assert not origin_allowed(scope("https://llm.example.lan:8443", "127.0.0.1:8000"))
    assert not origin_allowed(scope("https://office.lan.evil", "127.0.0.1:8000"))


async def test_a_page_on_another_port_cannot_open_a_socket(login):
    _user, cookie = await login("erin")
    client = Client(cookie, origin=b"http://localhost:9999")
    connected, _ = await client.connect()
    assert not connected
