"""The Models page refuses what the worker would refuse: both ask chat/worker/types.py's LoadSettings.

A quantized KV cache without flash attention was saved as the active setting and then refused by every
start of the worker; now the page answers with a form error and the active setting stays as it was.
"""

import itertools

import pytest
from django.test import Client
from django.urls import reverse

from advisor.modelfiles import default_model_file
from chat.forms import ModelLoadForm
from chat.models import ModelConfig
from chat.worker.manager import WorkerManager
from chat.worker.types import LoadSettings, LoadSettingsError

pytestmark = pytest.mark.django_db


class RecordingManager:
    """The web side's manager as far as the page is concerned: it records loads and starts no process."""

    def __init__(self):
        self.loads = []

    def status(self):
        return {"state": "stopped", "model_file": None, "progress": 0.0, "error": None, "queue_length": 0}

    def load(self, file_name, **settings):
        self.loads.append((file_name, settings))


@pytest.fixture
def staff_page(settings, tmp_path, django_user_model, monkeypatch):
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.MODELS_DIR = tmp_path
    manager = RecordingManager()
    monkeypatch.setattr("chat.worker.get_manager", lambda: manager)
    client = Client()
    client.force_login(django_user_model.objects.create_user("grace", password="a-long-pass", is_staff=True))
    client.manager = manager
    return client


@pytest.mark.parametrize("kv_type", ["q8_0", "q4_0"])
def test_it_refuses_a_quantized_kv_cache_without_flash_attention_and_keeps_the_active_setting(staff_page, kv_type):
    name = default_model_file().name
    active = ModelConfig.objects.create(file_name=name, n_gpu_layers=0, n_ctx=2048, kv_type="f16", is_active=True)
    response = staff_page.post(reverse("chat:model_load"),
                               {"file_name": name, "n_gpu_layers": "0", "n_ctx": "4096", "kv_type": kv_type})
    assert response.status_code == 200
    errors = response.context["bound_form"].errors
    assert "needs flash attention" in " ".join(errors["kv_type"])
    assert "needs flash attention" in response.content.decode()
    assert staff_page.manager.loads == []
    active.refresh_from_db()
    assert (active.n_ctx, active.kv_type, active.flash_attn, active.is_active) == (2048, "f16", False, True)
    assert list(ModelConfig.objects.values_list("file_name", flat=True)) == [name]


def test_another_files_active_setting_is_not_switched_off_by_a_refused_submit(staff_page):
    ModelConfig.objects.create(file_name="other.gguf", is_active=True)
    staff_page.post(reverse("chat:model_load"), {"file_name": default_model_file().name, "n_gpu_layers": "auto",
                                                 "n_ctx": "4096", "kv_type": "q8_0"})
    assert ModelConfig.objects.get(is_active=True).file_name == "other.gguf"


def test_the_refusal_is_in_spanish_for_a_spanish_browser(staff_page):
    response = staff_page.post(reverse("chat:model_load"),
                               {"file_name": default_model_file().name, "n_ctx": "4096", "kv_type": "q4_0"},
                               headers={"accept-language": "es"})
    assert "necesita flash attention" in " ".join(response.context["bound_form"].errors["kv_type"])


def test_the_quantized_cache_with_flash_attention_is_saved(staff_page):
    name = default_model_file().name
    response = staff_page.post(reverse("chat:model_load"), {"file_name": name, "n_gpu_layers": "0", "n_ctx": "4096",
                                                           "flash_attn": "on", "kv_type": "q8_0"})
    assert response.status_code == 302
    assert ModelConfig.objects.get(is_active=True).kv_type == "q8_0"
    assert staff_page.manager.loads[0][1]["kv_type"] == "q8_0"


@pytest.mark.parametrize(("kv_type", "flash_attn", "n_ctx", "n_gpu_layers"), list(itertools.product(
    ["f16", "q8_0", "q4_0"], [False, True], [256, 4096, 1_048_576], [None, -1, 0, 1000])))
def test_the_form_and_the_worker_agree_on_every_setting(settings, kv_type, flash_attn, n_ctx, n_gpu_layers):
    """What the form accepts, the worker manager's load() accepts, and the other way round."""
    name = default_model_file().name
    data = {"file_name": name, "n_gpu_layers": "auto" if n_gpu_layers is None else str(n_gpu_layers),
            "n_ctx": str(n_ctx), "kv_type": kv_type, **({"flash_attn": "on"} if flash_attn else {})}
    form_accepts = ModelLoadForm(data, file_names=[name]).is_valid()
    try:
        LoadSettings(name, n_gpu_layers, n_ctx, flash_attn, kv_type)
        worker_accepts = True
    except LoadSettingsError:
        worker_accepts = False
    assert form_accepts == worker_accepts
    if not worker_accepts:  # and the real manager refuses it before it starts any process
        manager = WorkerManager()
        with pytest.raises(ValueError, match="needs flash attention"):
            manager.load(name, n_gpu_layers=n_gpu_layers, n_ctx=n_ctx, flash_attn=flash_attn, kv_type=kv_type)
        assert manager.status()["state"] == "stopped" and manager.status()["pid"] is None
