"""Attacks on the chat WebSocket of a real daphne (the `site` fixture, as `make run` serves it), each as a
hostile person on the LAN would make it (issue 11): a page on another port, lone surrogates, a socket that
outlives its sign-in, and one person flooding every frame type from all their sockets.

Everything is on loopback, bounded in frames and in time. The client is tests/wsclient.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import statistics
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

import pytest

from tests.test_redis_workers import redis_site  # noqa: F401, F811 (the site with REDIS_URL; no worker needed)
from tests.wsclient import Socket, WebSocket, session_cookies

MAX_CONNECTIONS = 8  # the default LLMSITE_MAX_CONNECTIONS_PER_USER the site runs with
WAIT_S = 30


def run(coroutine, timeout: float = 180):
    # A thread of its own: the session's Playwright (sync API) may hold this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coroutine, timeout)).result()


async def connect(url: str, cookie: str, origin: str | None = None, local_address: str | None = None) -> Socket:
    parts = urlsplit(url)
    headers = {"Origin": origin or url, "Cookie": cookie}
    return Socket(await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/", headers,
                                          local_address=local_address))


async def until(socket: Socket, *types: str, timeout: float = WAIT_S) -> dict:
    return await asyncio.wait_for(socket.until(*types), timeout)


async def answers(socket: Socket) -> bool:
    """Open and answering: a `stop` with nothing to stop gets `not_running`."""
    await socket.ws.send({"type": "stop"})
    return (await until(socket, "error"))["code"] == "not_running"


async def closed(socket: Socket, timeout: float = WAIT_S) -> int | None:
    await asyncio.wait_for(asyncio.shield(socket.reader), timeout)
    return socket.close_code


async def open_all(url: str, cookie: str, count: int = MAX_CONNECTIONS, within: float = WAIT_S,
                   local_address: str | None = None) -> list[Socket]:
    """`count` sockets at once for one person, retrying while old ones are still being let go (or while the
    address's handshake budget refills)."""
    deadline = time.monotonic() + within
    while True:
        sockets = []
        try:
            for _ in range(count):
                sockets.append(await connect(url, cookie, local_address=local_address))
            return sockets
        except (RuntimeError, asyncio.IncompleteReadError):  # refused: a slot is still held, or over the budget
            for socket in sockets:
                socket.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(sockets)} of {count} sockets could be opened again") from None
            await asyncio.sleep(0.25)


# --- Origin -------------------------------------------------------------------------------------------------
def test_a_page_on_another_port_or_scheme_cannot_open_a_socket(site):
    [cookie] = session_cookies(site, "origin", 1)
    port = urlsplit(site.url).port

    async def attempt(origin: str) -> str:
        try:
            socket = await connect(site.url, cookie, origin)
        except RuntimeError as refused:
            return str(refused)
        socket.close()
        return "opened"

    async def attempts():
        return {origin: await attempt(origin) for origin in
                (site.url, f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}", "http://127.0.0.1:9999",
                 f"https://127.0.0.1:{port}", f"http://localhost:{port}", "null")}

    outcome = run(attempts())
    assert outcome.pop(site.url) == "opened"
    for origin, result in outcome.items():
        assert "403" in result, (origin, result)


# --- lone surrogates ----------------------------------------------------------------------------------------
def test_lone_surrogates_are_refused_and_leak_no_connection_slot(site):
    [cookie] = session_cookies(site, "surrogate", 1)

    async def attack():
        sockets = await open_all(site.url, cookie)
        codes = []
        for n, socket in enumerate(sockets):  # json.dumps sends "\ud800" as the escape an attacker's script sends
            frame = ({"type": "send", "conversation": None, "content": "hello \ud800"} if n % 2 else
                     {"type": "send", "conversation": None, "content": "hello", "options": {"system": "\udfff"}})
            await socket.ws.send(frame)
            codes.append((await until(socket, "error"))["code"])
            assert await answers(socket), "the socket stays open"
        for socket in sockets:
            socket.close()
        again = await open_all(site.url, cookie)  # every slot came back
        for socket in again:
            socket.close()
        return codes

    assert run(attack()) == ["invalid_field"] * MAX_CONNECTIONS


# --- sign-in ended ------------------------------------------------------------------------------------------
def csrf_post(url: str, cookie: str, path: str) -> int:
    """POST a form of the site as the signed-in person would: the page's CSRF token, then the form."""
    page = urllib.request.Request(url + "/", headers={"Cookie": cookie})
    with urllib.request.urlopen(page, timeout=30) as response:
        html = response.read().decode()
        csrf_cookie = [h.split(";")[0] for h in response.headers.get_all("Set-Cookie") or [] if "csrf" in h.lower()]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = urllib.request.Request(
        url + path, data=urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode(), method="POST",
        headers={"Cookie": "; ".join([cookie, *csrf_cookie]), "Origin": url, "Referer": url + "/"},
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(form, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        return answer.code


def test_signing_out_closes_the_open_socket_with_an_error_first(site):
    [cookie] = session_cookies(site, "signout", 1)

    async def attack():
        socket = await connect(site.url, cookie)
        assert await answers(socket)
        status = await asyncio.to_thread(csrf_post, site.url, cookie, "/accounts/logout/")
        code = await closed(socket)
        errors = []
        while not socket.frames.empty():
            frame = socket.frames.get_nowait()
            if frame["type"] == "error":
                errors.append(frame["code"])
        return status, code, errors

    status, code, errors = run(attack())
    assert status == 302, "signed out"
    assert code == 4401 and errors[-1] == "signed_out"


def test_a_socket_of_a_deactivated_account_gets_no_reply(site):
    [cookie] = session_cookies(site, "inactive", 1)

    async def attack():
        socket = await connect(site.url, cookie)
        assert await answers(socket)
        # Another process (here manage.py) turns the account off: no signal reaches this server, the check
        # before each frame does.
        await asyncio.to_thread(site.manage, "shell", "-c", "from django.contrib.auth import get_user_model; "
                                "get_user_model().objects.filter(username='inactive0').update(is_active=False)")
        await socket.ws.send({"type": "send", "conversation": None, "content": "Still here?"})
        frame = await until(socket, "accepted", "error")
        return frame, await closed(socket)

    frame, code = run(attack())
    assert frame["type"] == "error" and frame["code"] == "signed_out" and code == 4401


# --- a flood of every frame type ----------------------------------------------------------------------------
FLOOD_S = 8.0  # how long the flood lasts
FLOOD_RATE = 2_500  # frames a second from each socket: 20,000 a second from all 8, as in the attack
FLOOD_FRAMES_PER_SOCKET = 20_000  # and at most this many frames per socket, reconnections included
FLOOD = [{"type": "resume", "message": 1}, {"type": "stop"}, {"type": "stop", "message": 1},
         {"type": "send", "conversation": None, "content": "flood"}, {"type": "regenerate", "message": 1},
         {"type": "edit", "message": 1, "content": "flood"}, {"type": "nonsense"}, "not json", {"type": "send"}]


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


FLOOD_BYTES = b"".join(masked_frame(f.encode() if isinstance(f, str) else json.dumps(f).encode()) for f in FLOOD)
FLOOD_BYTES += masked_frame(b"\x00binary", opcode=0x2)


# The flooder's machine: its handshakes are rationed per address (LLMSITE_HANDSHAKES_PER_S), and the other person
# and the /healthz probe come from 127.0.0.1, as from other machines.
FLOODER = "127.0.0.2"


async def flood_socket(url: str, cookie: str, first: WebSocket, stop_at: float, counts: dict) -> None:
    """One socket's flood, FLOOD_RATE frames a second; when the server closes it, a new socket, again and again."""
    parts = urlsplit(url)
    sent = 0  # by this socket and the ones that replaced it
    batch = 10 * (len(FLOOD) + 1)
    ws = first
    while time.monotonic() < stop_at and sent < FLOOD_FRAMES_PER_SOCKET:
        if ws is None:
            try:
                ws = await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/",
                                             {"Origin": url, "Cookie": cookie}, local_address=FLOODER)
            except (RuntimeError, OSError, asyncio.IncompleteReadError):  # 429, or closed at accept
                counts["refused"] += 1
                await asyncio.sleep(0.05)
                continue
        counts["opened"] += 1
        drain = asyncio.ensure_future(discard(ws, counts))
        try:
            while time.monotonic() < stop_at and sent < FLOOD_FRAMES_PER_SOCKET and not drain.done():
                ws.writer.write(FLOOD_BYTES * 10)
                await ws.writer.drain()
                sent += batch
                counts["frames"] += batch
                await asyncio.sleep(batch / FLOOD_RATE)
            # Out of frames to send: held open until the server closes it, or the flood's time is up.
            await asyncio.wait_for(asyncio.shield(drain), max(0.0, stop_at - time.monotonic()))
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            ws.close()
            drain.cancel()
            ws = None


async def discard(ws: WebSocket, counts: dict) -> None:
    reader = ws.reader
    try:
        while True:
            first, second = await reader.readexactly(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(n)
            if first & 0x0F == 0x8:
                counts[f"closed {struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005}"] += 1
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        counts["dropped"] += 1


def healthz_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url + "/healthz", timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


async def time_to_first_token(socket: Socket, seed: int) -> float:
    started = time.perf_counter()
    await socket.ws.send({"type": "send", "conversation": None, "content": "Say hello in one short sentence.",
                          "options": {"max_tokens": 8, "seed": seed}})
    accepted = await until(socket, "accepted", "error")
    assert accepted["type"] == "accepted", accepted
    await until(socket, "token", timeout=120)
    first = time.perf_counter() - started
    frame = await until(socket, "done", "error", timeout=120)
    assert frame["type"] == "done", frame
    return first


@pytest.mark.model  # the other person's reply comes from the real SmolLM2 model
def test_a_flood_of_every_frame_type_from_eight_sockets_stalls_no_one_and_leaks_no_slot(site):
    from collections import Counter

    flooder, chatter = session_cookies(site, "flooder", 1) + session_cookies(site, "chatter", 1)

    async def attack():
        person = await connect(site.url, chatter)
        while (await until(person, "model", timeout=300))["state"] != "ready":
            pass
        await time_to_first_token(person, 1)  # warm: the first reply pays for caches
        idle_ttft = min([await time_to_first_token(person, seed) for seed in (2, 3)])
        idle_health = [await asyncio.to_thread(healthz_ms, site.url) for _ in range(5)]

        counts = Counter()
        parts = urlsplit(site.url)
        first = [await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/",
                                         {"Origin": site.url, "Cookie": flooder}, local_address=FLOODER)
                 for _ in range(MAX_CONNECTIONS)]
        started = time.monotonic()
        stop_at = started + FLOOD_S
        flood = asyncio.gather(*(flood_socket(site.url, flooder, ws, stop_at, counts) for ws in first))
        await asyncio.sleep(1.0)  # the flood is in full swing

        async def sample_healthz():
            samples = []
            while time.monotonic() < stop_at:
                samples.append(await asyncio.to_thread(healthz_ms, site.url))
                await asyncio.sleep(0.1)
            return samples

        flood_health = asyncio.ensure_future(sample_healthz())
        flood_ttft = await time_to_first_token(person, 4)
        flood_health = await flood_health
        await flood
        flood_s = time.monotonic() - started
        assert await answers(person), "the other person's socket is still open"
        person.close()
        again = await open_all(site.url, flooder, local_address=FLOODER)  # no slot lost: it has all 8 again
        for socket in again:
            socket.close()
        return idle_ttft, idle_health, flood_ttft, flood_health, counts, flood_s

    idle_ttft, idle_health, flood_ttft, flood_health, counts, flood_s = run(attack(), timeout=600)
    print(f"\nflood: {counts['frames']} frames in {flood_s:.1f} s from {MAX_CONNECTIONS} sockets "
          f"({counts['opened']} opened, {counts['refused']} refused, {dict(counts)}); "
          f"time to first token idle {idle_ttft * 1000:.0f} ms, under flood {flood_ttft * 1000:.0f} ms; "
          f"/healthz idle median {statistics.median(idle_health):.0f} ms, under flood median "
          f"{statistics.median(flood_health):.0f} ms, max {max(flood_health):.0f} ms ({len(flood_health)} requests: "
          f"{sorted(round(h) for h in flood_health)[-5:]} the slowest)")
    assert counts["opened"] >= MAX_CONNECTIONS and counts["frames"] >= MAX_CONNECTIONS * 100, "it was a flood"
    assert counts["closed 4408"] + counts["dropped"] == counts["opened"], "every flooding socket was closed for it"
    assert flood_ttft <= idle_ttft + 1.0
    # The samples are timed by this process, which also drives the flood on the same 2 cores: one request in
    # sixty can catch a scheduling hiccup (202 ms was seen once in CI), so the bound is on the 95th percentile,
    # and no request may take anywhere near the seconds that a stalled site took.
    assert statistics.quantiles(flood_health, n=20)[-1] <= 200, sorted(round(h) for h in flood_health)[-5:]
    assert max(flood_health) <= 1000


# --- with Redis: the signal reaches the socket from another process -------------------------------------------
def test_with_redis_deactivating_an_account_in_another_process_closes_its_socket_at_once(redis_site):  # noqa: F811
    [cookie] = session_cookies(redis_site, "redisoff", 1)

    async def attack():
        socket = await connect(redis_site.url, cookie)
        assert await answers(socket)
        await asyncio.to_thread(redis_site.manage, "shell", "-c", "from django.contrib.auth import get_user_model; "
                                "u = get_user_model().objects.get(username='redisoff0'); u.is_active = False; u.save()")
        code = await closed(socket)  # no frame sent: the event came through Redis
        errors = [f["code"] for f in [socket.frames.get_nowait() for _ in range(socket.frames.qsize())]
                  if f["type"] == "error"]
        return code, errors

    code, errors = run(attack())
    assert code == 4401 and errors[-1] == "account_inactive"


# --- handshake floods from clients without a session ----------------------------------------------------------
# Two machines flood, four clients each; the honest person is on 127.0.0.1, and a second person sits behind
# the first flooding address (one NAT, as far as the server can tell).
FLOODING_ADDRESSES = ("127.0.0.2", "127.0.0.3")
CLIENTS_PER_ADDRESS = 4
HANDSHAKE_FLOOD_S = 8.0
HANDSHAKES_PER_S, HANDSHAKE_BURST = 10, 60  # the defaults of LLMSITE_HANDSHAKES_PER_S and LLMSITE_HANDSHAKE_BURST


async def flood_handshakes(url: str, cookie: str | None, address: str, stop_at: float, counts) -> None:
    """Handshake after handshake until stop_at, each on a new connection, as fast as the server answers."""
    parts = urlsplit(url)
    headers = {"Origin": url, **({"Cookie": cookie} if cookie else {})}
    while time.monotonic() < stop_at:
        try:
            ws = await WebSocket.connect(parts.hostname, parts.port, "/ws/chat/", headers, address)
        except RuntimeError as refused:
            # 429: over the address's budget, answered from the headers; anything else (403) came from the
            # WebSocket stack, which the handshake reached
            counts[address, "429" if " 429 " in str(refused) else "through"] += 1
            continue
        except (OSError, asyncio.IncompleteReadError):
            counts[address, "dropped"] += 1
            await asyncio.sleep(0.01)
            continue
        counts[address, "accepted"] += 1
        ws.close()


def http_get(url: str, path: str, address: str, cookie: str | None = None) -> tuple[int, float]:
    """GET `path` from a client bound to `address`: (status, milliseconds)."""
    import http.client

    parts = urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(address, 0))
    try:
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    finally:
        connection.close()


async def round_trip_ms(socket: Socket) -> float:
    started = time.perf_counter()
    assert await answers(socket)
    return (time.perf_counter() - started) * 1000


@pytest.mark.parametrize("cookie", [None, "sessionid=forged0000000000000000000000000000"], ids=["no-cookie", "forged"])
def test_a_flood_of_handshakes_without_a_session_is_rationed_per_address_and_stalls_no_one(site, cookie):
    """Eight clients on two machines open WebSocket after WebSocket with no session (or a forged session
    cookie, which would cost a session lookup each). Each machine gets at most its budget of handshakes to
    the WebSocket stack, the rest are answered 429 from their headers; meanwhile a signed-in person's open
    socket answers, they open a new one, a person behind the flooding address opens one too, and /healthz
    and a page still answer, from the flooding addresses as well: plain HTTP is never rationed."""
    from collections import Counter

    kind = "forged" if cookie else "none"
    chatter, neighbour = (session_cookies(site, f"handshake-chatter-{kind}", 1)
                          + session_cookies(site, f"handshake-neighbour-{kind}", 1))
    nat = FLOODING_ADDRESSES[0]

    async def attack():
        person = await connect(site.url, chatter)
        # The neighbour's browser loads the chat page first, as a browser does before it opens the socket.
        status, _ = await asyncio.to_thread(http_get, site.url, "/chat/", nat, neighbour)
        assert status == 200
        idle = [await round_trip_ms(person) for _ in range(5)]
        idle_health = [(await asyncio.to_thread(http_get, site.url, "/healthz", "127.0.0.1"))[1] for _ in range(5)]
        counts = Counter()
        started = time.monotonic()
        stop_at = started + HANDSHAKE_FLOOD_S
        flood = asyncio.gather(*(flood_handshakes(site.url, cookie, address, stop_at, counts)
                                 for address in FLOODING_ADDRESSES for _ in range(CLIENTS_PER_ADDRESS)))
        await asyncio.sleep(1.5)  # the flood is in full swing, each machine's burst spent

        async def sample(path: str, address: str):
            samples = []
            while time.monotonic() < stop_at:
                samples.append(await asyncio.to_thread(http_get, site.url, path, address))
                await asyncio.sleep(0.1)
            return samples

        probes = {(path, address): asyncio.ensure_future(sample(path, address))
                  for path, address in [("/healthz", "127.0.0.1"), ("/healthz", FLOODING_ADDRESSES[0]),
                                        ("/", FLOODING_ADDRESSES[1])]}
        trips = []
        while time.monotonic() < stop_at - 2:
            trips.append(await round_trip_ms(person))
            await asyncio.sleep(0.1)
        opened_at = time.perf_counter()
        second = await connect(site.url, chatter)  # a person's own new handshake gets through the flood
        open_ms = (time.perf_counter() - opened_at) * 1000
        assert await answers(second)
        opened_at = time.perf_counter()
        behind_nat = await connect(site.url, neighbour, local_address=nat)  # signed in: not charged
        nat_ms = (time.perf_counter() - opened_at) * 1000
        assert await answers(behind_nat)
        probes = {key: await probe for key, probe in probes.items()}
        await flood
        flood_s = time.monotonic() - started
        for socket in (person, second, behind_nat):
            socket.close()
        return idle, trips, open_ms, nat_ms, idle_health, probes, counts, flood_s

    idle, trips, open_ms, nat_ms, idle_health, probes, counts, flood_s = run(attack(), timeout=300)
    health = [ms for _, ms in probes["/healthz", "127.0.0.1"]]
    print(f"\nhandshake flood ({kind} cookie): {dict(counts)} in {flood_s:.1f} s; the person's round trip idle "
          f"median {statistics.median(idle):.0f} ms, under flood median {statistics.median(trips):.0f} ms, slowest "
          f"{max(trips):.0f} ms; a new socket of theirs opened in {open_ms:.0f} ms, the NAT neighbour's in "
          f"{nat_ms:.0f} ms; /healthz idle median {statistics.median(idle_health):.0f} ms, under flood median "
          f"{statistics.median(health):.0f} ms, slowest {max(health):.0f} ms; from the flooding addresses: "
          + "; ".join(f"{path} from {address}: statuses {sorted(set(s for s, _ in samples))}, median "
                      f"{statistics.median(ms for _, ms in samples):.0f} ms"
                      for (path, address), samples in probes.items() if address != "127.0.0.1"))
    for address in FLOODING_ADDRESSES:
        attempts = sum(n for (a, _), n in counts.items() if a == address)
        assert attempts >= 300, f"{address} made only {attempts} handshakes: not a flood"
        assert counts[address, "accepted"] == 0, "a client without a session got a socket"
        # What reaches the WebSocket stack (and a session lookup) is the address's budget, not the flood.
        assert counts[address, "through"] <= HANDSHAKE_BURST + HANDSHAKES_PER_S * flood_s + 5, dict(counts)
        assert counts[address, "429"] >= attempts - counts[address, "through"] - counts[address, "dropped"]
    for (path, address), samples in probes.items():  # plain HTTP from the flooding machines is never refused
        assert samples and all(status == 200 for status, _ in samples), (path, address, samples)
    # Timed by this process, which drives the flood on the same 2 cores: the bounds are far below the seconds
    # a stalled site takes, and above what a busy shared machine adds now and then.
    assert statistics.quantiles(trips, n=20)[-1] <= 500 and max(trips) <= 2000, sorted(round(t) for t in trips)[-5:]
    assert open_ms <= 2000 and nat_ms <= 2000
    assert statistics.median(health) <= 200 and max(health) <= 1000, sorted(round(h) for h in health)[-5:]
