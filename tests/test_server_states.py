"""Pages in the states a server can be in: a GPU found or not, a models folder that cannot be listed, a
database that does not answer. The GPUs are given to NVML's probe (tests/gpus.py), so each test is the
same on a machine with a GPU and on one without.
"""

import errno
import os
import pathlib

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from chat.models import ModelConfig
from tests.gpus import install_gpus

PASSWORD = "a-long-test-password"


@pytest.fixture
def staff(db):
    client = Client()
    client.force_login(get_user_model().objects.create_user("grace", password=PASSWORD, is_staff=True))
    return client


# --- "Use this server's GPU" ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_this_servers_gpu_fills_in_the_form(client, monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4060", 8.0, 7.25))
    response = client.get(reverse("advisor:server_gpu"))
    assert response.status_code == 302
    assert response.url == "/advisor/?vram_gib=7.2&ctx=8192&gpu=nvidia-geforce-rtx-4060"
    page = client.get(response.url)
    html = page.content.decode()
    assert "Using this server&#x27;s NVIDIA GeForce RTX 4060 with 7.2 GiB free of 8.0 GiB." in html
    assert page.context["form"].cleaned_data["gpu"].slug == "nvidia-geforce-rtx-4060"
    assert page.context["answer"]["results"], "the answer for the server's card is shown"


@pytest.mark.django_db
def test_this_servers_gpu_outside_the_catalog_fills_in_its_memory(client, monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA Prototype Card 9", 48.0, 40.0))
    response = client.get(reverse("advisor:server_gpu"))
    assert response.url == "/advisor/?vram_gib=40.0&ctx=8192"


@pytest.mark.django_db
def test_the_gpu_with_the_most_free_memory_is_the_first_nvml_lists(client, monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4060", 8.0, 1.0), ("NVIDIA GeForce RTX 4090", 24.0, 23.0))
    response = client.get(reverse("advisor:server_gpu"), follow=True)
    assert "Using this server&#x27;s NVIDIA GeForce RTX 4060 with 1.0 GiB free" in response.content.decode()


@pytest.mark.django_db
def test_this_servers_gpu_without_nvidia_says_so(client, monkeypatch):
    install_gpus(monkeypatch)
    response = client.get(reverse("advisor:server_gpu"), follow=True)
    assert response.redirect_chain == [("/advisor/", 302)]
    assert "No NVIDIA GPU was found on this server" in response.content.decode()


# --- The Models page ---------------------------------------------------------------------------------------


def test_the_models_page_shows_the_servers_gpus(staff, monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4060", 8.0, 6.0))
    html = staff.get(reverse("chat:models")).content.decode()
    assert '<p class="gpu" data-index="0">' in html and "NVIDIA GeForce RTX 4060" in html
    assert 'id="no-gpu"' not in html and "(CPU only)" not in html
    data = staff.get(reverse("chat:models_status")).json()
    assert data["gpus"][0]["name"] == "NVIDIA GeForce RTX 4060" and data["gpus"][0]["vram_free_bytes"] == 6 * 2**30


@pytest.fixture
def unreadable_models_folder(settings, tmp_path, monkeypatch):
    """A models folder whose listing fails with an I/O error, as on a failing disk or a lost network mount."""
    folder = tmp_path / "models"
    folder.mkdir()
    settings.MODELS_DIR = folder
    real_glob = pathlib.Path.glob

    def glob(path, pattern, *args, **kwargs):
        if path == folder:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(folder))
        return real_glob(path, pattern, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "glob", glob)
    return folder


def test_a_models_folder_that_cannot_be_listed_is_said_on_the_page(staff, unreadable_models_folder, monkeypatch):
    install_gpus(monkeypatch)
    response = staff.get(reverse("chat:models"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Could not list the models folder: [Errno 5] Input/output error" in html
    assert "No .gguf files in the models folder." in html


def test_a_load_when_the_models_folder_cannot_be_listed_is_refused(staff, unreadable_models_folder, monkeypatch):
    install_gpus(monkeypatch)
    response = staff.post(reverse("chat:model_load"), {"file_name": "SmolLM2-135M-Instruct.Q4_1.gguf",
                                                      "n_gpu_layers": "0", "n_ctx": "2048", "kv_type": "f16"})
    assert response.status_code == 200
    assert "Could not list the models folder:" in response.content.decode()
    assert response.context["bound_form"].errors["file_name"]
    assert not ModelConfig.objects.exists()


# --- /healthz ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_lists_the_gpus_nvml_reports(client, monkeypatch):
    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4060", 8.0, 7.0))
    body = client.get("/healthz").json()  # anonymous: names only
    assert [gpu["name"] for gpu in body["gpus"]] == ["NVIDIA GeForce RTX 4060"]
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x-long-password-9"))
    body = client.get("/healthz").json()
    assert body["gpus"][0]["vram_total_bytes"] == 8 * 2**30 and body["gpus"][0]["driver_version"] == "550.54.14"


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_when_the_database_does_not_answer(client, monkeypatch, tmp_path):
    install_gpus(monkeypatch)
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    unreachable = str(broken) if connection.vendor == "sqlite" else "llmsite_no_such_database"
    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = unreachable
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] is False
    assert body["gpus"] == [] and "state" in body["worker"]
