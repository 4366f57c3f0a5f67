"""API keys as a person meets them, in Chromium against the real site: the account page makes, shows once, uses,
stores-or-not and revokes a key; staff revoke one in the admin and see on the Models page which replies came
through the API. Calls go through the official `openai` package with the real SmolLM2."""

import re

import openai
import pytest
from playwright.sync_api import expect

from tests.openai_people import shell_json

pytestmark = [pytest.mark.browser, pytest.mark.model]

PASSWORD = "a long browser test password"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def key_site(site):
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"User.objects.create_user('keyholder', password={PASSWORD!r})\n"
        f"User.objects.create_superuser('keystaff', 'keystaff@example.com', {PASSWORD!r})\n"))
    return site


def sign_in(page, site, username: str) -> None:
    page.goto(site.url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")
    expect(page.locator(".nav-username")).to_have_text(username)


def api(site, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=site.url + "/v1", api_key=key, max_retries=0, timeout=300)


def create_key(page, name: str, store: bool = False) -> str:
    page.fill("#id_name", name)
    if store:
        page.check("#id_store_conversations")
    page.click("#create-key-button")
    expect(page.locator("#new-key")).to_be_visible()
    return page.locator("#new-key-value").inner_text().strip()


def screenshots(page, output_dir, name: str) -> None:
    for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(size)
        page.screenshot(path=output_dir / f"{name}-{suffix}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def test_a_person_makes_uses_stores_and_revokes_a_key(key_site, page, output_dir):
    sign_in(page, key_site, "keyholder")
    page.click("#api-keys-link")
    page.wait_for_url(re.compile(r"/accounts/api-keys/$"))
    expect(page.locator("#no-keys")).to_be_visible()
    expect(page.locator("#api-base-url")).to_have_text(key_site.url + "/v1")

    page.fill("#id_name", "   ")
    page.click("#create-key-button")
    expect(page.locator(".errorlist")).to_contain_text("Give the key a name.")

    key = create_key(page, "laptop editor")
    assert key.startswith("llms-") and len(key) > 40
    screenshots(page, output_dir, "api-keys-new")
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)  # shown once
    assert key not in page.content()
    row = page.locator("tr.api-key-row", has_text="laptop editor")
    expect(row.locator(".last-used")).to_have_text("never")

    client = api(key_site, key)
    model = client.models.list().data[0].id
    question = "Tell me one fact about owls."
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            max_tokens=12)
    assert answer.choices[0].message.content
    page.reload()
    expect(row.locator(".last-used")).not_to_have_text("never")
    page.goto(key_site.url + "/chat/")
    expect(page.locator(".conversation-item", has_text="owls")).to_have_count(0)  # not stored: the default

    page.goto(key_site.url + "/accounts/api-keys/")
    row.locator(".store-button").click()
    expect(page.locator(".messages")).to_contain_text("are now kept as conversations")
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            max_tokens=12, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    page.goto(key_site.url + "/chat/")
    page.locator(".conversation-item", has_text="owls").first.click()
    expect(page.locator("article.msg-user").last.locator(".msg-body")).to_contain_text(question)
    expect(page.locator("article.msg-assistant").last.locator(".msg-body")).to_contain_text(streamed.strip()[:20])

    page.goto(key_site.url + "/accounts/api-keys/")
    row.locator(".store-button").click()
    expect(page.locator(".messages")).to_contain_text("are no longer kept")
    row.locator(".revoke-button").click()
    expect(page.locator(".messages")).to_contain_text("was revoked")
    expect(row.locator(".badge")).to_have_text("revoked")
    screenshots(page, output_dir, "api-keys-revoked")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_staff_revoke_a_key_in_the_admin_and_see_api_replies_on_the_models_page(key_site, page, output_dir):
    sign_in(page, key_site, "keyholder")
    page.goto(key_site.url + "/accounts/api-keys/")
    key = create_key(page, "agent on the desk")
    client = api(key_site, key)
    model = client.models.list().data[0].id
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=6)
    page.click("#signout-form button")

    sign_in(page, key_site, "keystaff")
    page.goto(key_site.url + "/chat/models/")
    api_row = page.locator("#recent-replies tr.reply-row[data-via=api]", has_text="agent on the desk").first
    expect(api_row).to_contain_text("keyholder")
    expect(api_row.locator(".via-api")).to_have_text("API")
    # The call that "laptop editor" stored as a conversation is listed once, as an API reply, not also as a chat.
    expect(page.locator("#recent-replies tr.reply-row[data-via=chat]", has_text="keyholder")).to_have_count(0)
    screenshots(page, output_dir, "api-models-page-replies")

    page.goto(key_site.url + "/admin/openai_api/apikey/")
    listing = page.locator("#result_list tr", has_text="agent on the desk")
    expect(listing).to_contain_text("keyholder")
    assert key not in page.content()  # staff see the prefix, never the key
    listing.locator("input.action-select").check()
    page.select_option("select[name=action]", "revoke")
    page.click("button[name=index]")
    expect(page.locator(".messagelist .success")).to_contain_text("1 key revoked.")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert shell_json(key_site, "from chat.openai_api.models import ApiKey\n"
                                "print(ApiKey.objects.filter(name='agent on the desk', revoked_at__isnull=False)"
                                ".count())") == 1
