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
