"""Per-person limits on the chat socket (chat/limits.py), through the full ASGI application."""

import threading

import pytest

from chat import limits
from chat.tests.conftest import Client

pytestmark = [pytest.mark.django_db(transaction=True)]

MISSING = 999_999  # a conversation that does not exist: refused by the database, after the limits


@pytest.fixture(autouse=True)
def _fresh_counts():
    limits.reset()
    yield
    limits.reset()


def send(conversation=None, content="Hi", **options):
    return {"type": "send", "conversation": conversation, "content": content,
            "options": {"max_tokens": 2, "seed": 1, **options}}


async def test_a_request_past_the_rate_per_minute_is_refused_with_rate_limited(ws, settings):
    settings.LLMSITE_RATE_PER_MINUTE = 2
    for _ in range(2):
        await ws.send(send(conversation=MISSING))
        assert (await ws.until("error"))["code"] == "not_found"
    await ws.send({"type": "regenerate", "message": MISSING})
    error = await ws.until("error")
    assert error["code"] == "rate_limited" and "at most 2 a minute" in error["message"]


async def test_the_rate_is_per_person(ws, login, settings):
    settings.LLMSITE_RATE_PER_MINUTE = 1
    await ws.send(send(conversation=MISSING))
    await ws.until("error")
    _user, cookie = await login("bob")
    bob = Client(cookie)
    assert (await bob.connect())[0]
    try:
        await bob.send(send(conversation=MISSING))
        assert (await bob.until("error"))["code"] == "not_found", "alice's requests do not count against bob"
    finally:
        await bob.close()


def test_the_rate_window_slides_over_one_minute(settings):
    settings.LLMSITE_RATE_PER_MINUTE = 2
    limits.admit(7, now=100.0).cancel()
    limits.admit(7, now=130.0).cancel()
    with pytest.raises(limits.LimitExceeded) as refused:
        limits.admit(7, now=159.0)
    assert refused.value.code == "rate_limited" and "Try again in 1 s" in refused.value.message
    limits.admit(7, now=160.5)  # the first request is more than a minute old


@pytest.mark.model
async def test_a_reply_past_the_queued_limit_is_refused_until_one_ends(ws, settings):
    settings.LLMSITE_MAX_QUEUED_PER_USER = 1
    await ws.send(send(content="Tell me a long story.", max_tokens=300))
    first = await ws.until("accepted")
    await ws.send(send(content="And another one."))
    error = await ws.until("error")
    assert error["code"] == "too_many_queued" and "at most 1" in error["message"]
    await ws.send({"type": "stop", "message": first["message"]})
    await ws.until("done")
    await ws.send(send(content="Now?"))
    await ws.until("accepted")
    assert (await ws.until("done"))["status"] == "complete"


async def test_a_refused_request_leaves_its_slot_free(ws, settings):
    settings.LLMSITE_MAX_QUEUED_PER_USER = 1
    for _ in range(3):  # each is refused by the database: none holds the only slot
        await ws.send({"type": "edit", "message": MISSING, "content": "changed"})
        assert (await ws.until("error"))["code"] == "not_found"


async def test_a_socket_past_the_connection_limit_is_refused_with_4429(login, settings):
    settings.LLMSITE_MAX_CONNECTIONS_PER_USER = 2
    _user, cookie = await login("carol")
    sockets = [Client(cookie) for _ in range(3)]
    try:
        assert (await sockets[0].connect())[0] and (await sockets[1].connect())[0]
        assert await sockets[2].connect() == (False, limits.CLOSE_TOO_MANY_CONNECTIONS)
        await sockets[0].close()
        again = Client(cookie)
        assert (await again.connect())[0], "closing a socket frees its place"
        sockets[0] = again
    finally:
        for socket in (sockets[0], sockets[1]):
            await socket.close()


async def test_a_message_over_the_length_limit_is_refused(ws, settings):
    settings.LLMSITE_MAX_MESSAGE_CHARS = 10
    await ws.send(send(content="x" * 11))
    error = await ws.until("error")
    assert error["code"] == "invalid_field" and "at most 10 characters" in error["message"]


async def test_a_frame_over_the_size_limit_is_refused_and_the_socket_stays_open(ws, settings):
    settings.LLMSITE_MAX_FRAME_CHARS = 1000
    await ws.send(send(content="x" * 2000))
    error = await ws.until("error")
    assert error["code"] == "invalid_frame" and "at most 1000 characters" in error["message"]
    await ws.send({"type": "stop"})
    assert (await ws.until("error"))["code"] == "not_running", "the socket still answers"


async def test_max_tokens_over_the_cap_is_refused(ws, settings):
    settings.LLMSITE_MAX_TOKENS = 8
    await ws.send(send(max_tokens=9))
    error = await ws.until("error")
    assert error["code"] == "invalid_field" and "from 1 to 8" in error["message"]


def test_the_counts_hold_under_threads(settings):
    settings.LLMSITE_MAX_CONNECTIONS_PER_USER = 50
    opened = []

    def grab():
        for _ in range(20):
            opened.append(limits.open_connection(42))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened.count(True) == 50 and opened.count(False) == 110
