"""How the web process reaches a worker: one interface, one implementation per transport.

The manager only ever calls the methods of `Transport`. Commands and events are plain dicts (picklable,
JSON-able). With REDIS_URL the same manager and transport run inside `manage.py llmworker` on any machine,
and chat/worker/remote.py relays these very events through Redis to the web side (chat/worker/pool.py):

commands (web -> worker)                         events (worker -> web)
  {"op": "load", "path", "file_name",             {"ev": "status", "state": "loading", "progress"}
   "n_gpu_layers", "n_ctx", "flash_attn",          {"ev": "loaded", "n_gpu_layers", "n_layers", "quant", ...}
   "kv_type"}                                      {"ev": "load_failed", "error"}
  {"op": "generate", "job", "messages",            {"ev": "token", "job", "text"}
   "options"}                                      {"ev": "done", "job", "status", "stats"}
  {"op": "unload"}                                 {"ev": "failed", "job", "code", "message"}
  {"op": "stop", "job"}  (read between steps by the batched worker; "parallel" in load turns it on)
  {"op": "shutdown"}

A generate command whose options hold "prompt" (a string; its messages are then empty) is a raw prompt, from
/v1/completions: the model reads that text as it is, without the chat template (chat/worker/engine.py
raw_prompt). The pools (chat/worker/manager.py, chat/worker/pool.py) pass options through unchanged.

Stop is out of band (`request_stop`), because the one-at-a-time worker does not read commands while it
generates; it is also sent as a command, which the batched worker reads between its decode steps.
"""

from __future__ import annotations

import abc
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict], None]
DeathHandler = Callable[[str], None]


class Transport(abc.ABC):
    """One worker, as the manager sees it. Callbacks run on a transport-owned thread."""

    @abc.abstractmethod
    def start(self, on_event: EventHandler, on_death: DeathHandler) -> None:
        """Start the worker; events and the worker's death are reported through the two callbacks."""

    @abc.abstractmethod
    def send(self, command: dict) -> None:
        """Queue a command for the worker. Thread-safe. Never blocks on the worker being busy."""

    @abc.abstractmethod
    def request_stop(self, job: int) -> None:
        """Make the worker stop generating `job` before its next token (no-op when it is not running)."""

    @property
    def pid(self) -> int | None:
        return None

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the worker is running."""

    @abc.abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Shut the worker down (politely, then by force) and release everything."""


class PipeTransport(Transport):
    """The worker as a child OS process (spawn), a duplex Pipe, and a shared value for stop."""

    def __init__(self):
        self._ctx = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None
        self._send_lock = threading.Lock()
        # The id of the job the worker must stop; checked by the worker before every token.
        self._stop_job = self._ctx.Value("q", 0, lock=False)
        self._reader = None
        self._closing = False

    def start(self, on_event: EventHandler, on_death: DeathHandler) -> None:
        from chat.worker.priority import unlowered

        # The worker process and the reader thread that forwards its tokens must not inherit a page thread's
        # lowered priority (chat/worker/priority.py): a Load pressed on the Models page starts them too.
        unlowered(self._start, on_event, on_death)

    def _start(self, on_event: EventHandler, on_death: DeathHandler) -> None:
        from chat.worker.process import worker_main

        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        self._process = self._ctx.Process(
            target=worker_main, args=(child_conn, self._stop_job), name="llmsite-llm-worker", daemon=True
        )
        self._process.start()
        child_conn.close()
        self._conn = parent_conn
        self._reader = threading.Thread(
            target=self._read_loop, args=(on_event, on_death), name="llmsite-worker-reader", daemon=True
        )
        self._reader.start()

    def _read_loop(self, on_event: EventHandler, on_death: DeathHandler) -> None:
        conn, sentinel = self._conn, self._process.sentinel
        while True:
            ready = wait([conn, sentinel])
            if conn in ready:
                try:
                    event = conn.recv()
                except (EOFError, OSError):
                    break
                try:
                    on_event(event)
                except Exception:  # a bug in a handler must not kill the reader: deaths would go unseen
                    logger.exception("worker event handler failed on %r", event.get("ev"))
                continue
            # The process ended: deliver what it wrote before dying, then report the death.
            while True:
                try:
                    if not conn.poll():
                        break
                    on_event(conn.recv())
                except (EOFError, OSError):
                    break
            break
        self._process.join(timeout=5)
        code = self._process.exitcode
        if not self._closing:
            on_death(_describe_exit(code))

    def send(self, command: dict) -> None:
        with self._send_lock:
            try:
                self._conn.send(command)
            except (OSError, ValueError) as exc:  # the worker is gone; the reader reports the death
                logger.warning("could not send %r to the worker: %s", command.get("op"), exc)

    def request_stop(self, job: int) -> None:
        self._stop_job.value = job
        if job != -1:
            # The batched worker reads commands between steps: this reaches it even when several replies
            # are stopped within one step (the shared value holds only the last one).
            self.send({"op": "stop", "job": job})

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return bool(self._process and self._process.is_alive())

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        if self._process is None:
            return
        if self._process.is_alive():
            self.request_stop(-1)
            self.send({"op": "shutdown"})
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)
        try:
            self._conn.close()
        except OSError:
            pass


def _describe_exit(code: int | None) -> str:
    import signal

    if code is None:
        return "the model worker stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the model worker was killed by {name}{hint}"
    return f"the model worker exited with code {code}"
