"""The latest replies, from the chat and from the API side by side, for the staff's Models page."""

from __future__ import annotations

from chat.models import Message, Role
from chat.openai_api.models import ApiReply


def recent_replies(limit: int = 15) -> list[dict]:
    """The `limit` latest finished replies: when, whose, which model, tokens, speed, and how they came (chat or
    API, with the key's name). Never their text."""
    stored_api_calls = ApiReply.objects.filter(conversation__isnull=False).values("conversation")
    chat = (Message.objects.filter(role=Role.ASSISTANT, finished_at__isnull=False)
            .exclude(conversation__in=stored_api_calls)  # an API call its key stored: listed once, as API
            .select_related("conversation__owner").order_by("-finished_at")[:limit])
    api = ApiReply.objects.select_related("owner", "key").order_by("-created_at")[:limit]
    rows = [{"at": m.finished_at, "person": m.conversation.owner.get_username(), "model": m.conversation.model_file,
             "status": m.status, "tokens": m.completion_tokens, "tokens_per_s": m.decode_tokens_per_s,
             "via": "chat", "key": ""} for m in chat]
    rows += [{"at": r.created_at, "person": r.owner.get_username(), "model": r.model_file, "status": r.status,
              "tokens": r.completion_tokens, "tokens_per_s": r.decode_tokens_per_s, "via": "api",
              "key": r.key.name if r.key else ""} for r in api]
    rows.sort(key=lambda row: row["at"], reverse=True)
    return rows[:limit]
