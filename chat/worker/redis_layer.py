"""The channel layer with REDIS_URL: channels_redis, whose messages are sealed with LLMSITE_REDIS_KEY.

channels_redis encrypts and authenticates every message (Fernet: AES-128-CBC with HMAC-SHA256, keyed by
SHA-256 of each key in `symmetric_encryption_keys`) when it is given keys; llmsite/settings.py gives it
LLMSITE_REDIS_KEY. A party with Redis access but without the key then reads no message and forges none.

What channels_redis does not do is survive a message that does not decrypt: it raises from receive(), in
whichever consumer happened to hold the process's receive lock, and drops that channel's buffered messages.
Anyone who can write to Redis could close other people's sockets that way. This layer drops such a message
with a warning and goes on receiving.

Nor does it refuse a replay: a sealed message copied out of Redis (it sits there until read) and written
back opens again for as long as channels_redis's time window (its expiry + 10 s; Fernet also accepts a
timestamp up to 60 s ahead). Every sealed message is made once for one process (channels_redis seals a
message separately for each Redis list, and a process reads its own list), so a token a process has opened
before is a replay: this layer remembers the tokens it opened for the window and drops a repeat. The random
prefix channels_redis puts before a token is not authenticated, so it is not part of what is remembered.
"""

from __future__ import annotations

import collections
import logging
import time
from urllib.parse import urlsplit

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)


class UnreadableMessage(Exception):
    """A message on Redis that did not decrypt or decode: written without the key, or damaged."""


# Fernet accepts a token whose timestamp is up to this far in the future (cryptography's _MAX_CLOCK_SKEW).
FERNET_CLOCK_SKEW_S = 60
# Tokens remembered at most (a busy site opens a few hundred a second; each entry is ~100 bytes).
MAX_REMEMBERED = 500_000


class SealedRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, clock=time.monotonic, **kwargs):
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._opened: collections.OrderedDict[bytes, float] = collections.OrderedDict()  # HMAC -> forget at

    def _replay_window_s(self) -> float:
        ttl = self.expiry + 10  # what channels_redis's serializer passes to Fernet
        return ttl + FERNET_CLOCK_SKEW_S + 10

    def _first_opening(self, message: bytes) -> bool:
        """False if this process opened the same sealed token before (within the window)."""
        token = message[self._serializer.random_prefix_length:]
        mac = bytes(token[-32:])  # Fernet's HMAC-SHA256 over version, time, IV and ciphertext
        now = self._clock()
        opened = self._opened
        while opened:
            oldest, forget_at = next(iter(opened.items()))
            if forget_at > now and len(opened) < MAX_REMEMBERED:
                break
            del opened[oldest]
        if mac in opened:
            return False
        opened[mac] = now + self._replay_window_s()
        return True

    def deserialize(self, message):
        try:
            decoded = super().deserialize(message)
        except Exception as exc:  # cryptography's InvalidToken, msgpack's errors: all one thing here
            raise UnreadableMessage(type(exc).__name__) from None
        if not isinstance(decoded, dict):
            raise UnreadableMessage(f"a {type(decoded).__name__}, not a message")
        if self._serializer.crypter is not None and not self._first_opening(message):
            raise UnreadableMessage("a replay of a message already received")
        return decoded

    async def receive_single(self, channel):
        while True:
            try:
                return await super().receive_single(channel)
            except UnreadableMessage as exc:
                logger.warning("dropped a message on %s that was not sealed with this site's key, or was "
                               "replayed (%s): something that is not this site writes to its Redis", channel, exc)


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
