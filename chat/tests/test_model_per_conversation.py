"""A model per conversation, through the socket, with the site's own worker and two real models.

A conversation is written by the model chosen when it starts and keeps it; the worker loads the model a
waiting reply needs after the replies in progress finish, and the waiting reply hears the load's progress;
a pinned model is never swapped out.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.tests.conftest import Client
from chat.worker import get_manager
from tests.model_files import two_models

pytestmark = [pytest.mark.model, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def models(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    first, second = two_models(settings.MODELS_DIR)
    yield first, second
    manager = get_manager()
    manager.pin(None)
    manager.unload()  # the next test starts from the default model, whatever this one left loaded


async def person(login, name):
    _user, cookie = await login(name)
    socket = Client(cookie)
    connected, _ = await socket.connect()
    assert connected
    return socket


def ask(text, conversation=None, model=None, **options):
    frame = {"type": "send", "conversation": conversation, "content": text,
             "options": {"max_tokens": 12, "temperature": 0, **options}}
    if model is not None:
        frame["model"] = model
    return frame


async def reply_of(socket, frame, timeout=240):
    """Send; (accepted frame, done frame, the reply's text)."""
    await socket.send(frame)
    accepted = await socket.until("accepted", "error", timeout=timeout)
    assert accepted["type"] == "accepted", accepted
    done = await socket.until("done", "error", timeout=timeout)
    text = "".join(f["text"] for f in socket.frames if f["type"] == "token" and f["message"] == accepted["message"])
    return accepted, done, text


@database_sync_to_async
def stored_model(message_id):
    from chat.models import Message

    return Message.objects.get(id=message_id).model_file


async def test_a_second_person_chooses_the_other_model_and_gets_replies_from_it(login, models):
    first, second = models
    alice, bob = await person(login, "alice"), await person(login, "bob")
    try:
        assert set(get_manager().available_models()) == {first, second}
        accepted, done, text = await reply_of(alice, ask("Name a colour.", model=first))
        assert accepted["model"] == first and done["status"] == "complete" and text.strip()
        assert await stored_model(accepted["message"]) == first

        bob_accepted, bob_done, bob_text = await reply_of(bob, ask("Name a fruit.", model=second))
        assert bob_accepted["model"] == second
        assert bob_done["status"] == "complete" and bob_done["stats"]["tokens"] > 0 and bob_text.strip()
        loading = [f for f in bob.of_type("queued") if f.get("model") == second]
        assert loading and all(0 <= f["progress"] <= 1 for f in loading), "the one who waits sees the load"
        assert await stored_model(bob_accepted["message"]) == second
        assert get_manager().status()["model_file"] == second

        # Alice's conversation keeps its model: her follow-up is written by the first one again.
        follow_up, done, text = await reply_of(alice, ask("And another?", accepted["conversation"]))
        assert follow_up["model"] == first and done["status"] == "complete" and text.strip()
        assert await stored_model(follow_up["message"]) == first
        # Bob's does not change model either (he sends no model; a model sent for a begun conversation is ignored).
        follow_up, done, _text = await reply_of(bob, ask("One more.", bob_accepted["conversation"], model=first))
        assert follow_up["model"] == second and done["status"] == "complete"
    finally:
        await alice.close()
        await bob.close()


async def test_the_swap_waits_for_the_replies_in_progress_to_finish(login, models):
    first, second = models
    alice, bob = await person(login, "alice"), await person(login, "bob")
    try:
        await reply_of(alice, ask("Hi.", model=first, max_tokens=2))  # the first model is loaded and idle
        await alice.send(ask("Write a long story about a lighthouse.", model=first, max_tokens=64, temperature=0.7,
                             seed=7))
        await alice.until("token", timeout=240)
        await bob.send(ask("Name a fruit.", model=second))
        bob_first = asyncio.ensure_future(bob.until("token", "error", timeout=240))
        alice_done = await alice.until("done", "error", timeout=240)
        assert alice_done["type"] == "done" and alice_done["status"] == "complete", "not cut short by the swap"
        assert alice_done["stats"]["tokens"] > 1
        assert not bob_first.done(), "the other model is loaded only after the reply in progress finished"
        assert (await bob_first)["type"] == "token"
        assert (await bob.until("done", timeout=240))["status"] == "complete"
    finally:
        await alice.close()
        await bob.close()


async def test_a_pinned_model_is_not_swapped_out(login, models):
    first, second = models
    alice, bob = await person(login, "alice"), await person(login, "bob")
    try:
        accepted, _done, _text = await reply_of(bob, ask("Name a fruit.", model=second, max_tokens=2))
        await reply_of(alice, ask("Name a colour.", model=first, max_tokens=2))
        get_manager().pin(first)
        assert get_manager().available_models() == [first]
        await bob.send(ask("Another fruit?", accepted["conversation"]))
        error = await bob.until("error", "done", timeout=120)
        assert error["type"] == "error" and error["code"] == "model_pinned", error
        assert first in error["message"] and second in error["message"]
        await bob.send(ask("Name a fruit.", model=second))  # a new conversation cannot choose it either
        refused = await bob.until("error", "accepted")
        assert refused["type"] == "error" and refused["code"] == "unknown_model", refused
        status = get_manager().status()
        assert status["model_file"] == first and status["pinned"] == first and status["state"] == "ready"
        _accepted, done, _text = await reply_of(alice, ask("And another?", model=first, max_tokens=2))
        assert done["status"] == "complete"
    finally:
        await alice.close()
        await bob.close()
