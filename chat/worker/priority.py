"""CPU priority inside the web process: the pages' work yields to a chat reply's.

On a small machine the web process and the llama.cpp worker share the cores. Eight people reloading the
advisor's answer page keep a core busy, and a reply that streams at the same time slowed to 0.64-0.8 of its
idle rate (bench/http_load.py). A reply is what someone is waiting on, token by token; a page can take a few
milliseconds more. So the thread that runs a page's middleware and view lowers its own priority by
LLMSITE_PAGE_NICE (Linux `nice` steps, 15 by default: under contention such a thread gets a few percent of
the CPU share of one at normal priority, and all of an idle core).

Why so far down: prompt evaluation runs llama.cpp's threads on every core, and they wait for one another at
each step, so a page that takes part of one core slows all of them. One client asking new advisor questions
cut a 1,500-token prompt's speed to 0.25x at nice 0, 0.33x at 5, 0.36x at 10, and 0.8-0.9x at 15 or 19
(bench/http_load.py, "long message, first token"). The pages' price, while a prompt is evaluated: for one
client their 95th percentile went from 0.06-0.1 s to 0.4-1 s (median 25 ms either way); under eight clients
that never pause, their median went to about 1 s.

What is and is not lowered:
- Django's ASGI handler runs each HTTP request in a thread of its own (asgiref's ThreadSensitiveContext), so
  the lowering ends with that request's thread. The event loop's thread (WebSocket frames, token forwarding),
  the consumers' database threads and the worker process keep the web process's priority.
- On Linux a priority belongs to a thread, and a thread or process inherits its creator's. Lowering cannot be
  undone without privileges, so a page that starts the worker (the Models page's Load, an API call) would
  start it lowered. `unlowered(fn)` runs such a start in a thread made at start-up, before any request.

Only `llmsite/serve.py` (`make run`) turns this on (`enable`); llmsite/middleware.py's
LowerPagePriorityMiddleware lowers each page's thread. Tests that call views in their own thread and
management commands never lower anything.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading

logger = logging.getLogger(__name__)

_local = threading.local()
_nice = 0
_calls: queue.SimpleQueue | None = None


def enable(nice: int) -> None:
    """Lower page threads by `nice` steps from now on. Call from the main thread before serving."""
    global _nice, _calls
    if nice <= 0 or not hasattr(os, "setpriority") or _calls is not None:
        return
    calls: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_run_calls, args=(calls,), name="llmsite-unlowered", daemon=True).start()
    _calls, _nice = calls, nice


def _run_calls(calls: queue.SimpleQueue) -> None:
    while True:
        fn, args, future = calls.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller, raised there
                future.set_exception(exc)


def lower_this_thread() -> None:
    """Give the calling thread LLMSITE_PAGE_NICE lower priority (once; nothing when not enabled)."""
    if not _nice or getattr(_local, "lowered", False):
        return
    _local.lowered = True
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + _nice))
    except OSError as exc:  # a sandbox without the call: pages keep the normal priority
        logger.warning("Could not lower a page thread's priority: %s", exc)


def is_lowered() -> bool:
    return getattr(_local, "lowered", False)


def unlowered(fn, *args):
    """fn(*args), run where the threads and processes it starts get the web process's own priority."""
    if _calls is None or not is_lowered():
        return fn(*args)
    future: concurrent.futures.Future = concurrent.futures.Future()
    _calls.put((fn, args, future))
    return future.result()

