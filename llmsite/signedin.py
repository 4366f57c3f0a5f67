"""Session keys this web process has seen signed in: how the WebSocket handshake budget
(llmsite/connections.py) tells a person from a flood without a database query.

A handshake costs the server a WebSocket negotiation, the ASGI stack and a session lookup even when it is
refused, so handshakes are rationed per client address. A signed-in person is not charged: whatever a
handshake of theirs costs, they could spend on plain HTTP pages too (each page looks their session up as
well), they are held to LLMSITE_MAX_CONNECTIONS_PER_USER open sockets, and a person who floods frames has
their new sockets refused before any lookup (chat/limits.py). Charging them would only hurt people who
share an address (a NAT) with a flooding machine.

"Signed in" must be told from the handshake's headers alone: a session key is noted here when an HTTP
response was made for a signed-in user (the chat page loads before its socket opens) and when a chat
handshake was authenticated; it is forgotten at sign-out. A forged or stale cookie is not among them, so it
is charged like no cookie at all, and so is a noted key whose handshake finds it no longer signed in
(expired, or its account deactivated). Only a hash of each key is kept, at most MAX_KEYS of them (least recently
seen go first). In memory, per web process, like the other counts (README: "Limits").
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from django.contrib.auth.signals import user_logged_out
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import LazyObject, empty

MAX_KEYS = 100_000

_lock = threading.Lock()
_keys: OrderedDict[bytes, None] = OrderedDict()


def _digest(session_key: str | bytes) -> bytes:
    raw = session_key.encode("latin-1") if isinstance(session_key, str) else session_key
    return hashlib.blake2b(raw, digest_size=16).digest()


def note(session_key: str | bytes | None) -> None:
    """This session key belongs to a signed-in person."""
    if not session_key:
        return
    digest = _digest(session_key)
    with _lock:
        _keys[digest] = None
        _keys.move_to_end(digest)
        while len(_keys) > MAX_KEYS:
            _keys.popitem(last=False)


def forget(session_key: str | bytes | None) -> None:
    if session_key:
        with _lock:
            _keys.pop(_digest(session_key), None)


def known(session_key: str | bytes | None) -> bool:
    """Whether this key was seen signed in (and not signed out since). No I/O: safe in the reactor thread."""
    if not session_key:
        return False
    digest = _digest(session_key)
    with _lock:
        return digest in _keys


def clear() -> None:
    with _lock:
        _keys.clear()


def _signed_out(sender, request=None, **kwargs) -> None:
    session = getattr(request, "session", None)
    forget(getattr(session, "session_key", None))


user_logged_out.connect(_signed_out, dispatch_uid="llmsite.signedin.forget_on_logout")


class NoteSignedInMiddleware(MiddlewareMixin):
    """After AuthenticationMiddleware: notes the session of a response made for a signed-in user. Only when
    the view already looked the user up (every page with the site's menu does): it never adds a query."""

    def process_response(self, request, response):
        user = request.__dict__.get("user")
        if isinstance(user, LazyObject):  # AuthenticationMiddleware's, unevaluated unless the view used it
            user = None if user._wrapped is empty else user._wrapped
        if user is not None and getattr(user, "is_authenticated", False):  # login() sets a plain User
            session = getattr(request, "session", None)
            note(getattr(session, "session_key", None))
        return response


class NoteSignedInHandshakes:
    """ASGI middleware inside channels' AuthMiddlewareStack (which has resolved scope["user"]): notes the
    session of an authenticated WebSocket handshake, so the person's later handshakes are not charged, and
    forgets one that no longer authenticates."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        user, session_key = scope.get("user"), getattr(scope.get("session"), "session_key", None)
        if user is not None and getattr(user, "is_authenticated", False):
            note(session_key)
        else:  # expired, or its account deactivated: its next handshakes are counted again
            forget(session_key)
        return await self.application(scope, receive, send)
