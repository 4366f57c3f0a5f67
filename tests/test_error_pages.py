"""The site's own 404, 403 and 500 pages: styled like the rest of the site, in English and Spanish.

DEBUG is off, as on a real install. The 500 page is rendered by Django with an empty context: it must not
need a request, a signed-in user or the database, because any of those may be what failed.
"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from chat.models import Conversation

PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def production_like(settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.error_urls"


@pytest.fixture
def browser():
    # As a browser meets a failing view: the response, not the exception.
    return Client(raise_request_exception=False)


def assert_site_page(html: str) -> None:
    """The site's look: its stylesheet and header, and a way back home."""
    assert '<link rel="stylesheet" href="/static/css/site.css">' in html
    assert '<header class="site-header">' in html
    assert 'id="way-home"' in html


@pytest.mark.django_db
def test_an_unknown_address_answers_the_styled_404(browser):
    response = browser.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert_site_page(html)
    assert "<title>Page not found · llmsite</title>" in html and 'data-status="404"' in html
    assert 'id="language-select"' in html  # the full site header, with its language switcher


@pytest.mark.django_db
def test_the_404_page_speaks_spanish(browser):
    html = browser.get("/no/such/page/", headers={"accept-language": "es"}).content.decode()
    assert "Página no encontrada" in html and "No hay ninguna página en esta dirección" in html


@pytest.mark.django_db
def test_someone_elses_conversation_answers_the_styled_404(browser):
    owner = get_user_model().objects.create_user("owner", password=PASSWORD)
    secret = Conversation.objects.create(owner=owner, title="Private plans")
    browser.force_login(get_user_model().objects.create_user("nosy", password=PASSWORD))
    response = browser.get(f"/chat/c/{secret.pk}/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "Private plans" not in html
    assert_site_page(html)


@pytest.mark.django_db
def test_a_staff_page_answers_the_styled_403_to_other_people(browser):
    browser.force_login(get_user_model().objects.create_user("member", password=PASSWORD))
    response = browser.get("/chat/models/")
    assert response.status_code == 403
    html = response.content.decode()
    assert_site_page(html)
    assert "<h1>Not allowed</h1>" in html and "You are signed in as member" in html


@pytest.mark.django_db
def test_the_403_page_speaks_spanish_to_visitors(browser):
    response = browser.get("/test-errors/forbidden/", headers={"accept-language": "es"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "<h1>No permitido</h1>" in html and "Esta página no está abierta a visitantes" in html


@pytest.mark.django_db
def test_a_failing_view_answers_the_styled_500(browser):
    response = browser.get("/test-errors/bug/")
    assert response.status_code == 500
    html = response.content.decode()
    assert_site_page(html)
    assert "<title>Something went wrong · llmsite</title>" in html and 'data-status="500"' in html
    assert "a bug in a view" not in html  # nothing of the error itself is shown


@pytest.mark.django_db
def test_the_500_page_speaks_spanish(browser):
    html = browser.get("/test-errors/bug/", headers={"accept-language": "es"}).content.decode()
    assert '<html lang="es">' in html and "Algo ha fallado" in html and "El servidor no pudo terminar" in html


def test_the_500_page_needs_no_database(browser):
    """No django_db mark: any query here fails the test, so a 500 page that asked the database would too."""
    response = browser.get("/test-errors/database/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    assert "Something went wrong" in server_error(RequestFactory().get("/")).content.decode()
