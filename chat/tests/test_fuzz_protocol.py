"""Hostile input changes nothing: property-based fuzzing (hypothesis) of the chat socket's frames.

Breadth: chat.protocol.parse on its own, thousands of frames a second. Depth: one connected socket through
the full ASGI application takes a few hundred generated frames, and floods of stop and resume, and
answers each with an `error` frame of a known code; the worker lives on and another person's chat goes on.
"""

import json

import pytest
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chat import limits
from chat.models import Message
from chat.protocol import Continue, Edit, ProtocolError, Regenerate, Resume, Send, Stop, Version, parse
from chat.tests.conftest import Client
from chat.worker import get_manager

PROTOCOL_CODES = {"invalid_json", "invalid_frame", "unknown_type", "invalid_field"}
SOCKET_CODES = PROTOCOL_CODES | {"not_found", "not_running", "not_continuable", "rate_limited", "too_many_queued"}
REPLY_CODES = {"context_too_long", "generation_failed", "reply_failed"}  # a fuzzed `send` that was valid
TYPES = ["send", "stop", "resume", "regenerate", "edit", "continue", "version"]
FIELDS = ["type", "conversation", "content", "message", "options", "regenerate", "version"]
OPTIONS = ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed", "system"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-3, max_value=3)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=15)
options = st.dictionaries(st.sampled_from(OPTIONS) | st.text(max_size=6), json_values, max_size=4) | json_values
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | json_values},
    optional={"conversation": json_values | st.integers(min_value=1), "message": json_values
              | st.integers(min_value=1), "content": json_values | st.text(min_size=1, max_size=50),
              "options": options, "regenerate": json_values, "version": json_values | st.integers(min_value=1),
              "extra": json_values},
)
huge = st.builds(lambda n, c: json.dumps({"type": "send", "content": c * n}),
                 st.integers(min_value=100_001, max_value=300_000), st.sampled_from(["x", "é", "\U0001f600", " "]))
deep = st.builds(lambda n, open_, close: open_ * n + close * n,
                 st.integers(min_value=100, max_value=200_000), st.sampled_from(["[", '{"a":']),
                 st.sampled_from(["]", "}"]))
texts = (frames.map(lambda f: json.dumps(f, allow_nan=True)) | json_values.map(json.dumps) | st.text(max_size=200)
         | huge | deep)
anything = texts | st.binary(max_size=200)


def check(text):
    try:
        command = parse(text)
    except ProtocolError as error:
        assert error.code in PROTOCOL_CODES and error.message
        return
    assert isinstance(command, Send | Stop | Resume | Regenerate | Edit | Continue | Version)
    for name in ("conversation", "message"):
        value = getattr(command, name, None)
        assert value is None or (type(value) is int and value >= 1)
    if isinstance(command, Send | Edit):
        assert isinstance(command.content, str) and command.content.strip() and len(command.content) <= 100_000
    if hasattr(command, "options"):
        assert set(command.options) <= set(OPTIONS)


@FUZZ
@given(anything)
def test_any_frame_parses_or_gets_a_protocol_error_with_a_known_code(text):
    check(text)


@FUZZ
@given(frames)
def test_frames_with_wrong_missing_and_extra_fields_parse_or_get_invalid_field(frame):
    check(json.dumps(frame, allow_nan=True))


@settings(max_examples=40, deadline=None)
@given(huge | deep)
def test_huge_and_deeply_nested_frames_are_refused(text):
    with pytest.raises(ProtocolError) as error:
        parse(text)
    assert error.value.code in {"invalid_frame", "invalid_json", "invalid_field"}


def sample(strategy, count: int) -> list:
    """`count` values hypothesis generates (with its edge cases), to send over one socket."""
    found = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found


SENTINEL = {"type": "sentinel"}  # answered `unknown_type`: every frame sent before it has been answered


async def answers_until_sentinel(client: Client, started: set | None = None) -> list[dict]:
    """The error frames answering what was sent before; replies that started are added to `started`."""
    await client.send(SENTINEL)
    errors = []
    while True:
        frame = await client.until("error", "accepted")
        if frame["type"] == "accepted":
            if started is not None:
                started.add(frame["message"])
        elif frame["code"] == "unknown_type" and "sentinel" in frame["message"]:
            return errors
        elif "reply" not in frame or frame["code"] not in REPLY_CODES:
            errors.append(frame)


@pytest.fixture
def unlimited_frames(settings):
    """Before `ws` opens: this test sends hundreds of frames on one socket, past the default frame budget
    (test_socket_guards.py and tests/test_socket_attacks.py test the budget)."""
    settings.LLMSITE_FRAME_BURST = 1_000_000


@pytest.mark.model
@pytest.mark.django_db(transaction=True)
async def test_one_socket_survives_hostile_frames_and_others_chat_on(unlimited_frames, ws, login, settings):
    settings.LLMSITE_RATE_PER_MINUTE = 10_000
    settings.LLMSITE_MAX_QUEUED_PER_USER = 1  # a fuzzed frame that is a valid `send` starts one reply at most
    started = set()
    try:
        while (await ws.until("model"))["state"] != "ready" and get_manager().status()["state"] != "ready":
            pass
        pid = get_manager().status()["pid"]
        assert pid
        for value in sample(anything, 250):
            key = "bytes" if isinstance(value, bytes) else "text"  # empty frames too: send_to refuses those
            await ws.communicator.send_input({"type": "websocket.receive", key: value})
            for error in await answers_until_sentinel(ws, started):
                assert error["code"] in SOCKET_CODES, error
        for message_id in started:
            await ws.send({"type": "stop", "message": message_id})
        # Floods of stop and resume, for ids that are not this person's, while someone else's reply streams.
        _user, cookie = await login("bystander")
        other = Client(cookie)
        assert (await other.connect())[0]
        try:
            await other.send({"type": "send", "conversation": None, "content": "Say hello.",
                              "options": {"max_tokens": 16, "seed": 3}})
            accepted = await other.until("accepted")
            for message_id in range(1, 151):
                await ws.send({"type": "stop", "message": message_id})
                await ws.send({"type": "resume", "message": message_id})
                await ws.send({"type": "stop"})
            for error in await answers_until_sentinel(ws):
                assert error["code"] in {"not_found", "not_running"}, error
            done = await other.until("done")
            assert done["message"] == accepted["message"] and done["status"] == "complete"
            assert get_manager().status()["pid"] == pid, "the worker never died"
            reply = await database_sync_to_async(Message.objects.get)(id=accepted["message"])
            assert reply.status == "complete" and reply.content
        finally:
            await other.close()
    finally:
        limits.reset()
