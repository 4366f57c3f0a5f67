"""Database work for the chat socket: every function the consumer and the reply task await.

Ownership is enforced here: a conversation or message of another user raises NotFound, exactly like one
that does not exist.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat.models import Conversation, Message, ModelConfig, Role, Status
from chat.worker import get_manager

TITLE_LENGTH = 60


class NotFound(Exception):
    """No such conversation or message for this user."""


class UnknownModel(Exception):
    """A model a new conversation cannot choose: not in the models folder, or not one any worker serves."""


@database_sync_to_async
def still_signed_in(user_id: int, session_key: str | None) -> bool:
    """Whether the session a socket was opened with still signs in this person, and the account is active.

    Read afresh (the socket's own copy of the session is from its handshake), the way Django's
    authentication reads it for every request: a session signed out, expired, or invalidated by a password
    change, and an account deactivated or deleted, all answer False.
    """
    if not session_key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = auth.get_user(SimpleNamespace(session=session))
    return user.is_authenticated and user.pk == user_id and user.is_active


def _history(conversation: Conversation, before: Message | None = None) -> list[dict]:
    """The messages the model sees: the system prompt, then every finished turn (errors without text left out)."""
    messages = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    queryset = conversation.messages.exclude(role=Role.SYSTEM)
    if before is not None:
        queryset = queryset.filter(id__lt=before.id)
    for message in queryset.order_by("created_at", "id"):
        if message.role == Role.ASSISTANT and (message.status == Status.STREAMING or not message.content.strip()):
            continue
        messages.append({"role": message.role, "content": message.content})
    return messages


def _new_reply(conversation: Conversation, options: dict) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Role.ASSISTANT, content="", status=Status.STREAMING,
        options={k: v for k, v in options.items() if k != "system"}, model_file=conversation.model_file,
    )


def _apply_system(conversation: Conversation, options: dict, model: str | None = None) -> None:
    """The system prompt of the options, and the conversation's model: chosen once, when it starts (`model`,
    else the site's default), then kept."""
    if "system" in options and options["system"] != conversation.system_prompt:
        conversation.system_prompt = options["system"]
    started = conversation.pk is not None and conversation.messages.exists()
    if model and not started:
        conversation.model_file = checked_model(model)
    conversation.model_file = get_manager().choose_model(conversation.model_file) or \
        default_load_settings()["file_name"]
    conversation.save()


def available_models() -> list[str]:
    """The models a person may choose for a new conversation (files here, or what Redis workers serve)."""
    try:
        return list(get_manager().available_models())
    except Exception:  # a models folder that cannot be listed: the page offers no choice, the chat still works
        return []


def checked_model(model: str) -> str:
    if model not in available_models():
        raise UnknownModel(model)
    return model


def _reply_started(conversation: Conversation, reply: Message) -> dict:
    return {"conversation": conversation.id, "message": reply.id, "messages": _history(conversation, before=reply),
            "model_file": conversation.model_file, "load": load_settings_for(conversation.model_file)}


@database_sync_to_async
def start_reply(user, conversation_id: int | None, content: str, options: dict, model: str | None = None) -> dict:
    """Store the user's message and an empty streaming reply; {"conversation", "message", "messages"}.

    `model` chooses the model of a conversation that has no message yet (UnknownModel if it cannot)."""
    with transaction.atomic():
        if conversation_id is None:
            conversation = Conversation(owner=user, title=_title(content))
        else:
            conversation = _owned_conversation(user, conversation_id)
            if not conversation.title:
                conversation.title = _title(content)
        _apply_system(conversation, options, model)
        question = Message.objects.create(conversation=conversation, role=Role.USER, content=content)
        reply = _new_reply(conversation, options)
    return {**_reply_started(conversation, reply), "user_message": question.id}


@database_sync_to_async
def regenerate_reply(user, message_id: int, options: dict) -> dict:
    """Replace an assistant reply (and everything after it) with a new one to the same question."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        if message.role != Role.ASSISTANT:
            raise NotFound
        conversation = message.conversation
        removed = _remove_from(conversation, message)
        _apply_system(conversation, options)
        reply = _new_reply(conversation, options)
    return {**_reply_started(conversation, reply), "removed": removed}


@database_sync_to_async
def edit_and_reply(user, message_id: int, content: str, options: dict) -> dict:
    """Change a user message, drop everything after it, and answer it afresh."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        if message.role != Role.USER:
            raise NotFound
        conversation = message.conversation
        removed = _remove_from(conversation, message, keep=True)
        message.content = content
        message.save(update_fields=["content"])
        _apply_system(conversation, options)
        reply = _new_reply(conversation, options)
    return {**_reply_started(conversation, reply), "removed": removed}


def _remove_from(conversation: Conversation, message: Message, keep: bool = False) -> list[int]:
    """Delete `message` (unless keep) and every later message; the ids of the streaming replies removed."""
    later = conversation.messages.filter(**{"id__gt" if keep else "id__gte": message.id})
    streaming = list(later.filter(status=Status.STREAMING).values_list("id", flat=True))
    later.delete()
    return streaming


@database_sync_to_async
def get_reply(user, message_id: int) -> dict:
    message = _owned_message(user, message_id)
    if message.role != Role.ASSISTANT:
        raise NotFound
    return _reply_dict(message)


def _reply_dict(message: Message) -> dict:
    return {
        "message": message.id,
        "conversation": message.conversation_id,
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "model_file": message.model_file,
        "stats": {"tokens": message.completion_tokens or 0, "ttft_ms": message.ttft_ms,
                  "tokens_per_s": message.decode_tokens_per_s},
    }


@database_sync_to_async
def mark_interrupted(message_id: int) -> dict:
    """A reply left `streaming` with no worker job behind it (the server restarted): it ended with an error."""
    Message.objects.filter(id=message_id).interrupt()
    return _reply_dict(Message.objects.get(id=message_id))


def end_interrupted_replies() -> int:
    """At start-up: every reply still `streaming` was being written by the server that stopped (the one web
    process holds every reply in progress), so it ended with an error; what was written is kept. Sync."""
    return Message.objects.interrupt()


# A streaming reply is written about ten times a second. database_sync_to_async opens and closes a database
# connection around every call (CONN_MAX_AGE=0), about 5 ms of CPU each on SQLite; these partial writes go
# through one thread of their own that keeps its connection. The final write (finish_reply) waits for them.
_partial_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmsite-reply-writer")


def _save_partial(message_id: int, content: str) -> None:
    try:
        Message.objects.filter(id=message_id, status=Status.STREAMING).update(content=content)
    except (OperationalError, InterfaceError):
        connection.close()  # a broken connection: the next write opens a new one
        raise


save_partial = sync_to_async(_save_partial, thread_sensitive=False, executor=_partial_writer)


@database_sync_to_async
def finish_reply(message_id: int, content: str, status: str, stats: dict, error: str = "",
                 model_file: str = "") -> None:
    """The reply's final text and stats; `model_file`, the model the worker had loaded, when it started."""
    model = {"model_file": model_file} if model_file else {}
    Message.objects.filter(id=message_id).update(
        **model,
        content=content,
        status=status,
        error=error,
        completion_tokens=stats.get("tokens"),
        prompt_tokens=stats.get("prompt_tokens"),
        ttft_ms=stats.get("ttft_ms"),
        prompt_tokens_per_s=stats.get("prompt_tokens_per_s"),
        decode_tokens_per_s=stats.get("tokens_per_s"),
        finished_at=timezone.now(),
    )
    Conversation.objects.filter(messages__id=message_id).update(updated_at=timezone.now())


@database_sync_to_async
def record_measurement(loaded: dict, stats: dict) -> None:
    """One finished reply as an advisor Measurement (what the advisor shows next to its estimate)."""
    from advisor.models import Measurement
    from chat.worker.offload import gpu_name

    n_gpu_layers = int(loaded.get("n_gpu_layers") or 0)
    Measurement.objects.create(
        gpu_name=loaded.get("gpu_name") or gpu_name(n_gpu_layers),  # a remote worker names its own GPU
        model_file=loaded.get("file_name", ""),
        model_name=(loaded.get("model_name") or "")[:200],
        quant=(loaded.get("quant") or "")[:16],
        n_gpu_layers=n_gpu_layers,
        n_layers=loaded.get("n_layers"),
        n_ctx=loaded.get("n_ctx") or 0,
        prompt_tokens=stats.get("prompt_tokens") or 0,
        completion_tokens=stats["tokens"],
        ttft_ms=stats["ttft_ms"],
        prompt_tokens_per_s=stats.get("prompt_tokens_per_s"),
        decode_tokens_per_s=stats.get("tokens_per_s"),
    )


def default_load_settings() -> dict:
    """What the chat loads at start: the pinned or active ModelConfig, else LLMSITE_MODEL and its settings,
    with `pinned` saying whether staff pinned it. Sync."""
    config = ModelConfig.objects.filter(pinned=True).first() or ModelConfig.objects.filter(is_active=True).first()
    if config is not None:
        return {**_config_settings(config), "pinned": config.pinned}
    return {**configured_load_settings(), "parallel": settings.LLMSITE_PARALLEL, "pinned": False}


def load_settings_for(file_name: str) -> dict:
    """How this site's worker loads `file_name`: its ModelConfig, else the configured settings for it. Sync."""
    if not file_name:
        return default_load_settings()
    config = ModelConfig.objects.filter(file_name=file_name).first()
    if config is not None:
        return _config_settings(config)
    return {**configured_load_settings(), "file_name": file_name, "parallel": settings.LLMSITE_PARALLEL}


def _config_settings(config: ModelConfig) -> dict:
    return {"file_name": config.file_name, "n_gpu_layers": config.n_gpu_layers, "n_ctx": config.n_ctx,
            "flash_attn": config.flash_attn, "kv_type": config.kv_type,
            "parallel": settings.LLMSITE_PARALLEL if config.parallel is None else config.parallel}


def configured_load_settings() -> dict:
    """LLMSITE_MODEL and its settings from the environment, without a database (`manage.py llmworker`)."""
    from chat.worker.files import default_model_name

    n_gpu_layers = settings.LLMSITE_N_GPU_LAYERS
    return {
        "file_name": settings.LLMSITE_MODEL or default_model_name() or "",
        "n_gpu_layers": None if n_gpu_layers == "auto" else n_gpu_layers,
        "n_ctx": settings.LLMSITE_N_CTX,
        "flash_attn": False,
        "kv_type": "f16",
    }


def _owned_conversation(user, conversation_id: int) -> Conversation:
    try:
        return Conversation.objects.owned_by(user).get(id=conversation_id)
    except Conversation.DoesNotExist:
        raise NotFound from None


def _owned_message(user, message_id: int) -> Message:
    try:
        return Message.objects.select_related("conversation").get(id=message_id, conversation__owner=user)
    except Message.DoesNotExist:
        raise NotFound from None


def _title(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
