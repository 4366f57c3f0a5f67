"""Which session keys the WebSocket handshake budget leaves uncounted (llmsite/signedin.py): a signed-in
person's, from the pages they load; never a visitor's, and not after sign-out. The budget itself is tested
against a real server in tests/test_socket_attacks.py and tests/test_hostile_lan.py."""

import pytest
from django.contrib.auth import get_user_model

from llmsite import signedin

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-member-password-7"


@pytest.fixture(autouse=True)
def fresh_registry():
    signedin.clear()
    yield
    signedin.clear()


@pytest.fixture
def member(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return get_user_model().objects.create_user("member", "m@example.invalid", PASSWORD)


def test_signing_in_and_loading_a_page_notes_the_session_and_signing_out_forgets_it(client, member):
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 302
    key = client.cookies["sessionid"].value
    assert signedin.known(key), "the sign-in's own response notes the new session"
    signedin.clear()
    assert client.get("/advisor/").status_code == 200
    assert signedin.known(key), "a page that shows who is signed in notes it"
    assert client.post("/accounts/logout/").status_code == 302
    assert not signedin.known(key)


def test_a_visitor_a_wrong_password_and_a_forged_cookie_are_never_noted(client, member):
    assert client.get("/advisor/").status_code == 200
    client.post("/accounts/login/", {"username": "member", "password": "wrong"})
    client.cookies["sessionid"] = "forged0000000000000000000000000000"
    assert client.get("/advisor/").status_code == 200
    assert not signedin.known("forged0000000000000000000000000000")
    assert not signedin._keys


def test_the_registry_keeps_hashes_only_and_at_most_max_keys(monkeypatch):
    monkeypatch.setattr(signedin, "MAX_KEYS", 3)
    for n in range(5):
        signedin.note(f"key{n}")
    assert [signedin.known(f"key{n}") for n in range(5)] == [False, False, True, True, True]
    assert all(b"key" not in digest for digest in signedin._keys)
