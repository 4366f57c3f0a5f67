"""Issue 11's attacks from a hostile machine on the LAN, replayed against the site as `make run` serves it
(real daphne, real sockets). Loopback stands in for the LAN: Linux routes all of 127.0.0.0/8 to it, so a
client socket bound to 127.0.0.2 is a second machine, 127.0.0.3 the trusted reverse proxy, and so on.
"""

import http.client
import json
import re
import socket
import stat
import sys
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from tests.conftest import RunningSite, prepare_data_dir

OWNER, OWNER_PASSWORD = "boss", "the-owners-long-passphrase-1"
PROXY = "127.0.0.3"
SECRET = "my-secret-diagnosis-4711"


class Visitor:
    """One browser from one address: cookies, the CSRF token, forms posted over plain HTTP/1.1."""

    def __init__(self, site: RunningSite, address: str = "127.0.0.1"):
        self.site, self.address, self.cookies = site, address, SimpleCookie()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.site.port, timeout=60,
                                                source_address=(self.address, 0))
        sent = {"Host": f"127.0.0.1:{self.site.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            for value in response.headers.get_all("Set-Cookie") or []:
                self.cookies.load(value)
            return response.status, response.headers, text
        finally:
            connection.close()

    def get(self, path: str, headers: dict | None = None):
        return self.request("GET", path, headers=headers)

    def post(self, path: str, fields: dict, headers: dict | None = None):
        if "csrftoken" not in self.cookies:
            self.get(path, headers)
        fields = {**fields, "csrfmiddlewaretoken": self.cookies["csrftoken"].value}
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})

    def sign_in(self, username: str, password: str, headers: dict | None = None):
        return self.post("/accounts/login/", {"username": username, "password": password}, headers)


def start(tmp_path_factory, name: str, env: dict | None = None, command: list[str] | None = None) -> RunningSite:
    data_dir = tmp_path_factory.mktemp(name)
    running = RunningSite(data_dir, command or [sys.executable, "-m", "llmsite.serve"], env)
    prepare_data_dir(data_dir, running.env)
    return running.start()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    running = start(tmp_path_factory, "hostile-lan", {"LLMSITE_TRUSTED_PROXIES": PROXY,
                                                      "LLMSITE_SIGNUP_MAX_PENDING": "5"})
    running.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_superuser({OWNER!r}, 'boss@example.invalid', {OWNER_PASSWORD!r})\n"
        "from accounts.models import SiteSettings\n"
        "SiteSettings.objects.update_or_create(pk=1, defaults={'open_signup': True})\n"
    ))
    yield running
    running.stop()


def throttled(page: str) -> bool:
    return "Too many failed sign-ins" in page


def new_member(site, name: str) -> None:
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_user({name!r}, password={OWNER_PASSWORD!r})\n"
    ))


# --- Finding 1: forged X-Forwarded-For, and the account lock turned against its owner -----------------------


def test_a_forged_forwarded_for_neither_buys_guesses_nor_locks_the_owner_out(site):
    attacker = Visitor(site, "127.0.0.2")
    pages = [attacker.sign_in(OWNER, f"guess-{n}", {"X-Forwarded-For": f"10.66.{n}.1"})[2] for n in range(50)]
    assert not any(throttled(page) for page in pages[:5])
    assert all(throttled(page) for page in pages[5:]), "rotating X-Forwarded-For reset the per-address count"

    status, headers, _ = Visitor(site, "127.0.0.1").sign_in(OWNER, OWNER_PASSWORD)
    assert status == 302 and headers["Location"] == "/", "the owner was locked out by someone else's guesses"


def test_an_address_that_signed_in_before_keeps_its_way_in(site):
    new_member(site, "member")
    owner = Visitor(site, "127.0.0.1")
    assert owner.sign_in("member", OWNER_PASSWORD)[0] == 302
    # Ten machines, five guesses each: the account-wide allowance (10 x 5) is spent.
    for machine in range(10):
        guesser = Visitor(site, f"127.0.1.{machine + 1}")
        for n in range(5):
            assert not throttled(guesser.sign_in("member", f"guess-{n}")[2])
    assert throttled(Visitor(site, "127.0.1.99").sign_in("member", OWNER_PASSWORD)[2]), \
        "a new address waits once the account has been guessed at from many addresses"
    status, _, page = Visitor(site, "127.0.0.1").sign_in("member", OWNER_PASSWORD)
    assert status == 302, "the owner's own machine was locked out: " + page[:200]


def test_a_trusted_proxy_names_the_client_and_each_client_is_counted_apart(site):
    new_member(site, "behind-proxy")
    proxy = Visitor(site, PROXY)
    for n in range(5):
        proxy.sign_in("behind-proxy", f"guess-{n}", {"X-Forwarded-For": "203.0.113.7"})
    assert throttled(proxy.sign_in("behind-proxy", OWNER_PASSWORD, {"X-Forwarded-For": "203.0.113.7"})[2])
    # A spoofed entry to the left of the proxy's own is not believed: the proxy appended the real client.
    assert throttled(proxy.sign_in("behind-proxy", OWNER_PASSWORD,
                                   {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})[2])
    status, _, _ = Visitor(site, PROXY).sign_in("behind-proxy", OWNER_PASSWORD, {"X-Forwarded-For": "203.0.113.8"})
    assert status == 302, "another client behind the same proxy is not held back by the first one's guesses"


def handshakes(site, count: int, address: str, headers: dict) -> tuple[dict, float]:
    """`count` WebSocket handshakes without a session, one after another, from `address`: ({status: n}, s)."""
    import asyncio
    import concurrent.futures
    from collections import Counter

    from tests.wsclient import WebSocket

    async def attempts():
        statuses = Counter()
        started = time.monotonic()
        for _ in range(count):
            try:
                ws = await WebSocket.connect("127.0.0.1", site.port, "/ws/chat/", {"Origin": site.url, **headers},
                                             local_address=address)
                ws.close()
                statuses[101] += 1
            except RuntimeError as refused:
                statuses[int(re.search(r"HTTP/1.1 (\d+)", str(refused)).group(1))] += 1
        return dict(statuses), time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # the session's Playwright loop
        return pool.submit(asyncio.run, attempts()).result()


def test_a_trusted_proxy_is_not_rationed_for_handshakes_but_each_client_it_names_is(site):
    burst, rate = 60, 10  # LLMSITE_HANDSHAKE_BURST and LLMSITE_HANDSHAKES_PER_S, the defaults
    statuses, took = handshakes(site, 120, PROXY, {})  # the proxy itself (a health check, say): never rationed
    assert statuses == {403: 120}, statuses
    statuses, took = handshakes(site, 200, PROXY, {"X-Forwarded-For": "203.0.113.20"})
    assert statuses.get(429, 0) > 0 and statuses.get(403, 0) <= burst + rate * took + 2, (statuses, took)
    statuses, _ = handshakes(site, 5, PROXY, {"X-Forwarded-For": "203.0.113.21"})  # another client: its own
    assert statuses == {403: 5}, statuses
    # A client that connects directly cannot name someone else to spend their budget.
    statuses, took = handshakes(site, 200, "127.0.0.7", {"X-Forwarded-For": "203.0.113.22"})
    assert statuses.get(429, 0) > 0, statuses
    statuses, _ = handshakes(site, 5, PROXY, {"X-Forwarded-For": "203.0.113.22"})
    assert statuses == {403: 5}, statuses


def signup(visitor: Visitor, name: str):
    return visitor.post("/accounts/signup/", {"username": name, "email": "", "password1": OWNER_PASSWORD,
                                              "password2": OWNER_PASSWORD})


def pending_accounts(site) -> int:
    return int(site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "print(get_user_model().objects.filter(is_active=False).count())\n")).split()[-1])


def test_open_signup_is_rationed_per_address_and_in_all(site):
    script = Visitor(site, "127.0.2.1")
    assert [signup(script, f"bot{n}")[0] for n in range(3)] == [200, 200, 200]
    status, _, page = signup(script, "bot3")
    assert status == 429 and "Too many accounts were asked for from your address" in page
    assert pending_accounts(site) == 3
    assert signup(Visitor(site, "127.0.2.2"), "person4")[0] == 200
    assert signup(Visitor(site, "127.0.2.3"), "person5")[0] == 200
    status, _, page = signup(Visitor(site, "127.0.2.4"), "person6")
    assert status == 429 and "waiting for an administrator" in page
    assert pending_accounts(site) == 5, "LLMSITE_SIGNUP_MAX_PENDING=5 accounts wait at most"


# --- Finding 11: what anonymous /healthz tells ---------------------------------------------------------------


def test_anonymous_healthz_tells_states_only_and_staff_get_details(site):
    status, _, body = Visitor(site, "127.0.0.2").get("/healthz")
    health = json.loads(body)
    assert status == 200 and health["database"] is True
    assert health["worker"] == {"state": health["worker"]["state"]}, "no pid, error text or paths for anyone"
    assert all(set(gpu) == {"name"} for gpu in health["gpus"])

    staff = Visitor(site, "127.0.0.1")
    assert staff.sign_in(OWNER, OWNER_PASSWORD)[0] == 302
    details = json.loads(staff.get("/healthz")[2])["worker"]
    assert {"state", "pid", "error", "model_file"} <= set(details)


# --- Finding 12: conversations are not the admin's to read -------------------------------------------------


def test_staff_cannot_read_peoples_conversations_in_the_admin(site):
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation, Message\n"
        "person = get_user_model().objects.create_user('patient', password='x-long-password-9')\n"
        f"conversation = Conversation.objects.create(owner=person, title={SECRET!r})\n"
        f"Message.objects.create(conversation=conversation, role='user', content={SECRET!r} + ' details')\n"
    ))
    staff = Visitor(site, "127.0.0.1")
    assert staff.sign_in(OWNER, OWNER_PASSWORD)[0] == 302
    for path in ("/admin/", "/admin/chat/conversation/?q=patient", "/admin/chat/message/",
                 "/admin/auth/user/?q=patient"):
        status, _, page = staff.get(path)
        assert SECRET not in page, path
        assert status in (200, 404), path
    assert staff.get("/admin/chat/conversation/")[0] == 404
    user_id = re.search(r'/admin/auth/user/(\d+)/change/', staff.get("/admin/auth/user/?q=patient")[2]).group(1)
    status, _, page = staff.get(f"/admin/auth/user/{user_id}/delete/")
    assert status == 200 and "patient" in page and SECRET not in page, "deleting an account shows its chats"


# --- Finding 6: the data folder and the database are this account's alone ---------------------------------


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_folder_and_database_are_private_and_loose_ones_are_warned_about(tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"])
    running.env.pop("DATABASE_URL", None)  # the finding is about SQLite's files, also when the suite runs on PostgreSQL
    prepare_data_dir(data_dir, running.env)
    running.start()
    try:
        status, _, _ = Visitor(running).post("/setup/", {"username": "admin", "email": "", "password1": OWNER_PASSWORD,
                                                         "password2": OWNER_PASSWORD})
        assert status == 302  # the administrator was written: the WAL files exist now
        database = data_dir / "db.sqlite3"
        assert mode(data_dir) == 0o700
        for path in (database, data_dir / "db.sqlite3-wal", data_dir / "db.sqlite3-shm", data_dir / "secret_key"):
            assert mode(path) == 0o600, path
    finally:
        running.stop()
    assert "Warning:" not in running.output()

    data_dir.chmod(0o755)
    database.chmod(0o644)
    running.start()
    running.stop()
    output = running.output()
    assert f"{data_dir} has mode 0755" in output and f"chmod 700 {data_dir}" in output
    assert f"{database} has mode 0644" in output and f"chmod 600 {database}" in output


# --- Finding 8: slow and half-open connections ---------------------------------------------------------------

LIMITED_FILES = ("import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
                 "runpy.run_module('llmsite.serve', run_name='__main__', alter_sys=True)")


HEADER_TIMEOUT_S, IDLE_TIMEOUT_S = 5, 5  # small_site's deadlines (20 s and 30 s by default)


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    """A server with 256 file descriptors (a machine's usual soft limit is 1024): easy to exhaust."""
    running = start(tmp_path_factory, "slow-clients",
                    {"LLMSITE_MAX_CONNECTIONS_PER_ADDRESS": "100", "LLMSITE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
                     "LLMSITE_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)},
                    [sys.executable, "-c", LIMITED_FILES])
    yield running
    running.stop()


def half_open(port: int, address: str) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(address, 0))
    connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
    return connection


def test_healthz_answers_while_one_machine_holds_hundreds_of_half_open_requests(small_site):
    held = []
    try:
        for _ in range(300):
            try:
                held.append(half_open(small_site.port, "127.0.0.2"))
            except OSError:
                break
        started = time.monotonic()
        status, _, _ = Visitor(small_site, "127.0.0.1").get("/healthz")
        elapsed = time.monotonic() - started
        assert status == 200 and elapsed < 5, f"/healthz took {elapsed:.1f} s"
    finally:
        for connection in held:
            connection.close()


def answer_one_request(connection: socket.socket, port: int) -> None:
    connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("earlier_requests", [0, 1])
def test_a_request_whose_headers_trickle_in_is_closed(small_site, earlier_requests):
    connection = socket.create_connection(("127.0.0.1", small_site.port), timeout=10, source_address=("127.0.0.4", 0))
    for _ in range(earlier_requests):  # a keep-alive connection's next request is bounded too
        answer_one_request(connection, small_site.port)
    connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{small_site.port}\r\nX-Slow: ".encode())
    started, closed = time.monotonic(), False
    try:
        connection.settimeout(0.5)
        while time.monotonic() - started < 20:
            try:
                connection.sendall(b"x")  # a byte every half second keeps Twisted's idle timer happy
                if connection.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
                break
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    assert closed and elapsed < 15, f"the trickling request was still open after {elapsed:.0f} s"


# Slow requests of every shape, against the same server: each must be closed within its deadline, and
# /healthz (from another machine) keeps answering within 200 ms while they run.

def healthz_while(attack, *args):
    """Run attack(*args) in a thread; meanwhile time /healthz from 127.0.0.1 every 0.2 s. (result, samples)"""
    import concurrent.futures

    samples = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(attack, *args)
        while not running.done():
            started = time.perf_counter()
            status, _, _ = Visitor(_healthz_site, "127.0.0.1").get("/healthz")
            assert status == 200
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.2)
        return running.result(), samples


def assert_healthz_fast(samples: list[float]) -> None:
    import statistics

    slowest = sorted(round(s) for s in samples)[-5:]
    print(f"/healthz while it ran: {len(samples)} requests, median {statistics.median(samples):.0f} ms, "
          f"slowest {slowest}")
    assert len(samples) >= 5
    # Timed by this process on the same 2 cores as the server and the attack: bounded at the 95th percentile
    # (a scheduling hiccup can catch one request), and no request anywhere near the seconds of a held site.
    assert statistics.quantiles(samples, n=20)[-1] <= 200 and max(samples) <= 1000, slowest


_healthz_site = None


@pytest.fixture
def probed(small_site):
    global _healthz_site
    _healthz_site = small_site
    yield small_site
    _healthz_site = None


def trickle(connection: socket.socket, data: bytes, interval: float = 0.5, limit: float = 30) -> float | None:
    """Send `data` a byte every `interval` seconds (each byte keeps Twisted's idle timer happy) until the server
    closes the connection: the seconds that took, or None if it was still open after `limit` seconds."""
    started = time.monotonic()
    connection.settimeout(interval)
    try:
        for byte in data:
            if time.monotonic() - started > limit:
                return None
            try:
                connection.sendall(bytes([byte]))
                if connection.recv(65536) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                return time.monotonic() - started
        return None
    finally:
        connection.close()


def slow_request_line(port: int, earlier_requests: int) -> float | None:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.4", 0))
    for _ in range(earlier_requests):  # a keep-alive connection's next request is bounded too
        answer_one_request(connection, port)
    return trickle(connection, b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\n")


@pytest.mark.parametrize("earlier_requests", [0, 1])
def test_a_request_line_trickled_a_byte_at_a_time_is_closed(probed, earlier_requests):
    took, samples = healthz_while(slow_request_line, probed.port, earlier_requests)
    print(f"\nrequest line trickled after {earlier_requests} request(s): closed after {took and round(took, 1)} s")
    assert took is not None and took < HEADER_TIMEOUT_S + 3, f"the trickling request line was open after {took} s"
    assert_healthz_fast(samples)


def slow_body(port: int, framing: str) -> float | None:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.6", 0))
    length = b"Content-Length: 100000" if framing == "content-length" else b"Transfer-Encoding: chunked"
    connection.sendall(b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" % (port, length))
    body = b"username=" + b"x" * 99_991
    return trickle(connection, body if framing == "content-length" else b"186a0\r\n" + body)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_trickled_after_the_headers_is_closed(probed, framing):
    took, samples = healthz_while(slow_body, probed.port, framing)
    print(f"\nbody trickled ({framing}): closed after {took and round(took, 1)} s")
    # The body's deadline: the header timeout, plus a second for each 500 bytes (LLMSITE_BODY_MIN_BYTES_PER_S)
    # it sent, here a few dozen.
    assert took is not None and took < HEADER_TIMEOUT_S + 3, f"the trickling body was open after {took} s"
    assert_healthz_fast(samples)


def test_an_upload_slower_than_the_header_timeout_but_steady_is_answered(small_site):
    """The body deadline grows with what arrives: 64 kB at about 8 kB/s takes longer than the header timeout
    and is read to the end and answered (by a redirect to the first-run setup: this site has no staff yet)."""
    connection = socket.create_connection(("127.0.0.1", small_site.port), timeout=30)
    body = b"x" * 65536
    connection.sendall(b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" % (small_site.port, len(body)))
    started = time.monotonic()
    try:
        for offset in range(0, len(body), 1024):
            connection.sendall(body[offset:offset + 1024])
            time.sleep(0.12)
        sent_s = time.monotonic() - started
        head = connection.recv(65536)
    finally:
        connection.close()
    assert sent_s > HEADER_TIMEOUT_S, sent_s
    assert re.match(rb"HTTP/1\.1 [2-5]\d\d ", head), head[:100]


def idle_keepalive(port: int, count: int) -> tuple[int, float]:
    """`count` connections each make a request and then sit idle: (how many the server closed, seconds the
    last one took to go, from its request)."""
    import selectors

    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.5", 0))
            answer_one_request(connection, port)
            connections.append(connection)
        answered = time.monotonic()
        selector = selectors.DefaultSelector()
        for connection in connections:
            selector.register(connection, selectors.EVENT_READ)
        closed, last = 0, 0.0
        while closed < count and time.monotonic() - answered < IDLE_TIMEOUT_S + 20:
            for key, _ in selector.select(timeout=1):
                try:
                    data = key.fileobj.recv(1024)
                except OSError:
                    data = b""
                if data == b"":
                    selector.unregister(key.fileobj)
                    closed += 1
                    last = time.monotonic() - answered
        return closed, last
    finally:
        for connection in connections:
            connection.close()


def test_many_idle_keepalive_connections_are_closed_after_the_idle_timeout(probed):
    (closed, last), samples = healthz_while(idle_keepalive, probed.port, 90)
    print(f"\n90 idle keep-alive connections: {closed} closed, the last {last:.1f} s after its request")
    assert closed == 90, f"only {closed} of 90 idle connections were closed"
    assert last < IDLE_TIMEOUT_S + 3, f"the last idle connection went after {last:.1f} s"
    assert_healthz_fast(samples)
