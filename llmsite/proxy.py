"""Who is on the other end of a connection: the peer, or the client a trusted proxy names.

daphne's own `--proxy-headers` believes `X-Forwarded-For` from any peer, so anyone could pick their address
(and walk past the sign-in throttle). The site therefore starts daphne without it, and this ASGI middleware
(around HTTP and WebSocket alike) replaces `scope["client"]` with the forwarded address only when the
direct peer is one of LLMSITE_TRUSTED_PROXIES. Django's REMOTE_ADDR and the WebSocket scope's client both
come from `scope["client"]`, so everything downstream sees the same answer. With trusted proxies set,
X-Forwarded-* headers from any other peer are removed, so nothing downstream (Django's
SECURE_PROXY_SSL_HEADER included) can be told "https" by a client that connects directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(name: str, items: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks; anything else is an ImproperlyConfigured naming the variable."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated IP addresses or networks (10.0.0.5, 192.168.1.0/24); got {item!r}."
            ) from None
    return tuple(networks)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def is_trusted(host: str | None, trusted: tuple[Network, ...]) -> bool:
    address = _address(host) if host else None
    return address is not None and any(address in network for network in trusted)


def forwarded_client(peer: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The client address: the rightmost X-Forwarded-For entry that is not itself a trusted proxy.

    Entries to its left were written by the client or by untrusted hops, so they are never believed.
    """
    if not is_trusted(peer, trusted):
        return peer
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = _address(entry)
        if address is None:
            break
        client = str(address)
        if not any(address in network for network in trusted):
            break
    return client


def _header(scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    if not values:
        return None
    return ", ".join(value.decode("latin-1") for value in values)


class ClientAddressMiddleware:
    """Sets `scope["client"]` (and the scheme a trusted proxy reports) before the application sees it."""

    def __init__(self, app, trusted: tuple[Network, ...] | None = None):
        self.app = app
        self._trusted = trusted

    @property
    def trusted(self) -> tuple[Network, ...]:
        if self._trusted is None:
            from django.conf import settings

            self._trusted = tuple(settings.LLMSITE_TRUSTED_PROXIES)
        return self._trusted

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope.get("client") and self.trusted:
            peer, port = scope["client"][0], scope["client"][1]
            if not is_trusted(peer, self.trusted):
                # Nothing downstream (Django's SECURE_PROXY_SSL_HEADER included) may believe these either.
                scope = dict(scope)
                scope["headers"] = [(key, value) for key, value in scope.get("headers", [])
                                    if not key.lower().startswith(b"x-forwarded-")]
            else:
                scope = dict(scope)
                forwarded_for = _header(scope, b"x-forwarded-for")
                if forwarded_for:
                    scope["client"] = (forwarded_client(peer, forwarded_for, self.trusted), port)
                proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[-1].strip().lower()
                if proto in ("http", "https"):
                    secure = proto == "https"
                    scope["scheme"] = ("https" if secure else "http") if scope["type"] == "http" else (
                        "wss" if secure else "ws")
        return await self.app(scope, receive, send)
