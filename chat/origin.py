"""Who may open the chat WebSocket: a page of this site, or of an origin in CSRF_TRUSTED_ORIGINS.

Browsers send cookies with a cross-site WebSocket handshake, and no CORS rule protects it: the `Origin`
header is the only defence. channels' AllowedHostsOriginValidator compares the origin's host name with
ALLOWED_HOSTS and ignores scheme and port, so a page served from another port of the same machine
(`http://127.0.0.1:9999`) could drive a signed-in person's socket. This check is Django's CSRF origin
check, applied to the handshake: the `Host` must be allowed (as for any request), and the `Origin` must be
this site's own origin (scheme, host and port of the handshake) or one of CSRF_TRUSTED_ORIGINS (which may
use a `*.` subdomain wildcard, as in Django).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin1")
    return None


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:  # what Django's HttpRequest.get_host() allows
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def _origin(text: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in, or None for anything else."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.username:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def origin_allowed(scope) -> bool:
    origin_header, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin_header or not host:
        return False  # browsers always send both; a client without them is not a page of this site
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    origin = _origin(origin_header)
    if origin is None:
        return False  # "null" (a sandboxed frame, a file://), or not an origin at all
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    if origin == _origin(f"{scheme}://{host}"):
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:
            parts = urlsplit(trusted)
            if parts.scheme.lower() == origin[0] and is_same_domain(
                _netloc(origin), parts.netloc.lower().lstrip("*")
            ):
                return True
        elif _origin(trusted) == origin:
            return True
    return False


def _netloc(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"


class SameOriginValidator:
    """ASGI middleware for WebSocket routes: a handshake from any other origin is refused (HTTP 403)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards WebSocket routes only.")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
