"""The chat socket through the full ASGI application (llmsite.asgi.application) and the real SmolLM2 model."""

import asyncio
import os
import signal

import pytest
from channels.db import database_sync_to_async

from chat.models import Message, Status
from chat.tests.conftest import Client
from chat.worker import get_manager

pytestmark = [pytest.mark.model, pytest.mark.django_db(transaction=True)]

STORY = "Tell me a long story about a lighthouse keeper and a storm."


def send(content=STORY, conversation=None, **options):
    return {"type": "send", "conversation": conversation, "content": content,
            "options": {"max_tokens": 24, "seed": 7, "temperature": 0.7, **options}}


@database_sync_to_async
def reply_in_db(message_id):
    return Message.objects.get(id=message_id)


async def wait_until_idle(timeout=60):
    """The worker has nothing running or queued (a reply from an earlier test is not in the way)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = get_manager().status()
        if status["state"] == "ready" and not status["busy"] and not status["queue_length"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not become idle: {get_manager().status()}")


async def test_it_streams_a_reply_token_by_token_and_ends_with_done(ws):
    await ws.send(send())
    accepted = await ws.until("accepted")
    done = await ws.until("done")
    tokens = [f for f in ws.of_type("token") if f["message"] == accepted["message"]]
    assert done["message"] == accepted["message"]
    assert done["status"] == "complete"
    assert len(tokens) >= 5, "the reply arrives as many token frames, not one block"
    assert done["stats"]["tokens"] >= len(tokens) - 1
    assert done["stats"]["ttft_ms"] > 0 and done["stats"]["tokens_per_s"] > 0
    reply = await reply_in_db(accepted["message"])
    assert reply.status == Status.COMPLETE
    assert reply.content == "".join(t["text"] for t in tokens)
    assert reply.completion_tokens == done["stats"]["tokens"] and reply.decode_tokens_per_s > 0
    question = await reply_in_db(accepted["user_message"])  # the page can edit it without a reload
    assert (question.role, question.conversation_id) == ("user", accepted["conversation"])


async def test_it_records_a_measurement_for_every_reply(ws):
    from advisor.models import Measurement

    await ws.send(send(max_tokens=8))
    await ws.until("done")
    measurement = await database_sync_to_async(Measurement.objects.latest)("created_at")
    assert measurement.model_file.endswith(".gguf")
    assert measurement.quant == "Q4_1"
    assert measurement.gpu_name == "" and measurement.n_gpu_layers == 0
    assert measurement.n_layers == 31 and measurement.completion_tokens >= 1 and measurement.ttft_ms > 0


async def test_stop_ends_the_reply_as_stopped_inside_the_worker(ws):
    await ws.send(send(max_tokens=400))
    accepted = await ws.until("accepted")
    await ws.until("token")
    await ws.send({"type": "stop"})
    done = await ws.until("done")
    assert done["status"] == "stopped"
    assert done["stats"]["tokens"] < 400
    reply = await reply_in_db(accepted["message"])
    assert reply.status == Status.STOPPED and reply.completion_tokens < 400
    await wait_until_idle(5)  # the worker really stopped: it is free at once, not after 400 tokens


async def occupy_other_slots(ws, login) -> list:
    """Clients writing long replies in every worker slot but one (ws's), so the next reply waits in line."""
    await ws.send(send(max_tokens=2))  # the model is loaded: its number of slots is known
    await ws.until("done")
    await wait_until_idle()
    busy = []
    for i in range(get_manager().status()["parallel"] - 1):  # chat/tests/test_batching.py: several at once
        _user, cookie = await login(f"busy{i}")
        busy.append(Client(cookie))
        assert (await busy[-1].connect())[0]
        await busy[-1].send(send(max_tokens=400))
        await busy[-1].until("token")
    return busy


async def release_slots(busy: list) -> None:
    for client in busy:
        await client.send({"type": "stop"})
        await client.until("done")
        await client.close()


async def test_a_second_client_is_told_it_is_queued(ws, login):
    busy = await occupy_other_slots(ws, login)
    _user, cookie = await login("bob")
    second = Client(cookie)
    assert (await second.connect())[0]
    try:
        await ws.send(send(max_tokens=200))
        await ws.until("token")
        await second.send(send("Hello!", max_tokens=4))
        accepted = await second.until("accepted")
        queued = await second.until("queued")
        assert queued == {"type": "queued", "message": accepted["message"], "position": 1}
        await ws.send({"type": "stop"})
        await ws.until("done")
        done = await second.until("done")
        assert done["status"] == "complete"
    finally:
        await second.close()
        await release_slots(busy)


async def test_a_bad_frame_gets_an_error_and_the_connection_stays_usable(ws):
    await ws.send("{not json")
    assert (await ws.until("error"))["code"] == "invalid_json"
    await ws.send({"type": "dance"})
    assert (await ws.until("error"))["code"] == "unknown_type"
    await ws.send({"type": "send", "conversation": "seven", "content": "hi"})
    assert (await ws.until("error"))["code"] == "invalid_field"
    await ws.send(send(temperature=9))
    error = await ws.until("error")
    assert error["code"] == "invalid_field" and "temperature" in error["message"]
    await ws.send(send(max_tokens=4))
    assert (await ws.until("done"))["status"] == "complete"


async def test_it_answers_someone_elses_conversation_like_a_missing_one(ws, login):
    await ws.send(send(max_tokens=2))
    accepted = await ws.until("accepted")
    await ws.until("done")
    _user, cookie = await login("mallory")
    other = Client(cookie)
    assert (await other.connect())[0]
    try:
        await other.send(send(conversation=accepted["conversation"]))
        foreign = await other.until("error")
        await other.send(send(conversation=999_999))
        missing = await other.until("error")
        assert foreign == missing == {"type": "error", "code": "not_found", "message": foreign["message"]}
        await other.send({"type": "resume", "message": accepted["message"]})
        assert (await other.until("error"))["code"] == "not_found"
    finally:
        await other.close()


async def test_a_client_that_reconnects_gets_what_was_written_and_the_rest(ws, login):
    await ws.send(send(max_tokens=60))
    accepted = await ws.until("accepted")
    await ws.until("token")
    await ws.close()  # the browser goes away; the reply goes on
    again = Client(ws.cookie)
    assert (await again.connect())[0]
    try:
        await again.send({"type": "resume", "message": accepted["message"]})
        await again.until("accepted")
        done = await again.until("done")
        text = "".join(f["text"] for f in again.of_type("token"))
        reply = await reply_in_db(accepted["message"])
        assert reply.content == text and done["status"] == reply.status == Status.COMPLETE
    finally:
        await again.close()


async def test_killing_the_worker_mid_reply_gives_error_keeps_the_partial_reply_and_recovers(ws):
    await wait_until_idle()
    await ws.send(send(max_tokens=400))
    accepted = await ws.until("accepted")
    for _ in range(3):
        await ws.until("token")
    os.kill(get_manager().status()["pid"], signal.SIGKILL)
    error = await ws.until("error")
    assert error["code"] == "worker_died" and error["reply"] == accepted["message"]
    reply = await reply_in_db(accepted["message"])
    assert reply.status == Status.ERROR and reply.content, "the partial reply is kept"
    await ws.send(send(max_tokens=4, conversation=accepted["conversation"]))
    assert (await ws.until("done"))["status"] == "complete"


async def test_a_malformed_gguf_fails_to_load_with_a_clear_error_and_the_site_goes_on(ws, settings):
    from django.conf import settings as live

    bad = live.MODELS_DIR / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 12)  # a header cut short
    try:
        await wait_until_idle()
        await database_sync_to_async(get_manager().load)("broken.gguf", n_gpu_layers=0, n_ctx=512)
        while True:
            frame = await ws.until("model")
            if frame["state"] == "error":
                break
        assert frame["code"] == "model_load_failed" and "broken.gguf" in frame["error"]
        # The next message loads the configured model again and is answered.
        await ws.send(send(max_tokens=4))
        assert (await ws.until("done"))["status"] == "complete"
    finally:
        bad.unlink()


async def test_an_unauthenticated_socket_is_refused():
    anonymous = Client(cookie=None)
    connected, code = await anonymous.connect()
    assert not connected and code == 4401


@database_sync_to_async
def conversation_messages(conversation_id):
    return list(Message.objects.filter(conversation_id=conversation_id).values_list("role", "content", "status"))


@database_sync_to_async
def shown_path(conversation_id):
    from chat.models import selected_path

    return [(m.role, m.content, m.version, m.versions)
            for m in selected_path(Message.objects.filter(conversation_id=conversation_id))]


async def test_regenerate_adds_a_version_and_keeps_the_first(ws):
    await ws.send(send("Say hello.", max_tokens=4))
    first = await ws.until("accepted")
    await ws.until("done")
    await ws.send({"type": "regenerate", "message": first["message"], "options": {"max_tokens": 4, "seed": 9}})
    second = await ws.until("accepted")
    assert (await ws.until("done"))["status"] == "complete"
    assert second["conversation"] == first["conversation"] and second["message"] != first["message"]
    assert (second["version"], second["versions"]) == (2, 2)
    roles = [role for role, _content, _status in await conversation_messages(first["conversation"])]
    assert roles == ["user", "assistant", "assistant"], "both versions of the reply are kept"
    assert [(role, version, versions) for role, _c, version, versions in await shown_path(first["conversation"])] \
        == [("user", 1, 1), ("assistant", 2, 2)]


async def test_version_shows_an_earlier_reply_and_the_next_turn_follows_it(ws):
    await ws.send(send("Say hello.", max_tokens=4, seed=1))
    first = await ws.until("accepted")
    await ws.until("done")
    first_text = (await reply_in_db(first["message"])).content
    await ws.send({"type": "regenerate", "message": first["message"], "options": {"max_tokens": 4, "seed": 2}})
    second = await ws.until("accepted")
    await ws.until("done")
    await ws.send({"type": "version", "message": second["message"], "version": 1})
    path = await ws.until("path")
    assert [(m["role"], m["version"], m["versions"]) for m in path["messages"]] == [("user", 1, 1),
                                                                                 ("assistant", 1, 2)]
    assert path["messages"][1]["id"] == first["message"] and path["messages"][1]["content"] == first_text
    ws.frames.clear()
    await ws.send(send("And again.", conversation=first["conversation"], max_tokens=4))
    third = await ws.until("accepted")
    await ws.until("done")
    asked = await database_sync_to_async(lambda: Message.objects.get(id=third["user_message"]).parent_id)()
    assert asked == first["message"], "the next turn follows the version shown"
    await ws.send({"type": "version", "message": first["message"], "version": 3})
    assert (await ws.until("error"))["code"] == "not_found"


async def test_an_earlier_reply_regenerated_is_written_from_its_question_and_keeps_its_later_turns(ws):
    await ws.send(send("Name a fruit.", max_tokens=4, seed=1))
    first = await ws.until("accepted")
    await ws.until("done")
    conversation = first["conversation"]
    ws.frames.clear()
    await ws.send(send("Now tell me about its colour in a few words, please.", conversation=conversation,
                       max_tokens=4, seed=1))
    later = await ws.until("accepted")
    await ws.until("done")
    ws.frames.clear()
    await ws.send({"type": "regenerate", "message": first["message"], "options": {"max_tokens": 4, "seed": 2}})
    again = await ws.until("accepted")
    assert (await ws.until("done"))["status"] == "complete"
    assert (again["version"], again["versions"]) == (2, 2)
    old, new, last = [await reply_in_db(i) for i in (first["message"], again["message"], later["message"])]
    assert new.parent_id == old.parent_id == first["user_message"]
    # The worker's context was the conversation up to the first question, as for the first version, not the
    # whole conversation: the same prompt, token for token, and shorter than the later reply's.
    assert new.prompt_tokens == old.prompt_tokens < last.prompt_tokens
    assert [(role, version) for role, _c, version, _n in await shown_path(conversation)] == [
        ("user", 1), ("assistant", 2)]
    await ws.send({"type": "version", "message": again["message"], "version": 1})
    path = await ws.until("path")
    assert [m["id"] for m in path["messages"]] == [first["user_message"], first["message"], later["user_message"],
                                                  later["message"]], "the old version comes back with what followed it"
    ws.frames.clear()
    await ws.send({"type": "version", "message": first["message"], "version": 2})
    path = await ws.until("path")
    assert [m["id"] for m in path["messages"]] == [first["user_message"], again["message"]]


async def test_edit_adds_a_version_of_the_question_and_answers_it_afresh(ws):
    await ws.send(send("Say hello.", max_tokens=4))
    accepted = await ws.until("accepted")
    await ws.until("done")
    await ws.send({"type": "edit", "message": accepted["user_message"], "content": "Say goodbye.",
                   "options": {"max_tokens": 4}})
    edited = await ws.until("accepted")
    assert (await ws.until("done"))["status"] == "complete"
    assert edited["user_message"] != accepted["user_message"] and (edited["version"], edited["versions"]) == (2, 2)
    path = await shown_path(accepted["conversation"])
    assert [(role, content, version) for role, content, version, _ in path][0] == ("user", "Say goodbye.", 2)
    assert len(path) == 2
    assert len(await conversation_messages(accepted["conversation"])) == 4, "the first question and reply are kept"


async def test_a_reply_cut_at_max_tokens_says_so_and_continue_writes_more_of_it(ws):
    await ws.send(send("Write a long story about a cat.", max_tokens=6, seed=3))
    accepted = await ws.until("accepted")
    done = await ws.until("done")
    assert (done["status"], done["finish_reason"]) == ("complete", "length")
    before = await reply_in_db(accepted["message"])
    assert before.finish_reason == "length" and before.completion_tokens == 6
    ws.frames.clear()
    await ws.send({"type": "continue", "message": accepted["message"], "options": {"max_tokens": 8, "seed": 3}})
    again = await ws.until("accepted")
    assert again["message"] == accepted["message"] and again["continued"] == len(before.content)
    done = await ws.until("done")
    more = "".join(f["text"] for f in ws.of_type("token") if f["message"] == accepted["message"])
    after = await reply_in_db(accepted["message"])
    assert more.strip(), "the model wrote more"
    assert after.content == before.content + more, "the same reply goes on"
    assert after.completion_tokens == done["stats"]["tokens"] and 6 < after.completion_tokens <= 14
    roles = [role for role, _content, _status in await conversation_messages(accepted["conversation"])]
    assert roles == ["user", "assistant"]


async def test_continue_refuses_a_reply_being_written(ws):
    await ws.send(send(max_tokens=300))
    accepted = await ws.until("accepted")
    await ws.until("token")
    await ws.send({"type": "continue", "message": accepted["message"]})
    error = await ws.until("error")
    assert error["code"] == "not_continuable" and "still being written" in error["message"]
    await ws.send({"type": "stop"})
    await ws.until("done")


@pytest.mark.django_db(transaction=False)
async def test_a_lost_token_broadcast_is_filled_from_the_reply_itself():
    import asyncio as _asyncio

    from chat.consumers import ChatConsumer
    from chat.worker.manager import Job

    consumer = ChatConsumer()
    frames = []

    async def capture(frame):
        frames.append(frame)

    consumer.send_json = capture
    consumer.following = {5: 0}
    manager = get_manager()
    job = Job(message_id=5, messages=[], options={}, loop=_asyncio.get_running_loop(), text="Hello world")
    manager._jobs[5] = job
    try:
        await consumer.reply_token({"message": 5, "text": "Hel", "end": 3})
        await consumer.reply_token({"message": 5, "text": "Hel", "end": 3})  # a duplicate is dropped
        await consumer.reply_token({"message": 5, "text": "ld", "end": 11})  # "lo wor" was lost
        assert [f["text"] for f in frames] == ["Hel", "lo world"]
    finally:
        manager.forget(job)


async def test_a_missing_model_file_answers_the_message_with_an_error(ws, settings):
    await wait_until_idle()
    await database_sync_to_async(get_manager().unload)()
    settings.LLMSITE_MODEL = "no-such-model.gguf"
    await ws.send(send(max_tokens=4))
    accepted = await ws.until("accepted")
    error = await ws.until("error")
    assert error["code"] == "model_load_failed" and "no-such-model.gguf" in error["message"]
    assert (await reply_in_db(accepted["message"])).status == Status.ERROR
    settings.LLMSITE_MODEL = ""
    await ws.send(send(max_tokens=4))
    assert (await ws.until("done"))["status"] == "complete"


async def test_waiting_clients_see_their_queue_position_move(ws, login):
    sockets = []
    for name in ("carol", "dave"):
        _user, cookie = await login(name)
        socket = Client(cookie)
        assert (await socket.connect())[0]
        sockets.append(socket)
    second, third = sockets
    busy = await occupy_other_slots(ws, login)
    try:
        await ws.send(send(max_tokens=300))
        await ws.until("token")
        await second.send(send("Hello!", max_tokens=200))
        assert (await second.until("queued"))["position"] == 1
        await third.send(send("Hi!", max_tokens=2))
        assert (await third.until("queued"))["position"] == 2
        await ws.send({"type": "stop"})
        assert (await third.until("queued"))["position"] == 1, "the position moves when the one ahead ends"
        await second.until("token")
        await second.send({"type": "stop"})
        await second.until("done")
        assert (await third.until("done"))["status"] == "complete"
    finally:
        for socket in sockets:
            await socket.close()
        await release_slots(busy)


async def test_the_reply_is_written_to_the_database_while_it_streams(ws):
    await wait_until_idle()
    await ws.send(send(max_tokens=400))
    accepted = await ws.until("accepted")
    for _ in range(30):
        await ws.until("token")
    reply = await reply_in_db(accepted["message"])
    assert reply.status == Status.STREAMING and reply.content, "written before the reply ends"
    await ws.send({"type": "stop"})
    await ws.until("done")


async def test_resuming_a_finished_reply_gets_its_text_and_done(ws):
    await ws.send(send(max_tokens=6))
    accepted = await ws.until("accepted")
    await ws.until("done")
    await ws.send({"type": "resume", "message": accepted["message"]})
    assert (await ws.until("accepted"))["message"] == accepted["message"]
    token = await ws.until("token")
    done = await ws.until("done")
    reply = await reply_in_db(accepted["message"])
    assert token["text"] == reply.content and done["status"] == "complete"
    assert done["stats"]["tokens"] == reply.completion_tokens


async def test_a_reply_left_streaming_by_a_restart_is_resumed_as_an_error(ws):
    await ws.send(send(max_tokens=2))
    accepted = await ws.until("accepted")
    await ws.until("done")
    await database_sync_to_async(
        lambda: Message.objects.filter(id=accepted["message"]).update(status=Status.STREAMING)
    )()
    await ws.send({"type": "resume", "message": accepted["message"]})
    error = await ws.until("error")
    assert error["reply"] == accepted["message"]
    assert (await reply_in_db(accepted["message"])).status == Status.ERROR


async def test_every_frame_naming_someone_elses_id_is_answered_like_a_missing_one(ws, login):
    await wait_until_idle()
    await ws.send(send(max_tokens=60))
    accepted = await ws.until("accepted")
    question = await database_sync_to_async(
        lambda: Message.objects.get(conversation_id=accepted["conversation"], role="user").id)()
    before = await conversation_messages(accepted["conversation"])
    _user, cookie = await login("eve")
    other = Client(cookie)
    assert (await other.connect())[0]
    try:
        reply, conversation = accepted["message"], accepted["conversation"]
        frames = [  # (frame for an id, alice's id)
            (lambda i: {"type": "stop", "message": i}, reply),  # while alice's reply is being written
            (lambda i: send(conversation=i), conversation),
            (lambda i: {"type": "resume", "message": i}, reply),
            (lambda i: {"type": "regenerate", "message": i}, reply),
            (lambda i: {"type": "send", "regenerate": True, "message": i}, reply),
            (lambda i: {"type": "edit", "message": i, "content": "changed"}, question),
            (lambda i: {"type": "edit", "message": i, "content": "changed"}, reply),
        ]
        for frame, theirs in frames:
            await other.send(frame(theirs))
            foreign = await other.until("error")
            await other.send(frame(999_999))
            missing = await other.until("error")
            assert foreign == missing == {"type": "error", "code": "not_found", "message": foreign["message"]}, frame(0)
        assert (await ws.until("done"))["status"] == "complete", "eve's stop did not stop alice's reply"
        after = await conversation_messages(accepted["conversation"])
        assert [m[:2] for m in after][:1] == [m[:2] for m in before][:1] and len(after) == len(before), \
            "nothing of alice's was edited or regenerated"
    finally:
        await other.close()
