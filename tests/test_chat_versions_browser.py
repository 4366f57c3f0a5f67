"""The chat's newer controls in Chromium, against the site as `make run` serves it, with the real SmolLM2 model:
Continue after the length limit, ‹ › reply versions after regenerate and after edit (and their export), presets,
the password change, attached text files, focus and early typing, and the ⋯ menu of a conversation begun on the
page. Each test has its own account. Screenshots at 1366 and 390 px in test-output/.
"""

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PASSWORD = "chat-versions-password-83"
REPLY_MS = 180_000  # the first reply of the session waits for the worker to load the model
WIDTHS = {1366: 900, 390: 844}


def new_person(site, username: str) -> None:
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_user({username!r}, password={PASSWORD!r})\n"
    ))


def sign_in(page, site, username: str, password: str = PASSWORD, next_path: str = "/chat/") -> None:
    page.goto(f"{site.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def screenshots(page, output_dir, name: str) -> None:
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=output_dir / f"{name}-{width}.png", full_page=True, animations="disabled")
    page.set_viewport_size({"width": 1366, "height": 900})


def sampling(page, **values) -> None:
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    for name, value in values.items():
        page.fill(f"#option-{name}", str(value))
        page.locator(f"#option-{name}").dispatch_event("change")
    page.locator("#chat-settings").evaluate("details => { details.open = false; }")


def send(page, text: str) -> None:
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "up", timeout=30_000)
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def last_reply(page, status: str = "complete", timeout: int = REPLY_MS):
    reply = page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", status, timeout=timeout)
    return reply


def body_text(article) -> str:
    return article.locator(".msg-body").inner_text()


def test_a_reply_cut_at_the_length_limit_says_so_and_continue_writes_more(site, page, output_dir):
    new_person(site, "cv-continue")
    sign_in(page, site, "cv-continue")
    sampling(page, max_tokens=6, seed=5)
    send(page, "Write a long story about a dragon who learns to bake bread.")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-finish-reason", "length")
    expect(reply.locator(".msg-stats")).to_contain_text("Stopped at the length limit")
    reply_id = reply.get_attribute("data-id")
    before = page.evaluate("id => document.getElementById('msg-' + id).querySelector('.msg-body').textContent",
                           reply_id)
    screenshots(page, output_dir, "chat-length-limit")

    sampling(page, max_tokens=10)
    reply.locator(".continue-message").click()
    expect(page.locator("#stop-button")).to_be_visible()
    reply = last_reply(page, timeout=60_000)
    assert reply.get_attribute("data-id") == reply_id, "the same reply goes on"
    expect(page.locator("article.msg-assistant")).to_have_count(1)
    after = page.evaluate("id => document.getElementById('msg-' + id).querySelector('.msg-body').textContent",
                          reply_id)
    assert len(after) > len(before)
    page.reload()  # what was stored: one reply, the first part and the rest
    stored = page.locator("article.msg-assistant")
    expect(stored).to_have_count(1)
    assert page.evaluate("() => document.querySelector('article.msg-assistant .msg-body').textContent") == after
    tokens = int(stored.get_attribute("data-tokens"))
    assert 6 < tokens <= 16
    screenshots(page, output_dir, "chat-continued")


def test_versions_after_regenerate_and_edit_are_kept_shown_and_exported(site, page, output_dir):
    new_person(site, "cv-versions")
    sign_in(page, site, "cv-versions")
    sampling(page, max_tokens=8, seed=1)
    send(page, "Name a fruit.")
    first = last_reply(page)
    first_id, first_text = first.get_attribute("data-id"), body_text(first)
    expect(first.locator(".msg-versions")).to_have_count(0)  # one version: no arrows

    sampling(page, seed=2)
    first.locator(".regenerate-message").click()
    second = last_reply(page, timeout=60_000)
    second_id = second.get_attribute("data-id")
    assert second_id != first_id
    expect(second.locator(".version-label")).to_have_text("2/2")
    screenshots(page, output_dir, "chat-versions")

    second.locator(".version-prev").click()  # ‹: the first reply again, on the page and on the server
    shown = page.locator("article.msg-assistant")
    expect(shown.locator(".version-label")).to_have_text("1/2")
    expect(shown).to_have_attribute("data-id", first_id)
    assert body_text(shown) == first_text
    expect(shown.locator(".version-prev")).to_be_disabled()
    page.reload()
    expect(page.locator("article.msg-assistant")).to_have_attribute("data-id", first_id)
    page.locator("article.msg-assistant .version-next").click()  # ›
    expect(page.locator("article.msg-assistant")).to_have_attribute("data-id", second_id)
    expect(page.locator("article.msg-assistant .version-label")).to_have_text("2/2")

    page.locator("article.msg-user .edit-message").click()
    editor = page.locator("article.msg-user .msg-edit textarea")
    editor.fill("Name a vegetable.")
    editor.press("Enter")
    last_reply(page, timeout=60_000)
    question = page.locator("article.msg-user")
    expect(question.locator(".msg-body")).to_have_text("Name a vegetable.")
    expect(question.locator(".version-label")).to_have_text("2/2")
    question.locator(".version-prev").click()  # the first question, with the reply shown under it before
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a fruit.")
    expect(page.locator("article.msg-assistant")).to_have_attribute("data-id", second_id)
    expect(page.locator("article.msg-assistant .version-label")).to_have_text("2/2")
    page.locator("article.msg-user .version-next").click()
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a vegetable.")
    screenshots(page, output_dir, "chat-versions-edited")

    with page.expect_download() as download:
        page.click("#export-json")
    data = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert [(m["role"], m["version"], m["versions"]) for m in data["messages"]] == [("user", 2, 2),
                                                                                 ("assistant", 1, 1)]
    others = {m["content"]: m for m in data["other_versions"]}
    assert others["Name a fruit."]["versions"] == 2
    assert {m["id"] for m in data["other_versions"]} >= {int(first_id), int(second_id)}
    with page.expect_download() as download:
        page.click("#export-md")
    markdown = open(download.value.path(), encoding="utf-8").read()
    assert "version 2 of 2" in markdown and "Version 1 of 2 (not shown)" in markdown
    assert "Name a fruit." in markdown and "Name a vegetable." in markdown


def test_an_earlier_reply_is_regenerated_and_its_later_turns_stay_on_the_old_branch(site, page, output_dir):
    new_person(site, "cv-branches")
    sign_in(page, site, "cv-branches")
    sampling(page, max_tokens=8, seed=1)
    send(page, "Name a fruit.")
    first = last_reply(page)
    first_id, first_text = first.get_attribute("data-id"), body_text(first)
    send(page, "What colour is it?")
    later = last_reply(page, timeout=60_000)
    later_id, later_text = later.get_attribute("data-id"), body_text(later)
    replies = page.locator("article.msg-assistant")
    expect(replies.locator(".regenerate-message")).to_have_count(2)
    expect(replies.first.locator(".regenerate-message")).to_be_visible()  # offered on the earlier reply too
    expect(replies.first.locator(".continue-message")).to_be_hidden()  # Continue: the last reply only

    sampling(page, seed=2)
    replies.first.locator(".regenerate-message").click()
    expect(page.locator("article.msg")).to_have_count(2)  # the question, and its new reply being written
    new = last_reply(page, timeout=60_000)
    new_id = new.get_attribute("data-id")
    assert new_id not in (first_id, later_id)
    expect(new.locator(".version-label")).to_have_text("2/2")
    expect(page.locator("article.msg-user .msg-body")).to_have_text(["Name a fruit."])
    screenshots(page, output_dir, "chat-regenerate-earlier")

    new.locator(".version-prev").click()  # ‹: the old version, with the turn that followed it
    expect(page.locator("article.msg")).to_have_count(4)
    expect(page.locator("article.msg-user .msg-body")).to_have_text(["Name a fruit.", "What colour is it?"])
    expect(replies).to_have_count(2)
    expect(replies.first).to_have_attribute("data-id", first_id)
    expect(replies.first.locator(".version-label")).to_have_text("1/2")
    expect(replies.last).to_have_attribute("data-id", later_id)
    assert (body_text(replies.first), body_text(replies.last)) == (first_text, later_text)
    screenshots(page, output_dir, "chat-regenerate-earlier-old-branch")
    page.reload()  # remembered on the server
    expect(page.locator("article.msg")).to_have_count(4)
    page.locator("article.msg-assistant").first.locator(".version-next").click()  # ›: the new branch again
    expect(page.locator("article.msg")).to_have_count(2)
    expect(page.locator("article.msg-assistant")).to_have_attribute("data-id", new_id)

    send(page, "Is it sweet?")  # the next turn follows the version shown
    last_reply(page, timeout=60_000)
    expect(page.locator("article.msg-user .msg-body")).to_have_text(["Name a fruit.", "Is it sweet?"])
    with page.expect_download() as download:
        page.click("#export-md")
    markdown = open(download.value.path(), encoding="utf-8").read()
    assert re.search(r"^## Assistant.* · version 2 of 2$", markdown, re.M) and "## User\n\nIs it sweet?" in markdown
    assert "### Version 1 of 2 (not shown)" in markdown and "#### User\n\nWhat colour is it?" in markdown
    with page.expect_download() as download:
        page.click("#export-json")
    data = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert [m["content"] for m in data["messages"]][::2] == ["Name a fruit.", "Is it sweet?"]
    parents = {m["id"]: m["parent"] for m in data["other_versions"]}
    question = next(m["id"] for m in data["other_versions"] if m["content"] == "What colour is it?")
    assert parents[question] == int(first_id) and parents[int(later_id)] == question


def test_presets_are_created_made_default_and_applied(site, page, output_dir):
    new_person(site, "cv-presets")
    sign_in(page, site, "cv-presets")
    page.click("#presets-link")
    page.wait_for_url(re.compile(r"/chat/presets/$"))
    expect(page.locator(".preset-none")).to_be_visible()
    page.fill("#id_name", "Pirate")
    page.fill("#id_system_prompt", "Talk like a pirate.")
    page.fill("#id_preset_temperature", "0.3")
    page.fill("#id_preset_max_tokens", "7")
    page.check("#id_is_default")
    page.click("#preset-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Preset “Pirate” saved.")
    page.fill("#id_name", "Plain")
    page.fill("#id_system_prompt", "Answer plainly.")
    page.click("#preset-form button[type=submit]")
    page.fill("#id_name", "Plain")  # a second preset of the same name is refused, saying why
    page.click("#preset-form button[type=submit]")
    expect(page.locator(".field-name .errorlist")).to_contain_text("You already have a preset named “Plain”.")
    expect(page.locator(".preset-item.is-default .preset-name")).to_have_text("Pirate")
    screenshots(page, output_dir, "presets")

    page.locator(".preset-item", has_text="Plain").locator(".preset-default-form button").click()
    expect(page.locator(".preset-item.is-default .preset-name")).to_have_text("Plain")
    expect(page.locator(".preset-default-badge")).to_have_count(1)
    page.locator(".preset-item", has_text="Pirate").locator(".preset-default-form button").click()
    expect(page.locator(".preset-item.is-default .preset-name")).to_have_text("Pirate")

    page.locator(".preset-item", has_text="Plain").locator("a:has-text('Edit')").click()
    page.fill("#id_system_prompt", "Answer plainly and briefly.")
    page.click("#preset-form button[type=submit]")
    expect(page.locator(".preset-item", has_text="Plain")).to_contain_text("Answer plainly and briefly.")

    # A new conversation starts with the default preset: its prompt and its sampling.
    page.goto(site.url + "/chat/")
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    expect(page.locator(".system-prompt-form textarea")).to_have_value("Talk like a pirate.")
    expect(page.locator("#option-temperature")).to_have_value("0.3")
    expect(page.locator("#option-max_tokens")).to_have_value("7")
    expect(page.locator("#preset-select option:checked")).to_have_text("Pirate (default)")
    screenshots(page, output_dir, "chat-preset-applied")
    page.select_option("#preset-select", label="Plain")
    expect(page.locator(".system-prompt-form textarea")).to_have_value("Answer plainly and briefly.")
    expect(page.locator("#option-temperature")).to_have_value("")
    expect(page.locator("#preset-state")).to_have_text("Preset “Plain” applied.")
    page.select_option("#preset-select", label="Pirate (default)")
    send(page, "Who are you?")
    last_reply(page)
    conversation = int(re.search(r"/chat/c/(\d+)/", page.url).group(1))
    stored = site.manage("shell", "-c", (
        "from chat.models import Conversation\n"
        f"conversation = Conversation.objects.get(pk={conversation})\n"
        "reply = conversation.messages.get(role='assistant')\n"
        "print(repr((conversation.system_prompt, reply.options.get('temperature'), reply.completion_tokens)))"))
    prompt, temperature, tokens = eval(stored.strip().splitlines()[-1])  # noqa: S307 (our own repr)
    assert (prompt, temperature) == ("Talk like a pirate.", 0.3) and 1 <= tokens <= 7

    # "+ New conversation" starts with the default prompt too.
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    expect(page.locator(".system-prompt-form textarea")).to_have_value("Talk like a pirate.")

    page.goto(site.url + "/chat/presets/")
    page.locator(".preset-item", has_text="Plain").locator(".preset-delete-form button").click()
    expect(page.locator(".messages")).to_contain_text("Preset “Plain” deleted.")
    expect(page.locator(".preset-item")).to_have_count(1)


def test_a_password_is_changed_and_the_new_one_signs_in(site, page, output_dir):
    new_person(site, "cv-password")
    sign_in(page, site, "cv-password")
    page.click("#password-link")
    page.wait_for_url(re.compile(r"/accounts/password/$"))
    page.fill("#id_old_password", "not the password")
    page.fill("#id_new_password1", "a brand new password 19")
    page.fill("#id_new_password2", "a brand new password 19")
    page.click("#password-change-form input[type=submit]")
    expect(page.locator(".field-old_password .errorlist")).to_be_visible()  # the old one is checked
    screenshots(page, output_dir, "password-change")
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", "a brand new password 19")
    page.fill("#id_new_password2", "a brand new password 19")
    page.click("#password-change-form input[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/password/done/$"))
    expect(page.locator("#password-change-done h1")).to_have_text("Password changed")
    expect(page.locator(".nav-username")).to_have_text("cv-password")  # still signed in here
    page.click("#signout-form button")
    page.goto(f"{site.url}/accounts/login/?next=/chat/")
    page.fill("#id_username", "cv-password")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")
    expect(page.locator("#login-form")).to_be_visible()  # the old password no longer signs in
    sign_in(page, site, "cv-password", "a brand new password 19")
    expect(page.locator(".nav-username")).to_have_text("cv-password")


def test_text_files_are_attached_and_one_too_long_or_not_text_is_refused(site, page, output_dir):
    new_person(site, "cv-attach")
    sign_in(page, site, "cv-attach")
    sampling(page, max_tokens=8)
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "up", timeout=30_000)
    expect(page.locator("#model-state")).to_have_attribute("data-state", "ready", timeout=REPLY_MS)
    n_ctx = int(page.evaluate("JSON.parse(document.getElementById('chat-config').textContent).model.n_ctx"))
    hostile = 'def greet():\n    return "<img src=x onerror=window.__pwned=1>"\n'
    page.set_input_files("#attach-input", [{"name": "greet.py", "mimeType": "text/x-python",
                                            "buffer": hostile.encode()}])
    expect(page.locator(".attachment-name")).to_have_text(["greet.py"])
    page.set_input_files("#attach-input", [{"name": "huge.txt", "mimeType": "text/plain",
                                            "buffer": ("word " * (n_ctx * 2)).encode()}])
    expect(page.locator("#attach-error")).to_contain_text("huge.txt is too long")
    expect(page.locator("#attach-error")).to_contain_text(f"{n_ctx:,}")
    page.set_input_files("#attach-input", [{"name": "photo.png", "mimeType": "image/png",
                                            "buffer": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"}])
    expect(page.locator("#attach-error")).to_contain_text("photo.png is not a text file")
    expect(page.locator(".attachment-name")).to_have_text(["greet.py"])  # only the good file is attached
    page.set_input_files("#attach-input", [{"name": "notes.md", "mimeType": "text/markdown",
                                            "buffer": b"# Notes\n"}])
    page.locator(".attachment", has_text="notes.md").locator(".attachment-remove").click()
    expect(page.locator(".attachment-name")).to_have_text(["greet.py"])
    screenshots(page, output_dir, "chat-attach")

    page.fill("#composer-input", "What does this function return?")
    page.press("#composer-input", "Enter")
    last_reply(page)
    question = page.locator("article.msg-user .msg-body")
    expect(question).to_contain_text("What does this function return?")
    expect(question).to_contain_text("**greet.py**")
    expect(question).to_contain_text('return "<img src=x onerror=window.__pwned=1>"')  # text, never HTML
    assert page.locator("article.msg img").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#attachments")).to_be_hidden()  # sent with the message, then gone from the composer
    page.reload()
    expect(page.locator("article.msg-user .msg-body")).to_contain_text("def greet():")


# The socket's "open" reaches the page two seconds late, as on a slow network: the page is typed into first.
SLOW_SOCKET = """(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    addEventListener(type, listener, options) {
      if (type !== "open") return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => setTimeout(() => listener(event), 2000), options);
    }
  };
})();"""


def test_the_message_box_has_focus_and_keeps_what_is_typed_before_the_socket_is_up(site, chromium, output_dir):
    new_person(site, "cv-focus")
    context = chromium.new_context(locale="en-US")
    try:
        page = context.new_page()
        sign_in(page, site, "cv-focus")
        sampling(page, max_tokens=6)
        context.add_init_script(SLOW_SOCKET)
        page.reload()
        assert page.evaluate("document.activeElement.id") == "composer-input"
        assert page.locator("#connection-state").get_attribute("data-state") != "up"
        page.keyboard.type("Hello before the socket")  # no click: the box has focus
        page.keyboard.press("Enter")
        expect(page.locator("#composer-input")).to_have_value("Hello before the socket")  # kept, not lost
        expect(page.locator("#connection-state")).to_have_attribute("data-state", "up", timeout=30_000)
        last_reply(page)  # sent as soon as the socket was up
        expect(page.locator("article.msg-user .msg-body")).to_have_text("Hello before the socket")
        expect(page.locator("#composer-input")).to_have_value("")
        page.goto(page.url)  # a conversation's page: the box has focus there too
        assert page.evaluate("document.activeElement.id") == "composer-input"
    finally:
        context.close()


def test_a_conversation_begun_on_the_page_has_its_menu_and_a_title_cut_at_a_word(site, page, output_dir):
    new_person(site, "cv-menu")
    sign_in(page, site, "cv-menu")
    expect(page.locator("#model-state")).not_to_contain_text(".gguf", timeout=REPLY_MS)
    expect(page.locator("#model-state")).to_contain_text("SmolLM2 135M Instruct", timeout=REPLY_MS)  # the catalog name
    sampling(page, max_tokens=4)
    send(page, "Please tell me everything you know about the migration habits of arctic terns today")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    last_reply(page)
    title = "Please tell me everything you know about the migration…"
    item = page.locator(".conversation-item.current")
    expect(item.locator(".conversation-link")).to_have_text(title)
    expect(page.locator("#chat-title")).to_have_text(title)
    item.locator(".conversation-menu summary").click()  # no reload: the menu is there at once
    expect(item.locator(".rename-form input[name=title]")).to_have_value(title)
    screenshots(page, output_dir, "chat-new-conversation-menu")
    item.locator(".rename-form input[name=title]").fill("Arctic terns")
    item.locator(".rename-form button[type=submit]").click()
    expect(page.locator("#chat-title")).to_have_text("Arctic terns")

    page.goto(site.url + "/chat/")
    send(page, "Say hi.")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    last_reply(page)
    item = page.locator(".conversation-item.current")
    item.locator(".conversation-menu summary").click()
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    item.locator(".delete-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    assert questions == ["Delete “Say hi.”?"]
    expect(page.locator(".conversation-link")).to_have_text(["Arctic terns"])
