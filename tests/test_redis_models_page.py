"""The Models page with REDIS_URL: workers load their own models on their machines, so the page's load
and a stale unload are refused with a message that says what to do, and nothing else changes."""

import re
import secrets
import sys

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningSite, prepare_data_dir
from tests.fresh_site import create_superuser, sign_in

pytestmark = pytest.mark.browser
STAFF, PASSWORD = "redis-staff", "redis-models-page-password-19"


@pytest.fixture(scope="module")
def redis_site(tmp_path_factory, redis_server):
    data_dir = tmp_path_factory.mktemp("redis-models-site")
    env = {"REDIS_URL": redis_server.url, "LLMSITE_REDIS_KEY": secrets.token_urlsafe(32)}
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, running.env)
    running.start()
    create_superuser(running, STAFF, PASSWORD)
    yield running
    running.stop()


def test_loading_from_the_models_page_is_refused_in_redis_mode(redis_site, page):
    sign_in(page, redis_site, STAFF, PASSWORD, "/chat/models/")
    expect(page.locator("#no-workers")).to_be_visible()
    expect(page.locator("#unload-button")).to_have_count(0)
    smol = page.locator("tr.model-row", has_text="SmolLM2")
    smol.locator("input[name=n_ctx]").fill("2048")
    smol.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/models/$"))
    expect(page.locator(".message-error")).to_contain_text(
        "Could not load SmolLM2-135M-Instruct.Q4_1.gguf: With Redis, each worker loads its own model: start it "
        "on its machine with `python manage.py llmworker --model SmolLM2-135M-Instruct.Q4_1.gguf`.")
    expect(page.locator("#no-workers")).to_be_visible()


def test_an_unload_from_a_stale_page_is_refused_in_redis_mode(redis_site, page):
    sign_in(page, redis_site, STAFF, PASSWORD, "/chat/models/")
    # The Unload button of a page loaded before the site was switched to Redis.
    status = page.evaluate("""async () => {
      const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
      const response = await fetch("/chat/models/unload/", {method: "POST", headers: {"X-CSRFToken": token},
                                                           redirect: "manual"});
      return response.type === "opaqueredirect" ? 302 : response.status;
    }""")
    assert status == 302
    page.reload()
    expect(page.locator(".message-error")).to_contain_text(
        "Could not unload the model: With Redis, stop a worker on its own machine")
