"""The download queue's worker: one thread in the web process takes the oldest download and runs it.

Why a thread and not a process: a download is network and disk I/O (no GIL held while waiting), its
state lives in the database (downloads.models.Download), and the site already is one daphne process
(DESIGN.md). A stopped site leaves its record `running` and its `.part` files on disk; the next start takes
it first and asks the server only for the missing bytes. Cancel is a state change in the database, which
the runner reads at least twice a second, so it works from any process.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils.translation import gettext as _

from advisor.gguf_info import GGUFError, read_gguf
from downloads import fetch, sources
from downloads.models import ACTIVE_STATES, Download, State

logger = logging.getLogger(__name__)

SAVE_EVERY_S = 0.5
RETRY_DELAYS_S = (1, 2, 4, 8, 15, 30)  # a broken transfer is resumed this many times before it fails
SPEED_WINDOW_S = 5.0
STAGING = ".downloads"


def staging_dir(download_id: int | str) -> Path:
    """Where a download's `.part` files grow: a hidden folder in the models folder (same disk, so the
    finished file is renamed into place, never copied), which the folder's `*.gguf` listing never sees."""
    return Path(settings.MODELS_DIR) / STAGING / str(download_id)


def margin_bytes() -> int:
    return settings.LLMSITE_DOWNLOAD_MARGIN_MB * 1024 * 1024


def bytes_on_disk(download_id) -> int:
    folder = staging_dir(download_id)
    return sum(p.stat().st_size for p in folder.glob("*.part")) if folder.is_dir() else 0


def room_needed(parts: list[dict], download_id=None) -> int:
    """Bytes still to write for these parts, beyond what is already on disk for them."""
    total = sum(p.get("size") or 0 for p in parts)
    return max(0, total - (bytes_on_disk(download_id) if download_id is not None else 0))


def disk_refusal(needed: int) -> str | None:
    """A message when `needed` bytes (plus the margin) do not fit on the models folder's disk; else None."""
    folder = Path(settings.MODELS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    free = fetch.free_bytes(folder)
    if needed + margin_bytes() <= free:
        return None
    from django.template.defaultfilters import filesizeformat

    return _("Not enough disk space: the file needs %(needed)s (and %(margin)s kept free), the models folder's "
             "disk has %(free)s free.") % {"needed": filesizeformat(needed), "margin": filesizeformat(margin_bytes()),
                                           "free": filesizeformat(free)}


class Progress:
    """Bytes done, speed over the last few seconds, and the cancel check, saved at most twice a second."""

    def __init__(self, download: Download, done_before: int):
        self.download = download
        self.done_before = done_before  # finished parts
        self.samples = deque()
        self.saved_at = 0.0
        self.stopped = False

    def bytes(self, in_part: int) -> None:
        now = time.monotonic()
        done = self.done_before + in_part
        self.samples.append((now, done))
        while self.samples and now - self.samples[0][0] > SPEED_WINDOW_S:
            self.samples.popleft()
        if now - self.saved_at >= SAVE_EVERY_S:
            self.saved_at = now
            first_at, first_done = self.samples[0]
            speed = (done - first_done) / (now - first_at) if now > first_at else 0.0
            Download.objects.filter(pk=self.download.pk).update(done_bytes=done, bytes_per_s=max(0.0, speed))
            state = Download.objects.filter(pk=self.download.pk).values_list("state", flat=True).first()
            self.stopped = state not in ACTIVE_STATES
        self.download.done_bytes = done

    def should_stop(self) -> bool:
        return self.stopped or _stopping.is_set()


def claim_next(resume: bool = False) -> Download | None:
    """The download to run now: with `resume` (the runner's first look), one a stopped site left running;
    then the oldest queued. Later looks leave running ones alone: `manage.py getmodel` runs its own."""
    with transaction.atomic():
        download = Download.objects.filter(state__in=[State.RUNNING, State.VERIFYING]).order_by("created_at").first()
        if download is None or not resume:
            download = Download.objects.filter(state=State.QUEUED).order_by("created_at", "pk").first()
        if download is None:
            return None
        claimed = Download.objects.filter(pk=download.pk, state=download.state).update(state=State.RUNNING)
    if not claimed:
        return None
    download.state = State.RUNNING
    return download


def finish(download: Download, state: str, error: str = "") -> None:
    Download.objects.filter(pk=download.pk, state__in=ACTIVE_STATES).update(state=state, error=error, bytes_per_s=0)
    download.state, download.error = state, error


def remove_staging(download_id) -> None:
    shutil.rmtree(staging_dir(download_id), ignore_errors=True)


def run(download: Download, retry_delays=RETRY_DELAYS_S) -> None:
    """Run one claimed download to its end: done, failed (with why) or cancelled (nothing left behind)."""
    try:
        _run(download, retry_delays)
    except fetch.Stopped:
        if _stopping.is_set() and not _cancelled(download):
            return  # the site is stopping: keep the record running and the bytes, the next start resumes
        remove_staging(download.pk)
        finish(download, State.CANCELLED)
    except Exception as exc:  # a bug must end this download with its reason, not the queue
        logger.exception("download %s failed", download.pk)
        remove_staging(download.pk)
        finish(download, State.FAILED, _("The download failed: %(error)s") % {"error": exc})
    if _cancelled(download):  # cancelled while it was verifying or moving: nothing may stay behind
        remove_staging(download.pk)


def _cancelled(download) -> bool:
    return Download.objects.filter(pk=download.pk, state=State.CANCELLED).exists()


def _run(download: Download, retry_delays) -> None:
    models_dir = Path(settings.MODELS_DIR)
    parts = [sources.Part(**p) for p in download.parts]
    clash = [p.name for p in parts if (models_dir / p.name).exists()]
    if clash:
        finish(download, State.FAILED, _("%(file)s is already in the models folder.") % {"file": clash[0]})
        return
    refusal = disk_refusal(room_needed(download.parts, download.pk))
    if refusal:  # checked again here: downloads before it in the queue may have used the room
        remove_staging(download.pk)
        finish(download, State.FAILED, refusal)
        return
    folder = staging_dir(download.pk)
    folder.mkdir(parents=True, exist_ok=True)
    done_before = 0
    hashes = []
    for index, part in enumerate(parts):
        progress = Progress(download, done_before)
        digest = _fetch_with_retries(download, part, folder / f"{part.name}.part", index == 0, progress, retry_delays)
        if digest is None:
            return  # failed; the reason is saved
        hashes.append(digest)
        done_before += (folder / f"{part.name}.part").stat().st_size
    Download.objects.filter(pk=download.pk, state=State.RUNNING).update(state=State.VERIFYING, bytes_per_s=0,
                                                                        done_bytes=done_before)
    for part, digest in zip(parts, hashes, strict=True):
        if part.sha256 and digest != part.sha256:
            remove_staging(download.pk)
            finish(download, State.FAILED, _("%(file)s failed its SHA-256 check (expected %(expected)s, got "
                                             "%(got)s): the file was deleted.")
                   % {"file": part.name, "expected": part.sha256, "got": digest})
            return
    first = folder / f"{parts[0].name}.part"
    try:
        read_gguf(first)
    except GGUFError as exc:
        remove_staging(download.pk)
        finish(download, State.FAILED, _("%(file)s is not a usable GGUF file: %(error)s: it was deleted.")
               % {"file": parts[0].name, "error": str(exc).replace(str(first), parts[0].name)})
        return
    if _cancelled(download):
        raise fetch.Stopped
    for part in parts[1:]:  # the first part last: the folder lists the model only once every part is there
        (folder / f"{part.name}.part").replace(models_dir / part.name)
    (folder / f"{parts[0].name}.part").replace(models_dir / parts[0].name)
    remove_staging(download.pk)
    _save_load_settings(download)
    Download.objects.filter(pk=download.pk).update(state=State.DONE, bytes_per_s=0, done_bytes=done_before,
                                                   total_bytes=done_before)
    download.state = State.DONE
    logger.info("downloaded %s into %s", download.file_name, models_dir)


def _fetch_with_retries(download, part, dest, check_magic, progress, retry_delays) -> str | None:
    headers = sources.auth_headers_for(part.url) if download.repo else {"User-Agent": "llmsite"}
    for attempt in range(len(retry_delays) + 1):
        try:
            return fetch.fetch(part.url, dest, size=part.size, headers=headers, check_magic=check_magic,
                               on_bytes=progress.bytes, should_stop=progress.should_stop)
        except fetch.NotGGUF as exc:
            remove_staging(download.pk)
            finish(download, State.FAILED, _("%(file)s is not a GGUF file (it starts with %(start)s): refused, "
                                             "nothing was kept.") % {"file": part.name, "start": repr(exc.args[0])})
            return None
        except fetch.TooLong as exc:
            remove_staging(download.pk)
            finish(download, State.FAILED, _("%(file)s: the server sent more than the %(size)s bytes it announced: "
                                             "refused, nothing was kept.") % {"file": part.name, "size": exc.args[0]})
            return None
        except fetch.FetchError as exc:
            if attempt == len(retry_delays):
                finish(download, State.FAILED, _("The download broke off: %(error)s. Press Retry to resume it.")
                       % {"error": exc})
                return None
            logger.warning("download %s: %s; resuming in %s s", download.pk, exc, retry_delays[attempt])
            Download.objects.filter(pk=download.pk).update(bytes_per_s=0)
            deadline = time.monotonic() + retry_delays[attempt]
            while time.monotonic() < deadline:
                if progress.should_stop() or _cancelled(download):
                    raise fetch.Stopped from None
                time.sleep(0.2)
    return None


def _save_load_settings(download: Download) -> None:
    """The answer's settings become the file's settings on the Models page (not loaded, not active)."""
    if not download.has_load_settings:
        return
    from chat.models import ModelConfig

    ModelConfig.objects.get_or_create(
        file_name=download.file_name,
        defaults={"n_gpu_layers": download.n_gpu_layers, "n_ctx": download.n_ctx, "flash_attn": download.flash_attn,
                  "kv_type": download.kv_type or "f16"},
    )


# --- the thread ---------------------------------------------------------------------------------------------

_wake = threading.Event()
_stopping = threading.Event()
_thread: threading.Thread | None = None
_lock = threading.Lock()


def wake() -> None:
    """A new download was queued: start it now rather than at the next look."""
    _wake.set()


def start() -> None:
    """Start the queue's thread in this process (once). `llmsite.serve` calls it before daphne starts."""
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _stopping.clear()
        _thread = threading.Thread(target=_loop, name="model-downloads", daemon=True)
        _thread.start()


def stop(timeout: float = 5.0) -> None:
    _stopping.set()
    _wake.set()
    if _thread is not None:
        _thread.join(timeout)


def _loop() -> None:
    _remove_orphans()
    resume = True
    while not _stopping.is_set():
        close_old_connections()
        try:
            download = claim_next(resume)
            resume = False
        except Exception:  # the database is not there yet (not migrated) or went away: look again later
            logger.warning("could not read the download queue", exc_info=True)
            download = None
        if download is None:
            _wake.wait(2.0)
            _wake.clear()
            continue
        run(download)
    close_old_connections()


def _remove_orphans() -> None:
    """Staging folders of downloads that are no longer active (cancelled while the site was down)."""
    root = Path(settings.MODELS_DIR) / STAGING
    if not root.is_dir():
        return
    try:
        active = {str(pk) for pk in Download.objects.active().values_list("pk", flat=True)}
    except Exception:
        return
    for folder in root.iterdir():
        if folder.name not in active:
            shutil.rmtree(folder, ignore_errors=True)
