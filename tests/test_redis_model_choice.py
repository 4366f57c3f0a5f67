"""A model per conversation with Redis workers: a real redis-server, the site, two `manage.py llmworker`
processes with their own models folders (as on two machines) and two real models.

w1 serves SmolLM2 and is pinned (`--pin`); w2 serves the second model from a folder that has both. A person
chooses among the models the workers serve or can load; each reply goes to a worker with a free slot for
its model, a follow-up to the worker holding the conversation's KV cache; when w1 stops, w2 loads SmolLM2
for a SmolLM2 conversation instead of refusing it.
"""

import pytest

from tests.model_files import two_models
from tests.test_redis_workers import (
    WorkerProcess,
    eventually,
    finish,
    redis_site,  # noqa: F401 (the site served with REDIS_URL, a fixture)
    run,
    site_workers,
    wait_for_workers,
)
from tests.wsclient import Socket, session_cookies

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def model_workers(redis_site, tmp_path_factory):  # noqa: F811 (the fixture above)
    w1_folder, w2_folder = tmp_path_factory.mktemp("w1"), tmp_path_factory.mktemp("w2")
    first, second = two_models(w2_folder / "models")
    started = {
        "w1": WorkerProcess("w1", w1_folder, redis_site.env, args=("--parallel", "2", "--model", first, "--pin")),
        "w2": WorkerProcess("w2", w2_folder, redis_site.env, args=("--parallel", "2", "--model", second)),
    }
    try:
        wait_for_workers(redis_site, {"w1", "w2"})
    except Exception as exc:
        for worker in started.values():
            worker.stop()
        logs = "\n".join(f"--- {w.name}\n{w.log_path.read_text()[-3000:]}" for w in started.values())
        raise RuntimeError(f"the workers did not become ready:\n{logs}") from exc
    yield started, first, second
    for worker in started.values():
        worker.stop()


async def ask(socket, content, conversation=None, model=None):
    frame = {"type": "send", "conversation": conversation, "content": content,
             "options": {"max_tokens": 8, "temperature": 0}}
    if model:
        frame["model"] = model
    await socket.ws.send(frame)
    accepted = await socket.until("accepted", "error")
    assert accepted["type"] == "accepted", accepted
    return accepted, await finish(socket, accepted["message"])


def test_people_choose_among_the_workers_models_and_follow_ups_go_to_the_cache(redis_site, model_workers):  # noqa: F811
    (workers, first, second) = model_workers
    cookies = session_cookies(redis_site, "rmc", 2)
    status = site_workers(redis_site)
    assert status["w1"]["pinned"] and status["w1"]["models"] == [first]
    assert set(status["w2"]["models"]) == {first, second} and not status["w2"]["pinned"]

    async def two_people():
        ana, ben = await Socket.open(redis_site.url, cookies[0]), await Socket.open(redis_site.url, cookies[1])
        try:
            ben_accepted, ben_done = await ask(ben, "Name a fruit.", model=second)
            ana_accepted, ana_done = await ask(ana, "Name a colour.", model=first)
            follow_up = await ask(ben, "And another?", ben_accepted["conversation"])
            return ben_accepted, ben_done, ana_accepted, ana_done, follow_up
        finally:
            ana.close()
            ben.close()

    ben_accepted, ben_done, ana_accepted, ana_done, (follow_up, follow_done) = run(two_people())
    assert ben_accepted["model"] == second and ben_done["type"] == "done" and ben_done["status"] == "complete"
    assert ana_accepted["model"] == first and ana_done["type"] == "done" and ana_done["status"] == "complete"
    assert follow_up["model"] == second and follow_done["status"] == "complete"
    served = eventually(lambda: (lambda w: w if w["w2"]["served"] == 2 and w["w1"]["served"] == 1 else None)(
        site_workers(redis_site)))
    assert served, site_workers(redis_site)
    # w2 holds Ben's conversation's cache and says so (the pool sends its next turn there first).
    assert ben_accepted["conversation"] in served["w2"]["conversations"]
    assert served["w2"]["slots"] == 2

    # w1 stops: the first model is still on offer, from w2's folder, and w2 loads it for Ana's follow-up.
    workers["w1"].stop()
    assert eventually(lambda: set(site_workers(redis_site)) == {"w2"}, timeout=10)

    async def follow_up_on_w2():
        socket = await Socket.open(redis_site.url, cookies[0])
        try:
            return await ask(socket, "And another colour?", ana_accepted["conversation"])
        finally:
            socket.close()

    accepted, done = run(follow_up_on_w2())
    assert accepted["model"] == first and done["type"] == "done" and done["status"] == "complete", done
    assert site_workers(redis_site)["w2"]["model_file"] == first
