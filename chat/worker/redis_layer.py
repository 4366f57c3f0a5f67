"""The channel layer with REDIS_URL: channels_redis, whose messages are sealed with LLMSITE_REDIS_KEY.

channels_redis encrypts and authenticates every message (Fernet: AES-128-CBC with HMAC-SHA256, keyed by
SHA-256 of each key in `symmetric_encryption_keys`) when it is given keys; llmsite/settings.py gives it
LLMSITE_REDIS_KEY. A party with Redis access but without the key then reads no message and forges none.

What channels_redis does not do is survive a message that does not decrypt: it raises from receive(), in
whichever consumer happened to hold the process's receive lock, and drops that channel's buffered messages.
Anyone who can write to Redis could close other people's sockets that way. This layer drops such a message
with a warning and goes on receiving.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)


class UnreadableMessage(Exception):
    """A message on Redis that did not decrypt or decode: written without the key, or damaged."""


class SealedRedisChannelLayer(RedisChannelLayer):
    def deserialize(self, message):
        try:
            decoded = super().deserialize(message)
        except Exception as exc:  # cryptography's InvalidToken, msgpack's errors: all one thing here
            raise UnreadableMessage(type(exc).__name__) from None
        if not isinstance(decoded, dict):
            raise UnreadableMessage(f"a {type(decoded).__name__}, not a message")
        return decoded

    async def receive_single(self, channel):
        while True:
            try:
                return await super().receive_single(channel)
            except UnreadableMessage as exc:
                logger.warning("dropped a message on %s that was not sealed with this site's key (%s): "
                               "something that is not this site writes to its Redis", channel, exc)


def redacted_url(url: str) -> str:
    """REDIS_URL for a log or a terminal: any password replaced by ***, query parameters left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a REDIS_URL that cannot be shown)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    if parts.username or parts.password:
        user = parts.username or ""
        netloc = f"{user}:***@{netloc}" if parts.password else f"{user}@{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"
