"""A load test on loopback: 200 WebSocket connections held at once while 20 people chat.

The site is served by daphne (the `site` fixture, as `make run` serves it); the client is tests/wsclient.py.
25 people open 8 sockets each (the default per-person limit), 200 in all; 20 of them send one short
message each. Every accepted message gets its reply (`done`) or a clear `error`, the idle sockets stay
open and answer, and the database holds exactly the accepted replies, none left streaming.
"""

import asyncio
import concurrent.futures
import json
import time
from urllib.parse import urlsplit

import pytest

from tests.wsclient import Socket, WebSocket, session_cookies

pytestmark = [pytest.mark.model]  # loads the real SmolLM2 model in the served site

PEOPLE, SOCKETS_EACH, CHATTING = 25, 8, 20
TIMEOUT_S = 120

COUNT_CODE = """
import json
from chat.models import Message
replies = Message.objects.filter(role='assistant', conversation__owner__username__startswith='load')
print(json.dumps({{s: replies.filter(status=s).count() for s in ('streaming', 'complete', 'stopped', 'error')}}))
"""


async def open_sockets(url: str, cookies: list[str]) -> list[list[Socket]]:
    parts = urlsplit(url)
    headers = [{"Origin": url, "Cookie": cookie} for cookie in cookies]

    async def one(person: int) -> Socket:
        # Each person on a machine of their own (127.0.0.2, .3, ...): handshakes are rationed per address.
        return Socket(await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/", headers[person],
                                              local_address=f"127.0.0.{person + 2}"))

    people = []
    for person in range(len(cookies)):  # 8 at a time: one person's sockets
        people.append(list(await asyncio.gather(*(one(person) for _ in range(SOCKETS_EACH)))))
    return people


async def chat(socket: Socket, person: int) -> str:
    await socket.ws.send({"type": "send", "conversation": None, "content": f"Say hello to person {person}.",
                          "options": {"max_tokens": 8, "seed": person}})
    first = await socket.until("accepted", "error")
    if first["type"] == "error":
        return "refused:" + first["code"]
    while True:
        frame = await socket.until("done", "error")
        if frame.get("message") == first["message"] or frame.get("reply") == first["message"]:
            return "done" if frame["type"] == "done" else "error:" + frame["code"]


async def load(url: str, cookies: list[str]) -> dict:
    started = time.monotonic()
    people = await open_sockets(url, cookies)
    sockets = [s for mine in people for s in mine]
    opened_s = time.monotonic() - started
    try:
        while (await sockets[0].until("model"))["state"] != "ready":  # the first socket started the load
            pass
        outcomes = await asyncio.gather(*(chat(people[n][0], n) for n in range(CHATTING)))
        chatted_s = time.monotonic() - started - opened_s
        # Every socket is still open and answers (a stop with nothing to stop).
        for socket in sockets:
            await socket.ws.send({"type": "stop"})
        answers = await asyncio.gather(*(s.until("error") for s in sockets))
        return {"connections": len(sockets), "outcomes": outcomes, "open_s": opened_s, "chat_s": chatted_s,
                "answers": [a["code"] for a in answers], "closed": sum(s.closed for s in sockets),
                "total_s": time.monotonic() - started}
    finally:
        for socket in sockets:
            socket.close()


def test_200_connections_held_while_20_people_chat_and_no_reply_is_lost(site):
    cookies = session_cookies(site, "load", PEOPLE)
    # A thread of its own: the session's Playwright (sync API) may hold this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(asyncio.run, asyncio.wait_for(load(site.url, cookies), TIMEOUT_S)).result()
    counts = json.loads(site.manage("shell", "-c", COUNT_CODE.format()).strip().splitlines()[-1])
    accepted = [o for o in result["outcomes"] if not o.startswith("refused:")]
    print(f"\nload: {result['connections']} connections held (opened in {result['open_s']:.1f} s); "
          f"{len(result['outcomes'])} messages sent, {len(accepted)} accepted, "
          f"{accepted.count('done')} done, {len(accepted) - accepted.count('done')} errors; "
          f"chat {result['chat_s']:.1f} s, total {result['total_s']:.1f} s; database {counts}")
    assert result["connections"] == PEOPLE * SOCKETS_EACH and result["closed"] == 0
    assert result["answers"] == ["not_running"] * result["connections"], "every idle socket still answers"
    assert all(o == "done" or o.startswith("error:") for o in accepted)
    assert accepted.count("done") == CHATTING, result["outcomes"]  # on an idle loopback server, none fails
    assert counts["streaming"] == 0, "no reply is left half-written"
    assert counts["complete"] + counts["error"] == len(accepted), "every accepted message is in the database"
