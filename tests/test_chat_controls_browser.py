"""Controls of the chat and the advisor that no other browser test clicks, each with its own account and
conversations on the shared site: the sidebar's delete question, search from a conversation and Clear,
the sampling reset, the CSP watch on the chat's pages, and the advisor's suggestion of this browser's GPU.
"""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "chat-controls-password-73"


def person_with_conversations(site, username: str, *titles: str, staff: bool = False) -> list[int]:
    out = site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation, Message\n"
        f"user = get_user_model().objects.create_user({username!r}, password={PASSWORD!r}, is_staff={staff!r})\n"
        f"for title in {list(titles)!r}:\n"
        "    conv = Conversation.objects.create(owner=user, title=title)\n"
        "    Message.objects.create(conversation=conv, role='user', content='About ' + title)\n"
        "    print('conversation', conv.pk)\n"
    ))
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("conversation ")]


def sign_in(page, site, username: str, next_path: str = "/chat/") -> None:
    page.goto(f"{site.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def test_dismissing_the_delete_question_keeps_the_conversation(site, page):
    kept, = person_with_conversations(site, "cc-dismiss", "Keep me")
    sign_in(page, site, "cc-dismiss", f"/chat/c/{kept}/")
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    item = page.locator(".conversation-item.current")
    item.locator(".conversation-menu summary").click()
    item.locator(".delete-form button[type=submit]").click()
    expect(item.locator(".delete-form button[type=submit]")).to_be_visible()
    assert questions == ["Delete “Keep me”?"]
    page.reload()
    expect(page.locator(".conversation-link")).to_have_text(["Keep me"])


def test_accepting_the_delete_question_deletes_the_conversation(site, page):
    doomed, other = person_with_conversations(site, "cc-accept", "Delete me", "Stay")
    sign_in(page, site, "cc-accept", f"/chat/c/{doomed}/")
    page.once("dialog", lambda dialog: dialog.accept())
    item = page.locator(".conversation-item.current")
    item.locator(".conversation-menu summary").click()
    item.locator(".delete-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(".messages")).to_contain_text("Deleted “Delete me”.")
    expect(page.locator(".conversation-link")).to_have_text(["Stay"])
    assert page.goto(f"{site.url}/chat/c/{doomed}/").status == 404


def test_search_from_a_conversation_page_and_clear(site, page):
    current, _other = person_with_conversations(site, "cc-search", "Rust lifetimes", "Bread recipes")
    sign_in(page, site, "cc-search", f"/chat/c/{current}/")
    page.fill("#id_q", "bread")
    page.click(".search-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/chat/c/{current}/\?q=bread$"))  # the conversation stays open
    expect(page.locator("#chat-title")).to_have_text("Rust lifetimes")
    expect(page.locator(".conversation-link")).to_have_text(["Bread recipes"])
    page.click(".search-form a:has-text('Clear')")
    page.wait_for_url(re.compile(rf"/chat/c/{current}/$"))
    expect(page.locator(".conversation-link")).to_have_count(2)
    expect(page.locator("#id_q")).to_have_value("")


def test_the_sampling_reset_empties_the_fields_and_what_the_browser_kept(site, page):
    person_with_conversations(site, "cc-sampling")
    sign_in(page, site, "cc-sampling")
    page.click("#chat-settings > summary")
    page.fill("#option-temperature", "0.3")
    page.locator("#option-temperature").dispatch_event("change")
    page.fill("#option-max_tokens", "64")
    page.locator("#option-max_tokens").dispatch_event("change")
    page.reload()
    expect(page.locator("#option-temperature")).to_have_value("0.3")  # kept in this browser
    expect(page.locator("#option-max_tokens")).to_have_value("64")
    page.click("#chat-settings > summary")
    page.click("#sampling-reset")
    expect(page.locator("#option-temperature")).to_have_value("")
    expect(page.locator("#option-max_tokens")).to_have_value("")
    assert page.evaluate("localStorage.getItem('llmsite.sampling')") == "{}"
    page.reload()
    expect(page.locator("#option-temperature")).to_have_value("")


def test_the_chat_pages_break_no_content_security_policy(site, page):
    conversation, = person_with_conversations(site, "cc-csp", "Policies", staff=True)
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, site, "cc-csp")
    for path in ["/chat/", f"/chat/c/{conversation}/", f"/chat/c/{conversation}/rename/",
                 f"/chat/c/{conversation}/delete/", "/chat/models/"]:
        response = page.goto(site.url + path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("networkidle")
        assert errors == [], f"{path}: {errors}"
    # The watch works: an inline script is refused, and the console says so.
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text):
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                      " document.body.appendChild(s); }")
    assert page.evaluate("window.__ran") is None


# WebGPU's adapter as a browser on a computer with this card reports it (the renderer text the page reads).
BROWSER_GPU = """Object.defineProperty(navigator, "gpu", {configurable: true, value: {
  requestAdapter: async () => ({info: {vendor: "nvidia", description: "NVIDIA GeForce RTX 4070"}}),
}});"""


def test_the_advisor_suggests_the_browsers_gpu_and_uses_it(site, chromium):
    context = chromium.new_context(locale="en-US")
    context.add_init_script(BROWSER_GPU)
    page = context.new_page()
    try:
        page.goto(site.url + "/advisor/")
        suggestion = page.locator("#gpu-suggestion")
        expect(suggestion).to_be_visible()
        expect(page.locator("#gpu-suggestion-text")).to_have_text(
            re.compile(r"^This computer seems to have: NVIDIA GeForce RTX 4070 \(\d+ GB\)$"))
        page.click("#gpu-suggestion-use")
        expect(page.locator("#id_gpu")).to_have_value("nvidia-geforce-rtx-4070")
        expect(page.locator("#id_vram_gib")).to_have_value("12")
        expect(suggestion).to_be_hidden()
    finally:
        context.close()


def test_the_advisor_suggests_nothing_for_a_gpu_outside_the_catalog(site, chromium):
    context = chromium.new_context(locale="en-US")
    context.add_init_script(BROWSER_GPU.replace("NVIDIA GeForce RTX 4070", "Imaginary Graphics 1"))
    page = context.new_page()
    try:
        page.goto(site.url + "/advisor/")
        page.wait_for_load_state("networkidle")
        expect(page.locator("#gpu-suggestion")).to_be_hidden()
        expect(page.locator("#id_gpu")).to_have_value("")
    finally:
        context.close()
