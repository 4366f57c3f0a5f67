"""Attacks, round three: the surfaces added after issue 11 (the OpenAI-compatible API, model downloads, reply
versions over the socket), each made as a hostile person on the LAN would make it, against a real daphne
started as `make run` starts it (tests/conftest.py's RunningSite) with the real SmolLM2 model.

Everything is on loopback and bounded in bytes and in time. The hostile download server is a thread here.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RunningSite, prepare_data_dir
from tests.openai_people import api_people

BODY_LIMIT_MB = 4  # LLMSITE_MAX_REQUEST_BODY_MB of the site below: small, so a test sends little to pass it


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("round3-site")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"],
                          # A small context: the fitted prompt of the many-turns test is quick to evaluate.
                          env={"LLMSITE_MAX_REQUEST_BODY_MB": str(BODY_LIMIT_MB), "LLMSITE_N_CTX": "512"})
    prepare_data_dir(data_dir, running.env)
    running.start()
    running.people = api_people(running, ["mallory"])
    running.staff = api_people(running, ["root"], staff=True)["root"]
    yield running
    running.stop()


def request(site, path: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
            timeout: float = 60):
    """(status, headers, body bytes) of one plain HTTP request."""
    req = urllib.request.Request(site.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def bearer(site, person: str = "mallory") -> dict:
    return {"Authorization": f"Bearer {site.people[person]['key']}", "Content-Type": "application/json"}


# --- the API's JSON -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("nesting", ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_deeper_than_the_stack_is_a_400_in_openais_shape_not_a_500(hostile_site, nesting):
    status, _headers, body = request(hostile_site, "/v1/chat/completions", method="POST",
                                     body=nesting.encode(), headers=bearer(hostile_site))
    assert status == 400, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "invalid_json"


# --- request bodies -----------------------------------------------------------------------------------------
def raw_exchange(site, head: bytes, chunks=(), *, timeout: float = 10) -> tuple[bytes, int, bool]:
    """Send a request's head, then body chunks until the server stops taking them; (the start of its answer,
    body bytes sent, whether sending broke off)."""
    port = urllib.parse.urlsplit(site.url).port
    sent, broke = 0, False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection: what it answered first is still readable
            broke = True
        try:
            answer = sock.recv(200)
        except TimeoutError:
            answer = b""
        except OSError:
            answer = b"(reset)"
    return answer, sent, broke


def test_a_body_declared_too_large_is_refused_before_a_byte_of_it_is_read(hostile_site):
    """daphne holds a whole request body (on disk, then queued in memory) before the application, and so any
    sign-in check, sees it: one anonymous POST of 1.5 GB took the server from 0.4 to 1.5 GB of memory, for
    good. A length over the limit is answered 413 at once, without waiting for the body."""
    for path in ("/v1/chat/completions", "/accounts/login/"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {2 << 30}\r\n\r\n").encode()
        started = time.monotonic()
        answer, _sent, _broke = raw_exchange(hostile_site, head)
        assert answer.startswith(b"HTTP/1.1 413"), (path, answer)
        assert time.monotonic() - started < 5


def test_a_chunked_body_that_grows_too_large_is_cut_off(hostile_site):
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    block = b"0" * (1 << 20)
    chunks = [b"%x\r\n%s\r\n" % (len(block), block) for _ in range(BODY_LIMIT_MB * 8)] + [b"0\r\n\r\n"]
    answer, sent, broke = raw_exchange(hostile_site, head, chunks)
    # Before: all 32 MiB were taken, then answered 401 (no key). Now the server stops at the limit.
    assert broke or answer.startswith(b"HTTP/1.1 413"), (answer, sent)
    assert not answer.startswith(b"HTTP/1.1 401"), answer


def test_bodies_under_the_limit_still_reach_the_api(hostile_site):
    body = json.dumps({"model": "no-such-model.gguf",
                       "messages": [{"role": "user", "content": "x" * 90_000}] * 10}).encode()
    assert 512 << 10 < len(body) < BODY_LIMIT_MB << 20
    status, _headers, answer = request(hostile_site, "/v1/chat/completions", method="POST", body=body,
                                       headers=bearer(hostile_site))
    assert status == 404 and json.loads(answer)["error"]["code"] == "model_not_found"
    status, _headers, _answer = request(hostile_site, "/healthz")
    assert status == 200


# --- downloads ----------------------------------------------------------------------------------------------
class LyingServer:
    """HEAD says the file has `announced` bytes; GET sends a GGUF-looking body that goes on far past that
    (chunked, no length), a block every few milliseconds, and counts what it managed to send."""

    def __init__(self, announced: int, sends: int):
        self.announced, self.sends, self.sent = announced, sends, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", str(outer.announced))
                self.end_headers()

            def do_GET(self):
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"GGUF" + bytes(65532)
                try:
                    while outer.sent < outer.sends:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                        outer.sent += len(block)
                        block = bytes(65536)
                        time.sleep(0.003)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client hung up: good

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def staff_post(site, path: str, fields: dict) -> int:
    """A staff form POST the way the Models page sends it: with the page's CSRF token."""
    cookie = site.staff["cookie"]
    with urllib.request.urlopen(urllib.request.Request(site.url + "/chat/models/", headers={"Cookie": cookie}),
                                timeout=60) as response:
        page = response.read().decode()
        csrf_cookie = re.search(r"csrftoken=([^;]+)", response.headers.get("Set-Cookie", "")).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    status, _headers, _body = request(
        site, path, method="POST", body=urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode(),
        headers={"Cookie": f"{cookie}; csrftoken={csrf_cookie}",
                 "Content-Type": "application/x-www-form-urlencoded"})
    return status


def downloads(site) -> list[dict]:
    status, _headers, body = request(site, "/chat/models/status/", headers={"Cookie": site.staff["cookie"]})
    assert status == 200
    return json.loads(body)["downloads"]


def test_a_download_server_that_sends_more_than_it_announced_is_cut_off_at_the_announced_size(hostile_site):
    """A server that announces 1 MiB and then sends on without end filled the disk: the runner wrote whatever
    came (200 MB in 20 s here) and, when the server finally stopped, resumed and did it again. Now not one
    byte past the announced size is written, the download fails saying why, and nothing stays behind."""
    announced = 1 << 20
    server = LyingServer(announced, sends=96 << 20)
    staging = Path(hostile_site.data_dir) / "models" / ".downloads"
    try:
        status = staff_post(hostile_site, "/chat/models/downloads/start/",
                            {"url": f"http://127.0.0.1:{server.port}/endless.gguf"})
        assert status in (200, 302)
        [download] = [d for d in downloads(hostile_site) if d["file_name"] == "endless.gguf"]
        largest, deadline = 0, time.monotonic() + 90
        while time.monotonic() < deadline:
            parts = list(staging.glob(f"{download['id']}/*.part")) if staging.is_dir() else []
            for part in parts:
                try:
                    largest = max(largest, part.stat().st_size)
                except FileNotFoundError:
                    pass
            assert largest <= announced, f"{largest} bytes written for a file announced as {announced}"
            assert server.sent < 32 << 20, f"the site took {server.sent} bytes of a {announced}-byte file"
            state = next(d for d in downloads(hostile_site) if d["id"] == download["id"])
            if state["state"] not in ("queued", "running", "verifying"):
                break
            time.sleep(0.05)
        assert state["state"] == "failed", state
        assert "more than" in state["error"], state["error"]
        assert not (staging / str(download["id"])).exists()
        status, _headers, body = request(hostile_site, "/v1/models", headers=bearer(hostile_site))
        assert "endless.gguf" not in [m["id"] for m in json.loads(body)["data"]]
    finally:
        for d in downloads(hostile_site):
            if d["state"] in ("queued", "running", "verifying"):
                staff_post(hostile_site, f"/chat/models/downloads/{d['id']}/cancel/", {})
        server.stop()


class RecordingServer:
    """Answers HEAD with a size (or with `redirect`, a Location) and records the paths it was asked for, and
    the headers they came with."""

    def __init__(self, host: str = "127.0.0.1", redirect: str | None = None, size: int = 1 << 20):
        self.asked: list[str] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                outer.asked.append(self.path)
                outer.headers.append(dict(self.headers))
                if redirect and redirect != self.path:  # a redirect to a path of its own is answered there
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                self.end_headers()

            do_GET = do_HEAD

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def queue_download_by_url(site, url: str) -> list[dict]:
    """Staff queue `url` on the Models page; the downloads the site then lists with the URL's file name."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path).rsplit("/", 1)[-1]
    status = staff_post(site, "/chat/models/downloads/start/", {"url": url})
    assert status in (200, 302)
    return [d for d in downloads(site) if d["file_name"] == name]


def test_a_redirect_cannot_take_a_download_to_plain_http_on_the_network(hostile_site):
    """Plain http:// is allowed to this machine only (a local mirror); anything on the network must be HTTPS.
    A redirect skipped that rule: a loopback (or any HTTPS) server that answered 302 to http://<LAN host>/
    had the site fetch from there, in the clear. 127.0.0.2 stands in for the LAN host: it is not one of
    the names the rule allows, and a URL naming it directly is refused."""
    lan = RecordingServer("127.0.0.2")
    hop = RecordingServer("127.0.0.1", redirect=lan.url + "/model.gguf")
    try:
        assert queue_download_by_url(hostile_site, lan.url + "/model.gguf") == []  # refused when asked directly
        assert queue_download_by_url(hostile_site, hop.url + "/model.gguf") == []  # and through a redirect
        assert hop.asked and lan.asked == [], (hop.asked, lan.asked)
    finally:
        hop.stop()
        lan.stop()


def test_the_hub_token_does_not_follow_a_redirect_to_another_host():
    """The hub's headers carry HF_TOKEN and are given only for the hub's own address (sources.auth_headers_for),
    but urllib copied them onto every redirect: a hub, a mirror or a URL on it that answered 302 to another
    host had the token sent there. A redirect to another scheme, host or port now drops Authorization and
    Cookie; one on the same origin keeps them."""
    from downloads.fetch import urlopen

    elsewhere = RecordingServer("127.0.0.1")
    hub = RecordingServer("127.0.0.1", redirect=elsewhere.url + "/model.gguf")
    inner = RecordingServer("127.0.0.1", redirect="/new.gguf")  # /old.gguf to /new.gguf on one server
    secret = {"Authorization": "Bearer hf_secret", "Cookie": "token=hf_secret", "User-Agent": "llmsite"}
    try:
        for server, path in ((hub, "/model.gguf"), (inner, "/old.gguf")):
            with urlopen(urllib.request.Request(server.url + path, method="HEAD", headers=secret), timeout=10):
                pass
        assert hub.headers[0]["Authorization"] == "Bearer hf_secret"  # the hub itself gets it
        assert elsewhere.asked == ["/model.gguf"]
        assert "Authorization" not in elsewhere.headers[0] and "Cookie" not in elsewhere.headers[0]
        assert elsewhere.headers[0]["User-Agent"] == "llmsite"
        assert inner.asked == ["/old.gguf", "/new.gguf"]
        assert inner.headers[1]["Authorization"] == "Bearer hf_secret"
    finally:
        for server in (hub, elsewhere, inner):
            server.stop()


@pytest.mark.parametrize("name", ["nul%00byte.gguf", "tab%09name.gguf", "x" * 247 + ".gguf"])
def test_a_file_name_the_disk_cannot_take_is_refused_when_it_is_asked_for(hostile_site, name):
    """A name with a NUL or another control character, or too long to be a file once `.part` is added
    (NAME_MAX is 255 bytes), was queued and then failed six times over a minute as a 'broken transfer';
    on PostgreSQL the NUL made the Models page's POST a 500. It is refused at once, nothing queued."""
    server = RecordingServer()
    try:
        assert queue_download_by_url(hostile_site, f"{server.url}/{name}") == []
    finally:
        server.stop()


# --- the worker ---------------------------------------------------------------------------------------------
def test_ten_thousand_messages_do_not_hold_the_worker_for_everyone(hostile_site):
    """A history longer than the context is cut from its oldest turns. The worker dropped one turn, rendered
    and tokenized the whole prompt again, and again: quadratic, and llama.cpp's tokenizer is itself superlinear
    (27 s for one 2.3 MB prompt). One API call of 10,000 short turns (2.6 MB, under every body limit) held the
    site's only worker for everyone, deaf to stop requests, for over five minutes after its client had gone.
    Now it costs about what a call whose history just fills the context costs. (9,000 turns here: the body
    stays under Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE.)"""
    key = bearer(hostile_site)
    status, _headers, body = request(hostile_site, "/v1/models", headers=key)
    model = json.loads(body)["data"][0]["id"]
    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": "word " * 45} for n in range(9_001)]

    def ask(turns: list) -> float:
        started = time.monotonic()
        status, _headers, body = request(
            hostile_site, "/v1/chat/completions", method="POST", headers=key, timeout=600,
            body=json.dumps({"model": model, "messages": turns, "max_tokens": 2}).encode())
        assert status == 200 and json.loads(body)["choices"], (status, body[:300])
        return time.monotonic() - started

    # The same work but for the cutting: the last 20 turns also overflow 512 tokens and are cut to fit.
    baseline = ask(messages[-21:])
    flood = ask(messages)
    assert flood < 2 * baseline + 20, f"9,001 turns took {flood:.1f} s, 21 turns {baseline:.1f} s"
