"""Open sign-up: off by default; when on, accounts wait inactive until staff approve them."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import SiteSettings

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-signup-password-9"
User = get_user_model()


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("boss", "boss@example.invalid", "pw-for-tests-only-1")


@pytest.fixture
def open_signup(staff):
    SiteSettings.objects.create(pk=1, open_signup=True)


def signup(client, username="newcomer"):
    return client.post("/accounts/signup/", {"username": username, "email": "", "password1": PASSWORD,
                                             "password2": PASSWORD})


def test_it_keeps_signup_closed_by_default(client, staff):
    assert SiteSettings.load().open_signup is False
    assert client.get("/accounts/signup/").status_code == 404
    assert signup(client).status_code == 404
    assert not User.objects.filter(username="newcomer").exists()


def test_it_creates_an_inactive_account_that_waits_for_approval(client, open_signup):
    response = signup(client)
    assert response.status_code == 200
    assert "an administrator must approve your account" in response.content.decode().lower()
    assert User.objects.get(username="newcomer").is_active is False


def test_it_tells_a_waiting_person_who_signs_in_that_approval_is_pending(client, open_signup):
    signup(client)
    response = client.post("/accounts/login/", {"username": "newcomer", "password": PASSWORD})
    assert response.status_code == 200
    assert "waiting for an administrator" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_does_not_reveal_a_waiting_account_to_a_wrong_password(client, open_signup):
    signup(client)
    response = client.post("/accounts/login/", {"username": "newcomer", "password": "wrong"})
    assert "waiting for an administrator" not in response.content.decode()


def test_it_lets_staff_approve_accounts_in_the_admin(client, open_signup, staff):
    signup(client)
    waiting = User.objects.get(username="newcomer")
    client.force_login(staff)
    response = client.post("/admin/auth/user/", {"action": "approve", "_selected_action": [waiting.pk]})
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.is_active
    client.logout()
    assert client.post("/accounts/login/", {"username": "newcomer", "password": PASSWORD}).status_code == 302


def test_it_lets_staff_switch_open_signup_on_in_the_admin(client, staff):
    client.force_login(staff)
    response = client.post("/admin/accounts/sitesettings/add/", {"open_signup": "on"})
    assert response.status_code == 302
    assert SiteSettings.load().open_signup is True
    assert client.get("/accounts/signup/").status_code == 200


def test_it_links_signup_from_the_sign_in_page_only_when_open(client, staff):
    assert b"/accounts/signup/" not in client.get("/accounts/login/").content
    SiteSettings.objects.create(pk=1, open_signup=True)
    assert b"/accounts/signup/" in client.get("/accounts/login/").content
