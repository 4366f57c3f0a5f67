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

from chat.models import Conversation, FinishReason, Message, ModelConfig, Role, Status, selected_path
from chat.reasoning import answer_only
from chat.worker import get_manager

TITLE_LENGTH = 60


class NotFound(Exception):
    """No such conversation or message for this user."""


class NotContinuable(Exception):
    """A reply that cannot be continued (still being written, or empty); the message says why."""


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


def _ancestors(message: Message | None) -> list[Message]:
    """`message` and the messages before it on its path, first to last (one query for the conversation)."""
    if message is None:
        return []
    by_id = {m.id: m for m in message.conversation.messages.exclude(role=Role.SYSTEM)}
    chain, current = [], by_id.get(message.id, message)
    while current is not None:
        chain.append(current)
        current = by_id.get(current.parent_id)
    return chain[::-1]


def _history(conversation: Conversation, parent: Message | None) -> list[dict]:
    """The messages the model sees for a reply that follows `parent`: the system prompt, then the finished turns
    of the path that leads to it, in the versions on that path (errors without text left out, and replies as
    their answers: a reasoning model's thinking is not shown to it again, as its chat template expects)."""
    messages = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in _ancestors(parent):
        content = message.content
        if message.role == Role.ASSISTANT:
            content = answer_only(content)
            if message.status == Status.STREAMING or not content.strip():
                continue
        messages.append({"role": message.role, "content": content})
    return messages


def _leaf(conversation: Conversation) -> Message | None:
    """The last message of the path shown: a new message follows it."""
    path = selected_path(conversation.messages.exclude(role=Role.SYSTEM))
    return path[-1] if path else None


def _new_version(conversation: Conversation, parent: Message | None, **fields) -> Message:
    """A message after `parent`, selected in place of the other versions of its turn, which are kept."""
    siblings = conversation.messages.filter(parent=parent) if parent else conversation.messages.filter(
        parent__isnull=True)
    siblings.update(selected=False)
    message = Message(conversation=conversation, parent=parent, selected=True, **fields)
    message.save(first_version=parent is None)
    return message


def _new_reply(conversation: Conversation, parent: Message | None, options: dict) -> Message:
    return _new_version(conversation, parent, role=Role.ASSISTANT, content="", status=Status.STREAMING,
                        options={k: v for k, v in options.items() if k != "system"},
                        model_file=conversation.model_file)


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


def ensure_model_started(model_file: str = "", after_unload: bool = True) -> None:
    """Start the worker with the model a reply needs, unless a model is loaded or loading. A model staff pinned
    (kept in the database across restarts) is loaded whatever is asked."""
    manager = get_manager()
    default = default_load_settings()
    pinned = manager.status().get("pinned")
    if default.get("pinned") or pinned or not model_file:
        load = default if default.get("pinned") or not pinned else load_settings_for(pinned)
    else:
        load = load_settings_for(model_file)
    manager.ensure_started(after_unload=after_unload, load=load)


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


def _reply_started(conversation: Conversation, reply: Message, parent: Message | None) -> dict:
    return {"conversation": conversation.id, "message": reply.id, "messages": _history(conversation, parent),
            "model_file": conversation.model_file, "load": load_settings_for(conversation.model_file),
            "title": str(conversation)}


def _versions(message: Message) -> dict:
    siblings = list(Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id)
                    .order_by("created_at", "id").values_list("id", flat=True))
    return {"version": siblings.index(message.id) + 1, "versions": len(siblings)}


@database_sync_to_async
def start_reply(user, conversation_id: int | None, content: str, options: dict, model: str | None = None) -> dict:
    """Store the user's message and an empty streaming reply; {"conversation", "message", "messages"}.

    `model` chooses the model of a conversation that has no message yet (UnknownModel if it cannot)."""
    with transaction.atomic():
        if conversation_id is None:
            conversation = Conversation(owner=user, title=_title(content))
            parent = None
        else:
            conversation = _owned_conversation(user, conversation_id)
            if not conversation.title:
                conversation.title = _title(content)
            parent = _leaf(conversation)
        _apply_system(conversation, options, model)
        question = Message(conversation=conversation, parent=parent, role=Role.USER, content=content)
        question.save(first_version=parent is None)
        reply = _new_reply(conversation, question, options)
    return {**_reply_started(conversation, reply, question), "user_message": question.id}


@database_sync_to_async
def regenerate_reply(user, message_id: int, options: dict) -> dict:
    """A new version of an assistant reply, to the same question; the earlier versions are kept."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        if message.role != Role.ASSISTANT:
            raise NotFound
        conversation = message.conversation
        replaced = [message.id] if message.status == Status.STREAMING else []
        _apply_system(conversation, options)
        parent = message.parent
        reply = _new_reply(conversation, parent, options)
        versions = _versions(reply)
    return {**_reply_started(conversation, reply, parent), "removed": replaced, "versions": versions}


@database_sync_to_async
def edit_and_reply(user, message_id: int, content: str, options: dict) -> dict:
    """A new version of a user message, answered afresh; the earlier version and its replies are kept."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        if message.role != Role.USER:
            raise NotFound
        conversation = message.conversation
        replaced = list(message.children.filter(status=Status.STREAMING).values_list("id", flat=True))
        _apply_system(conversation, options)
        question = _new_version(conversation, message.parent, role=Role.USER, content=content)
        reply = _new_reply(conversation, question, options)
        versions = _versions(question)
    return {**_reply_started(conversation, reply, question), "removed": replaced, "user_message": question.id,
            "versions": versions}


@database_sync_to_async
def continue_reply(user, message_id: int, options: dict) -> dict:
    """Write more of a finished reply (one that hit the length limit, or was stopped): the model goes on from its
    last word, in the same message. The history ends with the reply itself, which the worker continues."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        if message.role != Role.ASSISTANT:
            raise NotFound
        if message.status == Status.STREAMING:
            raise NotContinuable("This reply is still being written.")
        if not message.content.strip():
            raise NotContinuable("This reply has no text to continue: regenerate it instead.")
        conversation = message.conversation
        _apply_system(conversation, options)
        history = _history(conversation, message.parent)
        history.append({"role": "assistant", "content": message.content})
        Message.objects.filter(id=message.id).update(
            status=Status.STREAMING, finish_reason=FinishReason.STOP, error="",
            options={**message.options, **{k: v for k, v in options.items() if k != "system"}})
    return {"conversation": conversation.id, "message": message.id, "messages": history,
            "model_file": conversation.model_file, "load": load_settings_for(conversation.model_file),
            "prefix": message.content,
            "tokens_before": message.completion_tokens or 0}


@database_sync_to_async
def select_version(user, message_id: int, version: int) -> dict:
    """Show version `version` (1-based) of the turn `message_id` belongs to; the conversation's path as shown."""
    with transaction.atomic():
        message = _owned_message(user, message_id)
        siblings = list(Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id)
                        .order_by("created_at", "id"))
        if not 1 <= version <= len(siblings):
            raise NotFound
        chosen = siblings[version - 1]
        Message.objects.filter(id__in=[m.id for m in siblings]).exclude(id=chosen.id).update(selected=False)
        Message.objects.filter(id=chosen.id).update(selected=True)
        conversation = message.conversation
        path = selected_path(conversation.messages.exclude(role=Role.SYSTEM))
    return {"conversation": conversation.id, "messages": [message_dict(m) for m in path]}


def message_dict(message: Message) -> dict:
    """One message of the path shown, as the page draws it (frames and the page's own data)."""
    return {
        "id": message.id, "role": message.role, "content": message.content, "status": message.status,
        "error": message.error, "finish_reason": message.finish_reason, "model_file": message.model_file,
        "version": getattr(message, "version", 1), "versions": getattr(message, "versions", 1),
        "stats": {"tokens": message.completion_tokens or 0, "ttft_ms": message.ttft_ms,
                  "tokens_per_s": message.decode_tokens_per_s},
    }


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
        "finish_reason": message.finish_reason,
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
        finish_reason=FinishReason.LENGTH if stats.get("finish_reason") == "length" else FinishReason.STOP,
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
            "parallel": settings.LLMSITE_PARALLEL if config.parallel is None else config.parallel_setting()}


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
    """The first words of a message, cut at a word boundary (a single word longer than the title is cut)."""
    line = " ".join(content.split())
    if len(line) <= TITLE_LENGTH:
        return line
    head = line[: TITLE_LENGTH - 1]  # room for the ellipsis
    if line[TITLE_LENGTH - 1] != " " and " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:.-") + "…"
