"""Getting a model the way staff do: from an advisor answer to a loaded model that answers, in Chromium,
against the site served as `make run` serves it and a real local hub (tests/hfhub.py) in HF_ENDPOINT."""

import re
import sys

import pytest
from playwright.sync_api import expect

from downloads.tests.conftest import SMOL_FILE, SMOL_REPO, hub_config, quantized_smollm2
from tests.conftest import RunningSite, prepare_data_dir
from tests.hfhub import HubServer

pytestmark = pytest.mark.browser

USERNAME, PASSWORD = "download-tester", "a long download test password"
# The catalog's SmolLM2 135M row for Q4_0 names a known file in the local hub (added below: the seed's known
# files are real repositories, whose files the tests cannot fetch).
Q4_0_FILE = "SmolLM2-135M-Instruct-Q4_0.gguf"
ANSWER = "/advisor/models/smollm2-135m-instruct/?gpu=nvidia-geforce-rtx-4060&ctx=2048"
LOAD_MS = 180_000


def start_hub_with_q4_0(folder, bytes_per_s: int) -> HubServer:
    """The local hub with SmolLM2 135M requantized to Q4_0 beside the usual files."""
    config = hub_config(folder, bytes_per_s=bytes_per_s)
    config["files"][f"{SMOL_REPO}/{Q4_0_FILE}"] = str(quantized_smollm2(folder / Q4_0_FILE, "Q4_0"))
    return HubServer(folder, config).start()


def add_q4_0_known_file(running: RunningSite, hub: HubServer) -> None:
    """The catalog's SmolLM2 135M row for Q4_0 names the hub's file: staff see "Get this model" on it."""
    running.manage("shell", "-c", (
        "from advisor.models import KnownFile, LanguageModel, Quantization\n"
        "KnownFile.objects.create(model=LanguageModel.objects.get(slug='smollm2-135m-instruct'),\n"
        f"    quant=Quantization.objects.get(name='Q4_0'), filename={Q4_0_FILE!r}, repo={SMOL_REPO!r},\n"
        f"    size_bytes={(hub_folder(hub) / Q4_0_FILE).stat().st_size}, source='the download tests\\' local hub')\n"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = start_hub_with_q4_0(tmp_path_factory.mktemp("hub"), 6_000_000)  # slow enough for the progress to show
    yield server
    server.kill()


@pytest.fixture(scope="module")
def dl_site(tmp_path_factory, hub):
    data_dir = tmp_path_factory.mktemp("download-site")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"],
                          env={"HF_ENDPOINT": hub.url, "LLMSITE_DOWNLOAD_MARGIN_MB": "64", "LLMSITE_PARALLEL": "1"})
    prepare_data_dir(data_dir, running.env)
    running.start()
    running.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_superuser({USERNAME!r}, 'dl@example.com', {PASSWORD!r})\n"))
    add_q4_0_known_file(running, hub)
    yield running
    running.stop()


def hub_folder(hub):
    return hub.config_path.parent


def signed_in_page(chromium, site, width=1366, height=900):
    context = chromium.new_context(locale="en-US", viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(site.url + "/accounts/login/?next=/chat/")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill(USERNAME)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    return page


def test_staff_cancel_a_download_from_the_advisors_answer(dl_site, hub, chromium, output_dir):
    page = signed_in_page(chromium, dl_site)
    page.goto(dl_site.url + ANSWER)
    row = page.locator("tr", has=page.locator(f".get-model[data-download-file='{Q4_0_FILE}']"))
    row.locator(".get-model-button").click()
    expect(page.locator(".messages")).to_contain_text(f"{Q4_0_FILE} is queued for download")
    live = row.locator(".download-live")
    expect(live.locator(".download-text")).to_contain_text("MB/s", timeout=20_000)
    row.locator(".download-cancel button").click()
    expect(page.locator(".messages")).to_contain_text(f"The download of {Q4_0_FILE} was cancelled.")
    expect(live).to_have_attribute("data-state", "cancelled", timeout=10_000)  # painted from the status view
    expect(live).to_be_hidden()
    expect(row.locator(".get-model-button")).to_be_visible()  # it can be got again
    row.scroll_into_view_if_needed()
    page.screenshot(path=output_dir / "downloads-answer-cancelled-1366.png")
    models = dl_site.data_dir / "models"
    page.wait_for_timeout(1500)  # the runner removes the bytes within a second of noticing
    assert not (models / Q4_0_FILE).exists() and not list((models / ".downloads").glob("*/*"))
    # The site (HF_ENDPOINT in its environment) asked the hub for the file and nothing else: no telemetry.
    asked = {(r["method"], r["path"].split("/")[3] if "/resolve/" in r["path"] else r["path"].split("/")[1])
             for r in hub.requests()}
    assert asked == {("HEAD", "resolve"), ("GET", "lfs")}, hub.requests()
    page.context.close()


def test_staff_get_the_advisors_model_load_it_with_its_settings_and_it_answers(dl_site, chromium, output_dir):
    page = signed_in_page(chromium, dl_site)
    page.goto(dl_site.url + ANSWER)
    row = page.locator("tr", has=page.locator(f".get-model[data-download-file='{Q4_0_FILE}']"))
    layers = row.locator(".get-model-form input[name=n_gpu_layers]").input_value()
    row.locator(".get-model-button").click()
    expect(page.locator(".messages")).to_contain_text(f"{Q4_0_FILE} is queued for download")
    live = row.locator(".download-live")
    expect(live).to_be_visible(timeout=10_000)
    expect(live.locator(".download-text")).to_contain_text(re.compile(r"MB/s · .* left"), timeout=20_000)
    assert 0 < float(live.locator("progress").get_attribute("value") or 0)
    row.scroll_into_view_if_needed()
    page.screenshot(path=output_dir / "downloads-answer-progress-1366.png")
    page.context.close()  # the download goes on without the browser

    page = signed_in_page(chromium, dl_site, 390, 844)
    page.goto(dl_site.url + ANSWER)
    row = page.locator("tr", has=page.locator(f".get-model[data-download-file='{Q4_0_FILE}']"))
    load = row.locator(".download-load")
    expect(load).to_be_visible(timeout=120_000)
    load.scroll_into_view_if_needed()
    page.screenshot(path=output_dir / "downloads-answer-done-390.png")
    assert load.locator("input[name=n_gpu_layers]").input_value() == layers
    assert load.locator("input[name=n_ctx]").input_value() == "2048"
    load.locator("button").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "up", timeout=30_000)
    page.fill("#composer-input", "Name one colour.")
    page.press("#composer-input", "Enter")
    reply = page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", re.compile("complete|error"), timeout=LOAD_MS)
    assert reply.get_attribute("data-status") == "complete", reply.inner_text()
    assert int(reply.get_attribute("data-id")) > 0 and len(reply.inner_text().strip()) > len("Assistant")

    page.goto(dl_site.url + "/chat/models/")
    expect(page.locator("#worker-model")).to_have_text(Q4_0_FILE, timeout=LOAD_MS)
    expect(page.locator("#worker-ctx")).to_have_text("2048")
    gemma = page.locator("tr.model-row", has_text=Q4_0_FILE)
    expect(gemma.locator(".delete-model")).to_have_count(0)  # never while it is loaded
    page.goto(dl_site.url + f"/chat/models/downloads/delete/?file={Q4_0_FILE}")
    expect(page.locator(".msg-error")).to_contain_text("is loaded: unload it before deleting it")
    expect(page.locator("#confirm-delete")).to_have_count(0)
    page.context.close()


def test_a_download_survives_a_restart_of_the_site_then_staff_delete_the_file(dl_site, hub, chromium, output_dir):
    page = signed_in_page(chromium, dl_site)
    page.goto(dl_site.url + "/chat/models/")
    page.fill("#id_download_repo", SMOL_REPO)
    page.fill("#id_download_file_name", SMOL_FILE)
    page.click("#download-button")
    expect(page.locator(".messages")).to_contain_text(f"{SMOL_FILE} is queued for download")
    row = page.locator("tr.download-row", has_text=SMOL_FILE)
    expect(row.locator(".download-text")).to_contain_text("MB/s", timeout=20_000)
    page.screenshot(path=output_dir / "downloads-models-progress-1366.png", full_page=True)
    page.context.close()

    dl_site.stop()  # mid-file
    asked_before = len(hub.requests())
    dl_site.start()
    page = signed_in_page(chromium, dl_site, 390, 844)
    page.goto(dl_site.url + "/chat/models/")
    smol = page.locator("tr.model-row", has_text=SMOL_FILE)
    expect(smol).to_have_count(1, timeout=60_000)  # the page reloads when the download is done
    resumed = [r for r in hub.requests()[asked_before:] if r["method"] == "GET" and r["path"].startswith("/lfs/")]
    assert resumed and resumed[0]["range"] and int(resumed[0]["range"][6:-1]) > 0, resumed
    page.screenshot(path=output_dir / "downloads-models-done-390.png", full_page=True)

    smol.locator(".delete-model").click()
    expect(page.locator("h1")).to_have_text("Delete a model file")
    page.click("#confirm-delete")
    expect(page.locator(".messages")).to_contain_text(f"{SMOL_FILE} was deleted.")
    expect(page.locator("tr.model-row", has_text=SMOL_FILE)).to_have_count(0)
    assert not (dl_site.data_dir / "models" / SMOL_FILE).exists()
    page.context.close()


def test_staff_cancel_a_download_and_retry_a_refused_one_from_the_models_page(dl_site, hub, chromium):
    page = signed_in_page(chromium, dl_site)
    page.goto(dl_site.url + "/chat/models/")
    page.fill("#id_download_url", f"{hub.url}/files/model.gguf")
    page.click("#download-button")
    row = page.locator("tr.download-row", has_text="model.gguf").first
    expect(row.locator(".download-text")).to_contain_text("MB/s", timeout=20_000)
    row.locator(".download-cancel button").click()
    expect(page.locator(".messages")).to_contain_text("The download of model.gguf was cancelled.")
    expect(page.locator("tr.download-row", has_text="model.gguf").first).to_have_attribute(
        "data-state", "cancelled", timeout=10_000)
    models = dl_site.data_dir / "models"
    expect(page.locator("tr.model-row", has_text="model.gguf")).to_have_count(0)
    page.wait_for_timeout(1500)  # the runner removes the bytes within a second of noticing
    assert not (models / "model.gguf").exists() and not list((models / ".downloads").glob("*/*"))

    page.fill("#id_download_url", f"{hub.url}/files/notes.gguf")
    page.click("#download-button")
    refused = page.locator("tr.download-row", has_text="notes.gguf").first
    expect(refused.locator(".download-error")).to_contain_text("is not a GGUF file", timeout=20_000)
    page.reload()
    refused = page.locator("tr.download-row", has_text="notes.gguf").first
    refused.locator(".download-retry").click()
    expect(page.locator(".messages")).to_contain_text("notes.gguf is queued again.")
    expect(page.locator("tr.download-row", has_text="notes.gguf").first.locator(".download-error")).to_contain_text(
        "is not a GGUF file", timeout=20_000)
    assert not (models / "notes.gguf").exists()
    page.context.close()
