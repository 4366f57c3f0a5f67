"""Where a download's bytes come from: every part of a GGUF, with its size, URL and published SHA-256.

Hugging Face files are resolved with `huggingface_hub` (its URL layout, `HF_ENDPOINT` for a mirror, its token
conventions: `HF_TOKEN`, or the token `hf auth login` stored). The hub answers a HEAD on the resolve URL
with the file's size and, for LFS files (every GGUF), its SHA-256 as `X-Linked-Etag`; the client reads both.
A plain HTTPS URL gets a HEAD of its own; its hash is the one given with it, if any.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from downloads.fetch import allowed_url, urlopen

SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HEAD_TIMEOUT_S = 20
# A file's name in the models folder: at most NAME_MAX (255 bytes) less the `.part` its staging file adds.
MAX_NAME_BYTES = 250


class SourceError(Exception):
    """The file cannot be fetched as asked; the message is for the person who asked."""


@dataclass
class Part:
    name: str
    url: str
    size: int | None
    sha256: str  # lower-case hex, "" when nothing publishes one

    def as_dict(self) -> dict:
        return asdict(self)


def part_names(file_name: str) -> list[str]:
    """All the files of a split GGUF (`x-00001-of-00003.gguf` ...) whichever part is named; else the file."""
    match = SPLIT_NAME.match(file_name)
    if not match:
        return [file_name]
    count = int(match["count"])
    if not 1 <= int(match["index"]) <= count:
        raise SourceError(_("%(file)s names a part that does not exist.") % {"file": file_name})
    return [f"{match['stem']}-{index:05d}-of-{count:05d}.gguf" for index in range(1, count + 1)]


def check_file_name(file_name: str) -> str:
    file_name = file_name.strip().rsplit("/", 1)[-1]
    if not file_name.lower().endswith(".gguf") or file_name.startswith(".") or len(file_name) > 255:
        raise SourceError(_("Only .gguf files can be downloaded; %(file)s is not one.") % {"file": file_name or "?"})
    if len(file_name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES or not file_name.isprintable():
        shown = "".join(c if c.isprintable() else "?" for c in file_name)
        raise SourceError(_("%(file)s cannot be a file name here: it holds control characters or is longer than "
                            "%(bytes)s bytes.") % {"file": shown[:80] + ("…" if len(shown) > 80 else ""),
                                                   "bytes": MAX_NAME_BYTES})
    return file_name


def check_repo(repo: str) -> str:
    repo = repo.strip().strip("/")
    if repo.startswith(("https://huggingface.co/", "huggingface.co/")):
        repo = "/".join(repo.split("huggingface.co/", 1)[1].split("/")[:2])
    if not REPO_ID.match(repo) or ".." in repo:
        raise SourceError(_("A Hugging Face repository is written owner/name; %(repo)s is not.") % {"repo": repo})
    return repo


def check_url(url: str) -> str:
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    # Plain HTTP only to this machine (a mirror on loopback); anything on the network must be HTTPS.
    if not allowed_url(url):
        raise SourceError(_("Only https:// URLs can be downloaded."))
    check_file_name(urllib.parse.unquote(parts.path))
    return url


def quiet_hub() -> None:
    """Downloads ask the hub for the file and nothing else: `huggingface_hub` opts out of its telemetry.

    Left on, building its headers looks for an AI agent in the environment, which fetches
    `{HF_ENDPOINT}/api/agent-harnesses` (and caches it under HF_HOME), and names torch and the agent in the
    User-Agent. The library reads HF_HUB_DISABLE_TELEMETRY from the environment once, when it is first imported
    (whoever imports it first), so the switch is set on its constants, which it reads at every request.
    """
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True


def hub_headers() -> dict:
    from huggingface_hub.utils import build_hf_headers

    quiet_hub()
    return build_hf_headers(token=settings.HF_TOKEN, library_name="llmsite")


def resolve_hub(repo: str, file_name: str, revision: str = "main") -> list[Part]:
    """Every part of `file_name` in `repo`, from the hub's HEAD answers (nothing is downloaded)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, file_name = check_repo(repo), check_file_name(file_name)
    quiet_hub()
    parts = []
    for name in part_names(file_name):
        url = hf_hub_url(repo, name, revision=revision or "main", endpoint=settings.HF_ENDPOINT)
        try:
            meta = get_hf_file_metadata(url, token=settings.HF_TOKEN, timeout=HEAD_TIMEOUT_S)
        except GatedRepoError:
            raise SourceError(_("%(repo)s is gated: accept its terms on Hugging Face and set HF_TOKEN.")
                              % {"repo": repo}) from None
        except RepositoryNotFoundError:
            raise SourceError(_("No repository %(repo)s (or it is private: set HF_TOKEN).") % {"repo": repo}) from None
        except RevisionNotFoundError:
            raise SourceError(_("%(repo)s has no revision %(revision)s.")
                              % {"repo": repo, "revision": revision}) from None
        except EntryNotFoundError:
            raise SourceError(_("%(repo)s has no file %(file)s.") % {"repo": repo, "file": name}) from None
        except (HfHubHTTPError, OSError) as exc:
            raise SourceError(_("Could not reach %(host)s: %(error)s")
                              % {"host": settings.HF_ENDPOINT, "error": _short(exc)}) from None
        etag = (meta.etag or "").lower()
        parts.append(Part(name, meta.location or url, meta.size, etag if SHA256_HEX.match(etag) else ""))
    return parts


def resolve_url(url: str, sha256: str = "") -> list[Part]:
    """A plain URL: its size from a HEAD request (redirects followed); its hash is the one given."""
    url = check_url(url)
    sha256 = sha256.strip().lower()
    if sha256 and not SHA256_HEX.match(sha256):
        raise SourceError(_("A SHA-256 is 64 hexadecimal digits."))
    name = check_file_name(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if SPLIT_NAME.match(name) and part_names(name) != [name]:
        base = url.rsplit("/", 1)[0]
        names = part_names(name)
        if sha256:
            raise SourceError(_("A split GGUF has one hash a part: give the URL without a hash."))
        return [Part(n, f"{base}/{urllib.parse.quote(n)}", head_size(f"{base}/{urllib.parse.quote(n)}"), "")
                for n in names]
    return [Part(name, url, head_size(url), sha256)]


def head_size(url: str) -> int | None:
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "llmsite"})
    try:
        with urlopen(request, timeout=HEAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        raise SourceError(_("%(url)s answered %(status)s.") % {"url": url, "status": exc.code}) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(_("Could not reach %(url)s: %(error)s") % {"url": url, "error": _short(exc)}) from None
    return int(length) if length and length.isdigit() else None


def auth_headers_for(url: str) -> dict:
    """The hub's headers (token included) go to the hub's own host only, never to a CDN it redirects to."""
    hub = urllib.parse.urlsplit(settings.HF_ENDPOINT)
    target = urllib.parse.urlsplit(url)
    if (target.scheme, target.netloc) == (hub.scheme, hub.netloc):
        return hub_headers()
    return {"User-Agent": "llmsite"}


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
