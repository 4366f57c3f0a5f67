"""Workers anywhere on the LAN: a real redis-server, the site served with REDIS_URL, and two
`manage.py llmworker` processes with their own data folders (as on two machines), each loading the real
SmolLM2 model. People chat over the real WebSocket (tests/wsclient.py).

What a person would see: concurrent chats are answered by both workers, Stop, queue positions and
resume work across processes, a conversation whose model no worker serves gets a clear error, and a worker killed
mid-reply ends that reply with an error that keeps what was written, while the other worker goes on.
Every accepted message is accounted for in the database, none left `streaming`.
"""

import asyncio
import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, RunningSite, prepare_data_dir
from tests.wsclient import Socket, session_cookies

pytestmark = [pytest.mark.model]

ANNOUNCE_MS, TIMEOUT_MS = 300, 2000
LONG = {"max_tokens": 2000, "seed": 3}

COUNT_CODE = """
import json
from chat.models import Message
replies = Message.objects.filter(role='assistant', conversation__owner__username__startswith='rw')
print(json.dumps({s: replies.filter(status=s).count() for s in ('streaming', 'complete', 'stopped', 'error')}))
"""


class WorkerProcess:
    """`manage.py llmworker` in its own process group and data folder, as on a machine of its own."""

    def __init__(self, name: str, folder, env: dict, threads: int = 1, args: tuple = ("--parallel", "1")):
        self.name = name
        self.log_path = folder / "worker.log"
        self.log = open(self.log_path, "w")
        env = {**env, "LLMSITE_DATA_DIR": str(folder)}
        env.pop("LLMSITE_MODELS_DIR", None)
        self.process = subprocess.Popen(
            # One thread each: two workers on a 2-core machine, each with a core of its own.
            [sys.executable, "manage.py", "llmworker", "--name", name, "--n-ctx", "2048",
             *(["--threads", str(threads)] if threads else []), *args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """The whole machine goes away: the worker and its llama.cpp process, which has a process group of
        its own (chat/worker/process.py worker_main), at the same instant."""
        if self.process.poll() is None:
            children = [int(pid) for path in Path(f"/proc/{self.process.pid}/task").glob("*/children")
                        for pid in path.read_text().split()]
            os.killpg(self.process.pid, signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def redis_site(redis_server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("redis-site")
    # The site and its workers share the key that seals their messages (tests/test_redis_trust.py: without it).
    env = {"REDIS_URL": redis_server.url, "LLMSITE_REDIS_KEY": secrets.token_urlsafe(32),
           "LLMSITE_WORKER_ANNOUNCE_MS": str(ANNOUNCE_MS),
           "LLMSITE_WORKER_TIMEOUT_MS": str(TIMEOUT_MS)}
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, running.env)
    running.start()
    running.staff_cookie = session_cookies(running, "rwstaff", 1, staff=True)[0]
    yield running
    running.stop()


@pytest.fixture(scope="module")
def workers(redis_site, tmp_path_factory):
    started = {name: WorkerProcess(name, tmp_path_factory.mktemp(name), redis_site.env) for name in ("w1", "w2")}
    try:
        wait_for_workers(redis_site, {"w1", "w2"})
    except Exception as exc:
        for worker in started.values():
            worker.stop()
        logs = "\n".join(f"--- {w.name}\n{w.log_path.read_text()[-3000:]}" for w in started.values())
        site_log = redis_site.output()[-3000:]
        raise RuntimeError(f"the workers did not become ready:\n{logs}\n--- site\n{site_log}") from exc
    yield started
    for worker in started.values():
        worker.stop()


def site_workers(site) -> dict:
    """The workers the site knows, by name, from the Models page's status (staff only)."""
    request = urllib.request.Request(site.url + "/chat/models/status/", headers={"Cookie": site.staff_cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {w["name"]: w for w in json.load(response)["worker"]["workers"]}


def wait_for_workers(site, names: set, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        known = site_workers(site)
        if set(known) == names and all(w["state"] == "ready" for w in known.values()):
            return known
        time.sleep(0.3)
    raise TimeoutError(f"expected ready workers {sorted(names)}; the site knows {site_workers(site)}")


def eventually(check, timeout: float = 5.0):
    """Poll `check()` until it returns something true (workers announce every ANNOUNCE_MS); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def run(coroutine, timeout: float = 300):
    """Run an async scenario on a loop of its own (the session's Playwright may hold this thread's)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coroutine, timeout)).result()


def all_busy(site) -> bool:
    known = site_workers(site)
    return len(known) == 2 and all(w["busy"] for w in known.values())


def reply_counts(site) -> dict:
    return json.loads(site.manage("shell", "-c", COUNT_CODE).strip().splitlines()[-1])


async def send(socket: Socket, content: str, options: dict, conversation=None) -> dict:
    await socket.ws.send({"type": "send", "conversation": conversation, "content": content, "options": options})
    return await socket.until("accepted", "error")


async def finish(socket: Socket, message: int) -> dict:
    """The reply's last frame: done, or an error about it."""
    while True:
        frame = await socket.until("done", "error")
        if frame.get("message") == message or frame.get("reply") == message:
            return frame


async def first_tokens(socket: Socket, message: int, count: int = 5) -> None:
    seen = 0
    while seen < count:
        frame = await socket.until("token")
        seen += frame["message"] == message


def test_concurrent_chats_are_answered_by_both_workers_with_stop_and_queue(redis_site, workers):
    cookies = session_cookies(redis_site, "rwa", 4)
    before = {name: w["served"] for name, w in site_workers(redis_site).items()}

    async def scenario():
        sockets = [await Socket.open(redis_site.url, cookie) for cookie in cookies]
        try:
            accepted = await asyncio.gather(*(send(s, f"Name a colour, person {n}.", {"max_tokens": 24, "seed": n})
                                              for n, s in enumerate(sockets)))
            short = await asyncio.gather(*(finish(s, a["message"]) for s, a in zip(sockets, accepted, strict=True)))
            # Both workers busy with a long reply: a third request waits in line, then Stop frees them.
            long = [await send(s, "Tell me a very long story about a lighthouse.", LONG) for s in sockets[:2]]
            for socket, frame in zip(sockets, long, strict=False):
                await first_tokens(socket, frame["message"])
            busy = await asyncio.to_thread(eventually, lambda: all_busy(redis_site))
            waiting = await send(sockets[2], "Say hello.", {"max_tokens": 8})
            queued = await sockets[2].until("queued")
            for socket, frame in zip(sockets, long, strict=False):
                await socket.ws.send({"type": "stop", "message": frame["message"]})
            stopped = [await finish(s, f["message"]) for s, f in zip(sockets, long, strict=False)]
            after_wait = await finish(sockets[2], waiting["message"])
            return short, busy, queued, stopped, after_wait
        finally:
            for socket in sockets:
                socket.close()

    short, busy, queued, stopped, after_wait = run(scenario())
    assert [f["type"] for f in short] == ["done"] * 4, short
    assert busy, "each worker took one long reply"
    assert queued["position"] == 1
    assert [(f["type"], f["status"]) for f in stopped] == [("done", "stopped")] * 2, stopped
    assert after_wait["type"] == "done" and after_wait["status"] == "complete", after_wait
    def served_by_each():
        now = {name: w["served"] - before.get(name, 0) for name, w in site_workers(redis_site).items()}
        return now if sum(now.values()) == 7 else None

    served = eventually(served_by_each)  # 4 short replies, 2 stopped, 1 that waited in line
    assert served, f"7 replies expected: {site_workers(redis_site)}"
    assert min(served.values()) >= 2, served
    counts = reply_counts(redis_site)
    assert counts["streaming"] == 0 and counts["error"] == 0, counts
    # Staff see the workers on the Models page.
    request = urllib.request.Request(redis_site.url + "/chat/models/", headers={"Cookie": redis_site.staff_cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    assert 'data-worker="w1"' in page and 'data-worker="w2"' in page
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in page and 'id="unload-button"' not in page


def test_a_reply_is_resumed_from_another_socket_while_a_worker_writes_it(redis_site, workers):
    cookie = session_cookies(redis_site, "rwr", 1)[0]

    async def scenario():
        first = await Socket.open(redis_site.url, cookie)
        accepted = await send(first, "Tell me a very long story about a river.", LONG)
        await first_tokens(first, accepted["message"], 5)
        first.close()  # the tab is closed; the worker writes on
        await asyncio.sleep(0.5)
        second = await Socket.open(redis_site.url, cookie)
        try:
            await second.ws.send({"type": "resume", "message": accepted["message"]})
            resumed = await second.until("accepted", "error")
            snapshot = await second.until("token")
            more = await second.until("token")  # and the rest as it comes
            await second.ws.send({"type": "stop", "message": accepted["message"]})
            return resumed, snapshot, more, await finish(second, accepted["message"])
        finally:
            second.close()

    resumed, snapshot, more, ended = run(scenario())
    assert resumed["type"] == "accepted" and resumed["message"] == snapshot["message"] == more["message"]
    assert len(snapshot["text"]) > 5, "what was written while no one watched comes first, in one piece"
    assert ended["type"] == "done" and ended["status"] == "stopped", ended


def test_a_conversation_whose_model_no_worker_serves_gets_a_clear_error(redis_site, workers):
    cookie = session_cookies(redis_site, "rwb", 1)[0]
    conversation = int(redis_site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Conversation\n"
        "user = get_user_model().objects.get(username='rwb0')\n"
        "print(Conversation.objects.create(owner=user, title='old', model_file='gone-model.gguf').pk)\n"
    )).strip().splitlines()[-1])

    async def scenario():
        socket = await Socket.open(redis_site.url, cookie)
        try:
            accepted = await send(socket, "Hello?", {"max_tokens": 8}, conversation=conversation)
            return accepted, await finish(socket, accepted["message"])
        finally:
            socket.close()

    accepted, frame = run(scenario())
    assert accepted["type"] == "accepted"
    assert frame["type"] == "error" and frame["code"] == "no_worker", frame
    assert "gone-model.gguf" in frame["message"]
    assert reply_counts(redis_site)["streaming"] == 0


def staff_page(site, chromium):
    """The Models page in Chromium, signed in as staff."""
    name, value = site.staff_cookie.split("=", 1)
    context = chromium.new_context(locale="en-US")
    context.add_cookies([{"name": name, "value": value, "url": site.url}])
    page = context.new_page()
    page.goto(site.url + "/chat/models/")
    return page


def test_a_worker_killed_mid_reply_ends_it_with_an_error_and_the_other_goes_on(redis_site, workers, chromium):
    from playwright.sync_api import expect

    cookie = session_cookies(redis_site, "rwc", 1)[0]
    page = staff_page(redis_site, chromium)
    expect(page.locator("tr.worker-row")).to_have_count(2)

    async def scenario():
        socket = await Socket.open(redis_site.url, cookie)
        try:
            accepted = await send(socket, "Tell me a very long story about a dragon.", LONG)
            await first_tokens(socket, accepted["message"], 10)
            busy = await asyncio.to_thread(eventually, lambda: [n for n, w in site_workers(redis_site).items()
                                                                if w["busy"]])
            victim = busy[0]
            workers[victim].kill()  # the whole machine goes away: the worker and its llama.cpp process
            killed_at = time.monotonic()
            ended = await finish(socket, accepted["message"])
            noticed_s = time.monotonic() - killed_at
            again = await send(socket, "Now just say hi.", {"max_tokens": 8}, conversation=accepted["conversation"])
            return victim, accepted, ended, noticed_s, await finish(socket, again["message"])
        finally:
            socket.close()

    victim, accepted, ended, noticed_s, next_reply = run(scenario())
    assert ended["type"] == "error" and ended["code"] == "worker_lost", ended
    assert victim in ended["message"]
    assert noticed_s < TIMEOUT_MS / 1000 + 3, noticed_s
    assert next_reply["type"] == "done" and next_reply["status"] == "complete", next_reply
    reply = json.loads(redis_site.manage("shell", "-c", (
        "import json\nfrom chat.models import Message\n"
        f"m = Message.objects.get(id={accepted['message']})\n"
        "print(json.dumps({'status': m.status, 'content': m.content, 'error': m.error}))\n"
    )).strip().splitlines()[-1])
    assert reply["status"] == "error" and len(reply["content"]) > 10, "what was written is kept"
    assert victim in reply["error"]
    assert set(site_workers(redis_site)) == {"w1", "w2"} - {victim}
    # The Models page follows without a reload: the killed worker's row goes, the other's stays.
    expect(page.locator(f'tr.worker-row[data-worker="{victim}"]')).to_have_count(0, timeout=10_000)
    expect(page.locator("tr.worker-row")).to_have_count(1)
    page.context.close()
    counts = reply_counts(redis_site)
    assert counts["streaming"] == 0, counts


def test_a_worker_stopped_mid_reply_says_so_at_once_and_then_no_worker_is_left(redis_site, workers):
    cookie = session_cookies(redis_site, "rwd", 1)[0]
    # The test before this one kills a worker, but it drives a browser, and `make test-postgres` leaves the
    # browser tests out: stop every worker but one cleanly here, so this test stands on its own.
    *others, survivor = sorted(site_workers(redis_site))
    for name in others:
        workers[name].stop()
    assert eventually(lambda: set(site_workers(redis_site)) == {survivor}), site_workers(redis_site)

    async def scenario():
        socket = await Socket.open(redis_site.url, cookie)
        try:
            accepted = await send(socket, "Tell me a very long story about a castle.", LONG)
            await first_tokens(socket, accepted["message"], 10)
            os.killpg(workers[survivor].process.pid, signal.SIGTERM)  # Ctrl-C or `systemctl stop`
            stopped_at = time.monotonic()
            ended = await finish(socket, accepted["message"])
            noticed_s = time.monotonic() - stopped_at
            await asyncio.to_thread(eventually, lambda: not site_workers(redis_site))
            again = await send(socket, "Anyone there?", {"max_tokens": 8}, conversation=accepted["conversation"])
            return ended, noticed_s, await finish(socket, again["message"])
        finally:
            socket.close()

    ended, noticed_s, nobody = run(scenario())
    assert ended["type"] == "error" and ended["code"] == "worker_lost", ended
    assert f"The worker {survivor} was stopped" in ended["message"]
    assert noticed_s < TIMEOUT_MS / 1000, "a clean stop is not waited for: the worker says it is leaving"
    assert workers[survivor].process.wait(timeout=20) == 0
    assert nobody["type"] == "error" and nobody["code"] == "no_worker", nobody
    assert "manage.py llmworker" in nobody["message"]
    counts = reply_counts(redis_site)
    assert counts["streaming"] == 0, counts
