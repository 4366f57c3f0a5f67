"""Accessibility in Chromium: axe-core on every page a person reaches, the menu button on a phone, the skip links,
and the admin's catalog forms as staff use them.

axe-core is vendored in tests/vendor/axe-core/ (npm package axe-core, version and licence in its package.json and
LICENSE; never served to users) and injected into each page through DevTools, under the site's strict CSP. Every
page is checked at 1366 and 390 px, in the light and the dark colour scheme, signed out and as staff where it
applies; any serious or critical violation fails, named with its elements, and so does content outside the
page's landmarks ("region", a moderate finding) on every page; the shared answer fails on moderate ones too.
Screenshots go to test-output/.
"""

import json
import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningSite, prepare_data_dir
from tests.fresh_site import create_superuser, sign_in
from tests.model_files import two_models

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core"
STAFF, STAFF_PASSWORD = "staff", "accessibility-staff-pw-83"
PERSON, PERSON_PASSWORD = "person", "accessibility-person-pw-61"
WIDTHS = {1366: 900, 390: 844}
SCHEMES = ("light", "dark")
FAILING_IMPACTS = ("serious", "critical")
STRICT_IMPACTS = ("moderate", *FAILING_IMPACTS)
ALWAYS_FAILING_RULES = ("region",)  # content outside every landmark: missed by a screen reader's landmark jumps
REPLY_WITH_CODE = (
    "Here is a loop:\n\n```python\n# count to three, printing each number\nfor n in range(3):\n"
    "    print(\"n =\", n)  # the string and the number\n```\n\nAnd a table of `1 + 1 = 2`."
)

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 6).map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
  }));
}"""


# Where Tab starts from when a person comes to the page from the address bar: the top of the document.
FOCUS_TOP = """() => {
  document.body.tabIndex = -1;
  document.body.focus();
  document.body.removeAttribute("tabindex");
}"""


def axe_source() -> str:
    return (AXE / "axe.min.js").read_text()


def test_the_vendored_axe_core_says_its_version_and_licence():
    package = json.loads((AXE / "package.json").read_text())
    assert package["name"] == "axe-core" and package["license"] == "MPL-2.0"
    assert (AXE / "axe.min.js").read_text().startswith(f"/*! axe v{package['version']}")
    assert "Mozilla Public License" in (AXE / "LICENSE").read_text()


class Checker:
    """Runs axe on the page as it is, in each width and colour scheme, and keeps what fails."""

    def __init__(self, page, output_dir, prefix: str):
        self.page = page
        self.output_dir = output_dir
        self.prefix = prefix
        self.source = axe_source()
        self.failures: list[str] = []
        self.checked: list[str] = []

    def check(self, name: str, widths: tuple[int, ...] = tuple(WIDTHS), impacts=FAILING_IMPACTS) -> None:
        page = self.page
        page.wait_for_load_state()
        # DevTools evaluation is not an inline script: the page's CSP stays on while axe runs.
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(self.source)
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            for width in widths:
                page.set_viewport_size({"width": width, "height": WIDTHS[width]})
                page.screenshot(path=self.output_dir / f"a11y-{self.prefix}-{name}-{width}-{scheme}.png",
                                full_page=True, animations="disabled")
                for violation in page.evaluate(RUN_AXE):
                    if violation["impact"] in impacts or violation["id"] in ALWAYS_FAILING_RULES:
                        nodes = "; ".join(f"{n['target']} ({n['summary']})".replace("\n", " ")
                                          for n in violation["nodes"])
                        self.failures.append(f"{name} at {width} px, {scheme}: {violation['id']} "
                                             f"[{violation['impact']}] {violation['help']}: {nodes}")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 1366, "height": WIDTHS[1366]})
        self.checked.append(name)

    def visit(self, site, path: str, name: str, status: int = 200) -> None:
        response = self.page.goto(site.url + path)
        assert response.status == status, f"{path} answered {response.status}, not {status}"
        self.check(name)


@pytest.fixture(scope="module")
def a11y_site(tmp_path_factory):
    """A fresh site whose models folder holds two models, so that the chat offers its model choice."""
    data_dir = tmp_path_factory.mktemp("accessibility")
    models = data_dir / "models"
    two_models(models)
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env={"LLMSITE_MODELS_DIR": str(models)})
    prepare_data_dir(data_dir, running.env)
    running.start()
    yield running
    running.stop()


def seed_people_and_a_conversation(site) -> dict:
    """Staff with a conversation whose reply holds code, a person who is not staff, an open invitation, and open
    sign-up: what the pages below need. Returns the ids the addresses need."""
    create_superuser(site, STAFF, STAFF_PASSWORD)
    output = site.manage("shell", "-c", (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from accounts.models import Invitation, SiteSettings\n"
        "from chat.models import Conversation, Message\n"
        "from advisor.models import GPU, LanguageModel\n"
        "User = get_user_model()\n"
        f"User.objects.create_user({PERSON!r}, password={PERSON_PASSWORD!r})\n"
        f"staff = User.objects.get(username={STAFF!r})\n"
        "conversation = Conversation.objects.create(owner=staff, title='Counting in Python')\n"
        "Message.objects.create(conversation=conversation, role='user', content='Show me a loop in Python.')\n"
        f"Message.objects.create(conversation=conversation, role='assistant', content={REPLY_WITH_CODE!r},\n"
        "                       completion_tokens=40, decode_tokens_per_s=25.0, ttft_ms=120.0)\n"
        "invitation = Invitation.objects.create(note='For a friend', created_by=staff)\n"
        "SiteSettings.objects.update_or_create(id=1, defaults={'open_signup': True})\n"
        "print(json.dumps({'conversation': conversation.pk, 'invitation': invitation.token, 'staff': staff.pk,\n"
        "                  'gpu': GPU.objects.get(slug='nvidia-geforce-rtx-4060').pk,\n"
        "                  'model': LanguageModel.objects.get(slug='qwen3-30b-a3b').pk}))\n"
    ))
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def seeded(a11y_site, chromium, output_dir):
    """The fresh install's set-up page is checked first (it exists only until the first account), then the
    accounts and rows the other pages need are made."""
    context = chromium.new_context(locale="en-US")
    checker = Checker(context.new_page(), output_dir, "fresh")
    checker.visit(a11y_site, "/setup/", "setup")
    context.close()
    ids = seed_people_and_a_conversation(a11y_site)
    ids["setup_failures"] = checker.failures
    return ids


def test_every_page_passes_axe_signed_out(a11y_site, seeded, chromium, output_dir):
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    checker = Checker(page, output_dir, "visitor")
    checker.failures.extend(seeded["setup_failures"])
    site = a11y_site
    checker.visit(site, "/", "home")
    checker.visit(site, "/advisor/", "advisor-form")
    checker.visit(site, "/advisor/?gpu=nvidia-geforce-rtx-4060&vram_gib=8&ram_gib=32&use=chat", "advisor-answer")
    expect(page.locator(".pick").first).to_be_visible()  # the summary of the best picks leads the answer
    checker.visit(site, "/advisor/?gpu=nvidia-geforce-rtx-4060&vram_gib=8&ram_gib=32&use=chat&all=1",
                  "advisor-answer-all")
    page.click("#share-answer")  # the Share button makes the permanent link and opens it
    page.wait_for_url(re.compile(r".*/advisor/r/[\w-]+/$"))
    checker.check("advisor-share", impacts=STRICT_IMPACTS)
    checker.visit(site, "/advisor/models/qwen3-30b-a3b/", "advisor-model")
    checker.visit(site, "/advisor/matrix/", "advisor-matrix")
    checker.visit(site, "/accounts/login/", "sign-in")
    page.fill("#id_username", PERSON)
    page.fill("#id_password", "not-the-password")
    page.click("#login-form input[type=submit]")
    expect(page.locator("#login-form .errorlist")).to_be_visible()
    checker.check("sign-in-refused")
    checker.visit(site, "/accounts/signup/", "sign-up")
    page.fill("#id_username", "newcomer")
    page.fill("#id_password1", "short")
    page.fill("#id_password2", "other")
    page.click("#signup-form input[type=submit]")
    expect(page.locator("#signup-form .errorlist").first).to_be_visible()
    checker.check("sign-up-errors")
    page.fill("#id_password1", "accessibility-newcomer-pw-29")
    page.fill("#id_password2", "accessibility-newcomer-pw-29")
    page.click("#signup-form input[type=submit]")
    page.wait_for_load_state()
    checker.check("sign-up-done")
    checker.visit(site, f"/accounts/invite/{seeded['invitation']}/", "invitation")
    checker.visit(site, "/no/such/page/", "error-404", status=404)
    # The 500 page as Django renders it (no request, no database), served at a site address so that its
    # stylesheet loads from the real server under the real CSP.
    from django.conf import settings
    from django.test import RequestFactory
    from django.views.defaults import server_error

    broken = server_error(RequestFactory().get("/"))
    page.route(site.url + "/broken/", lambda route: route.fulfill(
        status=500, body=broken.content, headers={"content-type": "text/html; charset=utf-8",
                                                  "content-security-policy": settings.CONTENT_SECURITY_POLICY}))
    checker.visit(site, "/broken/", "error-500", status=500)
    context.close()
    assert not checker.failures, "\n".join(checker.failures)


def test_every_page_passes_axe_signed_in(a11y_site, seeded, chromium, output_dir):
    site = a11y_site
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    checker = Checker(page, output_dir, "staff")
    sign_in(page, site, STAFF, STAFF_PASSWORD)
    checker.visit(site, "/chat/", "chat")
    checker.visit(site, f"/chat/c/{seeded['conversation']}/", "conversation")
    expect(page.locator("#chat-log pre").first).to_be_visible()  # the reply's code block, rendered
    checker.check("conversation-rendered")
    page.set_viewport_size({"width": 390, "height": WIDTHS[390]})
    page.click(".sidebar-open-button")  # on a phone the conversations slide in over the chat
    expect(page.locator("#chat-sidebar")).to_be_in_viewport()
    checker.check("conversation-sidebar-open", widths=(390,))
    checker.visit(site, f"/chat/c/{seeded['conversation']}/rename/", "conversation-rename")
    checker.visit(site, f"/chat/c/{seeded['conversation']}/delete/", "conversation-delete")
    checker.visit(site, "/chat/models/", "models")
    checker.visit(site, "/admin/", "admin-index")
    checker.visit(site, f"/admin/advisor/gpu/{seeded['gpu']}/change/", "admin-gpu")
    checker.visit(site, "/admin/advisor/languagemodel/", "admin-models")
    checker.visit(site, "/admin/advisor/languagemodel/add/", "admin-model-add")
    checker.visit(site, "/admin/advisor/languagemodel/import-gguf/", "admin-import-gguf")
    checker.visit(site, "/admin/accounts/invitation/add/", "admin-invitation")
    checker.visit(site, "/admin/accounts/sitesettings/1/change/", "admin-site-settings")
    checker.visit(site, "/admin/auth/user/", "admin-accounts")
    checker.visit(site, f"/admin/auth/user/{seeded['staff']}/change/", "admin-account")
    checker.visit(site, "/admin/chat/modelconfig/", "admin-model-settings")
    context.close()

    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    person = Checker(page, output_dir, "person")
    sign_in(page, site, PERSON, PERSON_PASSWORD)
    person.visit(site, "/chat/", "chat")
    person.visit(site, "/chat/models/", "error-403", status=403)
    context.close()
    failures = checker.failures + person.failures
    assert not failures, "\n".join(failures)


# --- The pages built beside the first axe pass: presets, password, API keys, downloads, versions, reasoning --------


THINKING_REPLY = "<think>Two and two: count them on fingers, that makes four.</think>Two and two make **4**."


@pytest.fixture(scope="module")
def newer(a11y_site, seeded) -> dict:
    """Staff's presets (one the default), a conversation with reply versions whose last reply stopped at the length
    limit (as chat/tests/test_versions_and_presets.py makes them), one whose reply holds a model's thinking, a
    failed download and an API key: the rows the pages below show."""
    output = a11y_site.manage("shell", "-c", (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation, Message, Preset, Role\n"
        "from chat.openai_api.keys import create_key\n"
        "from downloads.models import Download\n"
        f"staff = get_user_model().objects.get(username={STAFF!r})\n"
        "pirate = Preset.objects.create(owner=staff, name='Pirate', system_prompt='Talk like a pirate.',\n"
        "                               options={'temperature': 0.3, 'max_tokens': 64}, is_default=True)\n"
        "Preset.objects.create(owner=staff, name='Terse', system_prompt='Answer in one line.')\n"
        "conv = Conversation.objects.create(owner=staff, title='Fruit and vegetables')\n"
        "q1 = Message.objects.create(conversation=conv, role=Role.USER, content='Name a fruit.')\n"
        "Message.objects.create(conversation=conv, role=Role.ASSISTANT, content='Apple.', selected=False)\n"
        "Message.objects.create(conversation=conv, role=Role.ASSISTANT, content='Pear.', parent=q1)\n"
        "q1.selected = False\n"
        "q1.save()\n"
        "q2 = Message(conversation=conv, role=Role.USER, content='Name a vegetable.')\n"
        "q2.save(first_version=True)\n"
        "Message.objects.create(conversation=conv, role=Role.ASSISTANT, content='Leek, carrot, onion, and',\n"
        "                       finish_reason='length', completion_tokens=8, decode_tokens_per_s=20.0, ttft_ms=90.0)\n"
        "thinking = Conversation.objects.create(owner=staff, title='Two and two')\n"
        "Message.objects.create(conversation=thinking, role=Role.USER, content='What is two and two?')\n"
        f"Message.objects.create(conversation=thinking, role=Role.ASSISTANT, content={THINKING_REPLY!r})\n"
        "failed = Download.objects.create(repo='example/missing-GGUF', file_name='missing-q4_k_m.gguf',\n"
        "                                 state='failed', error='The hub answered 404: no such file.',\n"
        "                                 created_by=staff)\n"
        "row, key = create_key(staff, 'Laptop script', False)\n"
        "print(json.dumps({'preset': pirate.pk, 'versions': conv.pk, 'thinking': thinking.pk,\n"
        "                  'download': failed.pk, 'key': row.pk}))\n"
    ))
    return json.loads(output.strip().splitlines()[-1])


def test_the_newer_pages_pass_axe(a11y_site, seeded, newer, chromium, output_dir):
    site = a11y_site
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    checker = Checker(page, output_dir, "staff")
    sign_in(page, site, STAFF, STAFF_PASSWORD)
    checker.visit(site, "/chat/presets/", "presets")
    checker.visit(site, f"/chat/presets/{newer['preset']}/", "preset-edit")
    checker.visit(site, "/accounts/password/", "password-change")
    checker.visit(site, "/accounts/password/done/", "password-change-done")
    checker.visit(site, "/accounts/api-keys/", "api-keys")
    page.fill("#id_name", "Phone app")
    page.click("#create-key-button")
    expect(page.locator("#new-key-value")).to_be_visible()  # the new key, shown this once
    checker.check("api-keys-new-key")
    checker.visit(site, "/chat/models/", "models-downloads")
    expect(page.locator(f"tr[data-download-id='{newer['download']}'] .download-error")).to_be_visible()
    # The download form's text fields are as wide as its URL field: a repository's name is read whole.
    url_width = page.locator("#download-form input[name=url]").bounding_box()["width"]
    for name in ("repo", "file_name", "sha256"):
        width = page.locator(f"#download-form input[name={name}]").bounding_box()["width"]
        assert abs(width - url_width) < 1, f"the {name} field is {width} px wide, the URL field {url_width} px"
    page.locator("a.delete-model").first.click()  # a model file's Delete asks first, on a page of its own
    page.wait_for_url(re.compile(r"/downloads/delete/\?file="))
    checker.check("model-file-delete")

    checker.visit(site, "/chat/", "chat-model-choice")
    expect(page.locator("#new-chat-model option")).to_have_count(2)
    page.locator(".conversation-menu > summary").first.click()  # the ⋯ menu: rename, export, a red Delete
    expect(page.locator(".conversation-menu .danger").first).to_be_visible()
    checker.check("chat-conversation-menu-open", widths=(1366,))
    page.click("#chat-settings summary")
    expect(page.locator("#preset-select")).to_be_visible()
    checker.check("chat-settings-open")
    checker.visit(site, f"/chat/c/{newer['versions']}/", "conversation-versions")
    expect(page.locator("article.msg-user .version-label")).to_have_text("2/2")
    expect(page.locator("article.msg-assistant .continue-message")).to_be_visible()
    checker.check("conversation-versions-rendered")
    checker.visit(site, f"/chat/c/{newer['thinking']}/", "conversation-reasoning")
    fold = page.locator("article.msg-assistant details.reasoning")
    expect(fold).to_be_visible()
    fold.locator("summary").click()
    expect(fold).to_have_attribute("open", "")
    checker.check("conversation-reasoning-open")

    checker.visit(site, "/admin/openai_api/apikey/", "admin-api-keys")
    checker.visit(site, f"/admin/openai_api/apikey/{newer['key']}/change/", "admin-api-key")
    checker.visit(site, "/admin/downloads/download/", "admin-downloads")
    checker.visit(site, f"/admin/downloads/download/{newer['download']}/change/", "admin-download")
    context.close()
    assert not checker.failures, "\n".join(checker.failures)


def test_the_chats_new_controls_are_reached_with_tab(a11y_site, seeded, newer, chromium, output_dir):
    """Model choice, preset picker, the version arrows and Continue: each is reached from the keyboard alone."""
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, a11y_site, STAFF, STAFF_PASSWORD)
    page.goto(a11y_site.url + f"/chat/c/{newer['versions']}/")
    expect(page.locator("#composer-input")).to_be_enabled(timeout=60_000)  # the socket is up: the buttons too
    page.evaluate(FOCUS_TOP)
    wanted = {"new-chat-model": "#new-chat-model", "chat-settings": "#chat-settings summary",
              "version-prev": "article.msg-user .version-prev", "continue": "article.msg-assistant .continue-message"}
    reached: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        for name, selector in wanted.items():
            if name not in reached and page.locator(selector).evaluate("n => n === document.activeElement"):
                reached.append(name)
        if len(reached) == len(wanted):
            break
    assert reached == list(wanted), f"reached with Tab, in order: {reached}"
    # The settings open from the keyboard, and the preset picker is the next stop after their summary.
    page.locator("#chat-settings summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#chat-settings")).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(page.locator("#preset-select")).to_be_focused()
    # The arrow is pressed from the keyboard: the first question is shown again.
    page.locator("article.msg-user .version-prev").focus()
    page.keyboard.press("Enter")
    expect(page.locator("article.msg-user .version-label").first).to_have_text("1/2")
    page.screenshot(path=output_dir / "a11y-chat-keyboard-versions-1366.png")
    context.close()


# --- The menu button and the skip links ------------------------------------------------------------------------


def header_height(page) -> float:
    return page.locator("header.site-header").bounding_box()["height"]


def test_on_a_phone_the_menu_is_one_button_pressed_by_a_click(a11y_site, seeded, chromium, output_dir):
    context = chromium.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, a11y_site, STAFF, STAFF_PASSWORD)
    for path, name in (("/", "home"), (f"/chat/c/{seeded['conversation']}/", "chat")):
        page.goto(a11y_site.url + path)
        button = page.locator("#menu-button")
        expect(button).to_be_visible()
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(page.locator(".site-nav")).to_be_hidden()
        assert header_height(page) < 64, f"the {name} page's header takes {header_height(page)} px"
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        page.screenshot(path=output_dir / f"a11y-menu-{name}-closed-390.png")
        button.click()
        expect(button).to_have_attribute("aria-expanded", "true")
        expect(page.locator(".site-nav a", has_text="Chat")).to_be_visible()
        expect(page.locator("#signout-form button")).to_be_visible()
        expect(page.locator("#language-select")).to_be_visible()
        page.screenshot(path=output_dir / f"a11y-menu-{name}-open-390.png")
        button.click()
        expect(button).to_have_attribute("aria-expanded", "false")
        expect(page.locator(".site-nav")).to_be_hidden()
    # The open menu's links work: Chat, from the home page.
    page.goto(a11y_site.url + "/")
    page.click("#menu-button")
    page.click(".site-nav a:has-text('Chat')")
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "false")
    context.close()


def test_on_a_phone_the_menu_button_works_from_the_keyboard(a11y_site, seeded, chromium, output_dir):
    context = chromium.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(a11y_site.url + "/")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to main content")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_class(re.compile(r"\bbrand\b"))
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_id("menu-button")
    page.keyboard.press("Enter")
    expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Tab")  # the first link of the open menu is next
    expect(page.locator(":focus")).to_have_text("Home")
    page.keyboard.press("Escape")  # closes the menu and gives the focus back to its button
    expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "false")
    expect(page.locator(":focus")).to_have_id("menu-button")
    page.keyboard.press("Space")
    expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "true")
    page.screenshot(path=output_dir / "a11y-menu-keyboard-open-390.png")
    context.close()


def test_at_desktop_width_the_menu_is_open_without_a_button(a11y_site, seeded, chromium):
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.goto(a11y_site.url + "/")
    expect(page.locator("#menu-button")).to_be_hidden()
    expect(page.locator(".site-nav a", has_text="What can my GPU run?")).to_be_visible()
    expect(page.locator("#signin-link")).to_be_visible()
    context.close()


def test_without_javascript_the_phone_menu_stays_open(a11y_site, seeded, chromium):
    context = chromium.new_context(locale="en-US", viewport={"width": 390, "height": 844}, java_script_enabled=False)
    page = context.new_page()
    page.goto(a11y_site.url + "/")
    expect(page.locator("#menu-button")).to_be_hidden()
    expect(page.locator(".site-nav a", has_text="Chat")).to_be_visible()
    context.close()


def test_the_skip_link_takes_the_keyboard_to_the_chats_message_box(a11y_site, seeded, chromium, output_dir):
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, a11y_site, STAFF, STAFF_PASSWORD)
    page.goto(a11y_site.url + f"/chat/c/{seeded['conversation']}/")
    expect(page.locator("#composer-input")).to_be_enabled(timeout=60_000)  # the socket is up
    # The message box has the focus when the page opens; a keyboard user who starts from the top of the page
    # (as after Tab from the address bar) meets the skip links first. Focusing the body moves Chromium's
    # starting point for Tab there; a plain blur() would leave it at the message box.
    expect(page.locator("#composer-input")).to_be_focused()
    page.evaluate(FOCUS_TOP)
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to main content")
    expect(page.locator(":focus")).to_be_visible()
    page.screenshot(path=output_dir / "a11y-skip-link-1366.png")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to the message box")
    page.keyboard.press("Enter")
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.type("typed after two Tabs")
    expect(page.locator("#composer-input")).to_have_value("typed after two Tabs")
    # On other pages the one skip link lands on the main content.
    page.goto(a11y_site.url + "/advisor/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")
    focused_in_main = page.evaluate("document.querySelector('main').contains(document.activeElement)")
    assert focused_in_main, "the Tab after the skip link stays in the main content"
    context.close()


# --- The admin as staff use it ---------------------------------------------------------------------------------


def shell_json(site, code: str):
    """What `code` leaves in `out`, read from the site's database by a management shell."""
    output = site.manage("shell", "-c", code + "\nimport json\nprint('OUT=' + json.dumps(out))\n")
    return json.loads(output.split("OUT=")[-1])


def test_staff_type_one_memory_size_and_tick_a_use_in_the_admin(a11y_site, seeded, chromium, output_dir):
    site = a11y_site
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, site, STAFF, STAFF_PASSWORD, next_path="/admin/")
    expect(page.locator("#site-name")).to_have_text("llmsite administration")
    assert "Django administration" not in page.content()

    page.goto(site.url + f"/admin/advisor/gpu/{seeded['gpu']}/change/")
    expect(page.locator("label[for=id_vram_gib]")).to_have_text(re.compile(r"^VRAM \(GiB\)"))
    expect(page.locator("label[for=id_fp16_tflops]")).to_have_text(re.compile(r"^FP16 TFLOPS"))
    expect(page.locator("#id_vram_gib")).to_have_value("8")
    page.fill("#id_vram_gib", "8, lots")
    page.click("input[name=_continue]")
    expect(page.locator(".field-vram_gib .errorlist")).to_contain_text("“lots” is not a number of GiB")
    page.fill("#id_vram_gib", "16")
    page.screenshot(path=output_dir / "a11y-admin-gpu-vram-1366.png", full_page=True)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    expect(page.locator("#id_vram_gib")).to_have_value("16")
    assert shell_json(site, "from advisor.models import GPU\n"
                            "g = GPU.objects.get(slug='nvidia-geforce-rtx-4060'); out = [g.vram_gib, g.max_vram_gib]"
                      ) == [[16], 16.0]

    page.goto(site.url + f"/admin/advisor/languagemodel/{seeded['model']}/change/")
    code = page.get_by_role("checkbox", name="Code", exact=True)
    was_ticked = code.is_checked()
    code.set_checked(not was_ticked)
    expect(page.locator("label[for=id_params_b]")).to_have_text(re.compile(r"^Parameters \(billions\)"))
    expect(page.locator("label[for=id_n_head_kv]")).to_have_text(re.compile(r"^Key/value heads"))
    page.screenshot(path=output_dir / "a11y-admin-model-uses-1366.png", full_page=True)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    expect(page.get_by_role("checkbox", name="Code", exact=True)).to_be_checked(checked=not was_ticked)
    uses = shell_json(site, "from advisor.models import LanguageModel\n"
                            "out = LanguageModel.objects.get(slug='qwen3-30b-a3b').uses")
    assert ("code" in uses) == (not was_ticked)
    context.close()


def test_the_gguf_import_offers_the_files_in_the_models_folder(a11y_site, seeded, chromium, output_dir):
    site = a11y_site
    context = chromium.new_context(locale="en-US", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    sign_in(page, site, STAFF, STAFF_PASSWORD, next_path="/admin/advisor/languagemodel/")
    page.click("a:has-text('Import from a GGUF file')")
    options = page.locator("#id_path option").all_inner_texts()
    files = [text for text in options if ".gguf" in text]
    assert files, f"no .gguf file offered: {options}"
    page.select_option("#id_path", index=options.index(files[0]))
    page.screenshot(path=output_dir / "a11y-admin-import-gguf-1366.png", full_page=True)
    page.click("#import-gguf-form input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/advisor/languagemodel/add/\?"))
    expect(page.locator("#id_n_layers")).to_have_value("30")  # SmolLM2-135M, the default model
    context.close()
