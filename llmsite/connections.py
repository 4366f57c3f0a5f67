"""Limits on slow and idle connections for the daphne server that `make run` starts.

daphne (through Twisted) keeps a connection as long as it sends a byte now and then, and lets one address
open as many as the process has file descriptors: a few hundred half-open requests from one machine used
to make the site unreachable. Its HTTP factory is given three bounds here:

- at most LLMSITE_MAX_CONNECTIONS_PER_ADDRESS open connections (HTTP and WebSocket) per client address;
  trusted proxies (LLMSITE_TRUSTED_PROXIES) are exempt, since every visitor comes through them;
- a new connection has LLMSITE_HEADER_TIMEOUT_S seconds to send its first request's headers, and each
  later request on it as long from its first line, however slowly it trickles them;
- an idle HTTP connection (before a request, between keep-alive requests) is closed after
  LLMSITE_IDLE_TIMEOUT_S seconds (Twisted's own idle timeout, 60 s by default);
- a request body over LLMSITE_MAX_REQUEST_BODY_MB is refused (413, connection closed) as soon as its
  Content-Length, or its chunks so far, say so: daphne keeps a whole body, then queues it in memory, before
  the application (and any sign-in check) sees the request, so one unauthenticated POST of a few GB used to
  take that much of the server's memory for good.

WebSocket connections are looked after by daphne's pings (a peer that does not answer is dropped).
"""

from __future__ import annotations

import logging
import resource

from daphne.http_protocol import HTTPFactory, WebRequest

from llmsite.proxy import is_trusted

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


def guarded_factory(*, trusted, max_per_address: int, header_timeout_s: float, idle_timeout_s: float,
                    max_body_bytes: int = 64 << 20):
    """A subclass of daphne's HTTP factory with the bounds above (daphne builds it with the server)."""

    class HeaderTimedRequest(WebRequest):
        """daphne's request (made when its first line arrives), whose headers must all arrive in time:
        this bounds the second and later requests of a keep-alive connection too."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.llmsite_headers_done = False
            channel = self.channel
            self.llmsite_deadline = _reactor().callLater(header_timeout_s, self._headers_deadline, channel)

        def gotLength(self, length):
            self.llmsite_headers_done = True
            self.channel.llmsite_headers_seen = True
            # Headers complete: both deadlines are met. Cancelled rather than left to fire 20 s later, which
            # at hundreds of connections a second kept tens of thousands of timers in the reactor's heap.
            _cancel(self.llmsite_deadline)
            _cancel(getattr(self.channel, "llmsite_first_deadline", None))
            self.llmsite_body_bytes = 0
            if length is not None and length > max_body_bytes:
                super().gotLength(0)  # a content file that stays empty
                return self._refuse_body()
            return super().gotLength(length)

        def handleContentChunk(self, data):
            if getattr(self, "llmsite_refused", False):
                return  # what was on its way when the connection was closed: dropped
            self.llmsite_body_bytes += len(data)
            if self.llmsite_body_bytes > max_body_bytes:  # a chunked body that grew too large
                return self._refuse_body()
            return super().handleContentChunk(data)

        def process(self):
            if getattr(self, "llmsite_refused", False):
                return  # never handed to the application
            return super().process()

        def _refuse_body(self):
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

        def _headers_deadline(self, channel):
            transport = getattr(channel, "transport", None)
            if not self.llmsite_headers_done and transport is not None and not transport.disconnected:
                logger.info("Closed a connection from %s: its request headers took over %s s.",
                            getattr(transport.getPeer(), "host", "?"), header_timeout_s)
                transport.abortConnection()

    class GuardedHTTPFactory(HTTPFactory):
        def __init__(self, server):
            super().__init__(server)
            self.timeOut = idle_timeout_s
            self.open_by_address: dict[str, list] = {}

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
            protocol.requestFactory = HeaderTimedRequest
            protocol.timeOut = idle_timeout_s
            make_connection = protocol.makeConnection

            def made(transport):
                if limited:
                    self.open_by_address.setdefault(host, []).append(transport)
                channel = getattr(protocol, "_channel", protocol)
                channel.llmsite_first_deadline = _reactor().callLater(
                    header_timeout_s, self._header_deadline, protocol, transport)
                make_connection(transport)

            protocol.makeConnection = made
            return protocol

        def _header_deadline(self, protocol, transport):
            channel = getattr(protocol, "_channel", protocol)
            if not getattr(channel, "llmsite_headers_seen", False) and not transport.disconnected:
                logger.info("Closed a connection from %s: no complete request headers in %s s.",
                            getattr(transport.getPeer(), "host", "?"), header_timeout_s)
                transport.abortConnection()

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
        max_body_bytes=settings.LLMSITE_MAX_REQUEST_BODY_MB << 20,
    )
