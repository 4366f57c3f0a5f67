"""The chat page in Chromium against the site served as `make run` serves it, with the real SmolLM2 model."""

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

USERNAME = "browser-tester"
PASSWORD = "a long browser test password"
REPLY_TIMEOUT_MS = 180_000  # the first reply waits for the worker to start and load the model

HOSTILE = (
    'Look: <img src=x onerror="window.__pwned = 1"> and <script>window.__pwned = 2</script>\n\n'
    "[a trap](javascript:window.__pwned=3) and [mail](mailto:someone@example.com) and https://example.com/docs.\n\n"
    "**bold** _italic_ `inline <b>code</b>`\n\n"
    "```python\n# a comment\ndef greet(name):\n    return \"<svg onload=alert(1)>\" + name\n```\n\n"
    "| col | <i>x</i> |\n|---|---|\n| 1 | ![pic](https://example.com/p.png) |\n"
)


def _create_user(site) -> None:
    # Staff, for the Models page.
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"if not User.objects.filter(username={USERNAME!r}).exists():\n"
        f"    User.objects.create_superuser({USERNAME!r}, 'tester@example.com', {PASSWORD!r})\n"
    ))


@pytest.fixture(scope="module")
def chat_site(site):
    _create_user(site)
    return site


def sign_in(page, site) -> None:
    page.goto(site.url + "/chat/")
    assert "/login/" in page.url and "next=/chat/" in page.url  # the chat asks visitors to sign in
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=username]").fill(USERNAME)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))


def hostile_conversation(site) -> int:
    """A conversation whose reply is hostile markup, stored the way a model's reply would be."""
    out = site.manage("shell", "-c", (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation, Message\n"
        f"user = get_user_model().objects.get(username={USERNAME!r})\n"
        "conv = Conversation.objects.create(owner=user, title='<b>hostile</b> title')\n"
        "Message.objects.create(conversation=conv, role='user', content='<img src=x onerror=alert(9)>')\n"
        f"Message.objects.create(conversation=conv, role='assistant', content={json.dumps(HOSTILE)},\n"
        "                       completion_tokens=5, ttft_ms=10.0, decode_tokens_per_s=50.0)\n"
        "print(conv.pk)\n"
    ))
    return int(out.strip().splitlines()[-1])


def test_a_person_chats_stops_and_finds_the_conversation_again(chat_site, page, output_dir):
    sign_in(page, chat_site)
    page.locator("#connection-state[data-state=up]").wait_for()
    # A long answer, so that Stop has something to stop.
    page.click("#chat-settings > summary")
    page.fill("#option-max_tokens", "3000")
    page.fill("#option-seed", "7")
    page.click("#chat-settings > summary")
    composer = page.locator("#composer-input")
    composer.fill("Write a very long story about a dragon who learns to cook.")
    composer.press("Shift+Enter")
    composer.press_sequentially("Make it at least forty paragraphs.")
    assert composer.input_value().count("\n") == 1  # Shift+Enter is a new line, not a send
    composer.press("Enter")

    reply = page.locator("article.msg-assistant").last
    user_message = page.locator("article.msg-user").last
    # The page draws message bodies on the next animation frame: wait for it rather than read at once.
    expect(user_message.locator(".msg-body")).to_contain_text("forty paragraphs")
    body = reply.locator(".msg-body")
    page.wait_for_function(
        "el => el.textContent.trim().length > 0", arg=body.element_handle(), timeout=REPLY_TIMEOUT_MS
    )
    first = len(body.inner_text())
    page.wait_for_function(
        "([el, n]) => el.textContent.length > n + 20", arg=[body.element_handle(), first], timeout=60_000
    )
    assert page.locator("#stop-button").is_visible()
    page.click("#stop-button")
    page.locator("article.msg-assistant[data-status=stopped]").wait_for(timeout=30_000)
    assert page.locator("#stop-button").is_hidden()
    stats = reply.locator(".msg-stats").inner_text()
    assert "tokens/s" in stats and "Stopped" in stats
    stopped_text = body.inner_text()
    assert re.search(r"/chat/c/\d+/$", page.url)  # the new conversation has its own address now
    page.screenshot(path=output_dir / "chat.png", full_page=True)

    page.reload()
    sidebar_entry = page.locator(".conversation-item.current .conversation-link")
    expect(sidebar_entry).to_have_text(re.compile(r"^\s*Write a very long story"))
    expect(page.locator("article.msg-user").last.locator(".msg-body")).to_contain_text("forty paragraphs")
    reloaded = page.locator("article.msg-assistant").last
    assert reloaded.get_attribute("data-status") == "stopped"
    expect(reloaded.locator(".msg-body")).to_contain_text(stopped_text.strip()[:40])
    # The export has the same conversation.
    with page.expect_download() as download:
        page.click("#export-md")
    assert download.value.suggested_filename.endswith(".md")


def test_hostile_reply_markup_is_shown_as_text(chat_site, page, output_dir):
    conversation = hostile_conversation(chat_site)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, chat_site)
    page.goto(f"{chat_site.url}/chat/c/{conversation}/")
    log = page.locator("#chat-log")
    reply = page.locator("article.msg-assistant .msg-body.md")
    reply.wait_for()
    page.wait_for_timeout(500)  # time for a handler to fire, if any had been created

    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert log.locator("img, script, svg, iframe, i, b").count() == 0
    assert page.locator(".conversation-item b").count() == 0
    text = log.inner_text()
    assert '<img src=x onerror="window.__pwned = 1">' in text
    assert "<script>window.__pwned = 2</script>" in text
    assert "<img src=x onerror=alert(9)>" in text
    # Markdown still works, and only safe links are links.
    hrefs = log.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["mailto:someone@example.com", "https://example.com/docs", "https://example.com/p.png"]
    assert "[a trap](javascript:window.__pwned=3)" in text
    assert reply.locator("strong").inner_text() == "bold"
    assert reply.locator("em").inner_text() == "italic"
    assert reply.locator("code").first.inner_text() == "inline <b>code</b>"
    code = reply.locator(".code-block code")
    assert code.locator(".hljs-keyword", has_text="def").count() == 1
    assert code.locator(".hljs-comment").inner_text() == "# a comment"
    assert code.locator(".hljs-string").inner_text() == '"<svg onload=alert(1)>"'
    assert reply.locator("table th").all_inner_texts() == ["col", "<i>x</i>"]
    page.screenshot(path=output_dir / "chat-hostile.png", full_page=True)


def test_the_markdown_renderer_never_makes_unsafe_links(chat_site, page):
    sign_in(page, chat_site)
    result = page.evaluate(
        """() => {
          const cases = ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](data:text/html,<b>)",
                         "[x](vbscript:msgbox)", "<javascript:alert(1)>", "[x](//evil.example/)", "[x](/relative)",
                         "![x](javascript:alert(1))", "[x]( javascript:alert(1) )"];
          return cases.map((source) => {
            const box = document.createElement("div");
            box.appendChild(window.LLMSiteMarkdown.render(source, {}));
            return {source, links: box.querySelectorAll("a").length, text: box.textContent};
          });
        }"""
    )
    for case in result:
        assert case["links"] == 0, case
        assert case["text"].strip() == case["source"].strip(), case


def test_the_chat_works_on_a_phone_in_the_dark(chat_site, chromium, output_dir):
    context = chromium.new_context(locale="en-US", viewport={"width": 390, "height": 844}, color_scheme="dark",
                                   is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, chat_site)
        story = page.locator(".conversation-link", has_text="Write a very long story").first
        page.goto(chat_site.url + story.get_attribute("href"))  # the sidebar is off screen, so follow its link
        page.locator("article.msg").first.wait_for()
        page.screenshot(path=output_dir / "chat-phone-conversation.png")
        sidebar = page.locator("#chat-sidebar")
        assert not sidebar.is_visible() or sidebar.bounding_box()["x"] < -100  # off screen until asked for
        page.click(".sidebar-open-button")
        page.wait_for_function("() => document.getElementById('chat-sidebar').getBoundingClientRect().x >= 0")
        assert page.locator("#new-chat").is_visible()
        page.screenshot(path=output_dir / "chat-phone-dark.png")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 19, 24)"  # site.css's dark --bg
    finally:
        context.close()


def start_long_reply(page):
    page.locator("#connection-state[data-state=up]").wait_for()
    page.click("#chat-settings > summary")
    page.fill("#option-max_tokens", "3000")
    page.click("#chat-settings > summary")
    page.fill("#composer-input", "Tell me a very long story about a lighthouse keeper, in forty paragraphs.")
    page.press("#composer-input", "Enter")
    body = page.locator("article.msg-assistant").last.locator(".msg-body")
    page.wait_for_function("el => el.textContent.trim().length > 0", arg=body.element_handle(),
                           timeout=REPLY_TIMEOUT_MS)
    return body


def test_a_dropped_connection_reconnects_and_resumes_the_reply(chat_site, page):
    routes, sent = [], []

    def route(socket):
        server = socket.connect_to_server()
        socket.on_message(lambda message: (sent.append(message), server.send(message)))
        server.on_message(lambda message: socket.send(message))
        routes.append(socket)

    page.route_web_socket(re.compile(r"/ws/chat/$"), route)
    sign_in(page, chat_site)
    body = start_long_reply(page)
    before = body.inner_text()
    routes[-1].close()  # the page's socket drops, as when Wi-Fi goes away
    page.locator("#connection-state[data-state=down]").wait_for()
    page.locator("#connection-state[data-state=up]").wait_for(timeout=15_000)
    assert len(routes) == 2
    reply_id = int(page.locator("article.msg-assistant").last.get_attribute("data-id"))
    page.wait_for_function(
        "([el, n]) => el.textContent.length > n + 20", arg=[body.element_handle(), len(before)], timeout=60_000
    )
    assert {"type": "resume", "message": reply_id} in [json.loads(m) for m in sent]
    assert body.inner_text().startswith(before.rstrip())  # the reply went on; it did not start again
    page.click("#stop-button")
    page.locator("article.msg-assistant[data-status=stopped]").wait_for(timeout=30_000)


def test_staff_see_and_load_models_on_the_models_page(chat_site, page, output_dir):
    broken = chat_site.data_dir / "models" / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 12)
    try:
        sign_in(page, chat_site)
        page.goto(chat_site.url + "/chat/models/")
        assert "malformed" in page.locator('tr[data-file="broken.gguf"] .model-error').inner_text()
        smol = page.locator("tr.model-row", has_text="SmolLM2")
        cells = smol.locator("td").all_inner_texts()
        assert cells[0] == "llama" and cells[2] == "Q4_1"
        assert page.locator("#no-gpu").count() + page.locator(".gpu").count() >= 1
        page.screenshot(path=output_dir / "models.png", full_page=True)
        page.set_viewport_size({"width": 1366, "height": 900})
        page.screenshot(path=output_dir / "models-1366.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        # On a phone each file is a short card: no sideways scrolling (the row was 705 px wide and showed three of
        # its six columns), the facts on a line or two, the Load form's fields three to a row; still a table,
        # with its column headers, for a screen reader.
        page.screenshot(path=output_dir / "models-390.png", full_page=True)
        card = smol.bounding_box()
        print("models page at 390 px: the SmolLM2 row is", card, "the page",
              page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert card["width"] <= 390 and card["height"] < 360, f"the SmolLM2 card is {card}"
        expect(smol.locator(".cell-label").first).to_be_visible()
        fields = smol.locator(".load-field").evaluate_all(
            "(nodes) => nodes.map((n) => n.getBoundingClientRect().bottom)")
        assert len({round(top) for top in fields}) <= 2, f"the Load form's fields are on rows at {fields}"
        expect(page.locator("table.models-table thead")).to_be_attached()
        # Chromium's own accessibility tree (what a screen reader is given), through DevTools.
        cdp = page.context.new_cdp_session(page)
        nodes = [n for n in cdp.send("Accessibility.getFullAXTree")["nodes"] if not n.get("ignored")]
        cdp.detach()
        roles = [(n.get("role", {}).get("value"), n.get("name", {}).get("value")) for n in nodes]
        assert any(role == "table" for role, _name in roles), roles
        headers = [name for role, name in roles if role == "columnheader"]
        assert headers[:3] == ["File", "Architecture", "Size"], headers
        assert [role for role, _name in roles].count("row") >= 3  # the header row, SmolLM2's, the broken file's
        assert any(role == "rowheader" and name.startswith("SmolLM2") for role, name in roles), roles
        page.set_viewport_size({"width": 1366, "height": 900})

        smol.locator("input[name=n_ctx]").fill("2048")
        smol.locator("input[name=n_gpu_layers]").fill("0")
        smol.locator("button[type=submit]").click()
        page.wait_for_function(
            "() => document.getElementById('worker-ctx').textContent.trim() === '2048'"
            " && document.getElementById('worker-state').textContent.trim() === 'ready'",
            timeout=120_000,
        )
        assert page.locator("tr.model-row.loaded", has_text="SmolLM2").count() == 1
    finally:
        broken.unlink()
        page.goto(chat_site.url + "/chat/models/")
        smol = page.locator("tr.model-row", has_text="SmolLM2")  # back to the settings the other tests expect
        smol.locator("input[name=n_ctx]").fill("4096")
        smol.locator("input[name=n_gpu_layers]").fill("auto")
        smol.locator("button[type=submit]").click()


def test_a_reply_is_regenerated_and_a_question_edited(chat_site, page):
    sign_in(page, chat_site)
    page.locator("#connection-state[data-state=up]").wait_for()
    page.click("#chat-settings > summary")
    page.fill("#option-max_tokens", "12")
    page.click("#chat-settings > summary")
    page.fill("#composer-input", "Name a fruit.")
    page.press("#composer-input", "Enter")
    page.locator("article.msg-assistant[data-status=complete]").wait_for(timeout=REPLY_TIMEOUT_MS)
    # No reload: the page learnt both messages' ids from `accepted`.
    first_reply = page.locator("article.msg-assistant").last.get_attribute("data-id")
    assert first_reply and page.locator("article.msg-user").last.get_attribute("data-id")

    page.locator("article.msg-assistant .regenerate-message").click()
    page.locator("article.msg-assistant[data-status=complete]").wait_for(timeout=60_000)
    assert page.locator("article.msg-assistant").count() == 1
    assert page.locator("article.msg-assistant").get_attribute("data-id") != first_reply

    page.locator("article.msg-user .edit-message").click()
    editor = page.locator("article.msg-user .msg-edit textarea")
    editor.fill("Name a vegetable.")
    editor.press("Enter")
    page.locator("article.msg-assistant[data-status=complete]").wait_for(timeout=60_000)
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a vegetable.")
    page.reload()
    expect(page.locator("article.msg-user .msg-body")).to_have_text(["Name a vegetable."])
    assert page.locator("article.msg-assistant").count() == 1


def test_a_second_person_sees_their_place_in_the_queue(chat_site, chromium, page):
    sign_in(page, chat_site)
    start_long_reply(page)
    other = chromium.new_context(locale="en-US").new_page()
    try:
        sign_in(other, chat_site)
        other.locator("#connection-state[data-state=up]").wait_for()
        other.fill("#composer-input", "Say hello.")
        other.press("#composer-input", "Enter")
        other.locator("#queue-state", has_text="Waiting in line: position 1").wait_for(timeout=30_000)
        page.click("#stop-button")
        finished = "article.msg-assistant[data-status=complete], article.msg-assistant[data-status=stopped]"
        other.locator(finished).wait_for(timeout=REPLY_TIMEOUT_MS)
        assert other.locator("#queue-state").inner_text() == ""
    finally:
        other.context.close()


def test_copy_buttons_copy_a_message_and_a_code_block(chat_site, chromium):
    conversation = hostile_conversation(chat_site)
    context = chromium.new_context(locale="en-US", permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        sign_in(page, chat_site)
        page.goto(f"{chat_site.url}/chat/c/{conversation}/")
        reply = page.locator("article.msg-assistant")
        reply.locator(".copy-code").click()
        page.locator(".copy-code", has_text="Copied").wait_for()
        clipboard = page.evaluate("navigator.clipboard.readText()")
        assert clipboard == '# a comment\ndef greet(name):\n    return "<svg onload=alert(1)>" + name'
        reply.locator(".copy-message").click()
        page.wait_for_function("async () => (await navigator.clipboard.readText()).startsWith('Look: <img')")
        assert page.evaluate("navigator.clipboard.readText()") == HOSTILE
    finally:
        context.close()
