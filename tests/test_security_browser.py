"""Untrusted text stays text, and the Content-Security-Policy breaks no page, in Chromium.

Catalog text (a model's name and family, a GPU's name and family), a measurement's names and a GGUF
file's `general.name` are set to hostile markup; every page that shows them is opened with a listener for
dialogs. Because the CSP would also stop an inline script that escaping let through, each page is checked
for injected elements in the DOM as well, and for CSP violation reports in the console.
"""

import json
import re

import pytest
from gguf import GGUFValueType

from advisor.tests.gguf_factory import write_tiny_gguf
from tests.fresh_site import create_superuser, sign_in, start_fresh_site

pytestmark = pytest.mark.browser
STAFF, PASSWORD = "staff", "hostile-tests-password-55"
NAME = 'Pwn <script>alert(1)</script> "><svg onload=alert(2)> <img src=x onerror=alert(3)>'
FAMILY = '<img src=x onerror=alert(4)> javascript:alert(5)'
GPU_NAME = 'GPU "><svg onload=alert(6)> <script>alert(7)</script>'
SOURCE = "javascript:alert(8)"

INJECTED = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(`${el.tagName} ${attr.name}`);
      if (/^\\s*javascript:/i.test(attr.value)) found.push(`${el.tagName} ${attr.name}=${attr.value}`);
    }
    if (el.tagName === 'SCRIPT' && /alert\\(/.test(el.textContent)) found.push('inline script');
  }
  return found;
}"""


def _hostile_rows(site) -> None:
    site.manage("shell", "-c", (
        "from advisor.models import GPU, LanguageModel, KnownFile, Measurement\n"
        "model = LanguageModel.objects.get(slug='llama-3.2-1b-instruct')\n"
        "files = list(model.known_files.all())\n"
        "model.pk = None\n"
        f"model.slug, model.name, model.family, model.source = 'hostile-model', {NAME!r}, {FAMILY!r}, {SOURCE!r}\n"
        "model.quality = 99\n"
        "model.save()\n"
        "for f in files:\n"
        "    KnownFile.objects.create(model=model, quant=f.quant, filename=f.filename, size_bytes=f.size_bytes,\n"
        f"                             source={SOURCE!r})\n"
        "gpu = GPU.objects.get(slug='nvidia-geforce-rtx-4060')\n"
        "gpu.pk = None\n"
        f"gpu.slug, gpu.name, gpu.family, gpu.source = 'hostile-gpu', {GPU_NAME!r}, {FAMILY!r}, {SOURCE!r}\n"
        "gpu.save()\n"
        f"Measurement.objects.create(gpu_name={GPU_NAME!r}, model_file='x.gguf', model_name={NAME!r}, quant='Q4_K_M',\n"
        "    n_gpu_layers=17, n_layers=17, n_ctx=4096, prompt_tokens=10, completion_tokens=10, ttft_ms=5,\n"
        "    decode_tokens_per_s=42)\n"
    ))


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    running = start_fresh_site(tmp_path_factory, "hostile-site")
    create_superuser(running, STAFF, PASSWORD)
    _hostile_rows(running)
    yield running
    running.stop()


class Watch:
    """Dialogs and CSP violation reports of one page."""

    def __init__(self, page):
        self.dialogs, self.violations = [], []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message):
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)


@pytest.fixture
def watched(chromium):
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    yield page, Watch(page)
    context.close()


def assert_untouched(page, watch, what):
    assert page.evaluate(INJECTED) == [], f"injected markup on {what}"
    assert watch.dialogs == [], f"a dialog opened on {what}"
    assert watch.violations == [], f"CSP violations on {what}: {watch.violations}"


def test_it_shows_hostile_catalog_text_as_text_on_the_advisors_pages(hostile_site, watched, output_dir):
    page, watch = watched
    url = hostile_site.url
    page.goto(url + "/advisor/?gpu=hostile-gpu&ctx=4096")
    assert NAME in page.locator("#answer").inner_text()  # shown, as text
    page.screenshot(path=str(output_dir / "security-hostile-answer.png"), full_page=True)
    assert_untouched(page, watch, "the answer")
    page.click("#share-answer")  # the shared page draws the same catalog text
    page.wait_for_url("**/advisor/r/*/")
    share = page.url
    for path in [share, "/advisor/models/hostile-model/?gpu=hostile-gpu", "/advisor/models/hostile-model/",
                 "/advisor/matrix/", "/api/advisor/models", "/advisor/?vram_gib=8"]:
        page.goto(path if path.startswith("http") else url + path)
        assert_untouched(page, watch, path)
    # The question's form is folded away under its answer: its options are read as text, not as drawn.
    assert GPU_NAME in page.locator("#id_gpu").text_content()


def test_it_shows_hostile_catalog_text_as_text_in_the_admin(hostile_site, watched):
    page, watch = watched
    sign_in(page, hostile_site, STAFF, PASSWORD)
    for path in ["/admin/advisor/languagemodel/?q=Pwn", "/admin/advisor/gpu/?q=GPU", "/admin/advisor/measurement/",
                 "/admin/advisor/knownfile/"]:
        page.goto(hostile_site.url + path)
        assert page.locator("#result_list").count() == 1
        assert_untouched(page, watch, path)
    page.goto(hostile_site.url + "/admin/advisor/languagemodel/?q=Pwn")
    page.locator("#result_list a", has_text="Pwn").first.click()
    page.wait_for_selector("#id_name")
    assert page.input_value("#id_name") == NAME
    assert_untouched(page, watch, "the model's change form")


def test_it_shows_a_hostile_gguf_name_as_text_on_the_import_review(hostile_site, watched, tmp_path, output_dir):
    page, watch = watched
    gguf = write_tiny_gguf(tmp_path / "hostile.gguf", {"general.name": (GGUFValueType.STRING, NAME)})
    sign_in(page, hostile_site, STAFF, PASSWORD)
    page.goto(hostile_site.url + "/admin/advisor/languagemodel/import-gguf/")
    page.set_input_files("#id_upload", str(gguf))
    page.click("#import-gguf-form input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/advisor/languagemodel/add/"))
    assert page.input_value("#id_name") == NAME
    page.screenshot(path=str(output_dir / "security-hostile-gguf-review.png"), full_page=True)
    assert_untouched(page, watch, "the GGUF review form")


def test_it_reports_no_csp_violation_on_the_sites_pages(hostile_site, watched):
    page, watch = watched
    url = hostile_site.url
    for path in ["/", "/advisor/", "/advisor/?gpu=nvidia-geforce-rtx-4060&ctx=8192",
                 "/advisor/models/llama-3.1-8b-instruct/?gpu=nvidia-geforce-rtx-4060", "/advisor/matrix/",
                 "/accounts/login/"]:
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        assert watch.violations == [], f"{path}: {watch.violations}"
    assert page.evaluate("getComputedStyle(document.body).display") == "flex", "the stylesheet loads"


ADMIN_PAGES = [
    "/admin/", "/admin/advisor/gpu/", "/admin/advisor/gpu/add/", "/admin/advisor/languagemodel/add/",
    "/admin/advisor/languagemodel/import-gguf/", "/admin/advisor/gpu/import-catalog/",
    "/admin/accounts/invitation/add/", "/admin/accounts/sitesettings/add/", "/admin/auth/user/",
    "/admin/auth/user/1/change/", "/admin/auth/user/add/", "/admin/advisor/knownfile/add/",
]


def test_it_reports_no_csp_violation_in_the_admin(hostile_site, watched):
    page, watch = watched
    sign_in(page, hostile_site, STAFF, PASSWORD)
    for path in ADMIN_PAGES:
        response = page.goto(hostile_site.url + path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert watch.violations == [], f"{path}: {watch.violations}"
    # The admin's scripts run under the policy: the slug is filled in from the name as staff type it.
    page.goto(hostile_site.url + "/admin/advisor/gpu/add/")
    page.fill("#id_name", "Test Card 9000")
    page.locator("#id_name").blur()
    assert page.input_value("#id_slug") == "test-card-9000"
    # and the calendar shortcut of a date field opens.
    page.goto(hostile_site.url + "/admin/accounts/invitation/add/")
    page.click(".datetimeshortcuts a:has-text('Today')")
    assert page.input_value("#id_expires_at_0")
    assert watch.violations == []


def test_it_sends_the_policy_on_every_page_of_the_hostile_site(hostile_site, watched):
    page, _watch = watched
    response = page.goto(hostile_site.url + "/advisor/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert json.loads(page.goto(hostile_site.url + "/healthz").text())["database"] is True
