"""Staff invite people with a link; the link makes one account, once, within its days."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import services
from accounts.models import INVITATION_DAYS, Invitation

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-invited-password-7"
User = get_user_model()


@pytest.fixture
def staff(db):
    return User.objects.create_superuser("boss", "boss@example.invalid", "pw-for-tests-only-1")


@pytest.fixture
def invitation(staff):
    return Invitation.objects.create(email="guest@example.invalid", note="for the guest", created_by=staff)


def account(username="guest", **changes):
    return {"username": username, "password1": PASSWORD, "password2": PASSWORD, **changes}


def test_it_gives_each_invitation_a_long_random_token_and_seven_days(staff):
    first, second = Invitation.objects.create(created_by=staff), Invitation.objects.create(created_by=staff)
    assert first.token != second.token and len(first.token) >= 32
    assert timedelta(days=INVITATION_DAYS - 1) < first.expires_at - timezone.now() <= timedelta(days=INVITATION_DAYS)


def test_it_lets_staff_create_an_invitation_in_the_admin_and_shows_its_link(client, staff):
    client.force_login(staff)
    response = client.post("/admin/accounts/invitation/add/", {
        "email": "new@example.invalid", "note": "new person",
        "expires_at_0": (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%d"), "expires_at_1": "12:00:00",
    }, follow=True)
    invitation = Invitation.objects.get()
    assert invitation.created_by == staff
    assert f"http://testserver/accounts/invite/{invitation.token}/" in response.content.decode()


def test_it_shows_the_invitation_form(client, invitation):
    response = client.get(f"/accounts/invite/{invitation.token}/")
    assert response.status_code == 200 and b'name="password2"' in response.content


def test_it_creates_the_invited_account_and_signs_it_in(client, invitation):
    response = client.post(f"/accounts/invite/{invitation.token}/", account())
    assert response.status_code == 302
    guest = User.objects.get(username="guest")
    assert guest.is_active and not guest.is_staff and guest.email == "guest@example.invalid"
    assert int(client.session["_auth_user_id"]) == guest.pk
    invitation.refresh_from_db()
    assert invitation.used_by == guest and invitation.used_at is not None


def test_it_applies_djangos_password_validators_to_invited_people(client, invitation):
    response = client.post(f"/accounts/invite/{invitation.token}/", account(password1="guest", password2="guest"))
    assert response.status_code == 200 and "password2" in response.context["form"].errors
    assert not User.objects.filter(username="guest").exists()


def test_it_refuses_a_used_invitation_with_a_clear_message(client, invitation):
    client.post(f"/accounts/invite/{invitation.token}/", account())
    client.logout()
    response = client.post(f"/accounts/invite/{invitation.token}/", account("second"))
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert not User.objects.filter(username="second").exists()


def test_it_refuses_an_expired_invitation_with_a_clear_message(client, invitation):
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client.get(f"/accounts/invite/{invitation.token}/")
    assert response.status_code == 410 and "expired" in response.content.decode()


def test_it_answers_404_for_an_unknown_token(client, invitation):
    assert client.get("/accounts/invite/not-a-real-token/").status_code == 404


def test_it_undoes_the_account_when_the_invitation_was_used_meanwhile(invitation):
    Invitation.objects.filter(pk=invitation.pk).update(used_at=timezone.now())
    with pytest.raises(services.InvitationUnusable):
        services.accept_invitation(invitation, "late", PASSWORD)
    assert not User.objects.filter(username="late").exists()


def test_it_refuses_a_taken_username_on_an_invitation(client, invitation):
    response = client.post(f"/accounts/invite/{invitation.token}/", account("boss"))
    assert response.status_code == 200 and "username" in response.context["form"].errors
