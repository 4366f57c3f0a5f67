"""Personal API keys: made from 32 random bytes, shown once, kept as SHA-256 (a key is as strong as a random
secret, so a fast hash is enough: nothing to stretch), checked on every request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from chat.openai_api.models import ApiKey

PREFIX = "llms-"
LAST_USED_RESOLUTION = timedelta(seconds=10)  # last_used_at is written at most this often per key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(owner, name: str, store_conversations: bool = False) -> tuple[ApiKey, str]:
    """A new key for `owner`: the stored row and the key itself (shown once, never stored)."""
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey.objects.create(owner=owner, name=name, prefix=key[:len(PREFIX) + 6], key_hash=hash_key(key),
                                store_conversations=store_conversations)
    return row, key


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_key(token: str | None) -> ApiKey | None:
    """The usable key with this value (not revoked, its owner active), or None. Read afresh every request:
    revoking a key or deactivating its owner stops it at once. Sync."""
    if not token:
        return None
    key = ApiKey.objects.usable().select_related("owner").filter(key_hash=hash_key(token)).first()
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
