"""Several replies at once from one worker (chat/worker/engine.py), with the real SmolLM2 model."""

import asyncio
import os
import queue
import signal
import time

import pytest

from advisor.modelfiles import default_model_file
from chat.tests.conftest import Client
from chat.worker import get_manager
from chat.worker.transport import PipeTransport

MODEL = default_model_file()
TOPICS = ["a lighthouse", "a red fox", "the moon", "a steam train"]


def ask(topic):
    return [{"role": "user", "content": f"Write a long story about {topic}."}]


@pytest.fixture
def batched():
    """A worker process with 4 slots on a pipe; its events in a queue."""
    events, deaths = queue.Queue(), queue.Queue()
    transport = PipeTransport()
    transport.start(events.put, deaths.put)
    transport.send({"op": "load", "path": str(MODEL), "file_name": MODEL.name, "n_gpu_layers": 0, "n_ctx": 1024,
                    "flash_attn": False, "kv_type": "f16", "n_threads": 2, "parallel": 4})
    loaded = until(events, lambda e: e["ev"] in ("loaded", "load_failed"))
    assert loaded["ev"] == "loaded", loaded
    assert loaded["parallel"] == 4 and loaded["n_ctx"] == 1024
    yield transport, events, deaths
    transport.close()


def until(events, match, timeout=120.0, seen=None):
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if seen is not None:
            seen.append(event)
        if match(event):
            return event


def run_jobs(events, jobs, timeout=300.0):
    """Collect events until every job in `jobs` is done or failed; {job: (text, final event)}, all events."""
    seen, finished = [], {}
    while len(finished) < len(jobs):
        event = until(events, lambda e: e.get("job") in jobs and e["ev"] in ("done", "failed"), timeout, seen)
        finished[event["job"]] = event
    texts = {job: "".join(e["text"] for e in seen if e["ev"] == "token" and e["job"] == job) for job in jobs}
    return {job: (texts[job], finished[job]) for job in jobs}, seen


@pytest.mark.model
def test_four_replies_run_at_once_and_stopping_one_leaves_the_others_complete(batched):
    transport, events, _ = batched
    for job, topic in enumerate(TOPICS, start=1):
        transport.send({"op": "generate", "job": job, "messages": ask(topic),
                        "options": {"max_tokens": 24 if job != 2 else 400, "seed": job}})
    # Stop job 2 as soon as it has written three tokens.
    seen = []
    until(events, lambda e: e["ev"] == "token" and e["job"] == 2, seen=seen)
    until(events, lambda e: e["ev"] == "token" and e["job"] == 2, seen=seen)
    until(events, lambda e: e["ev"] == "token" and e["job"] == 2, seen=seen)
    transport.request_stop(2)
    results, rest = run_jobs(events, {1, 2, 3, 4})
    seen += rest
    first_done = min(i for i, e in enumerate(seen) if e["ev"] == "done")
    for job in (1, 2, 3, 4):
        first_token = min(i for i, e in enumerate(seen) if e["ev"] == "token" and e["job"] == job)
        assert first_token < first_done, f"reply {job} waited for another to finish"
    stopped = results[2][1]
    assert stopped["status"] == "stopped" and stopped["stats"]["tokens"] < 400
    for job in (1, 3, 4):
        text, done = results[job]
        assert done["status"] == "complete" and done["stats"]["tokens"] == 24 and text.strip(), results[job]
    # A stop is for that reply only, and the slots are free again: a fifth reply runs.
    transport.send({"op": "generate", "job": 5, "messages": ask("a kite"), "options": {"max_tokens": 8}})
    results, _ = run_jobs(events, {5})
    assert results[5][1]["status"] == "complete"


@pytest.mark.model
def test_a_batched_reply_stops_within_one_token(batched):
    transport, events, _ = batched
    transport.send({"op": "generate", "job": 60, "messages": ask("a cat"), "options": {"max_tokens": 400}})
    transport.send({"op": "generate", "job": 61, "messages": ask("a dog"), "options": {"max_tokens": 400}})
    for _ in range(3):
        until(events, lambda e: e["ev"] == "token" and e["job"] == 60)
    seen = 3
    while not events.empty():  # what is already in flight; after the stop at most one more token
        event = events.get()
        seen += event["ev"] == "token" and event["job"] == 60
    transport.request_stop(60)
    after = []
    done = until(events, lambda e: e["ev"] == "done" and e["job"] == 60, seen=after)
    assert done["status"] == "stopped"
    assert sum(e["ev"] == "token" and e["job"] == 60 for e in after) <= 1
    assert done["stats"]["tokens"] <= seen + 1
    transport.request_stop(61)
    assert until(events, lambda e: e["ev"] == "done" and e["job"] == 61)["status"] == "stopped"


@pytest.mark.model
def test_at_temperature_zero_a_batched_reply_is_the_reply_run_alone(batched):
    transport, events, _ = batched
    greedy = {"temperature": 0, "max_tokens": 32}
    for job, topic in enumerate(TOPICS, start=10):
        transport.send({"op": "generate", "job": job, "messages": ask(topic), "options": greedy})
    together, _ = run_jobs(events, set(range(10, 14)))
    alone = {}
    for job, topic in enumerate(TOPICS, start=20):
        transport.send({"op": "generate", "job": job, "messages": ask(topic), "options": greedy})
        alone.update(run_jobs(events, {job})[0])
    pairs = [(together[10 + i][0], alone[20 + i][0]) for i in range(4)]
    same = sum(a == b for a, b in pairs)
    shared = [len(os.path.commonprefix([a, b])) / max(1, len(b)) for a, b in pairs]
    print(f"batched == alone for {same} of 4 replies; shared prefix {[round(s, 2) for s in shared]}")
    # Batched matrix products add in another order than a single sequence's, so a near tie between two
    # tokens can break the other way; measured here: identical, or the same for most of the reply.
    assert same >= 3, pairs
    assert min(shared) >= 0.25, pairs


@pytest.mark.model
def test_a_follow_up_turn_evaluates_only_its_new_tokens(batched):
    transport, events, _ = batched
    first = ask("a lighthouse")
    transport.send({"op": "generate", "job": 30, "messages": first, "conversation": 7,
                    "options": {"max_tokens": 16, "seed": 1}})
    (text, done), = run_jobs(events, {30})[0].values()
    assert done["stats"]["prompt_cached"] == 0
    assert done["stats"]["prompt_evaluated"] == done["stats"]["prompt_tokens"]
    # Another conversation in between, on the other slots and on this one's if it takes it.
    for job, topic in enumerate(TOPICS[1:], start=31):
        transport.send({"op": "generate", "job": job, "messages": ask(topic), "conversation": job,
                        "options": {"max_tokens": 4}})
    run_jobs(events, {31, 32, 33})
    follow_up = [*first, {"role": "assistant", "content": text}, {"role": "user", "content": "What happened next?"}]
    transport.send({"op": "generate", "job": 40, "messages": follow_up, "conversation": 7,
                    "options": {"max_tokens": 4}})
    (_, again), = run_jobs(events, {40})[0].values()
    stats = again["stats"]
    assert stats["prompt_cached"] + stats["prompt_evaluated"] == stats["prompt_tokens"]
    # Only the new turn (its user message and the template's few tokens around it) is evaluated.
    assert stats["prompt_cached"] >= done["stats"]["prompt_tokens"] + done["stats"]["tokens"] - 2, stats
    assert stats["prompt_evaluated"] <= 20, stats


# --- through the site (the ASGI application, the manager, the worker) -------------------------------------
async def wait_until_idle(timeout=120):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = get_manager().status()
        if status["state"] == "ready" and not status["busy"] and not status["queue_length"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not become idle: {get_manager().status()}")


async def open_sockets(login, n):
    sockets = []
    for i in range(n):
        _user, cookie = await login(f"user{i}")
        socket = Client(cookie)
        connected, _ = await socket.connect()
        assert connected
        sockets.append(socket)
    return sockets


def send(topic, **options):
    return {"type": "send", "conversation": None, "content": f"Write a long story about {topic}.",
            "options": {"max_tokens": 24, "seed": 7, "temperature": 0.7, **options}}


@pytest.mark.model
@pytest.mark.django_db(transaction=True)
async def test_four_sockets_get_their_first_tokens_before_any_reply_finishes_and_a_fifth_waits(login):
    sockets = await open_sockets(login, 5)
    try:
        await sockets[0].send(send("a warm-up", max_tokens=2))  # the model loads
        await sockets[0].until("done", timeout=180)
        await wait_until_idle()
        assert get_manager().status()["parallel"] == 4
        for socket, topic in zip(sockets, TOPICS, strict=False):
            await socket.send(send(topic, max_tokens=48))
        for socket in sockets[:4]:
            await socket.until("accepted")
        await sockets[4].send(send("a kite"))
        queued = await sockets[4].until("queued", "token")
        assert queued["type"] == "queued" and queued["position"] == 1, "the fifth waits for a free slot"
        first_tokens, done = {}, {}

        async def watch(i, socket):
            # What is checked is the order of first tokens and ends, not speed: on a loaded 2-core host four
            # 48-token replies took over a minute, so the waits are long.
            await socket.until("token", timeout=240)
            first_tokens[i] = time.monotonic()
            await socket.until("done", timeout=240)
            done[i] = time.monotonic()

        await asyncio.gather(*(watch(i, s) for i, s in enumerate(sockets[:4])))
        assert max(first_tokens.values()) < min(done.values()), (first_tokens, done)
        assert (await sockets[4].until("done", timeout=240))["status"] == "complete"
    finally:
        for socket in sockets:
            await socket.close()


@pytest.mark.model
@pytest.mark.django_db(transaction=True)
async def test_killing_the_worker_mid_batch_fails_every_reply_keeps_the_text_and_the_next_works(login):
    from channels.db import database_sync_to_async

    from chat.models import Message, Status

    sockets = await open_sockets(login, 4)
    try:
        await sockets[0].send(send("a warm-up", max_tokens=2))
        await sockets[0].until("done", timeout=180)
        await wait_until_idle()
        accepted = []
        for socket, topic in zip(sockets, TOPICS, strict=True):
            await socket.send(send(topic, max_tokens=400))
            accepted.append(await socket.until("accepted"))
        for socket in sockets:
            await socket.until("token")
        os.kill(get_manager().status()["pid"], signal.SIGKILL)
        for socket, frame in zip(sockets, accepted, strict=True):
            error = await socket.until("error", "done")
            assert error["type"] == "error", error
            reply = await database_sync_to_async(Message.objects.get)(id=frame["message"])
            assert reply.status == Status.ERROR and reply.content, "what was written is kept"
        await sockets[0].send(send("a kite", max_tokens=8))
        assert (await sockets[0].until("done", timeout=180))["status"] == "complete"
    finally:
        for socket in sockets:
            await socket.close()


@pytest.mark.model
def test_a_raw_prompt_is_given_to_the_model_as_it_is_beside_chat_replies(batched):
    """options["prompt"] (/v1/completions) in the batched engine: no chat template, the text llama-cpp-python's
    own create_completion writes, while a chat reply shares the batch; a too long prompt is refused."""
    from chat.tests.test_worker import GREEDY_RAW, RAW_PROMPT, direct_completion

    transport, events, _ = batched
    transport.send({"op": "generate", "job": 70, "messages": ask("a red fox"), "options": {"max_tokens": 24}})
    transport.send({"op": "generate", "job": 71, "messages": [], "options": GREEDY_RAW})
    finished, _ = run_jobs(events, {70, 71})
    expected, prompt_tokens = direct_completion(RAW_PROMPT, 12)
    text, done = finished[71]
    assert done["ev"] == "done" and text == expected, (text, expected)
    assert done["stats"]["prompt_tokens"] == prompt_tokens and done["stats"]["tokens"] == 12
    assert finished[70][1]["ev"] == "done" and finished[70][0]
    transport.send({"op": "generate", "job": 72, "messages": [], "options": {**GREEDY_RAW, "prompt": "word " * 1200}})
    assert run_jobs(events, {72})[0][72][1]["code"] == "context_too_long"
