"""One reply's life on the web side: worker events in, database writes and channel-layer broadcasts out.

It lives beside the consumer, not in chat/worker/: the worker package never imports chat.services or
chat.models. `start()` makes the reply's Job and task and hands the Job to the manager.

The task runs whether or not a browser is connected: closing the tab does not stop a reply (Stop does).
Group messages on `reply-<id>` (consumers turn them into protocol frames):
    reply.queued {message, position, model, progress}   reply.token {message, text, end}
    reply.done {message, status, stats, end}   reply.error {message, code, text}
`end` is the length of the reply's text after this event, so a consumer that resumes from a snapshot drops
what it already sent, and one that missed a broadcast (a full channel) notices the gap and fills it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.layers import get_channel_layer

from chat import services
from chat.worker.manager import FLUSH_INTERVAL_S, Job, reply_group

logger = logging.getLogger(__name__)


_tasks: set[asyncio.Task] = set()  # references, so running reply tasks are not garbage-collected


def start(manager, message_id: int, messages: list, options: dict, meta: dict) -> Job:
    """Start writing a reply: its Job goes to `manager` (the local WorkerManager or the Redis WorkerPool),
    its events to a task that stores and broadcasts it. Call from the event loop; the caller listens on
    the group `reply_group(message_id)`, which it must join first. meta: conversation, model_file, load, and
    `events: "caller"` for a caller that reads the job's events itself (no task, nothing stored)."""
    loop = asyncio.get_running_loop()
    job = Job(message_id=message_id, messages=messages, options=options, loop=loop,
              conversation=meta.get("conversation"), model_file=meta.get("model_file") or "", load=meta.get("load"),
              text=meta.get("prefix", ""))  # a continued reply's text so far
    if meta.get("events") != "caller":  # the OpenAI API (chat/openai_api) reads job.events itself
        task = loop.create_task(Reply(manager, job, meta).run())
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    manager.submit(job)
    return job


class Reply:
    def __init__(self, manager, job: Job, meta: dict):
        self.manager = manager
        self.job = job
        self.meta = meta
        self.group = reply_group(job.message_id)
        self.layer = get_channel_layer()
        self.started_at = None
        self.first_token_at = None
        self.loaded: dict = {}
        self.flush: asyncio.Future | None = None  # the partial write in flight (one at a time)

    def flushed(self) -> bool:
        return self.flush is None or self.flush.done()

    async def wait_flushed(self) -> None:
        if self.flush is not None:
            await asyncio.wait([self.flush])  # its failure is logged; the final write has the whole text

    async def send(self, message: dict) -> None:
        try:
            await self.layer.group_send(self.group, message)
        except Exception:  # a broadcast that fails must not lose the reply: the database has it
            logger.exception("could not broadcast %s for reply %s", message.get("type"), self.job.message_id)

    async def run(self) -> None:
        job = self.job
        last_flush = time.monotonic()
        try:
            while True:
                event = await job.events.get()
                kind = event["ev"]
                if kind == "token":
                    if self.first_token_at is None:
                        self.first_token_at = event["at"]
                    job.text += event["text"]
                    job.tokens += 1
                    await self.send({"type": "reply.token", "message": job.message_id, "text": event["text"],
                                     "end": len(job.text)})
                    if time.monotonic() - last_flush >= FLUSH_INTERVAL_S and self.flushed():
                        # Written beside the stream, not in its way: tokens go on while the database writes.
                        self.flush = asyncio.ensure_future(services.save_partial(job.message_id, job.text))
                        self.flush.add_done_callback(_log_failure)
                        last_flush = time.monotonic()
                elif kind == "queued":
                    await self.send({"type": "reply.queued", "message": job.message_id,
                                     "position": event["position"], "model": event.get("model"),
                                     "progress": event.get("progress")})
                elif kind == "started":
                    self.started_at = event["at"]
                    # A remote worker says what it has loaded; the built-in one is asked.
                    self.loaded = event.get("loaded") or self.manager.loaded_info()
                elif kind == "done":
                    await self.finish(event)
                    return
                elif kind == "failed":
                    await self.fail(event)
                    return
        except Exception as exc:
            logger.exception("reply %s failed on the web side", job.message_id)
            if not job.finished:
                await self.fail({"code": "internal_error", "message": f"The reply could not be saved: {exc}"})
        finally:
            job.finished = True
            self.manager.forget(job)

    def stats(self, worker_stats: dict) -> dict:
        tokens = worker_stats.get("tokens")
        if tokens is None:
            tokens = self.job.tokens
        ttft_ms = None
        if self.started_at is not None and self.first_token_at is not None:
            # Measured here, from handing the request to the worker to the first token arriving back.
            ttft_ms = round((self.first_token_at - self.started_at) * 1000, 2)
        return {
            "tokens": tokens + int(self.meta.get("tokens_before") or 0),  # a continued reply counts all its tokens
            "finish_reason": worker_stats.get("finish_reason", "stop"),
            "ttft_ms": ttft_ms if ttft_ms is not None else worker_stats.get("ttft_ms"),
            "tokens_per_s": worker_stats.get("tokens_per_s"),
            "prompt_tokens": worker_stats.get("prompt_tokens"),
            "prompt_tokens_per_s": worker_stats.get("prompt_tokens_per_s"),
        }

    async def finish(self, event: dict) -> None:
        job = self.job
        stats = self.stats(event.get("stats") or {})
        status = event.get("status", "complete")
        await self.wait_flushed()
        await services.finish_reply(job.message_id, job.text, status, stats,
                                    model_file=self.loaded.get("file_name", ""))
        job.finished = True  # after the final write: a consumer that resumes now reads the database
        public = {k: stats[k] for k in ("tokens", "ttft_ms", "tokens_per_s")}
        await self.send({"type": "reply.done", "message": job.message_id, "status": status, "stats": public,
                         "finish_reason": stats["finish_reason"], "end": len(job.text)})
        measured = {**stats, "tokens": stats["tokens"] - int(self.meta.get("tokens_before") or 0)}  # this run's
        if measured["tokens"] and stats["ttft_ms"] is not None and self.loaded:
            try:
                await services.record_measurement(self.loaded, measured)
            except Exception:
                logger.exception("could not record the measurement of reply %s", job.message_id)

    async def fail(self, event: dict) -> None:
        job = self.job
        stats = self.stats({"tokens": job.tokens})
        await self.wait_flushed()
        await services.finish_reply(job.message_id, job.text, "error", stats, error=event.get("message", ""),
                                    model_file=self.loaded.get("file_name", ""))
        job.finished = True
        await self.send({"type": "reply.error", "message": job.message_id, "code": event.get("code", "error"),
                         "text": event.get("message", ""), "end": len(job.text)})


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("a partial write of a streaming reply failed", exc_info=future.exception())
