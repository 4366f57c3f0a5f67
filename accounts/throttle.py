"""Failed sign-ins are counted, so a password cannot be guessed at the speed of a script.

Per account and address: LLMSITE_SIGNIN_ATTEMPTS failures in LLMSITE_SIGNIN_WINDOW_S, then that pair waits
for the rest of the window. Per address (many accounts tried) and per account (from many addresses) the
allowance is larger, ADDRESS_FACTOR and ACCOUNT_FACTOR times. A successful sign-in clears its pair.
The counts live in Django's cache: in memory, per web process (the site runs one).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache

ADDRESS_FACTOR = 4   # one address trying many accounts
ACCOUNT_FACTOR = 10  # one account tried from many addresses (X-Forwarded-For can be forged without a proxy)


def client_address(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    limit = settings.LLMSITE_SIGNIN_ATTEMPTS
    name = (username or "").strip().lower()

    def key(*parts: str) -> str:
        return "signin-failures:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()

    return [(key("pair", name, address), limit), (key("address", address), limit * ADDRESS_FACTOR),
            (key("account", name), limit * ACCOUNT_FACTOR)]


def wait_seconds(username: str, address: str) -> int:
    """0 when a sign-in may be tried now, else how many seconds until it may."""
    now = time.time()
    wait = 0.0
    for key, limit in _keys(username, address):
        entry = cache.get(key)
        if entry and entry["count"] >= limit:
            wait = max(wait, entry["until"] - now)
    return math.ceil(wait) if wait > 0 else 0


def failed(username: str, address: str) -> None:
    now = time.time()
    for key, _limit in _keys(username, address):
        entry = cache.get(key)
        if not entry or entry["until"] <= now:
            entry = {"count": 0, "until": now + settings.LLMSITE_SIGNIN_WINDOW_S}
        entry["count"] += 1
        cache.set(key, entry, timeout=math.ceil(entry["until"] - now))


def succeeded(username: str, address: str) -> None:
    cache.delete(_keys(username, address)[0][0])
