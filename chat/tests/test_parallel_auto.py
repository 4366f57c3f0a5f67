"""`parallel = auto` (LLMSITE_PARALLEL, `llmworker --parallel`, the Models page): the slots that fit in memory.

The choice is a pure function of memory figures (chat/worker/offload.py slots_that_fit); auto_parallel feeds
it the advisor's estimate for a model on this server; the worker manager resolves "auto" at each load.
"""

import asyncio
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from advisor.gguf_info import read_gguf
from advisor.modelfiles import default_model_file
from chat.forms import ModelLoadForm
from chat.models import PARALLEL_AUTO_STORED, ModelConfig
from chat.worker.manager import Job, WorkerManager
from chat.worker.offload import auto_parallel, slots_that_fit
from chat.worker.types import LoadSettings, LoadSettingsError, parse_parallel
from tests.gpus import install_gpus

MODEL = default_model_file()
GIB = 2**30


# --- the choice, from memory figures ----------------------------------------------------------------------
def test_it_takes_as_many_slots_as_fit_beside_the_fixed_memory():
    # 3 GiB of weights and buffers, 1 GiB per slot, 8 GiB usable: 5 slots.
    assert slots_that_fit(8 * GIB, lambda n: 3 * GIB + n * GIB) == 5


def test_a_slot_that_fits_exactly_counts():
    assert slots_that_fit(6 * GIB, lambda n: 2 * GIB + n * GIB) == 4


def test_it_keeps_one_slot_when_not_even_one_fits():
    assert slots_that_fit(1 * GIB, lambda n: 3 * GIB + n * GIB) == 1


def test_it_never_takes_more_than_sixteen():
    assert slots_that_fit(1000 * GIB, lambda n: GIB + n * 1024) == 16


def test_memory_that_grows_faster_than_a_slot_stops_it_earlier():
    # A compute buffer that grows with the whole context: each slot costs more than the one before.
    assert slots_that_fit(10 * GIB, lambda n: n * n * GIB) == 3


# --- the advisor's estimate for a real model file ---------------------------------------------------------
def test_on_a_gpu_it_counts_the_gpus_free_memory(monkeypatch):
    arch = read_gguf(MODEL).architecture
    install_gpus(monkeypatch, ("NVIDIA GeForce GT 1030", 2.0, 1.0))
    small = auto_parallel(arch, n_ctx=4096, flash_attn=False, kv_type="f16")
    install_gpus(monkeypatch, ("NVIDIA GeForce GT 1030", 2.0, 1.5))
    larger = auto_parallel(arch, n_ctx=4096, flash_attn=False, kv_type="f16")
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4090", 24.0, 23.0))
    big = auto_parallel(arch, n_ctx=4096, flash_attn=False, kv_type="f16")
    # The advisor counts SmolLM2 with one 4096-token f16 cache (90 MiB) at ~740 MiB of GPU memory (weights,
    # compute buffer, CUDA's overhead), and keeps 256 MiB free: 1 GiB free holds one slot, 1.5 GiB six.
    assert (small, larger, big) == (1, 6, 16)


def test_a_quantized_cache_fits_more_slots(monkeypatch):
    arch = read_gguf(MODEL).architecture
    install_gpus(monkeypatch, ("NVIDIA GeForce GT 1030", 2.0, 1.5))
    f16 = auto_parallel(arch, n_ctx=4096, flash_attn=True, kv_type="f16")
    q4 = auto_parallel(arch, n_ctx=4096, flash_attn=True, kv_type="q4_0")
    assert f16 < q4, (f16, q4)


def test_without_a_gpu_it_counts_the_ram_budget():
    # chat/tests/conftest.py: no GPU. A 1M-token context costs ~22 GiB of f16 cache per SmolLM2 slot, so far
    # fewer slots fit in RAM than with 512 tokens.
    arch = read_gguf(MODEL).architecture
    short = auto_parallel(arch, n_ctx=512, flash_attn=False, kv_type="f16")
    long = auto_parallel(arch, n_ctx=1_048_576, flash_attn=False, kv_type="f16")
    assert short > long >= 1, (short, long)


# --- one validation: settings, llmworker, the form ----------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [("auto", "auto"), (" AUTO ", "auto"), ("0", 0), ("8", 8), ("64", 64)])
def test_parallel_is_auto_or_a_number(text, value):
    assert parse_parallel(text) == value
    assert LoadSettings(MODEL.name, parallel=value).parallel == value


@pytest.mark.parametrize("text", ["-1", "65", "several", "", "2.5"])
def test_anything_else_is_refused_with_the_fields_name(text):
    with pytest.raises(LoadSettingsError) as caught:
        parse_parallel(text)
    assert caught.value.field == "parallel"


def test_llmworker_refuses_a_bad_parallel_before_it_reaches_redis(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # never reached: the value is refused first
    with pytest.raises(CommandError, match="parallel must be 'auto' or a number"):
        call_command("llmworker", "--model", MODEL.name, "--parallel", "several")


@pytest.mark.django_db
def test_the_models_page_saves_auto_and_shows_it_again(settings, tmp_path, django_user_model, monkeypatch):
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.MODELS_DIR = tmp_path
    loads = []

    class RecordingManager:
        def status(self):
            return {"state": "stopped", "model_file": None, "progress": 0.0, "error": None, "queue_length": 0}

        def load(self, file_name, **options):
            loads.append(options)

    monkeypatch.setattr("chat.worker.get_manager", lambda: RecordingManager())
    client = Client()
    client.force_login(django_user_model.objects.create_user("ada", password="a-long-pass", is_staff=True))
    response = client.post(reverse("chat:model_load"), {"file_name": MODEL.name, "n_gpu_layers": "0",
                                                        "n_ctx": "1024", "kv_type": "f16", "parallel": "Auto"})
    assert response.status_code == 302
    config = ModelConfig.objects.get(file_name=MODEL.name)
    assert config.parallel == PARALLEL_AUTO_STORED and config.parallel_setting() == "auto"
    assert loads[0]["parallel"] == "auto"
    form = ModelLoadForm.for_config(MODEL.name, config, [MODEL.name], 0)
    assert 'value="auto"' in str(form["parallel"])
    refused = client.post(reverse("chat:model_load"), {"file_name": MODEL.name, "n_gpu_layers": "0",
                                                       "n_ctx": "1024", "kv_type": "f16", "parallel": "lots"})
    assert refused.status_code == 200 and "parallel" in refused.context["bound_form"].errors
    assert len(loads) == 1


# --- the real worker ------------------------------------------------------------------------------------------
def ask_in_a_thread(manager: WorkerManager) -> list[dict]:
    """One reply through the manager from an event loop of its own (the test's main thread has Playwright's)."""
    events: list[dict] = []

    async def ask():
        job = Job(message_id=1, messages=[{"role": "user", "content": "Say hello."}],
                  options={"max_tokens": 8, "temperature": 0}, loop=asyncio.get_running_loop())
        manager.enqueue(job)
        while True:
            event = await asyncio.wait_for(job.events.get(), 120)
            events.append(event)
            if event["ev"] in ("done", "failed"):
                return

    thread = threading.Thread(target=lambda: asyncio.run(ask()))
    thread.start()
    thread.join(180)
    return events


@pytest.mark.model
@pytest.mark.django_db
def test_auto_loads_the_model_with_the_slots_that_fit_and_answers():
    expected = auto_parallel(read_gguf(MODEL).architecture, n_ctx=512, flash_attn=False, kv_type="f16")
    manager = WorkerManager()
    try:
        manager.load(MODEL.name, n_gpu_layers=0, n_ctx=512, flash_attn=False, kv_type="f16", parallel="auto")
        deadline = time.monotonic() + 60
        while manager.status()["state"] in ("starting", "loading") and time.monotonic() < deadline:
            time.sleep(0.05)
        status = manager.status()
        assert status["state"] == "ready", status
        assert status["parallel"] == expected and status["parallel_auto"] is True
        assert manager.loaded_info()["parallel"] == expected  # what the worker process itself created
        events = ask_in_a_thread(manager)
        assert events[-1]["ev"] == "done", events
        assert events[-1]["stats"]["tokens"] > 0
        assert "".join(e.get("text", "") for e in events if e["ev"] == "token").strip()
    finally:
        manager.shutdown()
