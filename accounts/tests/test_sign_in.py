"""Sign-in and sign-out at /accounts/, and which pages need an account."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-member-password-3"
User = get_user_model()


@pytest.fixture
def member(db):
    return User.objects.create_user("member", "m@example.invalid", PASSWORD)


def test_it_signs_a_person_in_and_follows_next(client, member):
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD, "next": "/advisor/"})
    assert response.status_code == 302 and response["Location"] == "/advisor/"


def test_it_refuses_a_wrong_password(client, member):
    response = client.post("/accounts/login/", {"username": "member", "password": "nope"})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_it_never_follows_next_to_another_site(client, member):
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD,
                                                "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_it_signs_out_on_post(client, member):
    client.force_login(member)
    assert client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_does_not_sign_out_on_get(client, member):
    client.force_login(member)
    assert client.get("/accounts/logout/").status_code == 405
    assert "_auth_user_id" in client.session


def test_it_asks_visitors_to_sign_in_for_the_chat(client, member):
    response = client.get("/chat/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/chat/")


def test_it_keeps_the_admin_for_staff(client, member):
    client.force_login(member)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_shows_who_is_signed_in_with_a_sign_out_form(client, member):
    client.force_login(member)
    html = client.get("/advisor/").content.decode()
    assert "member" in html and 'action="/accounts/logout/"' in html


def test_it_protects_the_sign_in_form_with_csrf(member):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 403


def wrong(client, username="member", url="/accounts/login/", times=1):
    for _ in range(times):
        response = client.post(url, {"username": username, "password": "not-the-password"})
        assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_it_stops_guessing_after_five_failures_and_says_when_to_try_again(client, member):
    wrong(client, times=5)
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert "_auth_user_id" not in client.session, "the right password is not even tried"
    assert "Too many failed sign-ins for this account from your address. Try again in 15 minutes." in \
        response.content.decode()
    other = User.objects.create_user("other", password=PASSWORD)
    assert client.post("/accounts/login/", {"username": other.username, "password": PASSWORD}).status_code == 302


def test_the_wait_ends_with_the_window(client, member, monkeypatch):
    import time

    from accounts import throttle

    wrong(client, times=5)
    later = time.time() + 901
    monkeypatch.setattr(throttle.time, "time", lambda: later)
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 302


def test_a_successful_sign_in_clears_the_count(client, member):
    wrong(client, times=4)
    assert client.post("/accounts/login/", {"username": "member", "password": PASSWORD}).status_code == 302
    client.post("/accounts/logout/")
    wrong(client, times=4)  # a fresh count: four more do not lock the account
    assert client.post("/accounts/login/", {"username": "member", "password": PASSWORD}).status_code == 302


def test_the_count_ignores_the_case_of_the_username(client, member):
    for name in ("member", "MEMBER", "Member", "mEmber", "membeR"):
        wrong(client, username=name)
    client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert "_auth_user_id" not in client.session


def test_one_address_trying_many_accounts_is_stopped_too(client, member):
    for n in range(20):
        wrong(client, username=f"guess{n}")
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert "_auth_user_id" not in client.session and "Too many failed sign-ins" in response.content.decode()


def test_the_admin_sign_in_is_throttled_too(client):
    User.objects.create_superuser("boss", "b@example.invalid", PASSWORD)
    wrong(client, username="boss", url="/admin/login/", times=5)
    client.post("/admin/login/", {"username": "boss", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert client.post("/accounts/login/", {"username": "boss", "password": PASSWORD}).status_code == 200
