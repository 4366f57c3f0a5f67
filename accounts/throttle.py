"""Failed sign-ins are counted, so a password cannot be guessed at the speed of a script, and open sign-up
is rationed, so a script cannot fill the approval queue.

Sign-in, with N = LLMSITE_SIGNIN_ATTEMPTS failures in LLMSITE_SIGNIN_WINDOW_S:

- one account from one address: N failures, then that pair waits for the rest of the window;
- one address, any accounts: ADDRESS_FACTOR * N, then that address waits;
- one account from many addresses: ACCOUNT_FACTOR * N, then addresses that have never signed in to that
  account wait. An address that has signed in to it successfully (in the last KNOWN_ADDRESS_S) keeps its
  way in: a guesser elsewhere on the network cannot lock the owner out of their own machine.

The address is the client's as llmsite/proxy.py resolves it: the peer, or what a trusted proxy forwards
(X-Forwarded-For from anyone else is ignored, so it cannot be rotated to reset the counts). A successful
sign-in clears its pair's count. The counts live in Django's cache: in memory, per web process (the site
runs one), forgotten at a restart.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache

ADDRESS_FACTOR = 4   # one address trying many accounts
ACCOUNT_FACTOR = 10  # one account tried from many addresses
KNOWN_ADDRESS_S = 30 * 86_400
SIGNUP_WINDOW_S = 3600


class Wait(NamedTuple):
    seconds: int
    reason: str  # "address": this address (for this account or all); "account": new addresses for it


def client_address(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _key(*parts: str) -> str:
    return "signin:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _name(username: str) -> str:
    return (username or "").strip().lower()


def _counters(username: str, address: str) -> list[tuple[str, int, str]]:
    limit, name = settings.LLMSITE_SIGNIN_ATTEMPTS, _name(username)
    return [(_key("pair", name, address), limit, "address"),
            (_key("address", address), limit * ADDRESS_FACTOR, "address"),
            (_key("account", name), limit * ACCOUNT_FACTOR, "account")]


def is_known(username: str, address: str) -> bool:
    return bool(cache.get(_key("known", _name(username), address)))


def wait(username: str, address: str) -> Wait:
    """How long before a sign-in may be tried from this address (0 seconds: now), and why."""
    now, known = time.time(), is_known(username, address)
    longest = Wait(0, "")
    for key, limit, reason in _counters(username, address):
        if reason == "account" and known:
            continue
        entry = cache.get(key)
        if entry and entry["count"] >= limit and entry["until"] - now > longest.seconds:
            longest = Wait(math.ceil(entry["until"] - now), reason)
    return longest


def wait_seconds(username: str, address: str) -> int:
    return wait(username, address).seconds


def failed(username: str, address: str) -> None:
    now = time.time()
    for key, _limit, _reason in _counters(username, address):
        _count(key, now, settings.LLMSITE_SIGNIN_WINDOW_S)


def succeeded(username: str, address: str) -> None:
    cache.delete(_counters(username, address)[0][0])
    cache.set(_key("known", _name(username), address), True, timeout=KNOWN_ADDRESS_S)


def _count(key: str, now: float, window_s: int) -> dict:
    entry = cache.get(key)
    if not entry or entry["until"] <= now:
        entry = {"count": 0, "until": now + window_s}
    entry["count"] += 1
    cache.set(key, entry, timeout=math.ceil(entry["until"] - now))
    return entry


def signup_wait(address: str) -> int:
    """Seconds before this address may ask for another account (LLMSITE_SIGNUP_PER_ADDRESS an hour)."""
    entry = cache.get(_key("signup", address))
    if entry and entry["count"] >= settings.LLMSITE_SIGNUP_PER_ADDRESS:
        return max(1, math.ceil(entry["until"] - time.time()))
    return 0


def signup_recorded(address: str) -> None:
    _count(_key("signup", address), time.time(), SIGNUP_WINDOW_S)
