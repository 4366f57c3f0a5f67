"""The worker process and its pipe transport, and the manager's sync API, with the real SmolLM2 model."""

import os
import queue
import signal
import time

import pytest

from advisor.modelfiles import default_model_file
from chat.worker import list_model_files
from chat.worker.files import resolve_model_file
from chat.worker.manager import WorkerManager
from chat.worker.offload import auto_gpu_layers
from chat.worker.transport import PipeTransport
from tests.gpus import install_gpus

MODEL = default_model_file()
PROMPT = [{"role": "user", "content": "Write a long story about a cat who sails around the world."}]


@pytest.fixture
def worker():
    """A worker process on a pipe, its events in a queue, and the reasons it died."""
    events, deaths = queue.Queue(), queue.Queue()
    transport = PipeTransport()
    transport.start(events.put, deaths.put)
    yield transport, events, deaths
    transport.close()


def next_event(events, kind, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if event["ev"] == kind:
            return event


def load(transport, events, path=MODEL, **overrides):
    transport.send({"op": "load", "path": str(path), "file_name": os.path.basename(path), "n_gpu_layers": 0,
                    "n_ctx": 1024, "flash_attn": False, "kv_type": "f16", **overrides})


def test_the_default_model_is_always_in_the_model_list():
    assert MODEL.name in [path.name for path in list_model_files()]


def test_only_names_of_files_in_the_models_folder_can_be_loaded():
    assert resolve_model_file(MODEL.name).name == MODEL.name
    for bad in ("../secret.gguf", "/etc/passwd", "missing.gguf", ""):
        with pytest.raises(ValueError):
            resolve_model_file(bad)


def test_auto_offload_is_cpu_only_without_a_gpu():
    # chat/tests/conftest.py gives every chat test a server without a GPU
    assert auto_gpu_layers(MODEL, n_ctx=4096, flash_attn=False, kv_type="f16") == 0


def test_auto_offload_puts_every_layer_on_a_gpu_that_holds_the_model(monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4060", 8.0, 7.5))
    assert auto_gpu_layers(MODEL, n_ctx=4096, flash_attn=False, kv_type="f16") == 31  # 30 blocks + output


def test_auto_offload_counts_a_kv_cache_for_every_slot(monkeypatch):
    # 1 GiB free holds SmolLM2 with one 4096-token cache (90 MiB), not with eight (720 MiB).
    install_gpus(monkeypatch, ("NVIDIA GeForce GT 1030", 2.0, 1.0))
    one = auto_gpu_layers(MODEL, n_ctx=4096, flash_attn=False, kv_type="f16", parallel=1)
    four = auto_gpu_layers(MODEL, n_ctx=4096, flash_attn=False, kv_type="f16", parallel=4)
    eight = auto_gpu_layers(MODEL, n_ctx=4096, flash_attn=False, kv_type="f16", parallel=8)
    assert one == 31 and 0 < eight < four < one, (one, four, eight)


@pytest.mark.model
def test_loading_reports_progress_and_what_was_loaded(worker):
    transport, events, _ = worker
    load(transport, events)
    progress = []
    while True:
        event = events.get(timeout=60)
        if event["ev"] == "status":
            progress.append(event["progress"])
        if event["ev"] in ("loaded", "load_failed"):
            break
    assert event["ev"] == "loaded", event
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    assert event["n_layers"] == 31 and event["quant"] == "Q4_1" and event["n_ctx"] == 1024
    assert event["n_gpu_layers"] == 0


@pytest.mark.model
def test_the_worker_stops_within_one_token(worker):
    transport, events, _ = worker
    load(transport, events)
    next_event(events, "loaded")
    transport.send({"op": "generate", "job": 11, "messages": PROMPT, "options": {"max_tokens": 400, "seed": 3}})
    for _ in range(3):
        next_event(events, "token")
    seen = 3
    # Drain what is already in flight, then stop: at most one more token may be generated after this.
    while not events.empty():
        seen += events.get()["ev"] == "token"
    transport.request_stop(11)
    after = 0
    while True:
        event = events.get(timeout=30)
        if event["ev"] == "token":
            after += 1
        elif event["ev"] == "done":
            break
    assert event["status"] == "stopped"
    assert after <= 1
    assert event["stats"]["tokens"] <= seen + 1 < 400


@pytest.mark.model
def test_a_file_that_is_not_gguf_fails_to_load_with_a_readable_reason(worker, tmp_path):
    transport, events, deaths = worker
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(MODEL.read_bytes()[:200_000])
    load(transport, events, path=bad)
    failed = next_event(events, "load_failed")
    assert "truncated.gguf" in failed["error"]
    assert deaths.empty() and transport.alive, "a bad file costs a load, not the worker"
    load(transport, events)
    assert next_event(events, "loaded")["file_name"] == MODEL.name


@pytest.mark.model
def test_a_killed_worker_is_noticed_at_once(worker):
    transport, _, deaths = worker
    time.sleep(0.5)
    killed_at = time.monotonic()
    os.kill(transport.pid, signal.SIGKILL)
    reason = deaths.get(timeout=10)
    assert time.monotonic() - killed_at < 2
    assert "SIGKILL" in reason


@pytest.mark.model
@pytest.mark.django_db
def test_the_manager_loads_reports_status_and_unloads():
    manager = WorkerManager()
    try:
        assert manager.status()["state"] == "stopped"
        manager.load(MODEL.name, n_gpu_layers="auto", n_ctx=512, flash_attn=True, kv_type="q8_0")
        assert manager.status()["state"] in ("starting", "loading")
        deadline = time.monotonic() + 60
        while manager.status()["state"] in ("starting", "loading") and time.monotonic() < deadline:
            time.sleep(0.05)
        status = manager.status()
        assert status["state"] == "ready" and status["progress"] == 1.0, status
        assert status["model_file"] == MODEL.name and status["n_ctx"] == 512 and status["kv_type"] == "q8_0"
        assert status["n_gpu_layers"] == 0 and status["n_layers"] == 31 and status["pid"]
        pid = status["pid"]
        manager.unload()
        assert manager.status()["state"] == "stopped" and manager.status()["pid"] is None
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "unloading ends the worker process"
    finally:
        manager.shutdown()


def test_the_manager_refuses_files_outside_the_models_folder():
    with pytest.raises(ValueError):
        WorkerManager().load("../../etc/passwd", n_gpu_layers=0, n_ctx=512, flash_attn=False, kv_type="f16")


def test_the_manager_refuses_a_quantized_kv_cache_without_flash_attention():
    with pytest.raises(ValueError, match="flash attention"):
        WorkerManager().load(MODEL.name, n_gpu_layers=0, n_ctx=512, flash_attn=False, kv_type="q4_0")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child still answers kill(0); reap it
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


@pytest.mark.model
def test_old_turns_are_dropped_to_fit_the_context_and_a_too_long_message_is_refused(worker):
    transport, events, _ = worker
    load(transport, events, n_ctx=256)
    next_event(events, "loaded")
    long_text = "word " * 400
    history = [{"role": "user", "content": long_text}, {"role": "assistant", "content": "Yes."},
               {"role": "user", "content": "Say hi."}]
    transport.send({"op": "generate", "job": 21, "messages": history, "options": {"max_tokens": 4}})
    assert next_event(events, "done")["status"] == "complete"
    transport.send({"op": "generate", "job": 22, "messages": [{"role": "user", "content": long_text}],
                    "options": {"max_tokens": 4}})
    assert next_event(events, "failed")["code"] == "context_too_long"


# --- raw prompts (/v1/completions) ---------------------------------------------------------------------------
RAW_PROMPT = "The three primary colours are"
GREEDY_RAW = {"prompt": RAW_PROMPT, "max_tokens": 12, "temperature": 0, "repeat_penalty": 1.0}


def direct_completion(prompt: str, max_tokens: int) -> tuple[str, int]:
    """What llama-cpp-python's own create_completion writes for `prompt` (greedy): its text and prompt tokens."""
    import llama_cpp

    llama = llama_cpp.Llama(str(MODEL), n_ctx=1024, n_threads=2, verbose=False)
    try:
        answer = llama.create_completion(prompt, max_tokens=max_tokens, temperature=0)
        return answer["choices"][0]["text"], answer["usage"]["prompt_tokens"]
    finally:
        llama.close()


def raw_reply(transport, events, job: int, options: dict) -> tuple[str, dict]:
    transport.send({"op": "generate", "job": job, "messages": [], "options": options})
    text = ""
    while True:
        event = events.get(timeout=120)
        if event.get("job") == job and event["ev"] == "token":
            text += event["text"]
        elif event.get("job") == job and event["ev"] in ("done", "failed"):
            return text, event


@pytest.mark.model
def test_a_raw_prompt_is_given_to_the_model_as_it_is(worker):
    """options["prompt"]: no chat template (its tokens would be many more), the text llama-cpp-python's own
    create_completion writes for the same prompt; stop strings and a too long prompt as with chat replies."""
    transport, events, _ = worker
    load(transport, events, n_ctx=256)
    next_event(events, "loaded")
    text, done = raw_reply(transport, events, 31, GREEDY_RAW)
    expected, prompt_tokens = direct_completion(RAW_PROMPT, 12)
    assert done["ev"] == "done" and done["status"] == "complete", done
    assert text == expected and done["stats"]["prompt_tokens"] == prompt_tokens
    assert done["stats"]["tokens"] == 12 and done["stats"]["finish_reason"] == "length"
    stop = expected.split()[2]
    cut, done = raw_reply(transport, events, 32, {**GREEDY_RAW, "stop": [stop]})
    assert cut == expected[:expected.index(stop)] and done["stats"]["finish_reason"] == "stop"
    _, failed = raw_reply(transport, events, 33, {**GREEDY_RAW, "prompt": "word " * 400})
    assert failed["ev"] == "failed" and failed["code"] == "context_too_long"
