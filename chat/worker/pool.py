"""The web side with REDIS_URL set: no worker of its own, but every `manage.py llmworker` on the LAN.

Workers announce themselves (chat/worker/remote.py has the messages). The pool keeps what they said and
when; it sends each reply to the worker that chat/worker/selection.py chooses (a free slot for the
conversation's model, the worker holding the conversation's KV cache first; else one that can load that
model), and hands the worker's events to the reply's task (chat/replies.py) exactly as the built-in
worker's manager does. The queue, and so the queue positions, live in the worker.

A worker that is not heard from for LLMSITE_WORKER_TIMEOUT_MS, that leaves, that comes back as a new
instance, or that no longer lists a reply it was given, is gone: each reply it was writing ends with an
`error` event and status `error`, and what it had written is kept. A reply is not retried on another
worker: the person sees the partial answer and can regenerate it.

The pool talks to Redis from its own thread and event loop (a channel-layer backend of its own), so it
listens from the moment the web process starts, whatever the web server's loop is doing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from django.conf import settings

from chat.worker.manager import STATUS_GROUP, Job
from chat.worker.remote import WEB_GROUP, WORKERS_GROUP, receive_forever
from chat.worker.selection import WorkerChooser, WorkerView

logger = logging.getLogger(__name__)

NO_WORKER = "No LLM worker is connected. Start one with `python manage.py llmworker` on a machine that reaches Redis."
LIVE_STATES = ("starting", "loading", "ready")
SWEEP_S = 0.25


class WorkerPool:
    def __init__(self):
        self._lock = threading.RLock()
        self._workers: dict[str, dict] = {}  # name -> the worker's last announcement, plus "seen"
        self._jobs: dict[int, Job] = {}
        self._assigned: dict[int, tuple[str, str, float]] = {}  # job -> (worker, instance, when sent)
        self._web_loop: asyncio.AbstractEventLoop | None = None  # the web server's loop: status broadcasts
        self._loop: asyncio.AbstractEventLoop | None = None  # the pool's own loop, on its own thread
        self._outbox: asyncio.Queue | None = None
        self._channel = ""
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._timeout_s = settings.LLMSITE_WORKER_TIMEOUT_MS / 1000
        self._announce_s = settings.LLMSITE_WORKER_ANNOUNCE_MS / 1000

    # --- the pool's thread -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start listening to the workers (once). The first call returns when Redis answers, or after 5 s."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._thread_main, name="llmsite-worker-pool", daemon=True)
            self._thread.start()
        self._started.wait(5)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            logger.exception("the worker pool stopped")

    async def _main(self) -> None:
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        while True:  # Redis may not be up yet: keep trying, the status says why there is no worker
            try:
                self._channel = await layer.new_channel("llmweb")
                await layer.group_add(WEB_GROUP, self._channel)
                await layer.group_send(WORKERS_GROUP, {"type": "llm.hello"})
                break
            except Exception as exc:
                logger.warning("cannot reach Redis (%s): retrying", exc)
                await asyncio.sleep(1)
        self._started.set()
        if not settings.LLMSITE_REDIS_KEYS:
            logger.warning("LLMSITE_REDIS_INSECURE: messages to and from workers go through Redis in the clear; "
                           "anyone who reaches Redis can read conversations and answer as a worker")
        await asyncio.gather(receive_forever(layer, self._channel, self._on_message), self._send_loop(layer),
                             self._sweep_loop(layer))

    async def _send_loop(self, layer) -> None:
        while True:
            channel, message = await self._outbox.get()
            try:
                await layer.send(channel, message)
            except Exception as exc:
                job = message.get("job")
                logger.warning("could not send %s to %s: %s", message.get("type"), channel, exc)
                if message.get("type") == "llm.generate":
                    self._end_job(job, "worker_unreachable", f"The request could not be sent to its worker: {exc}")

    async def _sweep_loop(self, layer) -> None:
        last_hello = time.monotonic()
        while True:
            await asyncio.sleep(SWEEP_S)
            self._sweep(time.monotonic())
            if time.monotonic() - last_hello > self._announce_s * 5 and not self._live():
                # Nobody here: ask again (a worker that started before the web process is announcing anyway).
                last_hello = time.monotonic()
                await layer.group_send(WORKERS_GROUP, {"type": "llm.hello"})

    def _post(self, channel: str, message: dict) -> None:
        # Only called for a worker that announced itself, so the pool's loop is running.
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, (channel, message))

    # --- what workers say ----------------------------------------------------------------------------------
    def _on_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "llm.announce":
            info = message.get("worker")
            if isinstance(info, dict) and isinstance(info.get("name"), str) and isinstance(info.get("channel"), str):
                self._on_announce(info)
        elif kind == "llm.leave":
            with self._lock:
                known = self._workers.get(message.get("name"))
                if known and known["instance"] == message.get("instance"):
                    self._forget_worker(known["name"], "stopped")
        elif kind == "llm.event":
            event = message.get("event")
            if isinstance(event, dict):
                self._on_event(message.get("name"), message.get("instance"), event)

    def _on_announce(self, info: dict) -> None:
        now = time.monotonic()
        with self._lock:
            known = self._workers.get(info["name"])
            if known and known["instance"] != info["instance"]:
                self._forget_worker(info["name"], "restarted")  # the replies it held died with the old one
                known = None
            changed = known is None or any(known.get(k) != info.get(k) for k in ("state", "model_file", "error"))
            self._workers[info["name"]] = {**info, "seen": now}
            # A reply the worker should hold, but does not (it never arrived, or was lost): end it.
            held = set(info.get("jobs") or ())
            for job_id, (name, _instance, sent) in list(self._assigned.items()):
                if name == info["name"] and job_id not in held and now - sent > 2 * self._announce_s + 1:
                    self._end_job(job_id, "worker_lost", f"The worker {name} lost this reply.")
        if changed:
            self._broadcast_status()

    def _on_event(self, name, instance, event: dict) -> None:
        with self._lock:
            job_id = event.get("job")
            assigned = self._assigned.get(job_id)
            job = self._jobs.get(job_id)
            if assigned is None or job is None or assigned[:2] != (name, instance):
                return  # an event for a reply this process did not send, or already ended
            if event.get("ev") in ("done", "failed"):
                del self._assigned[job_id]
                # Announcements lag (up to LLMSITE_WORKER_ANNOUNCE_MS): until the worker's next one, count one
                # reply fewer there, so the next reply is not sent to a worker that only looks busy.
                info = self._workers.get(name)
                if info is not None:
                    for key in ("running", "queue_length"):
                        if isinstance(info.get(key), int) and info[key] > 0:
                            info[key] -= 1
                            break
        job.deliver(dict(event))

    def _sweep(self, now: float) -> None:
        with self._lock:
            gone = [name for name, info in self._workers.items() if now - info["seen"] > self._timeout_s]
            for name in gone:
                self._forget_worker(name, "lost")
        if gone:
            self._broadcast_status()

    def _forget_worker(self, name: str, why: str) -> None:
        info = self._workers.pop(name)
        logger.warning("LLM worker %s (%s) is gone: %s", name, info.get("host"), why)
        reason = {"lost": f"was not heard from for {self._timeout_s:g} s", "stopped": "was stopped",
                  "restarted": "restarted"}[why]
        for job_id, (worker, _instance, _sent) in list(self._assigned.items()):
            if worker == name:
                self._end_job(job_id, "worker_lost",
                              f"The reply was cut short: the worker {name} {reason}. What it wrote is kept.")

    def _end_job(self, job_id, code: str, message: str) -> None:
        with self._lock:
            self._assigned.pop(job_id, None)
            job = self._jobs.get(job_id)
        if job is not None and not job.finished:
            job.deliver({"ev": "failed", "job": job_id, "code": code, "message": message})

    # --- choosing a worker ---------------------------------------------------------------------------------
    def _live(self) -> list[dict]:
        with self._lock:
            return [info for info in self._workers.values() if info.get("state") in LIVE_STATES]

    def _chooser(self) -> WorkerChooser:
        """What the workers announced, with the replies this process sent each that have not ended."""
        with self._lock:
            in_hand: dict[str, int] = {}
            for name, _instance, _sent in self._assigned.values():
                in_hand[name] = in_hand.get(name, 0) + 1
            return WorkerChooser([WorkerView.from_announcement(info, in_hand.get(name, 0))
                                  for name, info in self._workers.items()])

    def _default_model(self) -> str:
        """The model most live workers serve (the first by name when tied), for a new conversation."""
        return self._chooser().default_model()

    def _pick(self, model_file: str, conversation: int | None = None) -> dict | None:
        """The announcement of the worker that writes a reply for `model_file` (see chat/worker/selection.py)."""
        with self._lock:
            choice = self._chooser().choose(model_file, conversation)
            return self._workers.get(choice.worker) if choice else None

    # --- the manager's API (chat/worker/manager.py has the same) --------------------------------------------
    def attach_loop(self) -> None:
        self._web_loop = asyncio.get_running_loop()
        self.start()

    def submit(self, job: Job) -> None:
        """Send a reply to the worker chat/worker/selection.py chooses (chat/replies.py makes the Job)."""
        self._web_loop = asyncio.get_running_loop()
        self.start()
        message_id = job.message_id
        model_file = job.model_file or self._default_model()
        with self._lock:
            self._jobs[message_id] = job
            worker = self._pick(model_file, job.conversation)
            if worker is not None:
                self._assigned[message_id] = (worker["name"], worker["instance"], time.monotonic())
        if worker is None:
            if not self._live():
                text = NO_WORKER
            else:
                text = f"No worker serves or can load the model {model_file!r} that this conversation uses. " \
                       f"Start a new conversation, or start a worker with `manage.py llmworker --model {model_file}`."
            job.deliver({"ev": "failed", "job": message_id, "code": "no_worker", "message": text})
            return
        self._post(worker["channel"], {"type": "llm.generate", "job": message_id, "messages": job.messages,
                                       "options": job.options, "reply_to": self._channel, "model_file": model_file,
                                       "conversation": job.conversation})

    def stop(self, message_id: int) -> bool:
        with self._lock:
            assigned = self._assigned.get(message_id)
            worker = self._workers.get(assigned[0]) if assigned else None
        if worker is None:
            return False
        self._post(worker["channel"], {"type": "llm.stop", "job": message_id})
        return True

    def job(self, message_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(message_id)

    def forget(self, job: Job) -> None:
        with self._lock:
            if self._jobs.get(job.message_id) is job:
                del self._jobs[job.message_id]
            self._assigned.pop(job.message_id, None)

    def loaded_info(self) -> dict:
        return {}  # each reply learns what its worker has loaded from the worker's `started` event

    def choose_model(self, current: str) -> str:
        """A conversation keeps its model; a new one gets the model most workers serve."""
        return current or self._default_model()

    def available_models(self) -> list[str]:
        """Every model a live worker serves, or could load (one not pinned, from its own models folder)."""
        self.start()
        return self._chooser().models()

    def pin(self, file_name: str | None) -> None:
        if file_name is None:
            return  # nothing is pinned from the web side
        raise ValueError("With Redis, each worker pins its own model: start it with "
                         "`python manage.py llmworker --model FILE --pin`.")

    def workers(self) -> list[dict]:
        """What each worker last announced, and how many seconds ago, by name."""
        now = time.monotonic()
        with self._lock:
            infos = sorted(self._workers.values(), key=lambda w: w["name"])
            return [{**{k: v for k, v in w.items() if k not in ("seen", "jobs")},
                     "last_seen_s": round(now - w["seen"], 1)} for w in infos]

    def status(self) -> dict:
        self.start()
        workers = self.workers()
        live = [w for w in workers if w.get("state") in LIVE_STATES]
        model_file = self._default_model()
        serving = [w for w in live if w.get("model_file") == model_file]
        ready = [w for w in serving if w["state"] == "ready"]
        first = (ready or serving or [{}])[0]
        if ready:
            state = "ready"
        elif serving:
            state = "loading"
        else:
            state = "error" if workers else "stopped"
        errors = [f"{w['name']}: {w['error']}" for w in workers if w.get("error")]
        return {
            "state": state,
            "model_file": model_file or None,
            "progress": 1.0 if ready else max((w.get("progress") or 0.0 for w in serving), default=0.0),
            "n_gpu_layers": first.get("n_gpu_layers"),
            "n_gpu_layers_auto": False,
            "n_layers": first.get("n_layers"),
            "n_ctx": first.get("n_ctx"),
            "flash_attn": False,
            "kv_type": "f16",
            "quant": first.get("quant"),
            "model_name": first.get("model_name"),
            "queue_length": sum(w.get("queue_length") or 0 for w in live),
            "busy": any(w.get("busy") for w in live),
            "error": "; ".join(errors) if errors else (None if live else NO_WORKER),
            "error_code": None if live else "no_worker",
            "pid": None,
            "mode": "redis",
            "workers": workers,
        }

    def load(self, file_name: str, **_settings) -> None:
        raise ValueError("With Redis, each worker loads its own model: start it on its machine with "
                         f"`python manage.py llmworker --model {file_name}`.")

    def unload(self) -> None:
        raise ValueError("With Redis, stop a worker on its own machine (Ctrl-C or its service manager).")

    def ensure_started(self, *, after_unload: bool = True, load: dict | None = None) -> None:
        self.start()  # workers are started (and load their models) on their machines; the pool only listens

    def shutdown(self) -> None:
        with self._lock:
            ids = list(self._assigned)
        for job_id in ids:
            self._end_job(job_id, "worker_stopped", "The site is shutting down.")

    # --- broadcasting ------------------------------------------------------------------------------------------
    def _broadcast_status(self) -> None:
        loop = self._web_loop
        if loop is None or loop.is_closed():
            return
        from channels.layers import get_channel_layer

        message = {"type": "worker.status", **{k: v for k, v in self.status().items() if k != "workers"}}
        try:
            asyncio.run_coroutine_threadsafe(get_channel_layer().group_send(STATUS_GROUP, message), loop)
        except RuntimeError:
            pass
