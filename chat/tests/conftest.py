"""Fixtures for the chat socket tests: a logged-in user's WebSocket through the full ASGI application."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

ORIGIN = b"http://localhost"
HOST = b"localhost"  # the handshake's Host: the socket's own origin is http://localhost
TIMEOUT = 60


@pytest.fixture(autouse=True)
def _cpu_only_server(monkeypatch):
    """Chat tests run as on a server without an NVIDIA GPU, whatever this machine has: "auto" offload is 0
    layers and replies are measured on the CPU. A test that wants GPUs gives them (tests/gpus.py)."""
    from tests.gpus import no_gpu

    no_gpu(monkeypatch)


@pytest.fixture(scope="session", autouse=True)
def _worker_shutdown():
    """No orphans: the worker process ends with the test session."""
    yield
    from chat import worker

    if worker._manager is not None:
        worker._manager.shutdown()


def _login(username: str) -> tuple:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_user(username=username, password="a long test password")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return user, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


class Client:
    """A WebSocket to /ws/chat/ and the frames it received, with helpers to wait for one."""

    def __init__(self, cookie: str | None, origin: bytes = ORIGIN):
        from llmsite.asgi import application

        self.cookie = cookie
        headers = [(b"host", HOST), (b"origin", origin)]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
        self.frames: list[dict] = []

    async def connect(self):
        return await self.communicator.connect(timeout=TIMEOUT)

    async def send(self, frame) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout: float = TIMEOUT) -> dict:
        frame = json.loads(await self.communicator.receive_from(timeout=timeout))
        self.frames.append(frame)
        return frame

    async def until(self, *types: str, timeout: float = TIMEOUT) -> dict:
        """Frames until one of `types` (model-state frames are kept but skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive(max(0.1, deadline - loop.time()))
            if frame["type"] in types:
                return frame

    def of_type(self, kind: str) -> list[dict]:
        return [f for f in self.frames if f["type"] == kind]

    async def close(self):
        await self.communicator.disconnect()


@pytest.fixture
def login():
    """`await login("name")` -> (user, cookie header value)."""
    return database_sync_to_async(_login)


@pytest.fixture
async def ws(login):
    _user, cookie = await login("alice")
    socket = Client(cookie)
    connected, _ = await socket.connect()
    assert connected
    yield socket
    await socket.close()
