"""A fresh install in Chromium: the first visitor creates the administrator, who invites a person."""

import re

import pytest

from tests.fresh_site import start_fresh_site

pytestmark = pytest.mark.browser
ADMIN_PASSWORD = "first-visitor-password-81"
GUEST_PASSWORD = "invited-guest-password-27"


@pytest.fixture(scope="module")
def fresh_site(tmp_path_factory):
    running = start_fresh_site(tmp_path_factory, "fresh-install")
    yield running
    running.stop()


def test_it_walks_a_fresh_install_from_setup_to_an_invited_person(fresh_site, chromium, output_dir):
    admin = chromium.new_context(locale="en-US")
    page = admin.new_page()
    page.goto(fresh_site.url + "/")
    page.click("#signin-link")
    page.wait_for_url(re.compile(r"/setup/"))
    page.screenshot(path=str(output_dir / "accounts-setup.png"), full_page=True)
    page.fill("#id_username", "owner")
    page.fill("#id_password1", ADMIN_PASSWORD)
    page.fill("#id_password2", ADMIN_PASSWORD)
    page.click("#setup-form input[type=submit]")
    page.wait_for_url(fresh_site.url + "/")
    assert page.locator(".nav-username").inner_text() == "owner"
    assert page.goto(fresh_site.url + "/setup/").status == 404

    page.goto(fresh_site.url + "/admin/accounts/invitation/add/")
    page.fill("#id_note", "for the guest")
    page.click("input[name=_save]")
    message = page.locator(".messagelist .success", has_text="Send this link").inner_text()
    link = re.search(r"http://\S+/accounts/invite/[\w-]+/", message).group(0)

    guest = chromium.new_context(locale="en-US")
    visitor = guest.new_page()
    visitor.goto(link)
    visitor.fill("#id_username", "guest")
    visitor.fill("#id_password1", GUEST_PASSWORD)
    visitor.fill("#id_password2", GUEST_PASSWORD)
    visitor.click("#invitation-form input[type=submit]")
    visitor.wait_for_url(fresh_site.url + "/")
    assert visitor.locator(".nav-username").inner_text() == "guest"
    visitor.screenshot(path=str(output_dir / "accounts-invited.png"), full_page=True)

    visitor.click("#signout-form button")
    visitor.wait_for_selector("#signin-link")
    assert visitor.goto(link).status == 410
    assert "already been used" in visitor.locator("#invitation-refused").inner_text()
    guest.close()
    admin.close()
