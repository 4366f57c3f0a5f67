"""`Replies at once: auto` on the Models page, in Chromium, against the real server and the real SmolLM2 model.

Staff type "auto", press Load, and the worker's panel shows the slots the advisor's estimate fits in this
server's memory, marked "(auto)"; the chat then answers with that model.
"""

import re
import sys

import pytest
from playwright.sync_api import expect

from advisor.gguf_info import read_gguf
from advisor.modelfiles import default_model_file
from chat.worker.offload import auto_parallel
from tests.conftest import RunningSite, prepare_data_dir

pytestmark = [pytest.mark.browser, pytest.mark.model]

PASSWORD = "a long browser test password"
LOAD_MS = 120_000
REPLY_MS = 300_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("parallel-auto")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env={"LLMSITE_PARALLEL": "auto"})
    prepare_data_dir(data_dir, running.env)
    running.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_superuser('ana', 'ana@example.com', {PASSWORD!r})\n"
    ))
    running.start()
    yield running
    running.stop()


def test_staff_load_a_model_with_auto_slots_see_how_many_and_it_answers(site, chromium, output_dir):
    # The server runs on this machine and asks its real NVML, as this does: the same estimate.
    expected = auto_parallel(read_gguf(default_model_file()).architecture, n_ctx=1024, flash_attn=False,
                             kv_type="f16")
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(site.url + "/chat/models/")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill("ana")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/models/$"))
    smol = page.locator("tr.model-row", has_text="SmolLM2")
    smol.locator("input[name=n_ctx]").fill("1024")
    smol.locator("input[name=n_gpu_layers]").fill("0")
    smol.locator("input[name=parallel]").fill("auto")
    smol.locator("button[type=submit]").click()
    expect(page.locator("#worker-state")).to_have_text("ready", timeout=LOAD_MS)
    expect(page.locator("#worker-slots")).to_have_text(f"0 / {expected} (auto)")
    expect(smol.locator("input[name=parallel]")).to_have_value("auto")  # saved, shown as typed
    page.screenshot(path=str(output_dir / "parallel-auto-models-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#worker-slots")).to_have_text(f"0 / {expected} (auto)")
    page.screenshot(path=str(output_dir / "parallel-auto-models-phone.png"), full_page=True)

    page.goto(site.url + "/chat/")
    page.locator("#connection-state[data-state=up]").wait_for()
    page.fill("#composer-input", "Say hello to the lighthouse keeper.")
    page.press("#composer-input", "Enter")
    reply = page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_MS)
    assert reply.locator(".msg-body").inner_text().strip()
    context.close()
