"""Asking for a download, cancelling one, and deleting a model file: what the views and getmodel call."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from downloads import runner, sources
from downloads.models import ACTIVE_STATES, Download, State


class Refused(Exception):
    """The download or deletion is refused; the message says why, and nothing was changed."""


def resolve(*, repo: str = "", file_name: str = "", revision: str = "main", url: str = "",
            sha256: str = "") -> tuple[str, list[sources.Part]]:
    """(file name in the models folder, parts) for a repository file or a plain URL. Network: HEAD only."""
    try:
        parts = sources.resolve_url(url, sha256) if url else sources.resolve_hub(repo, file_name, revision)
    except sources.SourceError as exc:
        raise Refused(str(exc)) from None
    return parts[0].name, parts


def check_room(parts, models_dir: Path | None = None) -> None:
    """Refuse what is already in the folder, being downloaded, or cannot fit on the disk."""
    models_dir = Path(models_dir or settings.MODELS_DIR)
    for part in parts:
        if (models_dir / part.name).exists():
            raise Refused(_("%(file)s is already in the models folder.") % {"file": part.name})
    names = [p.name for p in parts]
    if Download.objects.active().filter(file_name=names[0]).exists():
        raise Refused(_("%(file)s is already being downloaded.") % {"file": names[0]})
    if any(p.size is None for p in parts):
        raise Refused(_("The server does not say how large %(file)s is, so the disk cannot be checked: refused.")
                      % {"file": names[0]})
    queued = sum(runner.room_needed(d.parts, d.pk) for d in Download.objects.active())
    refusal = runner.disk_refusal(sum(p.size for p in parts) + queued)
    if refusal:
        raise Refused(refusal)


def request_download(user=None, *, repo: str = "", file_name: str = "", revision: str = "main", url: str = "",
                     sha256: str = "", load: dict | None = None) -> Download:
    """Check the source and the disk, then queue the download; Refused (nothing queued) otherwise."""
    name, parts = resolve(repo=repo, file_name=file_name, revision=revision, url=url, sha256=sha256)
    with transaction.atomic():
        check_room(parts)
        load = load or {}
        download = Download.objects.create(
            repo=sources.check_repo(repo) if not url else "", revision=(revision or "main") if not url else "",
            url=url.strip() if url else "", file_name=name, expected_sha256=sha256.strip().lower(),
            parts=[p.as_dict() for p in parts], total_bytes=sum(p.size or 0 for p in parts),
            n_gpu_layers=load.get("n_gpu_layers"), n_ctx=load.get("n_ctx"), flash_attn=bool(load.get("flash_attn")),
            kv_type=load.get("kv_type") or "", created_by=user if user and user.is_authenticated else None,
        )
    runner.wake()
    return download


def cancel(download: Download) -> bool:
    """Stop it and remove what it wrote; the runner removes the bytes of a running one within a second."""
    changed = Download.objects.filter(pk=download.pk, state__in=ACTIVE_STATES).update(state=State.CANCELLED,
                                                                                     bytes_per_s=0)
    if changed and download.state == State.QUEUED:
        runner.remove_staging(download.pk)  # nobody writes there: a queued download is not running
    return bool(changed)


def retry(download: Download) -> bool:
    """A failed download goes back in the queue; it resumes from the bytes still on disk, if any."""
    if download.state not in (State.FAILED,):
        return False
    if (Path(settings.MODELS_DIR) / download.file_name).exists():
        raise Refused(_("%(file)s is already in the models folder.") % {"file": download.file_name})
    Download.objects.filter(pk=download.pk, state=State.FAILED).update(state=State.QUEUED, error="")
    runner.wake()
    return True


def status_list(limit: int = 20) -> list[dict]:
    """The recent downloads, newest first, as the status channel sends them."""
    return [d.as_dict() for d in Download.objects.recent(limit)]


def delete_model_file(file_name: str, loaded_file: str | None) -> None:
    """Delete a model file (every part of a split one) from the folder; never the loaded one or the default."""
    from advisor.modelfiles import default_model_file
    from chat.worker import list_model_files

    files = {p.name: p for p in list_model_files()}
    if file_name not in files:
        raise Refused(_("%(file)s is not in the models folder.") % {"file": file_name})
    names = sources.part_names(file_name) if sources.SPLIT_NAME.match(file_name) else [file_name]
    if loaded_file and Path(loaded_file).name in names:
        raise Refused(_("%(file)s is loaded: unload it before deleting it.") % {"file": file_name})
    default = default_model_file()
    if default is not None and default.name == file_name:
        raise Refused(_("%(file)s is the default model that the site ships; it cannot be deleted here.")
                      % {"file": file_name})
    folder = Path(settings.MODELS_DIR)
    for name in names:
        (folder / name).unlink(missing_ok=True)
    from chat.models import ModelConfig

    ModelConfig.objects.filter(file_name=file_name, is_active=False).delete()
