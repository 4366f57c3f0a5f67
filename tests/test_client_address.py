"""Whose address a request has (llmsite/proxy.py): the peer's, unless the peer is a trusted proxy."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmsite.proxy import ClientAddressMiddleware, forwarded_client, parse_trusted_proxies
from tests.test_settings_env import start_django

TRUSTED = parse_trusted_proxies("LLMSITE_TRUSTED_PROXIES", ["10.0.0.5", "192.168.1.0/24", "[::1]"])


def seen_by_the_app(scope_type: str, peer: str, headers: list[tuple[bytes, bytes]]) -> dict:
    seen = {}

    async def app(scope, receive, send):
        seen.update(client=scope["client"][0], scheme=scope.get("scheme"),
                    forwarded=sorted(k for k, _ in scope["headers"] if k.startswith(b"x-forwarded-")))

    scheme = "http" if scope_type == "http" else "ws"
    scope = {"type": scope_type, "client": (peer, 5555), "headers": headers, "scheme": scheme}
    # A thread of its own: a session's Playwright (sync API) keeps an event loop running in the main thread.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, ClientAddressMiddleware(app, TRUSTED)(scope, None, None)).result()
    return seen


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(scope_type):
    seen = seen_by_the_app(scope_type, "192.168.2.9", [(b"x-forwarded-for", b"1.2.3.4"),
                                                        (b"x-forwarded-proto", b"https")])
    assert seen["client"] == "192.168.2.9"
    assert seen["scheme"] in ("http", "ws")
    assert seen["forwarded"] == [], "nothing downstream can believe them either (SECURE_PROXY_SSL_HEADER)"


@pytest.mark.parametrize("scope_type, secure", [("http", "https"), ("websocket", "wss")])
def test_a_trusted_proxy_names_the_client_and_the_scheme(scope_type, secure):
    seen = seen_by_the_app(scope_type, "192.168.1.7", [(b"x-forwarded-for", b"203.0.113.9"),
                                                        (b"x-forwarded-proto", b"https")])
    assert seen == {"client": "203.0.113.9", "scheme": secure,
                    "forwarded": [b"x-forwarded-for", b"x-forwarded-proto"]}


def test_entries_a_client_wrote_left_of_the_proxies_are_not_believed():
    assert forwarded_client("10.0.0.5", "6.6.6.6, 203.0.113.9, 192.168.1.3", TRUSTED) == "203.0.113.9"
    assert forwarded_client("10.0.0.5", "not-an-address, 203.0.113.9", TRUSTED) == "203.0.113.9"
    assert forwarded_client("10.0.0.5", "garbage", TRUSTED) == "10.0.0.5"
    assert forwarded_client("::1", "2001:db8::7", TRUSTED) == "2001:db8::7"


def test_no_trusted_proxy_by_default():
    from django.conf import settings

    assert settings.LLMSITE_TRUSTED_PROXIES == ()


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.lan", "10.0.0.0/33"])
def test_a_bad_trusted_proxy_stops_start_up_naming_the_variable(tmp_path, value):
    result = start_django(tmp_path, LLMSITE_TRUSTED_PROXIES=value)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert "LLMSITE_TRUSTED_PROXIES" in result.stderr.splitlines()[-1] and value in result.stderr.splitlines()[-1]
