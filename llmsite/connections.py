"""Limits on slow and idle connections, and on WebSocket handshakes, for the daphne server that `make run`
starts.

daphne (through Twisted) keeps a connection as long as it sends a byte now and then, and lets one address
open as many as the process has file descriptors: a few hundred half-open requests from one machine used
to make the site unreachable. Its HTTP factory is given these bounds here:

- at most LLMSITE_MAX_CONNECTIONS_PER_ADDRESS open connections (HTTP and WebSocket) per client address;
  trusted proxies (LLMSITE_TRUSTED_PROXIES) are exempt, since every visitor comes through them;
- a request's line and headers must all arrive within LLMSITE_HEADER_TIMEOUT_S seconds, however slowly
  they trickle in: counted from the connection for its first request, and from the first byte of each
  later request on a keep-alive connection;
- a request's body has LLMSITE_HEADER_TIMEOUT_S seconds too, plus one second for each
  LLMSITE_BODY_MIN_BYTES_PER_S bytes received (Apache's mod_reqtimeout rule): an upload at any honest
  speed goes on, a body trickled a byte at a time is closed;
- an idle HTTP connection (before a request, between keep-alive requests) is closed after
  LLMSITE_IDLE_TIMEOUT_S seconds (Twisted's own idle timeout, 60 s by default);
- WebSocket handshakes are rationed per client address, LLMSITE_HANDSHAKES_PER_S a second with bursts of
  LLMSITE_HANDSHAKE_BURST: each costs a WebSocket negotiation, the ASGI stack and a session lookup even
  when refused, and eight clients without a session got 850-1,700 of them through in 8 s. Over the budget,
  a handshake is answered 429 from its request line and headers, before any of that. Only handshakes are
  counted, never plain HTTP requests; a handshake whose session cookie was seen signed in is not counted
  (llmsite/signedin.py says why); behind a trusted proxy the client it names is counted, not the proxy.
- a request body over LLMSITE_MAX_REQUEST_BODY_MB is refused (413, connection closed) as soon as its
  Content-Length, or its chunks so far, say so: daphne keeps a whole body, then queues it in memory, before
  the application (and any sign-in check) sees the request, so one unauthenticated POST of a few GB used to
  take that much of the server's memory for good.

WebSocket connections are looked after by daphne's pings (a peer that does not answer is dropped).
"""

from __future__ import annotations

import logging
import math
import resource
import time

from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.web import http

from llmsite import signedin
from llmsite.proxy import forwarded_client, is_trusted

logger = logging.getLogger(__name__)


def raise_open_file_limit() -> tuple[int, int]:
    """The soft limit on open files up to the hard one (often 1024 against 4096 or more): each connection
    is a file. Returns the limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


class HandshakeBudget:
    """A token bucket per client address: `rate` handshakes a second, up to `burst` at once. Used from the
    reactor thread only."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def take(self, address: str) -> float:
        """0 when a handshake may go on (a token taken), else the seconds until one may."""
        now = self.clock()
        tokens, at = self.buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if len(self.buckets) > 10_000:  # forget addresses whose buckets are full again
            self.buckets = {a: b for a, b in self.buckets.items()
                            if b[0] + (now - b[1]) * self.rate < self.burst}
        if tokens < 1:
            self.buckets[address] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[address] = (tokens - 1, now)
        return 0.0


def guarded_factory(*, trusted, max_per_address: int, header_timeout_s: float, idle_timeout_s: float,
                    body_min_bytes_per_s: float = 500, handshakes_per_s: float = 10, handshake_burst: int = 60,
                    session_cookie: str = "sessionid", max_body_bytes: int = 64 << 20):
    """A subclass of daphne's HTTP factory with the bounds above (daphne builds it with the server)."""
    budget = HandshakeBudget(handshakes_per_s, handshake_burst)
    cookie_name = session_cookie.encode("latin-1")

    class GuardedChannel(http.HTTPChannel):
        """Twisted's HTTP/1.1 connection, with deadlines on reading a request (see the module's docstring).

        `llmsite_waiting`: between requests, the next one's first byte not read yet. Twisted's own idle
        timeout covers a connection that sends nothing; these cover one that sends slowly."""

        llmsite_deadline = None  # the pending IDelayedCall, header or body
        llmsite_waiting = True
        llmsite_body_started = 0.0
        llmsite_body_read = 0

        def connectionMade(self):
            super().connectionMade()
            self._llmsite_arm_headers()  # the first request's headers: counted from the connection

        def dataReceived(self, data):
            if self.llmsite_waiting and self.llmsite_deadline is None and not self._handlingRequest:
                self._llmsite_arm_headers()  # a later request: counted from its first byte
            return super().dataReceived(data)

        def allHeadersReceived(self):
            self._llmsite_cancel()
            self.llmsite_waiting = False
            super().allHeadersReceived()
            if self.length != 0 and self.transport is not None and not self.transport.disconnected:
                self.llmsite_body_started, self.llmsite_body_read = self._llmsite_now(), 0
                self.llmsite_deadline = self.callLater(header_timeout_s, self._llmsite_body_deadline)

        def rawDataReceived(self, data):
            if not self._handlingRequest:
                self.llmsite_body_read += len(data)
            return super().rawDataReceived(data)

        def allContentReceived(self):
            self._llmsite_cancel()  # the whole request is in: the application's turn
            return super().allContentReceived()

        def requestDone(self, request):
            buffered = any(self._dataBuffer)  # a pipelined request read while this one was handled
            self._llmsite_cancel()
            self.llmsite_waiting = True
            if buffered and self.persistent:
                self._llmsite_arm_headers()
            return super().requestDone(request)

        def connectionLost(self, reason):
            self._llmsite_cancel()
            return super().connectionLost(reason)

        def _llmsite_now(self) -> float:
            return _reactor().seconds()

        def _llmsite_arm_headers(self):
            self._llmsite_cancel()
            self.llmsite_deadline = self.callLater(header_timeout_s, self._llmsite_abort,
                                                   f"its request line and headers took over {header_timeout_s} s")

        def _llmsite_body_deadline(self):
            self.llmsite_deadline = None
            due = self.llmsite_body_started + header_timeout_s + self.llmsite_body_read / body_min_bytes_per_s
            left = due - self._llmsite_now()
            if left > 0:  # it kept up the minimum rate so far
                self.llmsite_deadline = self.callLater(left, self._llmsite_body_deadline)
            else:
                self._llmsite_abort(f"its request body came slower than {body_min_bytes_per_s:g} bytes/s")

        def _llmsite_abort(self, why: str):
            self.llmsite_deadline = None
            transport = self.transport
            if transport is not None and not transport.disconnected:
                logger.info("Closed a connection from %s: %s.", getattr(transport.getPeer(), "host", "?"), why)
                transport.abortConnection()

        def _llmsite_cancel(self):
            _cancel(self.llmsite_deadline)
            self.llmsite_deadline = None

    class GuardedRequest(WebRequest):
        """daphne's request; a WebSocket handshake over its address's budget is answered 429 here, from the
        request line and headers alone, before the WebSocket stack and any session lookup."""

        llmsite_refused = False
        llmsite_body_bytes = 0

        def gotLength(self, length):
            if length is not None and length > max_body_bytes:
                super().gotLength(0)  # a content file that stays empty
                return self._llmsite_refuse_body()
            return super().gotLength(length)

        def handleContentChunk(self, data):
            if self.llmsite_refused:
                return  # what was on its way when the connection was closed: dropped
            self.llmsite_body_bytes += len(data)
            if self.llmsite_body_bytes > max_body_bytes:  # a chunked body that grew too large
                return self._llmsite_refuse_body()
            return super().handleContentChunk(data)

        def _llmsite_refuse_body(self):
            self.llmsite_refused = True
            self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
            transport = getattr(self.channel, "transport", None)
            if transport is None or transport.disconnected:
                return
            logger.info("Refused a request from %s: its body is over %d bytes (LLMSITE_MAX_REQUEST_BODY_MB).",
                        getattr(transport.getPeer(), "host", "?"), max_body_bytes)
            body = f"Request body too large: at most {max_body_bytes} bytes.\n".encode()
            transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            transport.loseConnection()

        def process(self):
            if self.llmsite_refused:
                return None  # never handed to the application
            upgrade = self.requestHeaders.getRawHeaders(b"upgrade")
            if upgrade and upgrade[0].strip().lower() == b"websocket":
                address = self._llmsite_charged_address()
                if address is not None:
                    wait = budget.take(address)
                    if wait:
                        logger.info("Answered 429 to a WebSocket handshake from %s: over LLMSITE_HANDSHAKES_PER_S.",
                                    address)
                        self._llmsite_too_many(wait)
                        return None
            return super().process()

        def _llmsite_charged_address(self) -> str | None:
            """The client address to charge for this handshake, or None for one that is not charged: from a
            session seen signed in (llmsite/signedin.py), or from a trusted proxy that names no one else."""
            if signedin.known(self.received_cookies.get(cookie_name)):
                return None
            peer = getattr(self.client, "host", None)
            if not peer:
                return None
            if is_trusted(peer, trusted):
                forwarded = b", ".join(self.requestHeaders.getRawHeaders(b"x-forwarded-for") or [])
                peer = forwarded_client(peer, forwarded.decode("latin-1"), trusted)
                if is_trusted(peer, trusted):
                    return None
            return peer

        def _llmsite_too_many(self, wait: float):
            self.channel.persistent = False  # closed once answered: the client expected another protocol
            self.handle_reply({"type": "http.response.start", "status": 429, "headers": [
                (b"Content-Type", b"text/plain; charset=utf-8"), (b"Connection", b"close"),
                (b"Retry-After", str(max(1, math.ceil(wait))).encode()),
            ]})
            self.code_message = b"Too Many Requests"  # Twisted knows no reason phrase for 429
            self.handle_reply({"type": "http.response.body",
                               "body": b"Too many WebSocket handshakes from this address; try again in a moment.\n"})

    class GuardedHTTPFactory(HTTPFactory):
        def __init__(self, server):
            super().__init__(server)
            self.timeOut = idle_timeout_s
            self.open_by_address: dict[str, list] = {}

        def protocol(self):
            return http._GenericHTTPChannelProtocol(GuardedChannel())

        def _open_count(self, host: str) -> int:
            alive = [t for t in self.open_by_address.get(host, []) if not t.disconnected]
            if alive:
                self.open_by_address[host] = alive
            else:
                self.open_by_address.pop(host, None)
            return len(alive)

        def buildProtocol(self, addr):
            host = getattr(addr, "host", None)
            limited = bool(host) and not is_trusted(host, trusted)
            if limited and self._open_count(host) >= max_per_address:
                logger.warning("Refused a connection from %s: it already has %d open (LLMSITE_MAX_CONNECTIONS_"
                               "PER_ADDRESS).", host, max_per_address)
                return None  # Twisted closes the socket at once
            protocol = super().buildProtocol(addr)
            if protocol is None:
                return None
            protocol.requestFactory = GuardedRequest
            protocol.timeOut = idle_timeout_s
            if limited:
                make_connection = protocol.makeConnection

                def made(transport):
                    self.open_by_address.setdefault(host, []).append(transport)
                    make_connection(transport)

                protocol.makeConnection = made
            return protocol

    return GuardedHTTPFactory


def _cancel(call) -> None:
    if call is not None and call.active():
        call.cancel()


def _reactor():
    from twisted.internet import reactor  # imported late: daphne installs the asyncio reactor first

    return reactor


def install(settings) -> None:
    """Make daphne's server build the guarded factory (daphne.server looks HTTPFactory up when it runs)."""
    import daphne.server

    daphne.server.HTTPFactory = guarded_factory(
        trusted=tuple(settings.LLMSITE_TRUSTED_PROXIES),
        max_per_address=settings.LLMSITE_MAX_CONNECTIONS_PER_ADDRESS,
        header_timeout_s=settings.LLMSITE_HEADER_TIMEOUT_S,
        idle_timeout_s=settings.LLMSITE_IDLE_TIMEOUT_S,
        body_min_bytes_per_s=settings.LLMSITE_BODY_MIN_BYTES_PER_S,
        handshakes_per_s=settings.LLMSITE_HANDSHAKES_PER_S,
        handshake_burst=settings.LLMSITE_HANDSHAKE_BURST,
        session_cookie=settings.SESSION_COOKIE_NAME,
        max_body_bytes=settings.LLMSITE_MAX_REQUEST_BODY_MB << 20,
    )
