"""HTTP under load, side by side: the site as `make run` starts it, against the targets of issue 11.

    .venv/bin/python bench/http_load.py [--baseline REF [--baseline-env NAME=VALUE]] [--seconds 10]
                                        [--concurrency 8] [--no-chat]

Each contender (this checkout and, with --baseline, the same bench against a git ref such as `main`,
extracted with `git archive` into a temporary folder and run with this virtualenv) gets a fresh data folder,
`manage.py migrate` and `collectstatic`, then `python -m llmsite.serve` on a free loopback port, which is
what `make run` ends with. Then, one after another:

1. /healthz, the advisor's answer page for one set of inputs (asked once before, so "repeated"), and the
   recommendations API for one set of inputs: ApacheBench (`ab -c 8 -t 10`, a new connection a request);
2. the answer page with new inputs on every request (ab can only repeat one address, so a small asyncio
   client opens 8 connections' worth of requests, each for a GPU memory size not asked before);
3. a chat reply (the default SmolLM2 model over the WebSocket, tests/wsclient.py) streamed alone, then again
   while ab loads the answer page: its decode rate under load over its idle rate; then again while new
   questions (step 2's client) keep the web process's CPU busy;
4. the time to the first token of a ~1,500-token message, alone and while new questions load the site: prompt
   evaluation runs on every core, so pages and the worker want more CPU than there is, the case the pages'
   lower priority (LLMSITE_PAGE_NICE) is for.

All load comes from 127.0.0.1, so the advisor's per-address limit on uncached work would answer 429 to most
of step 2; the bench raises it (LLMSITE_ADVISOR_LIMIT) for its own server and says so. Figures taken on a
busy machine are low: compare the columns of one run, not figures from different runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.wsclient import WebSocket  # noqa: E402

ANSWER = "/advisor/?gpu=nvidia-geforce-rtx-4060-ti&vram_gib=12&ram_gib=32&ctx=8192&use=chat"
API = "/api/advisor/recommendations?gpu=nvidia-geforce-rtx-4060-ti&vram_gib=12&ram_gib=32&ctx=8192"
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
LONG_PROMPT = " ".join(f"Entry {i}: wind from the west, two ships passed, the lamp was trimmed at dusk."
                       for i in range(80)) + " Summarise the log in one line."
TARGETS = {"healthz": ">= 500 req/s", "answer": ">= 100 req/s, median < 50 ms", "new": ">= 25 req/s",
           "api": "", "chat": ">= 0.8 of idle", "chat_new": "", "prompt_new": ""}
LABELS = {"healthz": "/healthz", "answer": "answer page, repeated inputs", "new": "answer page, new inputs",
          "api": "recommendations API, repeated", "chat": "chat decode tok/s under load",
          "chat_new": "  ... under new-input load",
          "prompt_new": "long message, first token"}


def need_ab() -> str:
    ab = shutil.which("ab")
    if ab is None:
        sys.exit("bench/http_load.py needs ApacheBench (ab). On Debian or Ubuntu: "
                 "sudo apt-get update && sudo apt-get install apache2-utils")
    return ab


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Load:
    requests_per_s: float
    median_ms: float
    failed: int
    requests: int = 0
    cpu_ms: float | None = None   # the server process's CPU time (user + system) per request
    p95_ms: float | None = None

    def __str__(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        cpu = f", {self.cpu_ms:5.1f} CPU-ms" if self.cpu_ms is not None else ""
        return f"{self.requests_per_s:7.1f} req/s, median {self.median_ms:4.0f} ms{cpu}{failed}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (/proc/PID/stat), its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(site, run) -> Load:
    """run() -> Load, with the server's CPU-ms per request: wall-clock rates on a shared host swing with
    other jobs, CPU time per request much less."""
    before = cpu_seconds(site.server.pid)
    load = run()
    if load.requests:
        load.cpu_ms = (cpu_seconds(site.server.pid) - before) * 1000 / load.requests
    return load


class Site:
    """One checkout's site: its own data folder and port, started as `make run` starts it."""

    def __init__(self, name: str, root: Path, limit_off: bool, env: dict | None = None):
        self.name, self.root = name, root
        self.data = tempfile.TemporaryDirectory(prefix=f"llmsite-http-load-{name}-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LLMSITE_DATA_DIR": self.data.name, "PORT": str(self.port),
                    "HOST": "127.0.0.1", "LLMSITE_N_CTX": "2048", "LLMSITE_N_GPU_LAYERS": "0",
                    "LOG_LEVEL": "WARNING", "DJANGO_SUPERUSER_PASSWORD": "http-load bench password"}
        if limit_off:
            self.env["LLMSITE_ADVISOR_LIMIT"] = "10000000"
        for name_ in ("LLMSITE_MODEL", "REDIS_URL", "DATABASE_URL"):
            self.env.pop(name_, None)
        self.env.update(env or {})
        self.server = None

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{self.name}: manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.log = open(Path(self.data.name) / "server.log", "w")
        self.server = subprocess.Popen([sys.executable, "-m", "llmsite.serve"], cwd=self.root, env=self.env,
                                       stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"{self.name}: the server exited; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def session_cookie(self) -> str:
        """The bench person's session (made on first use)."""
        if getattr(self, "_cookie", None) is None:
            self._cookie = self._new_session_cookie()
        return self._cookie

    def _new_session_cookie(self) -> str:
        code = (
            "from django.conf import settings\n"
            "from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "u = get_user_model().objects.create_user('bench', password='http-load bench password')\n"
            "s = SessionStore(); s[SESSION_KEY] = str(u.pk)\n"
            "s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]\n"
            "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.save()\n"
            "print(settings.SESSION_COOKIE_NAME + '=' + s.session_key)\n"
        )
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def stop(self) -> None:
        if self.server and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        if self.server:
            self.log.close()
        self.data.cleanup()


# --- load generators -------------------------------------------------------------------------------------
def ab(url: str, seconds: int, concurrency: int) -> Load:
    out = subprocess.run([need_ab(), "-q", "-t", str(seconds), "-n", "10000000", "-c", str(concurrency), url],
                         capture_output=True, text=True, timeout=seconds + 120).stdout
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    median = float(re.search(r"^\s+50%\s+(\d+)", out, re.M).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    complete = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    return Load(rate, median, failed + (int(non_2xx.group(1)) if non_2xx else 0), complete)


async def _get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    body = await reader.read()  # the server closes the connection after the response
    writer.close()
    return int(body.split(b" ", 2)[1]) if body.startswith(b"HTTP/") else 0


async def _new_inputs(port: int, seconds: float, concurrency: int, stop: threading.Event | None = None) -> Load:
    counter = iter(range(10**9))
    times, failed = [], 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal failed
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            n = next(counter)
            # A GPU memory size not asked before, on every request: nothing is cached for it yet.
            path = f"/advisor/?vram_gib={4 + n / 1000:.3f}&ram_gib=32&ctx=8192&use=chat"
            started = time.perf_counter()
            status = await _get(port, path)
            times.append(time.perf_counter() - started)
            failed += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    p95 = statistics.quantiles(times, n=20)[-1] * 1000 if len(times) > 1 else None
    return Load(len(times) / elapsed, statistics.median(times) * 1000, failed, len(times), p95_ms=p95)


def new_inputs(site: Site, seconds: float, concurrency: int, stop: threading.Event | None = None) -> Load:
    return asyncio.run(_new_inputs(site.port, seconds, concurrency, stop))


class Background:
    """New questions asked from a thread until the block ends; `.load` is what they measured."""

    def __init__(self, site: Site, concurrency: int):
        self.stop = threading.Event()
        self.load: Load | None = None
        self.thread = threading.Thread(target=self._run, args=(site, concurrency))

    def _run(self, site, concurrency):
        self.load = new_inputs(site, 3600, concurrency, self.stop)  # the hour is a backstop; stop ends it

    def __enter__(self):
        self.thread.start()
        time.sleep(1)  # the load is running before what it loads starts
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# --- the chat reply --------------------------------------------------------------------------------------
async def _reply(site: Site, cookie: str, content: str, options: dict) -> tuple[float, list[float]]:
    """(when the message was sent, when each token arrived) for one reply in a new conversation."""
    ws = await WebSocket.connect("127.0.0.1", site.port, "/ws/chat/", {"Origin": site.url, "Cookie": cookie})
    try:
        while True:  # the first socket starts the model load
            frame = await ws.receive()
            if frame["type"] == "model" and frame["state"] == "ready":
                break
            if frame["type"] == "model" and frame["state"] == "error":
                raise RuntimeError(f"the site could not load the model: {frame['error']}")
        sent = time.perf_counter()
        await ws.send({"type": "send", "conversation": None, "content": content, "options": options})
        at = []
        while True:
            frame = await ws.receive()
            if frame["type"] == "token":
                at.append(time.perf_counter())
            elif frame["type"] == "done":
                return sent, at
            elif frame["type"] == "error":
                raise RuntimeError(f"the chat answered an error: {frame}")
    finally:
        ws.close()


def reply_rate(site: Site, cookie: str, seed: int = 7) -> float:
    """Decode tokens/s of one 160-token reply."""
    _, at = asyncio.run(_reply(site, cookie, PROMPT, {"max_tokens": 160, "seed": seed, "temperature": 0.7}))
    return (len(at) - 1) / (at[-1] - at[0])


def first_token_s(site: Site, cookie: str, seed: int) -> float:
    """Seconds to the first token of a reply to a ~1,500-token message: prompt evaluation, which runs on every
    core. The seed starts the message so that no two share a prefix the worker could reuse."""
    sent, at = asyncio.run(_reply(site, cookie, f"Log {seed}. {LONG_PROMPT}", {"max_tokens": 4, "seed": seed}))
    return at[0] - sent


class Waits(NamedTuple):
    """Seconds waited, idle and under load (lower is better, unlike the rates), and the pages meanwhile."""
    idle: float
    loaded: float
    pages: Load | None = None


def prompt_under_new_inputs(site: Site, concurrency: int) -> Waits:
    """(idle, loaded) first-token time of a long message, loaded by new questions: the case the pages'
    priority is for, where the worker's threads want every core while pages want one."""
    cookie = site.session_cookie()
    first_token_s(site, cookie, 0)  # warm
    idle = statistics.median(first_token_s(site, cookie, seed) for seed in (1, 2, 3))
    with Background(site, concurrency) as background:
        loaded = statistics.median(first_token_s(site, cookie, seed) for seed in (4, 5, 6))
    return Waits(idle, loaded, background.load)


def chat_under_new_inputs(site: Site, concurrency: int, idle: float) -> tuple[float, float]:
    """(idle decode tok/s, decode tok/s while new questions, each ranked afresh, keep the web process's CPU
    busy): the heavier load, where the pages' priority (LLMSITE_PAGE_NICE) matters."""
    cookie = site.session_cookie()
    with Background(site, concurrency):
        loaded = statistics.median(reply_rate(site, cookie, seed) for seed in (1, 2))
    return idle, loaded


def chat_under_load(site: Site, seconds: int, concurrency: int) -> tuple[float, float]:
    """(idle decode tok/s, decode tok/s while ab loads the answer page): medians of two replies each."""
    cookie = site.session_cookie()
    reply_rate(site, cookie)  # loads the model, warms its caches
    idle = statistics.median(reply_rate(site, cookie, seed) for seed in (1, 2))
    load = subprocess.Popen([need_ab(), "-q", "-t", str(seconds * 6), "-n", "10000000", "-c", str(concurrency),
                             site.url + ANSWER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # the load is running before the reply starts
        loaded = statistics.median(reply_rate(site, cookie, seed) for seed in (1, 2))
    finally:
        load.send_signal(signal.SIGINT)
        load.wait(30)
    return idle, loaded


# --- one contender -----------------------------------------------------------------------------------------
def measure(site: Site, args) -> dict:
    site.start()
    try:
        results = {}
        with urllib.request.urlopen(site.url + ANSWER, timeout=60), urllib.request.urlopen(site.url + API, timeout=60):
            pass  # asked once: from now on these inputs are "repeated"
        results["healthz"] = server_cpu(site, lambda: ab(site.url + "/healthz", args.seconds, args.concurrency))
        results["answer"] = server_cpu(site, lambda: ab(site.url + ANSWER, args.seconds, args.concurrency))
        results["api"] = server_cpu(site, lambda: ab(site.url + API, args.seconds, args.concurrency))
        results["new"] = server_cpu(site, lambda: new_inputs(site, args.seconds, args.concurrency))
        if args.chat:
            results["chat"] = chat_under_load(site, args.seconds, args.concurrency)
            results["chat_new"] = chat_under_new_inputs(site, args.concurrency, results["chat"][0])
            results["prompt_new"] = prompt_under_new_inputs(site, args.concurrency)
        return results
    finally:
        site.stop()


def baseline_checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cell(result) -> str:
    if result is None:
        return "-"
    if isinstance(result, Waits):
        pages = (f"; pages {result.pages.requests_per_s:.0f} req/s, median {result.pages.median_ms:.0f} ms, "
                 f"p95 {result.pages.p95_ms:.0f} ms" if result.pages else "")
        return f"{result.idle:5.2f} -> {result.loaded:5.2f} s = {result.idle / result.loaded:4.2f}x{pages}"
    if isinstance(result, tuple):
        idle, loaded = result
        return f"{idle:5.1f} -> {loaded:5.1f} tok/s = {loaded / idle:4.2f}x"
    return str(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a git ref (e.g. main) measured the same way, side by side")
    parser.add_argument("--seconds", type=int, default=10, help="length of each ab run (10)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--no-chat", dest="chat", action="store_false", help="skip the chat reply under load")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the baseline's server only, e.g. --baseline HEAD --baseline-env "
                             "LLMSITE_PAGE_NICE=0 compares one setting on the same code")
    args = parser.parse_args()
    baseline_env = dict(item.split("=", 1) for item in args.baseline_env)
    need_ab()

    columns = {}
    with tempfile.TemporaryDirectory(prefix="llmsite-http-load-ref-") as ref_dir:
        if args.baseline:
            root = baseline_checkout(args.baseline, Path(ref_dir))
            name = args.baseline + "".join(f" {k}={v}" for k, v in baseline_env.items())
            columns[name] = measure(Site("baseline", root, limit_off=True, env=baseline_env), args)
        columns["this checkout"] = measure(Site("this", ROOT, limit_off=True), args)

    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{args.concurrency} concurrent clients, {args.seconds} s a run; the advisor's per-address limit raised "
          "for the bench (all its load comes from 127.0.0.1)\n")
    names = list(columns)
    print(f"{'':32} {'target':30}" + "".join(f" {name:48}" for name in names))
    for key, label in LABELS.items():
        print(f"{label:32} {TARGETS[key]:30}" + "".join(f" {cell(columns[n].get(key)):48}" for n in names))
    if len(names) == 2:
        old, new = (columns[n] for n in names)
        ratios = {key: new[key].requests_per_s / old[key].requests_per_s
                  for key in ("healthz", "answer", "api", "new") if key in old and key in new}
        print("\nthis checkout / " + names[0] + ": " + ", ".join(f"{LABELS[k]} {r:.1f}x" for k, r in ratios.items()))
        cpu = {key: old[key].cpu_ms / new[key].cpu_ms for key in ratios if old[key].cpu_ms and new[key].cpu_ms}
        print("server CPU per request, " + names[0] + " / this checkout: "
              + ", ".join(f"{LABELS[k]} {r:.2f}x" for k, r in cpu.items()))


if __name__ == "__main__":
    main()
