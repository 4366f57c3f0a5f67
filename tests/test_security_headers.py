"""Headers every response carries, cookies, and CSRF on every form."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/advisor/", "/accounts/login/", "/healthz", "/api/advisor/gpus",
                                  "/advisor/no-such-page/"])
def test_it_sends_the_security_headers_on_every_response(client: Client, path):
    response = client.get(path)
    assert response["Content-Security-Policy"] == EXPECTED_CSP
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_it_keeps_the_session_cookie_away_from_scripts():
    assert settings.SESSION_COOKIE_HTTPONLY is True


@pytest.mark.django_db
@override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True)
def test_it_marks_cookies_secure_when_told_it_is_behind_https(client: Client, django_user_model):
    django_user_model.objects.create_user("member", "", "a-long-member-password-3")
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"username": "member", "password": "a-long-member-password-3"})
    assert response.cookies["sessionid"]["secure"] and response.cookies["sessionid"]["httponly"]


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


def _post_forms():
    for template in sorted((ROOT / "templates").rglob("*.html")):
        for form in FORM.findall(template.read_text()):
            if re.search(r"method=[\"']post[\"']", form, re.I):
                yield template.relative_to(ROOT), form


@pytest.mark.parametrize("template, form", list(_post_forms()), ids=lambda value: str(value)[:40])
def test_it_puts_a_csrf_token_in_every_post_form(template, form):
    assert "{% csrf_token %}" in form, f"{template} has a POST form without {{% csrf_token %}}"
