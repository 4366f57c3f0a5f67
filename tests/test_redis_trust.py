"""Whoever reaches Redis is no longer trusted with everything (issue 11, finding 9).

A real redis-server with a password, the site served with REDIS_URL and LLMSITE_REDIS_KEY, a real
`manage.py llmworker` with the same key and the real SmolLM2 model, and a rogue client that reaches Redis
(it knows the password) but not the key, speaking channels_redis as a fake worker would. The rogue is
never picked as a worker, its forged replies and socket events are dropped without closing anyone's
socket, and the raw Redis traffic (MONITOR) never carries a person's message or system prompt in clear.
Start-up refuses REDIS_URL without a key; rediss:// (TLS) works.
"""

import asyncio
import datetime
import ipaddress
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import REDIS_SERVER, ROOT, RunningSite, free_port, missing, prepare_data_dir
from tests.test_redis_workers import WorkerProcess, eventually, run, site_workers, wait_for_workers
from tests.wsclient import Socket, session_cookies

KEY = secrets.token_urlsafe(32)
PASSWORD = "redis-pass-" + secrets.token_hex(8)
SECRET_CONTENT = "my-secret-question-" + secrets.token_hex(6)
SECRET_SYSTEM = "my-secret-system-prompt-" + secrets.token_hex(6)
ROGUE_MARKER = "rogue-marker-" + secrets.token_hex(6)
FORGED = "FORGED-" + secrets.token_hex(6)


def redis_command(port: int, *args: str, password: str | None = None) -> bytes:
    """One command over a raw connection (RESP), the reply's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        for command in ([["AUTH", password]] if password else []) + [list(args)]:
            payload = f"*{len(command)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in command)
            connection.sendall(payload.encode())
            reply = connection.recv(65536)
        return reply


class Monitor(threading.Thread):
    """Redis's MONITOR: every command any client sends, with its arguments, as Redis sees them."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.connection = socket.create_connection(("127.0.0.1", port), timeout=1)
        self.connection.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(PASSWORD)}\r\n{PASSWORD}\r\n*1\r\n$7\r\nMONITOR\r\n".encode())
        self.traffic = bytearray()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                chunk = self.connection.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            self.traffic += chunk

    def stop(self) -> bytes:
        self.stopping.set()
        self.join(5)
        self.connection.close()
        return bytes(self.traffic)


@pytest.fixture(scope="module")
def locked_redis(redis_server):
    """The module's redis-server, with a password (as the README tells a LAN's Redis to have)."""
    assert redis_command(redis_server.port, "CONFIG", "SET", "requirepass", PASSWORD).startswith(b"+OK")
    redis_server.secure_url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    return redis_server


@pytest.fixture(scope="module")
def keyed_site(locked_redis, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("keyed-site")
    env = {"REDIS_URL": locked_redis.secure_url, "LLMSITE_REDIS_KEY": KEY, "LLMSITE_WORKER_ANNOUNCE_MS": "300",
           "LLMSITE_WORKER_TIMEOUT_MS": "2000"}
    site = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, site.env)
    site.start()
    site.staff_cookie = session_cookies(site, "rtstaff", 1, staff=True)[0]
    worker = WorkerProcess("keyed", tmp_path_factory.mktemp("keyed-worker"), site.env)
    try:
        wait_for_workers(site, {"keyed"})
    except Exception as exc:
        worker.stop()
        site.stop()
        raise RuntimeError(f"the keyed worker did not become ready:\n{worker.log_path.read_text()[-3000:]}") from exc
    site.worker = worker
    yield site
    worker.stop()
    site.stop()


def rogue_layer(url: str, keys=None):
    """What a fake worker uses: channels_redis itself, reaching the same Redis, without the site's key."""
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=[url], symmetric_encryption_keys=keys)


def group_members(port: int, group: str) -> list[str]:
    """Channel names in a group: Redis keeps them in the clear (asgi:group:<name>), so a rogue sees them."""
    reply = redis_command(port, "ZRANGE", f"asgi:group:{group}", "0", "-1", password=PASSWORD).decode()
    return [line for line in reply.split("\r\n") if line and line[0] not in "*$"]


def rogue_announcement(channel: str) -> dict:
    return {"type": "llm.announce", "worker": {
        "name": "rogue", "instance": "r1", "channel": channel, "host": ROGUE_MARKER, "pid": 1,
        "model_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "state": "ready", "progress": 1.0, "error": None,
        "n_gpu_layers": 0, "n_layers": 31, "n_ctx": 2048, "quant": "Q4_1", "gpu": "", "vram_total_bytes": None,
        "vram_free_bytes": None, "queue_length": 0, "busy": False, "jobs": [], "served": 0}}


async def until_done(socket: Socket, message: int, frames: list) -> dict:
    """Frames until the reply's last one (done, or an error about it), every frame kept in `frames`."""
    while True:
        frame = await socket.frames.get()
        frames.append(frame)
        if frame["type"] in ("done", "error") and message in (frame.get("message"), frame.get("reply")):
            return frame


def test_a_rogue_without_the_key_is_never_a_worker_and_reads_and_forges_nothing(keyed_site, locked_redis):
    cookie = session_cookies(keyed_site, "rtp", 1)[0]
    port = locked_redis.port
    monitor = Monitor(port)
    monitor.start()

    async def scenario():
        rogue = rogue_layer(locked_redis.secure_url)
        rogue_channel = await rogue.new_channel("llmworker")
        await rogue.group_add("llm-workers", rogue_channel)  # group membership is not sealed: it joins
        for _ in range(5):  # announce itself as an idle, ready worker serving the site's model
            await rogue.group_send("llm-web", rogue_announcement(rogue_channel))
            await asyncio.sleep(0.2)
        known_to_site = await asyncio.to_thread(site_workers, keyed_site)
        # A request of its own to the real worker, answered to the rogue: it is dropped unopened.
        for worker_channel in group_members(port, "llm-workers"):
            if worker_channel != rogue_channel:
                await rogue.send(worker_channel, {"type": "llm.generate", "job": 424242, "reply_to": rogue_channel,
                                                  "messages": [{"role": "user", "content": FORGED}], "options": {}})
        socket = await Socket.open(keyed_site.url, cookie)
        try:
            await socket.ws.send({"type": "send", "conversation": None, "content": SECRET_CONTENT,
                                  "options": {"max_tokens": 12, "seed": 1, "system": SECRET_SYSTEM}})
            accepted = await socket.until("accepted", "error")
            assert accepted["type"] == "accepted", accepted
            message = accepted["message"]
            # While the real worker writes: forge its events to the site, and socket events to every socket.
            for web in group_members(port, "llm-web"):
                await rogue.send(web, {"type": "llm.event", "name": "keyed", "instance": "x", "event": {
                    "ev": "token", "job": message, "text": FORGED}})
                await rogue.send(web, {"type": "llm.event", "name": "keyed", "instance": "x", "event": {
                    "ev": "done", "job": message, "text": FORGED, "tokens": 1}})
            for channel in group_members(port, f"reply-{message}") + group_members(port, "worker-status"):
                await rogue.send(channel, {"type": "reply.token", "message": message, "text": FORGED})
                await rogue.send(channel, {"type": "reply.done", "message": message, "status": "complete",
                                           "text": FORGED})
            frames = []
            first = await until_done(socket, message, frames)
            # The socket survived every forged message: it still chats.
            await socket.ws.send({"type": "send", "conversation": accepted["conversation"], "content": "And?",
                                  "options": {"max_tokens": 6, "seed": 2}})
            again = await socket.until("accepted", "error")
            second = await until_done(socket, again["message"], frames)
            # What the rogue's own channel received: sealed requests it cannot open.
            heard = []
            try:
                while True:
                    heard.append(await asyncio.wait_for(rogue.receive(rogue_channel), 0.5))
            except Exception as exc:  # noqa: BLE001 - a timeout, or the ciphertext failing to decode
                heard.append(type(exc).__name__)
            return known_to_site, accepted, first, again, second, frames, heard, socket.closed
        finally:
            socket.close()
            await rogue.close_pools()

    try:
        known_to_site, accepted, first, again, second, frames, heard, closed = run(scenario())
    finally:
        traffic = monitor.stop()
    assert set(known_to_site) == {"keyed"}, f"the rogue was taken for a worker: {known_to_site}"
    assert first["type"] == "done" and first["status"] == "complete", first
    assert again["type"] == "accepted" and second["type"] == "done", (again, second)
    assert not closed
    assert all(FORGED not in json.dumps(frame) for frame in frames), frames
    saved = json.loads(keyed_site.manage("shell", "-c", (
        "import json\nfrom chat.models import Message\n"
        f"m = Message.objects.get(pk={accepted['message']})\n"
        "print(json.dumps([m.content, m.status, m.conversation.system_prompt]))")).strip().splitlines()[-1])
    assert saved[1] == "complete" and saved[0] and FORGED not in saved[0], saved
    assert all(not isinstance(h, dict) or "messages" not in h for h in heard), heard
    # Redis saw the rogue's plain messages (so MONITOR shows message contents) but never the person's text.
    assert ROGUE_MARKER.encode() in traffic
    assert SECRET_CONTENT.encode() not in traffic and SECRET_SYSTEM.encode() not in traffic
    log = keyed_site.output()
    assert "not sealed with this site's key" in log
    worker_log = keyed_site.worker.log_path.read_text()
    assert "not sealed with this site's key" in worker_log and PASSWORD not in worker_log
    served = eventually(lambda: site_workers(keyed_site)["keyed"]["served"] >= 2 and
                        site_workers(keyed_site)["keyed"]["served"])
    assert served == 2, "the person's two replies, and not the rogue's request"


def test_without_the_key_the_same_rogue_is_taken_for_a_worker(locked_redis, tmp_path):
    """The control: with LLMSITE_REDIS_INSECURE=1 (what every site was before the key), the rogue's
    announcement is believed, so it would be sent people's histories. The test above can fail."""
    url = locked_redis.secure_url.rsplit("/", 1)[0] + "/1"  # a database of its own, away from the keyed site
    site = RunningSite(tmp_path, [sys.executable, "-m", "llmsite.serve"],
                       env={"REDIS_URL": url, "LLMSITE_REDIS_INSECURE": "1", "LLMSITE_WORKER_ANNOUNCE_MS": "300",
                            "LLMSITE_WORKER_TIMEOUT_MS": "2000"})
    prepare_data_dir(tmp_path, site.env)
    site.start()
    try:
        site.staff_cookie = session_cookies(site, "rtc", 1, staff=True)[0]

        async def announce():
            rogue = rogue_layer(url)
            channel = await rogue.new_channel("llmworker")
            known = {}
            for _ in range(25):
                await rogue.group_send("llm-web", rogue_announcement(channel))
                known = await asyncio.to_thread(site_workers, site)
                if known:
                    break
                await asyncio.sleep(0.2)
            await rogue.close_pools()
            return known

        known = run(announce())
    finally:
        site.stop()
    assert set(known) == {"rogue"} and known["rogue"]["host"] == ROGUE_MARKER
    assert "LLMSITE_REDIS_INSECURE" in site.output()


def test_the_worker_says_where_it_serves_without_the_password(keyed_site):
    output = keyed_site.worker.log_path.read_text()
    assert f"for redis://:***@127.0.0.1:{keyed_site.env['REDIS_URL'].rsplit(':', 1)[1]}" in output
    assert "messages are sealed with LLMSITE_REDIS_KEY" in output
    assert PASSWORD not in output and KEY not in output


def start_django(tmp_path, *args: str, **env) -> subprocess.CompletedProcess:
    full_env = {"PATH": "/usr/bin:/bin", "LLMSITE_DATA_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("command", [["check"], ["llmworker", "--n-gpu-layers", "0"]])
def test_start_up_refuses_redis_without_a_key_naming_the_variable(tmp_path, command):
    url = "redis://:hunter2-secret@127.0.0.1:1/0"
    refused = start_django(tmp_path, *command, REDIS_URL=url)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last and "LLMSITE_REDIS_KEY" in last and "LLMSITE_REDIS_INSECURE" in last
    assert "hunter2-secret" not in refused.stderr + refused.stdout
    short = start_django(tmp_path, *command, REDIS_URL=url, LLMSITE_REDIS_KEY="too-short")
    assert short.returncode != 0 and "at least 32 characters" in short.stderr.strip().splitlines()[-1]
    assert "too-short" not in short.stderr


def test_start_up_without_a_key_takes_an_explicit_insecure_setting(tmp_path):
    allowed = start_django(tmp_path, "check", REDIS_URL="redis://127.0.0.1:1/0", LLMSITE_REDIS_INSECURE="1")
    assert allowed.returncode == 0, allowed.stderr


def test_a_sealed_receiver_drops_what_it_cannot_open_and_goes_on(locked_redis):
    """Two sockets of one web process share one Redis list; junk in it must cost neither of them."""
    from chat.worker.redis_layer import SealedRedisChannelLayer

    async def scenario():
        site = SealedRedisChannelLayer(hosts=[locked_redis.secure_url], symmetric_encryption_keys=[KEY])
        alice, bob = await site.new_channel("specific"), await site.new_channel("specific")
        received = {alice: [], bob: []}

        async def listen(channel):
            while len(received[channel]) < 1:
                received[channel].append(await site.receive(channel))

        listeners = [asyncio.ensure_future(listen(c)) for c in (alice, bob)]
        await asyncio.sleep(0.3)
        for rogue in (rogue_layer(locked_redis.secure_url), rogue_layer(locked_redis.secure_url, ["x" * 40])):
            await rogue.send(alice, {"type": "reply.token", "text": FORGED})
            await rogue.send(bob, {"type": "reply.token", "text": FORGED})
            await rogue.close_pools()
        # Raw junk straight into the process's list, as a client with only redis-cli would write it.
        real = alice.split("!")[0] + "!"
        redis_command(locked_redis.port, "ZADD", f"asgi{real}", str(time.time()), "not a message",
                      password=PASSWORD)
        await site.send(alice, {"type": "reply.token", "text": "for alice"})
        await site.send(bob, {"type": "reply.token", "text": "for bob"})
        await asyncio.wait_for(asyncio.gather(*listeners), 20)
        await site.close_pools()
        return received[alice], received[bob]

    for_alice, for_bob = run(scenario(), timeout=60)
    assert for_alice == [{"type": "reply.token", "text": "for alice"}]
    assert for_bob == [{"type": "reply.token", "text": "for bob"}]


def write_self_signed(folder) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "redis.crt", folder / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


ROUND_TRIP = """
import asyncio
from channels.layers import get_channel_layer
async def main():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "tls.check", "text": "over TLS"})
    print(type(layer).__name__, (await layer.receive(channel))["text"])
asyncio.run(main())
"""


def test_a_rediss_url_talks_tls_to_redis(tmp_path):
    if not REDIS_SERVER or not __import__("pathlib").Path(REDIS_SERVER).exists():
        missing("redis-server not found: `make test` installs Debian's redis-server")
    cert, key = write_self_signed(tmp_path)
    port = free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                               "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
                               str(cert), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server with TLS did not start"
                time.sleep(0.1)
        tls = start_django(tmp_path, "shell", "-c", ROUND_TRIP, LLMSITE_REDIS_KEY=KEY,
                           REDIS_URL=f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")
        assert tls.returncode == 0, tls.stderr[-2000:]
        assert tls.stdout.strip().splitlines()[-1] == "SealedRedisChannelLayer over TLS"
        # The same server refuses plain text: the site really spoke TLS.
        plain = start_django(tmp_path, "shell", "-c", ROUND_TRIP, LLMSITE_REDIS_KEY=KEY,
                             REDIS_URL=f"redis://127.0.0.1:{port}/0")
        assert plain.returncode != 0
    finally:
        server.terminate()
        server.wait(10)


def test_the_models_status_page_names_no_secret(keyed_site):
    request = urllib.request.Request(keyed_site.url + "/chat/models/", headers={"Cookie": keyed_site.staff_cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    assert PASSWORD not in page and KEY not in page


def test_a_sealed_message_copied_out_of_redis_and_written_back_is_dropped(locked_redis):
    """Someone who reads Redis but has no key copies a sealed message (a reply token, an announcement) and
    writes it back, as it was or with another random prefix: the receiver opens it once only."""
    from chat.worker.redis_layer import SealedRedisChannelLayer

    async def scenario():
        site = SealedRedisChannelLayer(hosts=[locked_redis.secure_url], symmetric_encryption_keys=[KEY])
        alice = await site.new_channel("specific")
        key = f"asgi{alice.split('!')[0]}!"
        await site.send(alice, {"type": "reply.token", "text": "once"})
        sealed = redis_bytes(locked_redis.port, "ZRANGE", key, "0", "-1")
        assert len(sealed) == 1 and b"once" not in sealed[0]
        first = await asyncio.wait_for(site.receive(alice), 20)
        prefix = site._serializer.random_prefix_length
        for copy in (sealed[0], b"\x00" * prefix + sealed[0][prefix:]):
            assert redis_raw(locked_redis.port, "ZADD", key, str(time.time()), copy).startswith(b":1")
        await site.send(alice, {"type": "reply.token", "text": "twice"})
        second = await asyncio.wait_for(site.receive(alice), 20)
        await site.close_pools()
        return first, second

    first, second = run(scenario(), timeout=60)
    assert first == {"type": "reply.token", "text": "once"}
    assert second == {"type": "reply.token", "text": "twice"}, "a replayed copy was delivered"


def redis_raw(port: int, *args) -> bytes:
    """One command with binary arguments (sealed messages are bytes) after AUTH; the raw reply."""
    def command(conn, parts):
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in parts]
        conn.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        command(conn, ["AUTH", PASSWORD])
        assert conn.recv(64).startswith(b"+OK")
        command(conn, args)
        data = b""
        while not _complete(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def redis_bytes(port: int, *args) -> list[bytes]:
    """The members of an array reply, as raw bytes."""
    return _array_members(redis_raw(port, *args))


def _array_members(data: bytes) -> list[bytes]:
    count_end = data.index(b"\r\n")
    members, at = [], count_end + 2
    for _ in range(int(data[1:count_end])):
        length_end = data.index(b"\r\n", at)
        length = int(data[at + 1:length_end])
        if length_end + 2 + length + 2 > len(data):
            raise IndexError("incomplete")
        members.append(data[length_end + 2:length_end + 2 + length])
        at = length_end + 2 + length + 2
    return members


def _complete(data: bytes) -> bool:
    if not data.endswith(b"\r\n"):
        return False
    if not data.startswith(b"*"):
        return True
    try:
        _array_members(data)
        return True
    except (ValueError, IndexError):
        return False
