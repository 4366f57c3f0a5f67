"""The smallest RFC 6455 WebSocket client over asyncio streams, for the benches (bench/stream.py,
bench/scale.py) and the end-to-end tests (tests/test_load.py, tests/test_redis_workers.py): no WebSocket
library is installed. Also: signed-in people for a running site, as session cookies."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


class Closed(ConnectionError):
    """The server closed the WebSocket, with this close code (1005: none given)."""

    def __init__(self, code: int):
        super().__init__(f"the server closed the WebSocket (code {code})")
        self.code = code


class WebSocket:
    """Text frames, client masking, ping/pong, close."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, headers: dict,
                      local_address: str | None = None) -> WebSocket:
        reader, writer = await asyncio.open_connection(host, port,
                                                       local_addr=(local_address, 0) if local_address else None)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"WebSocket handshake refused: {head.splitlines()[0]!r}")
        return cls(reader, writer)

    async def send(self, frame: dict) -> None:
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes([0x81, 0x80 | n])
        elif n < 65536:
            header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", n)
        else:
            header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", n)
        self.writer.write(header + mask + _masked(payload, mask))
        await self.writer.drain()

    async def receive(self) -> dict:
        while True:
            first, second = await self.reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(n)
            opcode = first & 0x0F
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                self.writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + _masked(payload, mask))
            elif opcode == 0x8:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005)

    def close(self) -> None:
        self.writer.close()


def _masked(payload: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Socket:
    """A connection and a task that reads it all the time (answering daphne's pings) into a queue."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.frames: asyncio.Queue = asyncio.Queue()
        self.closed = False
        self.close_code: int | None = None
        self.reader = asyncio.ensure_future(self.read())

    @classmethod
    async def open(cls, url: str, cookie: str) -> Socket:
        """A signed-in chat socket to the site at `url` (http://host:port)."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return cls(await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/", {"Origin": url, "Cookie": cookie}))

    async def read(self):
        try:
            while True:
                await self.frames.put(await self.ws.receive())
        except Closed as closed:
            self.close_code = closed.code
            self.closed = True
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed = True

    async def until(self, *types: str) -> dict:
        while True:
            frame = await self.frames.get()
            if frame["type"] in types:
                return frame

    def close(self):
        self.reader.cancel()
        self.ws.close()


PEOPLE_CODE = """
from django.conf import settings
from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
for n in range({count}):
    u = get_user_model().objects.create_user(f'{prefix}{{n}}', password='a long test password', is_staff={staff})
    s = SessionStore(); s[SESSION_KEY] = str(u.pk)
    s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.save()
    print(settings.SESSION_COOKIE_NAME + '=' + s.session_key)
"""


def session_cookies(site, prefix: str, count: int, *, staff: bool = False) -> list[str]:
    """`count` new people (`<prefix>0`...) signed in to a running site (tests/conftest.py's RunningSite):
    a Cookie header value for each."""
    output = site.manage("shell", "-c", PEOPLE_CODE.format(count=count, prefix=prefix, staff=staff)).splitlines()
    cookies = [line for line in output if "=" in line and " " not in line]
    assert len(cookies) == count, output
    return cookies
