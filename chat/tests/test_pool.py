"""The web side's view of remote workers (chat/worker/pool.py), without Redis: what it does with what
workers announce. tests/test_redis_workers.py runs the whole thing against a real redis-server."""

import time

import pytest

from chat.worker.manager import Job
from chat.worker.pool import WorkerPool


def announcement(name, *, instance="a", model="m.gguf", state="ready", jobs=(), queue_length=0):
    return {"type": "llm.announce", "worker": {
        "name": name, "instance": instance, "channel": f"llmworker.x!{name}", "model_file": model, "state": state,
        "progress": 1.0, "error": None, "queue_length": queue_length, "busy": bool(jobs), "jobs": list(jobs),
        "served": 0,
    }}


@pytest.fixture
def pool(monkeypatch, settings):
    settings.LLMSITE_WORKER_TIMEOUT_MS = 2000
    settings.LLMSITE_WORKER_ANNOUNCE_MS = 300
    monkeypatch.setattr(WorkerPool, "start", lambda self: None)  # no Redis here
    pool = WorkerPool()
    pool.sent = []
    monkeypatch.setattr(pool, "_post", lambda channel, message: pool.sent.append((channel, message)))
    return pool


def assigned_job(pool, message_id, worker, *, sent_ago=0.0) -> Job:
    """A reply sent to `worker`; what the pool hands it is kept in `job.delivered` (no event loop needed:
    the session's browser tests hold the main thread's)."""
    job = Job(message_id=message_id, messages=[], options={}, loop=None)
    job.delivered = []
    job.deliver = job.delivered.append
    pool._jobs[message_id] = job
    pool._assigned[message_id] = (worker, "a", time.monotonic() - sent_ago)
    return job


def test_it_picks_the_least_busy_live_worker_serving_the_model(pool):
    for message in (announcement("w1"), announcement("w2"), announcement("w3", model="other.gguf"),
                    announcement("w4", state="error")):
        pool._on_message(message)
    pool._assigned = {1: ("w1", "a", time.monotonic())}
    assert pool._pick("m.gguf")["name"] == "w2"
    assert pool._pick("other.gguf")["name"] == "w3"
    assert pool._pick("missing.gguf") is None
    assert pool._default_model() == "m.gguf"  # served by two live workers
    assert [w["name"] for w in pool.status()["workers"]] == ["w1", "w2", "w3", "w4"]


@pytest.mark.parametrize("message", [
    {"type": "llm.announce", "worker": "not a dict"},
    {"type": "llm.announce", "worker": {"name": 5, "channel": "x"}},
    {"type": "llm.announce", "worker": {"name": "w", "channel": None}},
    {"type": "llm.event", "name": "w", "instance": "a", "event": ["not", "a", "dict"]},
    {"type": "llm.event", "name": "w", "instance": "a", "event": {"ev": "token", "job": 999, "text": "x"}},
    {"type": "llm.leave", "name": "nobody"},
    {"type": "something else"},
    {},
])
def test_it_ignores_malformed_and_unknown_messages(pool, message):
    pool._on_message(message)
    assert pool.workers() == []


def test_a_worker_that_returns_as_a_new_instance_ends_the_replies_it_held(pool):
    pool._on_message(announcement("w1"))
    job = assigned_job(pool, 7, "w1")
    pool._on_message(announcement("w1", instance="b"))
    (event,) = job.delivered
    assert event["ev"] == "failed" and event["code"] == "worker_lost" and "restarted" in event["message"]
    assert 7 not in pool._assigned


def test_a_reply_the_worker_no_longer_lists_is_ended(pool):
    pool._on_message(announcement("w1", jobs=[7]))
    job = assigned_job(pool, 7, "w1", sent_ago=5)
    pool._on_message(announcement("w1", jobs=[7]))
    assert job.delivered == []
    pool._on_message(announcement("w1", jobs=[]))
    (event,) = job.delivered
    assert event["code"] == "worker_lost"


def test_a_silent_worker_is_gone_after_the_timeout_and_its_replies_end(pool):
    pool._on_message(announcement("w1", jobs=[7]))
    job = assigned_job(pool, 7, "w1")
    pool._sweep(time.monotonic() + 1)
    assert job.delivered == [] and pool.workers()
    pool._sweep(time.monotonic() + 3)
    (event,) = job.delivered
    assert event["code"] == "worker_lost" and "not heard from for 2 s" in event["message"]
    assert pool.workers() == []
    assert pool.status()["error_code"] == "no_worker"


def test_events_from_another_worker_than_the_one_assigned_are_dropped(pool):
    pool._on_message(announcement("w1"))
    pool._on_message(announcement("w2"))
    job = assigned_job(pool, 7, "w1")
    pool._on_message({"type": "llm.event", "name": "w2", "instance": "a", "event": {"ev": "token", "job": 7,
                                                                                     "text": "spoof"}})
    assert job.delivered == []
    pool._on_message({"type": "llm.event", "name": "w1", "instance": "a", "event": {"ev": "token", "job": 7,
                                                                                     "text": "real"}})
    assert [event["text"] for event in job.delivered] == ["real"]


def test_loading_and_unloading_from_the_web_side_say_what_to_do_instead(pool):
    with pytest.raises(ValueError, match="manage.py llmworker --model x.gguf"):
        pool.load("x.gguf", n_ctx=4096)
    with pytest.raises(ValueError, match="stop a worker on its own machine"):
        pool.unload()


def test_asking_for_a_model_to_be_started_only_starts_listening(pool):
    pool.ensure_started(after_unload=True, load={"file_name": "m.gguf"})  # the consumer's call, as for the manager
    assert pool.workers() == []
