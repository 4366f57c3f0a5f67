"""An LLM worker on any machine that reaches Redis (`python manage.py llmworker`).

It is the built-in worker, unchanged: a WorkerManager that runs chat/worker/process.py in a child process,
queues requests in order and starts a new child after a crash. In front of it sits the channel layer
(channels_redis) instead of a web page. The web side is chat/worker/pool.py. Messages:

  web -> every worker, group WORKERS_GROUP   {"type": "llm.hello"}                   (announce now, please)
  web -> one worker, its channel             {"type": "llm.generate", "job", "messages", "options", "reply_to",
                                              "model_file", "conversation"}
                                             {"type": "llm.stop", "job"}
  worker -> every web process, WEB_GROUP     {"type": "llm.announce", "worker": {name, instance, model_file,
                                              state, ..., queue_length, models, pinned, slots, running,
                                              conversations, jobs}}   every LLMSITE_WORKER_ANNOUNCE_MS
                                             {"type": "llm.leave", "name", "instance"}          on a clean exit
  worker -> the web process that asked       {"type": "llm.event", "name", "instance", "event": {"ev", "job",
                                              ...}}: queued, started (with what is loaded), token, done, failed

The events are the worker manager's own (chat/worker/transport.py), so a reply streams, stops and queues
exactly as with the built-in worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass

from chat.worker.manager import Job, WorkerManager

logger = logging.getLogger(__name__)

WORKERS_GROUP = "llm-workers"
WEB_GROUP = "llm-web"
STATE_POLL_S = 0.2  # how often a change of state (loading progress, queue) is looked for


@dataclass(eq=False)
class RemoteJob(Job):
    """A job that a web process sent: its events go back to that process's channel."""

    reply_to: str = ""
    worker: RemoteWorker | None = None

    def deliver(self, event: dict) -> None:
        self.worker.relay(self, event)


class RemoteWorker:
    def __init__(self, layer, load_settings: dict, *, name: str = "", announce_s: float = 2.0, report=None,
                 pin: bool = False):
        self.layer = layer
        self.pin = pin  # never swap this worker's model for another
        self.load_settings = load_settings
        self.name = name or default_name()
        self.instance = secrets.token_hex(6)  # a restarted worker of the same name is a new one
        self.announce_s = announce_s
        self.manager = WorkerManager()
        self.channel = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.outbox: asyncio.Queue | None = None
        self.announce_now: asyncio.Event | None = None
        self.served = 0
        self._described: tuple[dict | None, dict] = (None, {})  # (loaded_info, its description)
        self.report = report or (lambda status: None)  # called with the manager's status when its state changes

    # --- events out (any thread) ---------------------------------------------------------------------------
    def relay(self, job: RemoteJob, event: dict) -> None:
        event = {**event, "job": job.message_id}
        event.pop("at", None)
        kind = event.get("ev")
        if kind == "started":
            event["loaded"] = self.loaded_description()
        elif kind in ("done", "failed"):
            if event.get("code") == "worker_stopped":  # this worker is shutting down (Ctrl-C, SIGTERM)
                event["code"] = "worker_lost"
                event["message"] = f"The worker {self.name} was stopped before this reply finished. " \
                                   "What it wrote is kept."
            job.finished = True
            self.manager.forget(job)
            self.served += 1
            try:
                self.loop.call_soon_threadsafe(self.announce_now.set)  # a slot is free: say so at once
            except RuntimeError:  # the loop has closed: the worker is exiting
                pass
        self.post(job.reply_to, {"type": "llm.event", "name": self.name, "instance": self.instance, "event": event})

    def loaded_description(self) -> dict:
        """What is loaded, with this worker's name and GPU, for the web side's measurements. NVML is asked
        once per load, not once per reply (this runs under the manager's lock)."""
        loaded = self.manager.loaded_info()
        if self._described[0] != loaded:
            from chat.worker.offload import gpu_name

            description = {k: v for k, v in loaded.items() if k != "ev"}
            description.update(worker=self.name, gpu_name=gpu_name(int(loaded.get("n_gpu_layers") or 0)))
            self._described = (loaded, description)
        return self._described[1]

    def post(self, channel: str, message: dict) -> None:
        """Send on the channel layer, in order, from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.outbox.put_nowait, (channel, message))
        except RuntimeError:  # the loop has closed: the worker is exiting
            pass

    async def _send_loop(self) -> None:
        while True:
            channel, message = await self.outbox.get()
            try:
                if channel == WEB_GROUP:
                    await self.layer.group_send(WEB_GROUP, message)
                else:
                    await self.layer.send(channel, message)
            except Exception as exc:  # Redis away, a full channel: the web side's timeout covers the loss
                logger.warning("could not send %s to %s: %s", message.get("type"), channel, exc)
            finally:
                self.outbox.task_done()

    # --- commands in -----------------------------------------------------------------------------------------
    async def _receive_loop(self) -> None:
        await receive_forever(self.layer, self.channel, self.handle)

    def handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "llm.hello":
            self.announce_now.set()
        elif kind == "llm.generate":
            job_id, reply_to = message.get("job"), message.get("reply_to")
            messages, options = message.get("messages"), message.get("options") or {}
            if not (isinstance(job_id, int) and isinstance(reply_to, str) and isinstance(messages, list)
                    and isinstance(options, dict)):
                logger.warning("ignored a malformed generate request: %r", {k: type(v).__name__
                                                                           for k, v in message.items()})
                return
            model_file = message.get("model_file") if isinstance(message.get("model_file"), str) else ""
            conversation = message.get("conversation") if isinstance(message.get("conversation"), int) else None
            # A reply for another model than this worker's: its manager loads that one from this machine's
            # models folder, with this worker's settings, after the replies in progress finish.
            job = RemoteJob(message_id=job_id, messages=messages, options=options, loop=self.loop,
                            reply_to=reply_to, worker=self, model_file=model_file, conversation=conversation)
            self.manager.enqueue(job)
            self.announce_now.set()
        elif kind == "llm.stop":
            if isinstance(message.get("job"), int):
                self.manager.stop(message["job"])

    # --- announcements -------------------------------------------------------------------------------------
    def announcement(self, status: dict) -> dict:
        from advisor.hardware import detect_gpus

        gpus = detect_gpus()
        gpu = max(gpus, key=lambda g: g.vram_total_bytes) if gpus else None
        return {
            "name": self.name,
            "instance": self.instance,
            "channel": self.channel,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "model_file": status["model_file"],
            "state": status["state"],
            "progress": status["progress"],
            "error": status["error"],
            "n_gpu_layers": status["n_gpu_layers"],
            "n_layers": status["n_layers"],
            "n_ctx": status["n_ctx"],
            "quant": status["quant"],
            "model_name": status.get("model_name"),
            "gpu": gpu.name if gpu else "",
            "vram_total_bytes": gpu.vram_total_bytes if gpu else None,
            "vram_free_bytes": gpu.vram_free_bytes if gpu else None,
            "queue_length": status["queue_length"],
            "busy": status["busy"],
            "models": self.model_files(),
            "pinned": bool(status.get("pinned")),
            "slots": status["parallel"],
            "slots_auto": status["parallel_auto"],
            "running": status["running"],
            "conversations": status["cached_conversations"],
            "kv_bytes": status.get("kv_bytes"),
            "jobs": self.manager.job_ids(),
            "served": self.served,
        }

    def model_files(self) -> list[str]:
        """The model files this worker could load (its own models folder), or only its own when pinned."""
        if self.pin:
            return [self.load_settings["file_name"]]
        from chat.worker.files import list_model_files

        try:
            return [path.name for path in list_model_files()]
        except OSError:
            return [self.load_settings["file_name"]]

    async def _announce_loop(self) -> None:
        last_sent, last_key = 0.0, None
        while True:
            try:
                await asyncio.wait_for(self.announce_now.wait(), STATE_POLL_S)
            except TimeoutError:
                pass
            self.announce_now.clear()
            status = self.manager.status()
            key = (status["state"], round(status["progress"], 1), status["queue_length"], status["busy"],
                   status["running"], status["model_file"], tuple(status["cached_conversations"]))
            if key[0] != (last_key or ("",))[0]:
                self.report(status)
            if key != last_key or time.monotonic() - last_sent >= self.announce_s:
                info = await asyncio.to_thread(self.announcement, status)  # NVML calls block: not on the loop
                self.post(WEB_GROUP, {"type": "llm.announce", "worker": info})
                last_sent, last_key = time.monotonic(), key

    # --- life --------------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Load the model, serve until `stop` is set, then leave cleanly. ValueError for bad settings."""
        self.loop = asyncio.get_running_loop()
        self.outbox = asyncio.Queue()
        self.announce_now = asyncio.Event()
        self.channel = await self.layer.new_channel("llmworker")
        try:
            await self.layer.group_add(WORKERS_GROUP, self.channel)
        except Exception as exc:  # redis-py's errors are not OSErrors
            raise ValueError(f"Cannot reach Redis: {exc}") from None
        self.manager.load(**self.load_settings)  # returns at once; the announcements show the progress
        if self.pin:
            self.manager.pin(self.load_settings["file_name"])
        tasks = [asyncio.ensure_future(loop()) for loop in (self._send_loop, self._receive_loop, self._announce_loop)]
        # Announcements carry the channel, so the web side knows where to send requests.
        logger.info("worker %s serving %s on channel %s", self.name, self.load_settings["file_name"], self.channel)
        try:
            await stop.wait()
        finally:
            tasks[1].cancel()  # no new requests
            tasks[2].cancel()
            # Replies in progress end with an error event (their text is kept by the web side).
            await asyncio.to_thread(self.manager.shutdown)
            self.post(WEB_GROUP, {"type": "llm.leave", "name": self.name, "instance": self.instance})
            try:
                await asyncio.wait_for(self.outbox.join(), 5)
            except TimeoutError:
                logger.warning("some events could not be sent before exiting")
            tasks[0].cancel()
            await self.layer.group_discard(WORKERS_GROUP, self.channel)


async def receive_forever(layer, channel: str, handle) -> None:
    """Hand every message on `channel` to `handle`, through Redis restarts and bad messages alike."""
    while True:
        try:
            message = await layer.receive(channel)
        except Exception as exc:  # Redis restarting: keep trying; the web side's timeout covers the gap
            logger.warning("cannot receive from Redis (%s): retrying", exc)
            await asyncio.sleep(1)
            continue
        try:
            handle(message)
        except Exception:  # one bad message must not stop the listener
            logger.exception("could not handle %r on %s", message.get("type"), channel)


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
