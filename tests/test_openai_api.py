"""The OpenAI-compatible API (/v1/) driven by the official `openai` package against the site served as
`make run` serves it (daphne), with the real SmolLM2 model: completions plain and streamed, usage, stop strings,
seeds, every error with its status, a client that disconnects, and a browser chat beside an API stream.
The browser half (keys page, Models page) is tests/test_openai_keys_browser.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, RunningSite, prepare_data_dir
from tests.openai_people import api_people, shell_json

pytestmark = [pytest.mark.model]

ALLOWED_ORIGIN = "http://allowed.example"
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]
LONG = [{"role": "user", "content": "Write a very long story about a dragon who learns to cook."}]


@pytest.fixture(scope="module")
def api_site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("api-site")
    models = data_dir / "models"
    models.mkdir()
    env = {"LLMSITE_PARALLEL": "2", "LLMSITE_MAX_QUEUED_PER_USER": "2", "LLMSITE_RATE_PER_MINUTE": "8",
           "LLMSITE_N_CTX": "2048", "LLMSITE_API_CORS_ORIGINS": ALLOWED_ORIGIN}
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, running.env)
    # A second file in the models folder: the site's worker loads it when a request names it (a model per
    # request, as the chat has a model per conversation).
    default = running.manage("shell", "-c", "from advisor.modelfiles import default_model_file\n"
                                            "print(default_model_file())").strip().splitlines()[-1]
    (models / "second-model.gguf").symlink_to(default)
    running.start()
    running.people = api_people(running, ["plain", "streamer", "stopper", "seeder", "errors", "queue1", "rate",
                                          "gone", "revoked", "holder1", "holder2", "waiter", "browser",
                                          "origin", "texter", "text-errors", "readme"])
    running.staff = api_people(running, ["apistaff"], staff=True)["apistaff"]
    running.people.update(api_people(running, ["text-keeper"], store=True))
    yield running
    running.stop()


def client(site, person: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=site.url + "/v1", api_key=site.people[person]["key"], max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def model(api_site) -> str:
    return client(api_site, "plain").models.list().data[0].id


def raw(site, path: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON body or None) of one plain HTTP request."""
    request = urllib.request.Request(site.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            data = response.read()
            return response.status, response.headers, json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, error.headers, json.loads(data) if data else None


def assert_error_shape(body: dict, code: str) -> dict:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"] and error["type"]
    return error


def api_replies(site, username: str) -> list[dict]:
    return shell_json(site, (
        "import json\nfrom chat.openai_api.models import ApiReply\n"
        f"print(json.dumps(list(ApiReply.objects.filter(owner__username={username!r}).order_by('id').values("
        "'status', 'completion_tokens', 'prompt_tokens', 'streamed', 'conversation_id'))))"))


# --- completions ----------------------------------------------------------------------------------------------
def test_models_lists_the_model_the_site_serves(api_site, model):
    assert model == "SmolLM2-135M-Instruct.Q4_1.gguf" or model.endswith(".gguf")
    models = client(api_site, "plain").models.list().data
    assert sorted(m.id for m in models) == sorted([model, "second-model.gguf"])  # loaded, or loadable
    assert {m.object for m in models} == {"model"}
    retrieved = client(api_site, "plain").models.retrieve(model)
    assert (retrieved.id, retrieved.object, retrieved.owned_by) == (model, "model", "llmsite")
    with pytest.raises(openai.NotFoundError) as raised:
        client(api_site, "plain").models.retrieve("no-such-model.gguf")
    assert assert_error_shape(raised.value.response.json(), "model_not_found")["param"] == "model"


def test_a_plain_completion_has_content_usage_and_a_finish_reason(api_site, model):
    answer = client(api_site, "plain").chat.completions.create(model=model, messages=QUESTION, max_tokens=24,
                                                               temperature=0)
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == model
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = answer.usage
    assert usage.prompt_tokens > len(QUESTION[0]["content"].split())  # the chat template's tokens too
    assert 1 <= usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 24
    [record] = api_replies(api_site, "plain")
    assert record["status"] == "complete" and record["completion_tokens"] == usage.completion_tokens
    assert record["conversation_id"] is None  # the key does not store calls: nothing kept but the record


def test_a_streamed_completion_matches_the_plain_one_and_ends_with_usage(api_site, model):
    api = client(api_site, "streamer")
    plain = api.chat.completions.create(model=model, messages=QUESTION, max_tokens=24, temperature=0)
    chunks = list(api.chat.completions.create(model=model, messages=QUESTION, max_tokens=24, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # token by token, not one lump
    assert "".join(pieces) == plain.choices[0].message.content  # greedy: the same words both ways
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stream_ends_with_done(api_site, model):
    body = json.dumps({"model": model, "messages": QUESTION, "max_tokens": 5, "stream": True}).encode()
    request = urllib.request.Request(api_site.url + "/v1/chat/completions", data=body, method="POST", headers={
        "Authorization": "Bearer " + api_site.people["streamer"]["key"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.read().decode()
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[-1] == "data: [DONE]"
    assert all(block.startswith(("data: ", ":")) for block in events)


def test_stop_strings_end_the_reply_before_them(api_site, model):
    api = client(api_site, "stopper")
    free = api.chat.completions.create(model=model, messages=QUESTION, max_tokens=40, temperature=0)
    text = free.choices[0].message.content
    words = re.findall(r"[A-Za-z]{4,}", text)
    assert len(words) >= 3, text
    stop = words[2]  # a word the reply writes, after its start
    cut = api.chat.completions.create(model=model, messages=QUESTION, max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[:text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < free.usage.completion_tokens
    streamed = api.chat.completions.create(model=model, messages=QUESTION, max_tokens=40, temperature=0, stop=stop,
                                           stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[:text.index(stop)]


def test_a_seed_repeats_a_sampled_reply(api_site, model):
    api = client(api_site, "seeder")
    first, second = (api.chat.completions.create(model=model, messages=QUESTION, max_tokens=20, temperature=1.0,
                                                 top_p=0.9, seed=1234, presence_penalty=0.5, frequency_penalty=0.5)
                     for _ in range(2))
    assert first.choices[0].message.content == second.choices[0].message.content


# --- text completions (/v1/completions) ------------------------------------------------------------------------
RAW_PROMPT = "The three primary colours are"


def test_a_text_completion_continues_the_raw_prompt_without_a_chat_template(api_site, model):
    from chat.tests.test_worker import direct_completion

    api = client(api_site, "texter")
    answer = api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=0)
    expected, prompt_tokens = direct_completion(RAW_PROMPT, 12)  # llama-cpp-python's own, on the same prompt
    assert answer.object == "text_completion" and answer.model == model and answer.id.startswith("cmpl-")
    [choice] = answer.choices
    assert choice.text == expected and choice.finish_reason == "length" and choice.index == 0
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, 12)
    assert answer.usage.total_tokens == prompt_tokens + 12
    echoed = api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=0, echo=True)
    assert echoed.choices[0].text == RAW_PROMPT + expected
    records = api_replies(api_site, "texter")
    assert [r["status"] for r in records] == ["complete", "complete"]  # counted and recorded as any API reply
    assert records[0]["completion_tokens"] == 12 and records[0]["prompt_tokens"] == prompt_tokens
    stop = expected.split()[2]
    cut = api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].text == expected[:expected.index(stop)] and cut.choices[0].finish_reason == "stop"
    sampled = [api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=1.0, top_p=0.95,
                                      seed=77).choices[0].text for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_a_streamed_text_completion_matches_the_plain_one_and_ends_with_usage_and_done(api_site, model):
    api = client(api_site, "texter")
    plain = api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=0)
    chunks = list(api.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=12, temperature=0, stream=True,
                                         stream_options={"include_usage": True}, echo=True))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert texts[0] == RAW_PROMPT and len([t for t in texts[1:] if t]) > 3  # echo, then token by token
    assert "".join(texts) == RAW_PROMPT + plain.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert all(c.usage is None and c.object == "text_completion" for c in chunks[:-1])
    body = json.dumps({"model": model, "prompt": RAW_PROMPT, "max_tokens": 3, "stream": True}).encode()
    request = urllib.request.Request(api_site.url + "/v1/completions", data=body, method="POST", headers={
        "Authorization": "Bearer " + api_site.people["texter"]["key"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [block for block in response.read().decode().split("\n\n") if block.strip()]
    assert events[-1] == "data: [DONE]" and all(block.startswith(("data: ", ":")) for block in events)


def test_a_key_that_stores_calls_keeps_a_text_completion_as_its_prompt_and_the_text(api_site, model):
    answer = client(api_site, "text-keeper").completions.create(model=model, prompt=RAW_PROMPT, max_tokens=6,
                                                                temperature=0)
    stored = shell_json(api_site, (
        "import json\nfrom chat.models import Message\n"
        "print(json.dumps(list(Message.objects.filter(conversation__owner__username='text-keeper')"
        ".order_by('id').values('role', 'content', 'status', 'completion_tokens', 'options'))))"))
    assert [(m["role"], m["content"]) for m in stored] == [("user", RAW_PROMPT), ("assistant", answer.choices[0].text)]
    assert stored[1]["completion_tokens"] == answer.usage.completion_tokens == 6
    assert "prompt" not in stored[1]["options"] and stored[1]["options"]["max_tokens"] == 6
    [record] = api_replies(api_site, "text-keeper")
    assert record["conversation_id"] is not None


@pytest.mark.parametrize(("params", "param"), [
    ({"n": 2}, "n"), ({"best_of": 2}, "best_of"), ({"prompt": ["one", "two"]}, "prompt"), ({"prompt": ""}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"), ({"max_tokens": 0}, "max_tokens"), ({"temperature": 3}, "temperature"),
    ({"suffix": "end"}, "suffix"), ({"stop": [1]}, "stop"),
])
def test_bad_text_completion_parameters_are_400_and_name_the_parameter(api_site, model, params, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client(api_site, "text-errors").completions.create(**{"model": model, "prompt": RAW_PROMPT, **params})
    assert assert_error_shape(raised.value.response.json(), "invalid_value")["param"] == param


def test_text_completion_errors_have_openais_shape(api_site, model):
    wrong = openai.OpenAI(base_url=api_site.url + "/v1", api_key="llms-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.completions.create(model=model, prompt=RAW_PROMPT, max_tokens=4)
    assert_error_shape(raised.value.response.json(), "invalid_api_key")
    api = client(api_site, "text-errors")
    with pytest.raises(openai.NotFoundError) as raised:
        api.completions.create(model="no-such-model", prompt=RAW_PROMPT, max_tokens=4)
    assert assert_error_shape(raised.value.response.json(), "model_not_found")["param"] == "model"
    with pytest.raises(openai.BadRequestError) as raised:
        api.completions.create(model=model, prompt="dragon soup " * 3000, max_tokens=4)
    assert_error_shape(raised.value.response.json(), "context_too_long")
    headers = {"Authorization": "Bearer " + api_site.people["text-errors"]["key"]}
    status, response_headers, body = raw(api_site, "/v1/completions", headers=headers)
    assert status == 405 and response_headers["Allow"] == "POST"
    assert_error_shape(body, "method_not_allowed")
    assert [r["status"] for r in api_replies(api_site, "text-errors")] == ["error"]  # the too long one; no others


# --- the README's examples -----------------------------------------------------------------------------------
def test_the_readmes_curl_and_python_examples_run_as_they_are(api_site, model):
    """The README's API section's sh and python blocks, run as they are written there: only the site's address,
    the key and (if this machine's default differs) the model name are put in place of the README's."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The OpenAI-compatible API"):readme.index("## Benchmarks")]
    [shell], [python] = re.findall(r"```sh\n(.*?)```", section, re.S), re.findall(r"```python\n(.*?)```", section, re.S)
    key = api_site.people["readme"]["key"]

    def place(code: str) -> str:
        return (code.replace("http://192.168.1.20:8000", api_site.url).replace('"llms-..."', repr(key))
                .replace("SmolLM2-135M-Instruct.Q4_1.gguf", model))

    env = {**os.environ, "LLMSITE_KEY": key}
    out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", place(shell)], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    decoder = json.JSONDecoder()
    listed, end = decoder.raw_decode(out)
    assert listed["object"] == "list" and model in [m["id"] for m in listed["data"]]
    stream, _, rest = out[end:].partition("data: [DONE]\n\n")
    chunks = [json.loads(line[len("data: "):]) for line in stream.splitlines() if line.startswith("data: ")]
    assert chunks and "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).strip()
    completion = json.loads(rest)
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"].strip()
    assert completion["usage"]["completion_tokens"] <= 16
    printed = subprocess.run([sys.executable, "-c", place(python)], capture_output=True, text=True, timeout=300,
                             check=True).stdout
    *text, last = printed.rstrip("\n").split("\n")
    assert "".join(text).strip() and 1 <= int(last.rsplit(" ", 1)[1]) <= 32, printed


# --- errors ---------------------------------------------------------------------------------------------------
def test_a_missing_or_wrong_key_is_401(api_site, model):
    for key in ("llms-not-a-real-key", "x"):
        wrong = openai.OpenAI(base_url=api_site.url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as raised:
            wrong.chat.completions.create(model=model, messages=QUESTION)
        assert_error_shape(raised.value.response.json(), "invalid_api_key")
    status, _headers, body = raw(api_site, "/v1/models")
    assert status == 401
    assert_error_shape(body, "invalid_api_key")


def test_the_session_cookie_is_not_accepted(api_site, model):
    """A signed-in browser's cookie opens nothing on /v1/: no other site can make a browser call the API."""
    cookie = api_site.people["errors"]["cookie"]
    status, _h, body = raw(api_site, "/v1/models", headers={"Cookie": cookie})
    assert status == 401
    data = json.dumps({"model": model, "messages": QUESTION}).encode()
    status, _h, body = raw(api_site, "/v1/chat/completions", method="POST", body=data,
                           headers={"Cookie": cookie, "Content-Type": "text/plain"})
    assert status == 401
    assert_error_shape(body, "invalid_api_key")


def test_a_revoked_key_and_a_deactivated_persons_key_stop_at_once(api_site, model):
    for person, change in (("revoked", "ApiKey.objects.filter(owner__username='revoked').update("
                                       "revoked_at=timezone.now())"),
                           ("gone", "get_user_model().objects.filter(username='gone').update(is_active=False)")):
        api = client(api_site, person)
        assert api.models.list().data  # works until...
        shell_json(api_site, "from django.utils import timezone\nfrom django.contrib.auth import get_user_model\n"
                             f"from chat.openai_api.models import ApiKey\n{change}\nprint(1)")
        with pytest.raises(openai.AuthenticationError):
            api.models.list()
        with pytest.raises(openai.AuthenticationError):
            api.chat.completions.create(model=model, messages=QUESTION)


def test_an_unknown_model_is_404(api_site):
    with pytest.raises(openai.NotFoundError) as raised:
        client(api_site, "errors").chat.completions.create(model="no-such-model", messages=QUESTION)
    error = assert_error_shape(raised.value.response.json(), "model_not_found")
    assert error["param"] == "model"


def test_a_model_in_the_folder_is_loaded_for_the_request_that_names_it(api_site, model):
    # (With Redis workers, a model no worker serves or can load is 503: tests/test_openai_api_redis.py.)
    answer = client(api_site, "errors").chat.completions.create(model="second-model.gguf", messages=QUESTION,
                                                                max_tokens=8, temperature=0)
    assert answer.model == "second-model.gguf" and answer.choices[0].message.content.strip()
    again = client(api_site, "errors").chat.completions.create(model=model, messages=QUESTION, max_tokens=8,
                                                               temperature=0)
    assert again.model == model and again.choices[0].message.content.strip()


@pytest.mark.parametrize(("params", "param"), [
    ({"n": 2}, "n"), ({"temperature": 9}, "temperature"), ({"max_tokens": 0}, "max_tokens"),
    ({"top_p": 2}, "top_p"), ({"stop": [1, 2]}, "stop"), ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
     "messages[0].content[0]"),
])
def test_bad_parameters_are_400_and_name_the_parameter(api_site, model, params, param):
    arguments = {"model": model, "messages": QUESTION, **params}
    with pytest.raises(openai.BadRequestError) as raised:
        client(api_site, "errors").chat.completions.create(**arguments)
    assert assert_error_shape(raised.value.response.json(), "invalid_value")["param"] == param


def test_a_body_that_is_not_json_is_400_and_a_get_is_405(api_site):
    headers = {"Authorization": "Bearer " + api_site.people["errors"]["key"], "Content-Type": "application/json"}
    status, _h, body = raw(api_site, "/v1/chat/completions", method="POST", body=b"{not json", headers=headers)
    assert status == 400
    assert_error_shape(body, "invalid_json")
    status, response_headers, body = raw(api_site, "/v1/chat/completions", headers=headers)
    assert status == 405 and response_headers["Allow"] == "POST"


def test_a_message_longer_than_the_context_is_400(api_site, model):
    with pytest.raises(openai.BadRequestError) as raised:
        client(api_site, "errors").chat.completions.create(
            model=model, messages=[{"role": "user", "content": "dragon soup " * 3000}], max_tokens=5)
    assert_error_shape(raised.value.response.json(), "context_too_long")


def test_replies_in_flight_past_the_persons_limit_are_429_with_retry_after(api_site, model):
    api = client(api_site, "queue1")
    streams = [api.chat.completions.create(model=model, messages=LONG, max_tokens=2000, stream=True)
               for _ in range(2)]  # LLMSITE_MAX_QUEUED_PER_USER=2, shared with the person's chats
    try:
        with pytest.raises(openai.RateLimitError) as raised:
            api.chat.completions.create(model=model, messages=QUESTION, max_tokens=5)
        assert_error_shape(raised.value.response.json(), "too_many_queued")
        assert int(raised.value.response.headers["Retry-After"]) >= 1
    finally:
        for stream in streams:
            stream.close()


def test_requests_past_the_persons_rate_are_429_with_retry_after(api_site, model):
    api = client(api_site, "rate")
    for _ in range(8):  # LLMSITE_RATE_PER_MINUTE=8, shared with the person's chats
        api.chat.completions.create(model=model, messages=QUESTION, max_tokens=1)
    with pytest.raises(openai.RateLimitError) as raised:
        api.chat.completions.create(model=model, messages=QUESTION, max_tokens=1)
    assert_error_shape(raised.value.response.json(), "rate_limited")
    assert 1 <= int(raised.value.response.headers["Retry-After"]) <= 60


# --- disconnects, concurrency ----------------------------------------------------------------------------------
def test_a_client_that_disconnects_frees_the_worker_at_once(api_site, model):
    """Both slots (LLMSITE_PARALLEL=2) busy with long replies, a third waits in the queue: the moment one client
    goes away, its reply stops in the worker and the waiting one starts."""
    holders = [client(api_site, name) for name in ("holder1", "holder2")]
    streams = [api.chat.completions.create(model=model, messages=LONG, max_tokens=2000, stream=True)
               for api in holders]
    received = []
    for chunk in streams[0]:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
        if len(received) >= 10:
            break
    next(iter(streams[1]))
    waited = {}

    def waiter():
        started = time.monotonic()
        for chunk in client(api_site, "waiter").chat.completions.create(model=model, messages=QUESTION,
                                                                       max_tokens=8, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                waited.setdefault("first_token_at", time.monotonic())
        waited["started"] = started

    thread = threading.Thread(target=waiter)
    thread.start()
    # Two seconds more of the first stream, read as it comes (so what the worker wrote is what arrived here).
    reading_until = time.monotonic() + 2.0
    for chunk in streams[0]:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
        if time.monotonic() > reading_until:
            break
    assert "first_token_at" not in waited  # queued behind the two long replies
    closed_at = time.monotonic()
    streams[0].close()
    thread.join(timeout=60)
    streams[1].close()
    # The freed slot took the waiting reply (the other long reply still had most of its 2000 tokens to go); how
    # soon depends on how busy the machine is: on a quiet one well under a second.
    assert waited["first_token_at"] - closed_at < 20
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = api_replies(api_site, "holder1")
        if records:
            break
        time.sleep(0.2)
    [record] = records
    assert record["status"] == "stopped" and record["streamed"]
    # Stopped in the worker within a token: it wrote what the client read, plus the few already on the way.
    assert len(received) <= record["completion_tokens"] <= len(received) + 5


def test_cors_is_off_unless_the_setting_lists_the_origin(api_site):
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = raw(api_site, "/v1/chat/completions", method="OPTIONS", headers=preflight)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = raw(api_site, "/v1/chat/completions", method="OPTIONS",
                             headers={**preflight, "Origin": "http://evil.example"})
    assert headers["Access-Control-Allow-Origin"] is None
    key = api_site.people["origin"]["key"]
    _s, headers, _ = raw(api_site, "/v1/models", headers={"Origin": ALLOWED_ORIGIN, "Authorization": "Bearer " + key})
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    _s, headers, _ = raw(api_site, "/v1/models", headers={"Origin": "http://evil.example",
                                                           "Authorization": "Bearer " + key})
    assert headers["Access-Control-Allow-Origin"] is None


@pytest.mark.browser
def test_a_browser_chat_and_an_api_stream_at_the_same_time(api_site, model, page, output_dir):
    person = api_site.people["browser"]
    page.goto(api_site.url + "/accounts/login/?next=/chat/")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill("browser")
    form.locator("input[name=password]").fill("a long test password")
    form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    page.locator("#connection-state[data-state=up]").wait_for()
    api_pieces, api_times = [], []

    def api_stream():
        api = openai.OpenAI(base_url=api_site.url + "/v1", api_key=person["key"], max_retries=0)
        for chunk in api.chat.completions.create(model=model, messages=LONG, max_tokens=150, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                api_pieces.append(chunk.choices[0].delta.content)
                api_times.append(time.monotonic())

    thread = threading.Thread(target=api_stream)
    thread.start()
    while not api_pieces and thread.is_alive():
        time.sleep(0.05)
    composer = page.locator("#composer-input")
    composer.fill("Say hello in five words.")
    composer.press("Enter")
    chat_started = time.monotonic()
    reply = page.locator("article.msg-assistant").last
    page.wait_for_function("el => el.textContent.trim().length > 0", arg=reply.locator(".msg-body").element_handle(),
                           timeout=120_000)
    chat_first_token = time.monotonic()
    thread.join(timeout=180)
    page.locator("article.msg-assistant[data-status=complete]").wait_for(timeout=120_000)
    expect(reply.locator(".msg-body")).not_to_be_empty()
    assert len(api_pieces) > 20
    # The two replies were written side by side: the API stream still ran when the chat's first token came.
    assert api_times[0] < chat_started and api_times[-1] > chat_first_token
    page.screenshot(path=output_dir / "api-beside-chat.png", full_page=True)
