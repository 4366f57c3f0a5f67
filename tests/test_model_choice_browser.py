"""A model per conversation in Chromium: two people, two real models, one site worker (the real server).

Ben chooses the second model beside "New conversation" and gets real replies from it, seeing it load while
he waits; Ana starts hers with the first model from the page she lands on; each reply shows its model. Staff
pin the first model on the Models page, and Ben's conversation is then refused rather than swapping it out.
"""

import re
import sys

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningSite, prepare_data_dir
from tests.model_files import two_models

pytestmark = [pytest.mark.browser, pytest.mark.model]

PASSWORD = "a long browser test password"
REPLY_TIMEOUT_MS = 300_000  # a reply may wait for a model to load, on a busy machine
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def two_model_site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("two-models")
    models = two_models(data_dir / "models")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"],
                          env={"LLMSITE_MODELS_DIR": str(data_dir / "models"), "LLMSITE_PARALLEL": "2"})
    prepare_data_dir(data_dir, running.env)
    running.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"User.objects.create_superuser('ana', 'ana@example.com', {PASSWORD!r})\n"
        f"User.objects.create_user('ben', 'ben@example.com', {PASSWORD!r})\n"
    ))
    running.start()
    yield running, models
    running.stop()


def sign_in(context, site, username):
    page = context.new_page()
    page.goto(site.url + "/chat/")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    page.locator("#connection-state[data-state=up]").wait_for()
    return page


def record_queue_state(page):
    """Keep every text the queue line shows (the load's progress passes quickly)."""
    page.evaluate("""() => {
        window.__queueTexts = [];
        const node = document.getElementById("queue-state");
        new MutationObserver(() => window.__queueTexts.push(node.textContent))
            .observe(node, {childList: true, characterData: true, subtree: true});
    }""")


def ask(page, text):
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    reply = page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", re.compile("complete|error|stopped"), timeout=REPLY_TIMEOUT_MS)
    return reply


def test_two_people_chat_with_two_models_and_a_pinned_model_stays(two_model_site, chromium, output_dir):
    site, (first, second) = two_model_site
    ben_context = chromium.new_context(locale="en-US", viewport=DESKTOP)
    ana_context = chromium.new_context(locale="en-US", viewport=DESKTOP)
    try:
        ben = sign_in(ben_context, site, "ben")
        choice = ben.locator("#new-chat-model")
        expect(choice.locator("option")).to_have_count(2)
        choice.select_option(second)
        ben.click("#new-chat")
        ben.wait_for_url(re.compile(r"/chat/c/\d+/$"))
        ben.locator("#connection-state[data-state=up]").wait_for()
        record_queue_state(ben)
        reply = ask(ben, "Name a fruit.")
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".msg-model")).to_have_text(second)
        assert reply.locator(".msg-body").inner_text().strip(), "a real reply from the second model"
        shown = ben.evaluate("window.__queueTexts")
        assert any(second in text and "%" in text for text in shown), shown  # the load, while he waited

        ana = sign_in(ana_context, site, "ana")
        ana.locator("#new-chat-model").select_option(first)  # on the page she lands on, no button needed
        reply = ask(ana, "Name a colour.")
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".msg-model")).to_have_text(first)
        ana.wait_for_url(re.compile(r"/chat/c/\d+/$"))
        ana.reload()  # the label is the server's too
        expect(ana.locator("article.msg-assistant .msg-model")).to_have_text(first)
        ana.screenshot(path=output_dir / "chat-model-label.png", full_page=True)

        # Ben's conversation keeps its model: the second one is loaded again for his follow-up.
        reply = ask(ben, "And a vegetable?")
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".msg-model")).to_have_text(second)
        phone = ben_context.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(ben.url)
        expect(phone.locator("article.msg-assistant .msg-model")).to_have_text([second, second])
        phone.screenshot(path=output_dir / "chat-model-label-phone.png", full_page=True)
        phone.click(".sidebar-open-button")
        expect(phone.locator("#new-chat-model")).to_be_in_viewport()
        phone.wait_for_timeout(300)  # the sidebar slides in
        phone.screenshot(path=output_dir / "chat-model-choice-phone.png")
        phone.close()

        # Staff pin the first model; it is loaded again for Ana, then stays.
        reply = ask(ana, "And another colour?")
        expect(reply.locator(".msg-model")).to_have_text(first)
        models = ana_context.new_page()
        models.goto(site.url + "/chat/models/")
        expect(models.locator("#worker-model")).to_have_text(first)
        models.click("#pin-button")
        expect(models.locator(".message-success")).to_contain_text(first)
        expect(models.locator("#worker-pinned")).to_have_text(first)
        expect(models.locator("#worker-slots")).to_contain_text("/ 2")
        models.screenshot(path=output_dir / "models-pinned.png", full_page=True)

        reply = ask(ben, "One more fruit?")
        expect(reply).to_have_attribute("data-status", "error")
        expect(reply.locator(".msg-error")).to_contain_text("pinned")
        ana.goto(site.url + "/chat/")
        expect(ana.locator("#new-chat-model")).to_have_count(0)  # one model to choose from: no choice shown

        models.click("#unpin-button")
        expect(models.locator(".message-success")).to_contain_text("No model is pinned")
        expect(models.locator("#worker-pinned")).to_have_text("—")
        reply = ask(ben, "One more fruit, then?")
        expect(reply).to_have_attribute("data-status", "complete")
        expect(reply.locator(".msg-model")).to_have_text(second)
    finally:
        ben_context.close()
        ana_context.close()
