"""Fixtures for every test in the project."""

import pytest


@pytest.fixture(autouse=True)
def plain_static_storage(settings):
    """The test client renders pages without a collectstatic run, so hashed static names do not exist yet.

    Tests that start the real server (tests/conftest.py `site`) run collectstatic and use hashed names.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: the sign-in throttle keeps its counts there."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the site's default language. A request in Spanish leaves Spanish active in the thread
    (LocaleMiddleware activates it; nothing deactivates it), so text made outside a request in a later test (a
    service's error, a form's message) came out in Spanish: run after advisor/tests/test_answer_page.py's
    Spanish test, nine downloads tests failed."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, whose removal PostgreSQL refuses while another connection to it is open
    ("being accessed by other users", a warning at the end of `make test-postgres`). Threads that outlive the
    tests keep theirs: the reply writer by design (chat/services.py), and the thread asgiref ran a socket's
    session lookup in. Their connections are ended before the database is dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
