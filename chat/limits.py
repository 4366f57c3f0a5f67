"""Per-person limits on the chat socket: requests per minute, replies in flight, open connections; and per
socket, a budget of frames (every frame type counts, valid or not).

The bookkeeping is in memory, in this web process (README: "Limits"): with several web processes each
counts on its own. Every function takes one lock and does no I/O, so it is safe from the event loop and
from any thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.cookie import parse_cookie

WINDOW_S = 60.0
CLOSE_TOO_MANY_CONNECTIONS = 4429  # refused before accept(): too many sockets open for this person
CLOSE_TOO_MANY_FRAMES = 4408  # after an `error` frame: this socket sent frames faster than its budget


class LimitExceeded(Exception):
    def __init__(self, code: str, message: str, retry_after: int = 1):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, for the OpenAI API's Retry-After header


def rate_per_minute() -> int:
    return int(getattr(settings, "LLMSITE_RATE_PER_MINUTE", 20))


def max_queued() -> int:
    return int(getattr(settings, "LLMSITE_MAX_QUEUED_PER_USER", 3))


def max_connections() -> int:
    return int(getattr(settings, "LLMSITE_MAX_CONNECTIONS_PER_USER", 8))


def frames_per_second() -> float:
    return float(getattr(settings, "LLMSITE_FRAMES_PER_SECOND", 5))


def frame_burst() -> int:
    return int(getattr(settings, "LLMSITE_FRAME_BURST", 30))


def flood_cooldown_s() -> float:
    return float(getattr(settings, "LLMSITE_FLOOD_COOLDOWN_S", 10))


class FrameBudget:
    """A token bucket for one socket: each frame read takes a token, `rate` come back a second, up to `burst`.

    The burst covers what a page sends at once (a reconnect resumes its replies, a person types fast);
    the rate is far above what a person sends and far below what a script can: a socket that runs dry is
    closed, so one person cannot keep the event loop and the database thread busy with cheap frames.
    """

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _running(message_id: int) -> bool:
    """Whether a reply is still queued or being written in this process."""
    from chat.worker import get_manager

    job = get_manager().job(message_id)
    return job is not None and not job.finished


class Ticket:
    """A reply slot taken by `admit`: `bind` it to the reply once it exists, or `cancel` it."""

    def __init__(self, user_id: int):
        self.user_id = user_id
        self.message_id: int | None = None

    def bind(self, message_id: int) -> None:
        with _lock:
            self.message_id = message_id

    def cancel(self) -> None:
        with _lock:
            slots = _in_flight.get(self.user_id)
            if slots is not None:
                slots.discard(self)
                if not slots:
                    del _in_flight[self.user_id]


_lock = threading.Lock()
_connections: dict[int, int] = {}
_requests: dict[int, deque[float]] = {}
_in_flight: dict[int, set[Ticket]] = {}
# ("user", id) or ("session", key) -> until when new sockets are refused, after one was closed for flooding
_cooling: dict[tuple[str, object], float] = {}


def cool_down(user_id: int, session_key: str | None, *, now: float | None = None) -> None:
    """A socket ran out of frame budget: refuse new sockets of its person, and of its session before any
    database work (CoolingDownGate), for a while, so that reconnecting does not buy a fresh budget at once."""
    until = (time.monotonic() if now is None else now) + flood_cooldown_s()
    with _lock:
        _cooling[("user", user_id)] = until
        if session_key:
            _cooling[("session", session_key)] = until


def cooling_down(*, user_id: int | None = None, session_key: str | None = None, now: float | None = None) -> bool:
    now = time.monotonic() if now is None else now
    with _lock:
        for stale in [key for key, until in _cooling.items() if until <= now]:
            del _cooling[stale]
        return ("user", user_id) in _cooling or (session_key is not None and ("session", session_key) in _cooling)


class CoolingDownGate:
    """ASGI middleware for the chat socket, outside the session and auth middleware: a handshake carrying
    the session cookie of a socket just closed for flooding is refused before it costs a database query."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        cookies = parse_cookie(b"; ".join(v for k, v in scope.get("headers", ()) if k == b"cookie").decode("latin1"))
        if _cooling and cooling_down(session_key=cookies.get(settings.SESSION_COOKIE_NAME)):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def open_connection(user_id: int) -> bool:
    """Count a new socket for this person; False (and nothing counted) when they have too many open."""
    with _lock:
        count = _connections.get(user_id, 0)
        if count >= max_connections():
            return False
        _connections[user_id] = count + 1
        return True


def close_connection(user_id: int) -> None:
    """Release a slot `open_connection` counted. The consumer calls it exactly once, whatever ends it."""
    with _lock:
        count = _connections.get(user_id, 0) - 1
        if count > 0:
            _connections[user_id] = count
        else:
            _connections.pop(user_id, None)


def admit(user_id: int, *, running=_running, now: float | None = None) -> Ticket:
    """A request that starts a reply (send, regenerate, edit): a Ticket, or LimitExceeded.

    Requests over the per-minute rate are refused first; then a person may have at most `max_queued()`
    replies queued or being written at once. Refused requests are not counted.
    """
    now = time.monotonic() if now is None else now
    with _lock:
        recent = _requests.setdefault(user_id, deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        rate = rate_per_minute()
        if len(recent) >= rate:
            wait = max(1, int(recent[0] + WINDOW_S - now + 0.999))
            raise LimitExceeded("rate_limited", f"Too many messages: at most {rate} a minute. "
                                                f"Try again in {wait} s.", retry_after=wait)
        slots = _in_flight.setdefault(user_id, set())
        for ticket in [t for t in slots if t.message_id is not None and not running(t.message_id)]:
            slots.discard(ticket)
        limit = max_queued()
        if len(slots) >= limit:
            raise LimitExceeded("too_many_queued", f"You already have {len(slots)} replies waiting or being "
                                                   f"written (at most {limit}): wait for one to finish or stop it.")
        recent.append(now)
        ticket = Ticket(user_id)
        slots.add(ticket)
        return ticket


def open_connections(user_id: int) -> int:
    with _lock:
        return _connections.get(user_id, 0)


def reset() -> None:
    """Forget every count (tests)."""
    with _lock:
        _connections.clear()
        _requests.clear()
        _in_flight.clear()
        _cooling.clear()
