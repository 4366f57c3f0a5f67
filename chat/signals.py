"""Open chat sockets end with the sign-in they were opened with.

Each socket joins its person's group (`user_group`). Signing out closes the sockets of that session; an
account turned inactive or deleted closes all of its sockets. Events through the channel layer reach the
web process that holds the socket (in-memory layer: this process; channels_redis: any). What a signal cannot
see (a session that expires, a password changed elsewhere, a queryset `update()`) the consumer catches by
checking the session before each frame it acts on (chat/services.py: `still_signed_in`).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

logger = logging.getLogger(__name__)

SIGNED_OUT_EVENT = "chat.signed_out"  # handled by ChatConsumer.chat_signed_out


def user_group(user_id: int) -> str:
    return f"chat.user.{user_id}"


def _tell_sockets(user_id: int, session_key: str | None, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id),
                                        {"type": SIGNED_OUT_EVENT, "session": session_key, "reason": reason})
    except Exception:  # signing out or saving the account must not fail for this; sockets check on each frame
        logger.exception("could not tell the chat sockets of user %s to close", user_id)


@receiver(user_logged_out, dispatch_uid="chat.close_sockets_on_logout")
def close_sockets_of_the_session(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    if user is not None and session is not None and session.session_key:
        _tell_sockets(user.pk, session.session_key, "signed_out")


def close_sockets_of_inactive_account(sender, instance, **kwargs):
    if kwargs.get("signal") is post_delete or not instance.is_active:
        _tell_sockets(instance.pk, None, "account_inactive")


def connect_account_signals() -> None:
    """From ChatConfig.ready(): the user model is known only once apps are loaded."""
    model = get_user_model()
    post_save.connect(close_sockets_of_inactive_account, sender=model, dispatch_uid="chat.close_sockets_on_save")
    post_delete.connect(close_sockets_of_inactive_account, sender=model, dispatch_uid="chat.close_sockets_on_delete")
