"""Anonymous GET /healthz from a copy at most LLMSITE_HEALTHZ_MAX_AGE_MS old (llmsite/health.py).

Driven through the site's real ASGI application (Django's handler, every middleware, the real view and
database) with a clock the test moves: a database that stops answering shows in the anonymous answer once
the copy is older than the limit, never later; a session, a query string or a HEAD always get a full answer.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection

from tests.gpus import install_gpus


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(app, path: str = "/healthz", *, method: str = "GET", cookie: str = "") -> tuple[int, dict, bytes]:
    path, _, query = path.partition("?")
    headers = [(b"host", b"testserver")] + ([(b"cookie", cookie.encode())] if cookie else [])
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5555), "server": ("testserver", 80)}
    sent, requested = [], []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the handler is done listening

    async def send(message):
        sent.append(message)

    # A thread of its own: a session's Playwright (sync API) keeps an event loop running in the main thread.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def cached_site(monkeypatch, tmp_path):
    from django.core.asgi import get_asgi_application

    from llmsite.health import HealthzCache

    install_gpus(monkeypatch, ("NVIDIA GeForce RTX 4070", 12, 11))
    clock = Clock()
    app = HealthzCache(get_asgi_application(), max_age_s=0.25, session_cookie=settings.SESSION_COOKIE_NAME,
                       clock=clock)
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    original = connection.settings_dict["NAME"]

    def break_database():
        connection.close()
        connection.settings_dict["NAME"] = str(broken) if connection.vendor == "sqlite" else "llmsite_no_such_database"

    yield app, clock, break_database
    connection.close()
    connection.settings_dict["NAME"] = original


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_copy_is_never_older_than_the_limit(cached_site):
    app, clock, break_database = cached_site
    status, headers, body = get(app)
    assert status == 200 and json.loads(body)["database"] is True
    break_database()
    clock.now += 0.2  # within 250 ms: the copy, word for word, with the same headers
    assert get(app) == (status, headers, body)
    clock.now += 0.1  # 300 ms: a full answer again, which tells the truth
    status, _, body = get(app)
    assert status == 503 and json.loads(body)["database"] is False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["session", "query", "head"])
def test_a_session_a_query_string_or_a_head_always_get_a_full_answer(cached_site, how):
    app, clock, break_database = cached_site
    assert get(app)[0] == 200  # the copy exists
    break_database()
    if how == "session":
        status = get(app, cookie=f"{settings.SESSION_COOKIE_NAME}=abc")[0]
    elif how == "query":
        status = get(app, "/healthz?now")[0]
    else:
        status = get(app, method="HEAD")[0]
    # Django's own answer: the broken database's 503, or its 405 for a method the view does not take
    assert status == (405 if how == "head" else 503), "served the anonymous copy"


@pytest.mark.django_db(transaction=True)
def test_the_copy_keeps_the_security_headers_of_a_full_answer(cached_site):
    app, clock, _ = cached_site
    _, first, _ = get(app)
    _, copy, _ = get(app)
    for header in ("content-security-policy", "x-content-type-options", "cache-control"):
        assert header in first and copy[header] == first[header]
    assert "set-cookie" not in copy
