"""At most LLMSITE_PAGE_THREADS requests run the site's code at once (llmsite/middleware.py PageSlotsMiddleware).

Under daphne every request has a thread of its own; without the gate, eight requests for new advisor answers
were eight threads taking turns with the interpreter lock, and each page cost 75% more CPU time.
"""

import threading
import time

from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from llmsite.middleware import PageSlotsMiddleware


class Recorder:
    """A view that counts how many requests are inside it at once and waits until told to finish."""

    def __init__(self):
        self.inside = self.most = 0
        self.lock = threading.Lock()
        self.finish = threading.Event()

    def __call__(self, request):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.finish.wait(10)
        with self.lock:
            self.inside -= 1
        return HttpResponse("drawn")


def call_in_threads(gate, count):
    responses = [None] * count

    def one(i):
        responses[i] = gate(RequestFactory().get("/advisor/"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, responses


def wait_until_inside(view, count):
    deadline = time.monotonic() + 5
    while view.inside < count and time.monotonic() < deadline:
        time.sleep(0.01)


def finish(view, threads):
    view.finish.set()
    for thread in threads:
        thread.join(10)


def test_the_gate_comes_after_the_security_headers_and_before_any_work():
    order = settings.MIDDLEWARE.index
    gate = order("llmsite.middleware.PageSlotsMiddleware")
    assert order("llmsite.middleware.ContentSecurityPolicyMiddleware") < gate
    assert order("django.middleware.security.SecurityMiddleware") < gate
    assert gate < order("whitenoise.middleware.WhiteNoiseMiddleware")
    assert gate < order("django.contrib.sessions.middleware.SessionMiddleware")


@override_settings(LLMSITE_PAGE_THREADS=2, LLMSITE_PAGE_WAIT_S=30)
def test_six_requests_at_once_run_two_at_a_time_and_all_are_answered():
    view = Recorder()
    gate = PageSlotsMiddleware(view)
    threads, responses = call_in_threads(gate, 6)
    wait_until_inside(view, 2)
    time.sleep(0.2)  # the other four had time to get in, were there room
    assert view.inside == 2
    finish(view, threads)
    assert view.most == 2
    assert [r.status_code for r in responses] == [200] * 6


@override_settings(LLMSITE_PAGE_THREADS=1, LLMSITE_PAGE_WAIT_S=1)
def test_a_request_that_waits_too_long_gets_503_with_retry_after_and_the_slot_comes_back():
    view = Recorder()
    gate = PageSlotsMiddleware(view)
    threads, _ = call_in_threads(gate, 1)
    wait_until_inside(view, 1)
    started = time.monotonic()
    busy = gate(RequestFactory().get("/advisor/"))
    assert 0.9 < time.monotonic() - started < 5
    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert b"busy" in busy.content
    finish(view, threads)
    assert gate(RequestFactory().get("/advisor/")).status_code == 200  # the slot was given back


@override_settings(LLMSITE_PAGE_THREADS=1)
def test_a_view_that_raises_gives_its_slot_back():
    def broken(request):
        raise RuntimeError("the view failed")

    gate = PageSlotsMiddleware(broken)
    for _ in range(3):
        try:
            gate(RequestFactory().get("/"))
        except RuntimeError:
            pass
    assert gate.slots.acquire(timeout=0.1)


@override_settings(LLMSITE_PAGE_THREADS=0)
def test_zero_turns_the_gate_off():
    view = Recorder()
    gate = PageSlotsMiddleware(view)
    threads, responses = call_in_threads(gate, 4)
    wait_until_inside(view, 4)
    assert view.inside == 4
    finish(view, threads)
    assert [r.status_code for r in responses] == [200] * 4
