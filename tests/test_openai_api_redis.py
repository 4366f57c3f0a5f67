"""The OpenAI-compatible API with workers on the LAN: a real redis-server, the site with REDIS_URL, and a
`manage.py llmworker` process (two slots) with the real SmolLM2, driven by the official `openai` package. The
same queue as the chat: completions plain and streamed, a model no worker serves (503), a client that
disconnects (its reply stops in the worker and a waiting one starts), and a WebSocket chat beside an API stream."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import openai
import pytest

from tests.conftest import ROOT, RunningSite, prepare_data_dir
from tests.openai_people import api_people
from tests.test_redis_workers import run, wait_for_workers
from tests.wsclient import Socket

pytestmark = [pytest.mark.model]

QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]
LONG = [{"role": "user", "content": "Write a very long story about a dragon who learns to cook."}]


@pytest.fixture(scope="module")
def redis_api_site(redis_server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("redis-api-site")
    (data_dir / "models").mkdir()
    env = {"REDIS_URL": redis_server.url, "LLMSITE_REDIS_KEY": secrets.token_urlsafe(32),
           "LLMSITE_WORKER_ANNOUNCE_MS": "300", "LLMSITE_WORKER_TIMEOUT_MS": "2000"}
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, running.env)
    default = running.manage("shell", "-c", "from advisor.modelfiles import default_model_file\n"
                                            "print(default_model_file())").strip().splitlines()[-1]
    (data_dir / "models" / "unserved-model.gguf").symlink_to(default)
    running.start()
    running.people = api_people(running, ["r-plain", "r-holder1", "r-holder2", "r-waiter", "r-both",
                                                    "r-text"])
    running.staff_cookie = api_people(running, ["r-staff"], staff=True)["r-staff"]["cookie"]
    worker_dir = tmp_path_factory.mktemp("api-worker")
    log = open(worker_dir / "worker.log", "w")
    worker_env = {**running.env, "LLMSITE_DATA_DIR": str(worker_dir)}
    worker_env.pop("LLMSITE_MODELS_DIR", None)
    worker = subprocess.Popen([sys.executable, "manage.py", "llmworker", "--name", "apiw", "--n-ctx", "2048",
                               "--parallel", "2"], cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for_workers(running, {"apiw"})
        yield running
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()
        running.stop()


def client(site, person: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=site.url + "/v1", api_key=site.people[person]["key"], max_retries=0, timeout=300)


def test_completions_through_a_redis_worker(redis_api_site):
    api = client(redis_api_site, "r-plain")
    [model] = [m.id for m in api.models.list().data]
    plain = api.chat.completions.create(model=model, messages=QUESTION, max_tokens=16, temperature=0)
    assert plain.choices[0].message.content and 1 <= plain.usage.completion_tokens <= 16
    chunks = list(api.chat.completions.create(model=model, messages=QUESTION, max_tokens=16, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    with pytest.raises(openai.InternalServerError) as raised:
        api.chat.completions.create(model="unserved-model.gguf", messages=QUESTION)
    assert raised.value.status_code == 503 and raised.value.response.json()["error"]["code"] == "no_worker"
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="no-such-model", messages=QUESTION)


def test_text_completions_through_a_redis_worker(redis_api_site):
    """/v1/completions: the raw prompt travels to the LAN worker in the job's options and reaches its model
    without a chat template: the text llama-cpp-python's own create_completion writes for it."""
    from chat.tests.test_worker import direct_completion

    api = client(redis_api_site, "r-text")
    [model] = [m.id for m in api.models.list().data]
    prompt = "The three primary colours are"
    plain = api.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0)
    expected, prompt_tokens = direct_completion(prompt, 12)
    assert plain.choices[0].text == expected and plain.usage.prompt_tokens == prompt_tokens
    chunks = list(api.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0, stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens == 12


def test_a_disconnect_frees_the_redis_workers_slot_at_once(redis_api_site):
    model = client(redis_api_site, "r-plain").models.list().data[0].id
    streams = [client(redis_api_site, name).chat.completions.create(model=model, messages=LONG, max_tokens=2000,
                                                                    stream=True)
               for name in ("r-holder1", "r-holder2")]
    read = 0
    for chunk in streams[0]:
        read += bool(chunk.choices and chunk.choices[0].delta.content)
        if read >= 10:
            break
    next(iter(streams[1]))
    waited = {}

    def waiter():
        for chunk in client(redis_api_site, "r-waiter").chat.completions.create(model=model, messages=QUESTION,
                                                                               max_tokens=8, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                waited.setdefault("first_token_at", time.monotonic())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(2.0)
    assert "first_token_at" not in waited  # both slots are busy: it waits
    closed_at = time.monotonic()
    streams[0].close()
    thread.join(timeout=60)
    streams[1].close()
    assert waited["first_token_at"] - closed_at < 20  # long before the other 2000-token reply could end


def test_a_websocket_chat_and_an_api_stream_at_the_same_time(redis_api_site):
    person = redis_api_site.people["r-both"]
    model = client(redis_api_site, "r-both").models.list().data[0].id
    api_times = []

    def api_stream():
        for chunk in client(redis_api_site, "r-both").chat.completions.create(model=model, messages=LONG,
                                                                             max_tokens=120, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                api_times.append(time.monotonic())

    thread = threading.Thread(target=api_stream)
    thread.start()
    while not api_times and thread.is_alive():
        time.sleep(0.05)

    async def chat() -> tuple[float, str]:
        socket = await Socket.open(redis_api_site.url, person["cookie"])
        try:
            await socket.ws.send({"type": "send", "conversation": None, "content": "Say hello.",
                                  "options": {"max_tokens": 20}})
            await socket.until("accepted")
            first = await socket.until("token", "error")
            assert first["type"] == "token", first
            first_at = time.monotonic()
            done = await socket.until("done", "error")
            return first_at, done["type"]
        finally:
            socket.close()

    chat_first_token, ending = run(chat(), timeout=180)
    thread.join(timeout=180)
    assert ending == "done"
    assert len(api_times) > 20 and api_times[0] < chat_first_token < api_times[-1]


