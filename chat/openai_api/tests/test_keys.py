"""Personal API keys: shown once and stored hashed, checked afresh every request, owned by one person, revoked by
their owner or by staff in the admin."""

import pytest
from django.urls import reverse

from chat.openai_api.keys import bearer_token, check_key, create_key, hash_key
from chat.openai_api.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="a long password for alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="a long password for bob")


def test_a_key_is_stored_only_as_its_hash(alice):
    row, key = create_key(alice, "laptop")
    stored = ApiKey.objects.values().get(pk=row.pk)
    assert key not in str(stored)
    assert stored["key_hash"] == hash_key(key) and stored["prefix"] == key[:11]
    assert not stored["store_conversations"]  # off unless asked for


def test_check_key_follows_revocation_and_the_account(alice):
    row, key = create_key(alice, "laptop")
    assert check_key(key).pk == row.pk
    assert check_key(key + "x") is None and check_key("") is None and check_key(None) is None
    alice.is_active = False
    alice.save()
    assert check_key(key) is None
    alice.is_active = True
    alice.save()
    ApiKey.objects.filter(pk=row.pk).update(revoked_at="2026-01-01T00:00:00Z")
    assert check_key(key) is None


def test_check_key_records_when_it_was_last_used(alice):
    row, key = create_key(alice, "laptop")
    assert row.last_used_at is None
    check_key(key)
    assert ApiKey.objects.get(pk=row.pk).last_used_at is not None


@pytest.mark.parametrize(("header", "token"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None),
                                               ("Bearer", None), ("", None)])
def test_only_a_bearer_header_carries_a_key(header, token):
    assert bearer_token(header) == token


def test_the_page_shows_a_new_key_once(client, alice):
    client.force_login(alice)
    response = client.post(reverse("openai_api_keys:keys"), {"name": "  my   editor "})
    assert response.status_code == 302
    shown = client.get(reverse("openai_api_keys:keys"))
    row = ApiKey.objects.get(owner=alice)
    assert row.name == "my editor"
    key = shown.context["new_key"]["key"]
    assert check_key(key).pk == row.pk and key in shown.content.decode()
    again = client.get(reverse("openai_api_keys:keys")).content.decode()
    assert key not in again and row.prefix in again


def test_a_nameless_key_is_refused_and_nothing_is_made(client, alice):
    client.force_login(alice)
    response = client.post(reverse("openai_api_keys:keys"), {"name": "   "})
    assert response.status_code == 200 and "Give the key a name." in response.content.decode()
    assert not ApiKey.objects.exists()


def test_someone_elses_key_cannot_be_revoked_or_changed(client, alice, bob):
    row, _key = create_key(bob, "bob's")
    client.force_login(alice)
    assert client.post(reverse("openai_api_keys:revoke", args=[row.pk])).status_code == 404
    assert client.post(reverse("openai_api_keys:store", args=[row.pk]), {"store": "on"}).status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None and not row.store_conversations


def test_the_owner_revokes_and_chooses_storing(client, alice):
    row, key = create_key(alice, "laptop")
    client.force_login(alice)
    client.post(reverse("openai_api_keys:store", args=[row.pk]), {"store": "on"})
    assert ApiKey.objects.get(pk=row.pk).store_conversations
    client.post(reverse("openai_api_keys:store", args=[row.pk]))
    assert not ApiKey.objects.get(pk=row.pk).store_conversations
    client.post(reverse("openai_api_keys:revoke", args=[row.pk]))
    assert check_key(key) is None


def test_the_keys_page_needs_a_sign_in(client, alice):
    response = client.get(reverse("openai_api_keys:keys"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_staff_see_and_revoke_any_key_in_the_admin(client, django_user_model, alice):
    staff = django_user_model.objects.create_superuser("boss", "boss@example.com", "a long password for boss")
    row, key = create_key(alice, "alice's laptop")
    client.force_login(staff)
    listing = client.get("/admin/openai_api/apikey/").content.decode()
    assert "alice&#x27;s laptop" in listing and row.prefix in listing and key not in listing
    response = client.post("/admin/openai_api/apikey/", {"action": "revoke", "_selected_action": [row.pk]},
                           follow=True)
    assert "1 key revoked." in response.content.decode()
    assert check_key(key) is None
    assert client.get("/admin/openai_api/apikey/add/").status_code == 403  # keys are made by their owners
