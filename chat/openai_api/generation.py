"""One API reply on the worker manager's queue: the same queue, workers and per-person limits as the chat.

The manager's Job hands worker events (queued, started, token, done, failed) to `job.events`; here they are
read by the request itself, not by a database-writing task: an API reply is written to the database only when
its key says so (store_conversations), and then once, at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from chat import services
from chat.openai_api.models import ApiReply
from chat.openai_api.reasoning import template_opens_thinking

logger = logging.getLogger(__name__)

# Job ids of API replies are negative: never a chat message's id (positive), never the worker's "stop all" (-1).
_job_ids = itertools.count(-2, -1)
_job_ids_lock = threading.Lock()
DRAIN_TIMEOUT_S = 60.0
_background: set[asyncio.Task] = set()


def next_job_id() -> int:
    with _job_ids_lock:
        return next(_job_ids)


class Generation:
    """Reads one job's events; `close()` stops the reply in the worker if it has not ended (the client left)."""

    def __init__(self, manager, job, *, key, model_file: str, streamed: bool, request):
        self.manager = manager
        self.job = job
        self.key = key
        self.model_file = model_file
        self.streamed = streamed
        self.request = request  # the Chat- or CompletionRequest: messages and options, for storing and finish_reason
        self.loaded: dict = {}
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.ended = False
        self.text = ""

    async def next(self) -> dict:
        """The next event that matters to the client: queued, token, done or failed."""
        while True:
            event = await self.job.events.get()
            kind = event["ev"]
            if kind == "started":
                self.started_at = event.get("at")
                self.loaded = event.get("loaded") or self.manager.loaded_info()
                continue
            if kind == "token":
                if self.first_token_at is None:
                    self.first_token_at = event.get("at")
                self.text += event["text"]
            elif kind in ("done", "failed"):
                self.ended = True
                self.job.finished = True
                self.manager.forget(self.job)  # the person's reply slot (chat/limits.py) is free again
            return event

    def stats(self, worker_stats: dict) -> dict:
        ttft_ms = worker_stats.get("ttft_ms")
        if self.started_at is not None and self.first_token_at is not None:
            ttft_ms = round((self.first_token_at - self.started_at) * 1000, 2)  # as the chat measures it
        return {"tokens": worker_stats.get("tokens") or 0, "prompt_tokens": worker_stats.get("prompt_tokens") or 0,
                "ttft_ms": ttft_ms, "tokens_per_s": worker_stats.get("tokens_per_s"),
                "prompt_tokens_per_s": worker_stats.get("prompt_tokens_per_s")}

    async def forced_open(self) -> bool:
        """Whether the model's chat template starts the reply inside <think> (read from the model file)."""
        return await sync_to_async(_template_opens_thinking, thread_sensitive=False)(self.model_file)

    async def record(self, status: str, stats: dict, reasoning: str = "", content: str = "") -> None:
        """The reply's record (Models page), its measurement (the advisor), and, if the key says so, the
        conversation."""
        try:
            await _record(self, status, stats, reasoning, content)
        except Exception:
            logger.exception("could not record API reply %s", self.job.message_id)
        if status == "complete" and stats.get("tokens") and stats.get("ttft_ms") is not None and self.loaded:
            try:
                await services.record_measurement(self.loaded, stats)
            except Exception:
                logger.exception("could not record the measurement of API reply %s", self.job.message_id)

    def close(self) -> None:
        """The request ended (answered, failed, or the client went away). A reply still being written is stopped
        in the worker, before its next token, and its slot freed when the worker says it stopped."""
        if self.ended:
            return
        self.ended = True
        self.manager.stop(self.job.message_id)
        task = asyncio.get_running_loop().create_task(self._drain())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _drain(self) -> None:
        stats = {"tokens": 0}
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while True:
                    event = await self.job.events.get()
                    if event["ev"] == "token":
                        self.text += event["text"]
                    elif event["ev"] in ("done", "failed"):
                        stats = event.get("stats") or stats
                        break
        except TimeoutError:
            logger.warning("API reply %s did not say it stopped within %g s", self.job.message_id, DRAIN_TIMEOUT_S)
        finally:
            self.job.finished = True
            self.manager.forget(self.job)
        await self.record("stopped", self.stats(stats))


@database_sync_to_async
def _record(generation: Generation, status: str, stats: dict, reasoning: str, content: str) -> None:
    from django.db import transaction

    key = generation.key
    conversation = None
    with transaction.atomic():
        if key.store_conversations and status == "complete":
            conversation = _store_conversation(generation, stats, reasoning, content)
        ApiReply.objects.create(
            owner_id=key.owner_id, key=key, model_file=generation.model_file, status=status,
            streamed=generation.streamed, prompt_tokens=stats.get("prompt_tokens"),
            completion_tokens=stats.get("tokens"), ttft_ms=stats.get("ttft_ms"),
            decode_tokens_per_s=stats.get("tokens_per_s"), conversation=conversation)


def _store_conversation(generation: Generation, stats: dict, reasoning: str, content: str):
    """The call as a conversation of the key's owner: its messages, then the reply (its reasoning not kept)."""
    from django.utils import timezone

    from chat.models import Conversation, Message, Role, Status

    messages = generation.request.messages
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
    conversation = Conversation.objects.create(owner_id=generation.key.owner_id, title=services._title(first_user),
                                               system_prompt=system, model_file=generation.model_file)
    for message in messages:
        if message["role"] != "system":
            Message.objects.create(conversation=conversation, role=message["role"], content=message["content"])
    Message.objects.create(
        conversation=conversation, role=Role.ASSISTANT, content=content, status=Status.COMPLETE,
        options={k: v for k, v in generation.request.options.items() if k not in ("stop", "prompt")},
        prompt_tokens=stats.get("prompt_tokens"), completion_tokens=stats.get("tokens"), ttft_ms=stats.get("ttft_ms"),
        prompt_tokens_per_s=stats.get("prompt_tokens_per_s"), decode_tokens_per_s=stats.get("tokens_per_s"),
        finished_at=timezone.now())
    return conversation


_templates: dict[tuple, bool] = {}


def _template_opens_thinking(model_file: str) -> bool:
    """From the model file in this site's models folder, when it is there (a Redis worker's model may not be:
    then only a reply that starts with <think> is split). Cached per file and modification time."""
    from advisor.gguf_info import read_gguf
    from chat.worker.files import resolve_model_file

    try:
        path = resolve_model_file(model_file)
        key = (str(path), os.stat(path).st_mtime_ns)
    except (ValueError, OSError):
        return False
    if key not in _templates:
        try:
            template = read_gguf(path).chat_template or ""
        except Exception:
            template = ""
        _templates[key] = template_opens_thinking(template)
    return _templates[key]
