"""Anonymous GET /healthz from a copy at most LLMSITE_HEALTHZ_MAX_AGE_MS old (a micro-cache in front of Django).

A monitor, a load balancer or a person polling /healthz asks it far more often than the answer changes,
and each full answer costs Django's middleware chain, a thread hop for the synchronous view and a database
query: about 240 requests/s on a 2-core machine, where daphne itself answers ~1,400. This ASGI layer keeps
the last full answer to an anonymous GET (status, headers, body: the same security headers as any page) and
serves it while it is younger than the limit (250 ms by default); then the next request goes through Django
again, and requests that arrive meanwhile wait for that one answer instead of all asking the database.

What is never served from the copy: a request with a session cookie (staff get details: always the full
answer), a query string, any method but GET, and an answer that sets a cookie. The copy holds only what
anonymous callers are shown anyway (states, GPU names). LLMSITE_HEALTHZ_MAX_AGE_MS=0 turns the cache off.
"""

from __future__ import annotations

import asyncio
import time

PATH = "/healthz"


class HealthzCache:
    def __init__(self, app, *, max_age_s: float, session_cookie: str, clock=time.monotonic):
        self.app = app
        self.max_age_s = max_age_s
        self.session_cookie = session_cookie.encode("latin-1")
        self.clock = clock
        self._copy: tuple[float, dict, list[dict]] | None = None   # (taken at, response start, body messages)
        self._refresh: asyncio.Future | None = None

    def _cacheable(self, scope) -> bool:
        if (self.max_age_s <= 0 or scope["type"] != "http" or scope.get("path") != PATH
                or scope.get("method") != "GET" or scope.get("query_string")):
            return False
        for name, value in scope.get("headers", ()):
            if name == b"cookie" and self.session_cookie + b"=" in value:
                return False
        return True

    async def __call__(self, scope, receive, send):
        if not self._cacheable(scope):
            return await self.app(scope, receive, send)
        copy = self._copy
        if copy is not None and self.clock() - copy[0] < self.max_age_s:
            return await self._replay(copy, send)
        if self._refresh is not None and not self._refresh.done():
            # one full answer is being made: share it
            copy = await asyncio.shield(self._refresh)
            if copy is not None:
                return await self._replay(copy, send)
            return await self.app(scope, receive, send)
        self._refresh = asyncio.get_running_loop().create_future()
        copy = None
        try:
            copy = await self._answer(scope, receive, send)
        finally:
            self._refresh.set_result(copy)
        if copy is not None:
            self._copy = copy

    async def _answer(self, scope, receive, send):
        """The full answer from Django, sent on as it comes, and kept if it may be shown to anyone."""
        start, body = None, []

        async def keep(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.append(message)
            await send(message)

        taken = self.clock()
        await self.app(scope, receive, keep)
        if start is None or any(name.lower() == b"set-cookie" for name, _ in start.get("headers", ())):
            return None
        return taken, start, body

    @staticmethod
    async def _replay(copy, send):
        _, start, body = copy
        await send(start)
        for message in body:
            await send(message)
