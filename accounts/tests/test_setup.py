"""First run: the first visitor creates the administrator, once; createsuperuser counts the same."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from accounts import services
from accounts.models import FirstRun

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-setup-password-42"
User = get_user_model()


def setup_data(**changes):
    return {"username": "admin", "email": "", "password1": PASSWORD, "password2": PASSWORD, **changes}


def test_it_sends_a_fresh_installs_sign_in_page_to_setup(client):
    response = client.get("/accounts/login/?next=/chat/")
    assert response.status_code == 302
    assert response["Location"] == "/setup/?next=%2Fchat%2F"


def test_it_sends_a_fresh_installs_admin_to_setup(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == "/setup/?next=%2Fadmin%2F"


def test_it_keeps_the_advisor_public_on_a_fresh_install(client):
    assert client.get("/advisor/").status_code == 200


def test_it_shows_the_setup_form_on_a_fresh_install(client):
    response = client.get("/setup/")
    assert response.status_code == 200
    assert b'name="password1"' in response.content and b"csrfmiddlewaretoken" in response.content


def test_it_creates_the_administrator_and_signs_them_in(client):
    response = client.post("/setup/", setup_data())
    assert response.status_code == 302
    admin = User.objects.get()
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert client.get("/admin/").status_code == 200
    assert FirstRun.objects.get().admin == admin


def test_it_follows_next_after_setup_but_only_on_this_site(client):
    assert client.post("/setup/", setup_data(next="/advisor/"))["Location"] == "/advisor/"
    client.logout()
    User.objects.all().delete()
    FirstRun.objects.all().delete()
    assert client.post("/setup/", setup_data(next="https://evil.example/"))["Location"] == "/"


def test_it_applies_djangos_password_validators_at_setup(client):
    response = client.post("/setup/", setup_data(password1="admin", password2="admin"))
    assert response.status_code == 200
    assert "password2" in response.context["form"].errors
    assert not User.objects.exists()


def test_it_answers_404_for_setup_once_an_account_exists(client):
    client.post("/setup/", setup_data())
    client.logout()
    assert client.get("/setup/").status_code == 404
    assert client.post("/setup/", setup_data(username="intruder")).status_code == 404
    assert User.objects.count() == 1


def test_it_answers_404_for_setup_after_createsuperuser(client, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", "--username", "scripted", "--email", "s@example.invalid")
    assert client.get("/setup/").status_code == 404
    assert client.get("/accounts/login/").status_code == 200


def test_it_refuses_a_setup_when_the_guard_row_exists_already():
    """The unique guard alone stops a second administrator, as when a concurrent setup has just won."""
    FirstRun.objects.create(pk=1)
    with pytest.raises(services.SetupClosed):
        services.create_first_admin("second", PASSWORD)
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_administrator_when_two_setups_race():
    barrier = threading.Barrier(4)
    outcomes = []

    def attempt(name):
        barrier.wait()
        try:
            services.create_first_admin(name, PASSWORD)
            outcomes.append("created")
        except services.SetupClosed:
            outcomes.append("closed")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"admin{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["closed", "closed", "closed", "created"]
    assert User.objects.count() == 1 and User.objects.get().is_superuser


def test_it_keeps_setup_closed_when_every_account_was_deleted_after_setup(client):
    client.post("/setup/", setup_data())
    client.logout()
    User.objects.all().delete()
    assert client.get("/setup/").status_code == 404
    assert client.get("/accounts/login/").status_code == 200
