"""Streaming one file to disk with HTTP Range resumes, hashing as it goes. No Django import.

The same path serves Hugging Face parts and plain URLs: a `.part` file grows on disk, and a later call with
the same destination asks only for the bytes that are missing (`Range: bytes=N-`).
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
READ_TIMEOUT_S = 30
GGUF_MAGIC = b"GGUF"


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def allowed_url(url: str) -> bool:
    """HTTPS anywhere; plain HTTP only to this machine (a mirror on loopback). Redirects are held to it too."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # The same scheme and host may go on (a plain-HTTP hub mirror that HF_ENDPOINT names, say).
        same_origin = urllib.parse.urlsplit(newurl)[:2] == urllib.parse.urlsplit(req.full_url)[:2]
        if not (allowed_url(newurl) or same_origin):
            raise urllib.error.URLError(f"a redirect to {newurl[:200]} was refused: only https:// URLs (or http:// "
                                        "to this machine) are followed")
        follow = super().redirect_request(req, fp, code, msg, headers, newurl)
        if follow is not None and not same_origin:
            # urllib copies every header onto the redirect: the hub's token must not go to a host it names.
            for name in ("Authorization", "Cookie"):
                follow.remove_header(name)
        return follow


def urlopen(request: urllib.request.Request, timeout: float):
    """urllib's urlopen, whose redirects obey `allowed_url` (urllib's own follow http:// and ftp:// anywhere)."""
    return urllib.request.build_opener(_CheckedRedirects).open(request, timeout=timeout)


class FetchError(Exception):
    """The transfer broke off (network, server); the bytes so far are kept for a resume."""


class NotGGUF(Exception):
    """The server sends something that is not a GGUF file."""


class TooLong(Exception):
    """The server sends more bytes than the size it announced (a lie, or an endless body): never written."""


class Stopped(Exception):
    """should_stop() said so (cancelled, or the site is stopping)."""


def free_bytes(folder: Path) -> int:
    """Free space on the disk of `folder`. The one place that asks, so tests can give another figure."""
    return shutil.disk_usage(folder).free


def hash_existing(path: Path, hasher) -> int:
    """Feed the bytes already on disk to `hasher` (a resume hashes the whole file); return how many."""
    total = 0
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                hasher.update(block)
                total += len(block)
    except FileNotFoundError:
        pass
    return total


def fetch(url: str, dest: Path, *, size: int | None, headers: dict, check_magic: bool,
          on_bytes: Callable[[int], None], should_stop: Callable[[], bool]) -> str:
    """Bring `dest` to the full file at `url`; return its SHA-256 (hex). Keeps what is there on errors."""
    hasher = hashlib.sha256()
    if dest.exists() and size is not None and dest.stat().st_size > size:
        dest.unlink()  # more than the file has: not a prefix of it
    have = hash_existing(dest, hasher)
    on_bytes(have)
    if size is not None and have == size:
        return hasher.hexdigest()
    request = urllib.request.Request(url, headers={**headers, **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urlopen(request, timeout=READ_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and size is not None and have == size:
            return hasher.hexdigest()
        raise FetchError(f"the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"could not connect: {getattr(exc, 'reason', exc)}") from None
    with response:
        if have and response.status != 206:  # the server ignored the range: start again from the first byte
            hasher, have = hashlib.sha256(), 0
            dest.unlink(missing_ok=True)
            on_bytes(0)
        first = have == 0 and check_magic
        try:
            with open(dest, "ab") as out:
                while True:
                    if should_stop():
                        raise Stopped
                    # Never more than the announced size: one byte past it is enough to tell an endless body.
                    block = response.read(CHUNK if size is None else min(CHUNK, size - have + 1))
                    if not block:
                        break
                    if size is not None and have + len(block) > size:
                        raise TooLong(size)
                    if first:
                        if not block.startswith(GGUF_MAGIC[: len(block)]) or len(block) < len(GGUF_MAGIC):
                            raise NotGGUF(block[:8])
                        first = False
                    out.write(block)
                    hasher.update(block)
                    have += len(block)
                    on_bytes(have)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise FetchError(f"the transfer broke off after {have} bytes: {exc}") from None
        except _incomplete() as exc:
            raise FetchError(f"the transfer broke off after {have} bytes: {type(exc).__name__}") from None
    if size is not None and have != size:
        raise FetchError(f"the transfer ended after {have} of {size} bytes")
    return hasher.hexdigest()


def _incomplete():
    import http.client

    return (http.client.IncompleteRead, http.client.HTTPException)
