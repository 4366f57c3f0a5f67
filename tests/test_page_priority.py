"""Pages yield the CPU to the chat (chat/worker/priority.py): under `make run` the thread that draws a page
runs LLMSITE_PAGE_NICE steps below the web process, while the worker process, started from a page or not,
keeps the web process's priority (a Linux thread or process inherits its creator's, and a lowered priority
cannot be raised again without privileges)."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, RunningSite, prepare_data_dir
from tests.wsclient import session_cookies

NICE = 5

SCRIPT = """
import json, os, subprocess, sys, threading
import django
django.setup()
from chat.worker.priority import enable, lower_this_thread, unlowered

def nice(tid):
    return os.getpriority(os.PRIO_PROCESS, tid)

base = nice(0)
enable(int(sys.argv[1]))
seen = {"base": base}

def page():
    lower_this_thread()
    seen["page"] = nice(threading.get_native_id())
    child = unlowered(subprocess.Popen, ["sleep", "30"])
    seen["started by unlowered"] = nice(child.pid)
    direct = subprocess.Popen(["sleep", "30"])
    seen["started directly"] = nice(direct.pid)
    for process in (child, direct):
        process.kill()
        process.wait()

thread = threading.Thread(target=page)
thread.start()
thread.join()
seen["main"] = nice(threading.get_native_id())
print(json.dumps(seen))
"""


def test_a_page_thread_is_lowered_and_what_it_starts_through_unlowered_is_not():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmsite.settings"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(NICE)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    base = seen["base"]
    if base + NICE > 19:
        pytest.skip(f"this process already runs at nice {base}")
    assert seen["page"] == base + NICE, seen
    assert seen["started directly"] == base + NICE, "a lowered thread's children inherit its priority"
    assert seen["started by unlowered"] == base, seen
    assert seen["main"] == base, seen


def thread_nices(pid: int) -> dict[int, int]:
    """Every thread of a process and its nice value (/proc/<pid>/task/<tid>/stat, field 19)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(fields[16])
    return out


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in task.joinpath("children").read_text().split()]
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("page-priority")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], {"LLMSITE_PAGE_NICE": str(NICE)})
    prepare_data_dir(data_dir, running.env)
    running.start()
    yield running
    running.stop()


@pytest.mark.model
def test_under_make_run_pages_are_lowered_and_the_worker_a_page_starts_is_not(site):
    pid = site.process.pid
    base = os.getpriority(os.PRIO_PROCESS, pid)
    if base + NICE > 19:
        pytest.skip(f"the site already runs at nice {base}")
    # Pages drawn one after another while the site's threads are looked at.
    stop, errors = threading.Event(), []

    def load_pages():
        gib = 4
        while not stop.is_set():
            gib = gib % 40 + 1  # new inputs: an answer the cache does not hold
            try:
                urllib.request.urlopen(f"{site.url}/advisor/?vram_gib={gib}&ram_gib=16&ctx=4096", timeout=30).read()
            except Exception as exc:  # reported below
                errors.append(exc)
                return

    loaders = [threading.Thread(target=load_pages) for _ in range(3)]
    for loader in loaders:
        loader.start()
    seen = set()
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and base + NICE not in seen:
            seen |= set(thread_nices(pid).values())
            time.sleep(0.002)
    finally:
        stop.set()
        for loader in loaders:
            loader.join()
    assert not errors, errors
    assert base + NICE in seen, f"no page thread was seen lowered: nice values {sorted(seen)}"
    assert thread_nices(pid)[pid] == base, "the main thread (the event loop) keeps the site's priority"

    # Staff press Load on the Models page: the worker starts from that (lowered) page's thread.
    cookie = session_cookies(site, "prio", 1, staff=True)[0]
    with urllib.request.urlopen(urllib.request.Request(site.url + "/chat/models/", headers={"Cookie": cookie}),
                                timeout=30) as response:
        html = response.read().decode()
        csrf = [h.split(";")[0] for h in response.headers.get_all("Set-Cookie") or [] if "csrf" in h.lower()]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    file_name = re.search(r'name="file_name" value="([^"]+)"', html).group(1)
    before = set(children(pid))
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "file_name": file_name, "n_gpu_layers": "0",
                                   "n_ctx": "1024", "kv_type": "f16", "parallel": "1"}).encode()
    request = urllib.request.Request(site.url + "/chat/models/load/", data=form, method="POST", headers={
        "Cookie": "; ".join([cookie, *csrf]), "Origin": site.url, "Referer": site.url + "/chat/models/"})
    urllib.request.urlopen(request, timeout=60).read()
    deadline = time.monotonic() + 30
    while not (started := set(children(pid)) - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started, "Load started no worker process"
    for child in started:
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert os.getpriority(os.PRIO_PROCESS, child) == base, f"{command} runs lowered"
        assert set(thread_nices(child).values()) == {base}, command
    # Once the page threads have ended (asgiref joins them in the background), every thread of the web process,
    # the reader that forwards the worker's tokens among them, runs at the site's priority.
    deadline = time.monotonic() + 10
    while set(thread_nices(pid).values()) != {base} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(thread_nices(pid).values()) == {base}, thread_nices(pid)
