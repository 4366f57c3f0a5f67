"""Staff views: queue a download (Models page or an advisor answer), cancel, retry, delete a model file."""

import logging
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from chat.views import staff_required
from chat.worker import list_model_files, worker_status
from downloads import services
from downloads.forms import DownloadForm
from downloads.models import Download

logger = logging.getLogger(__name__)


def _back(request, fallback="chat:models"):
    """Back to the page that asked (an advisor answer), when it is a page of this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback)


@staff_required
@require_POST
def start(request):
    form = DownloadForm(request.POST)
    if not form.is_valid():
        for error in [*form.non_field_errors(), *[e for f in form.errors.values() for e in f]][:1]:
            messages.error(request, error)
        return _back(request)
    data = form.cleaned_data
    try:
        download = services.request_download(
            request.user, repo=data["repo"], file_name=data["file_name"], url=data["url"], sha256=data["sha256"],
            load=form.load_settings(),
        )
    except services.Refused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(file)s is queued for download.") % {"file": download.file_name})
    return _back(request)


@staff_required
@require_POST
def cancel(request, pk):
    download = get_object_or_404(Download, pk=pk)
    if services.cancel(download):
        messages.success(request, _("The download of %(file)s was cancelled.") % {"file": download.file_name})
    return _back(request)


@staff_required
@require_POST
def cancel_file(request):
    """Cancel the running download of a file by its name (the advisor's answer knows the file, not the id)."""
    download = Download.objects.active().filter(file_name=request.POST.get("file_name", "")).first()
    if download is not None and services.cancel(download):
        messages.success(request, _("The download of %(file)s was cancelled.") % {"file": download.file_name})
    return _back(request)


@staff_required
@require_POST
def retry(request, pk):
    download = get_object_or_404(Download, pk=pk)
    try:
        if services.retry(download):
            messages.success(request, _("%(file)s is queued again.") % {"file": download.file_name})
    except services.Refused as exc:
        messages.error(request, str(exc))
    return _back(request)


@never_cache
@staff_required
@require_http_methods(["GET", "POST"])
def delete(request):
    """GET: the confirmation page; POST: delete the file (never the loaded model)."""
    file_name = request.POST.get("file_name") if request.method == "POST" else request.GET.get("file", "")
    files = {p.name: p for p in list_model_files()}
    path = files.get(file_name or "")
    if path is None:
        messages.error(request, _("%(file)s is not in the models folder.") % {"file": file_name or "?"})
        return redirect("chat:models")
    loaded = worker_status().get("model_file") or ""
    if request.method == "POST":
        try:
            services.delete_model_file(file_name, loaded)
        except services.Refused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("%(file)s was deleted.") % {"file": file_name})
        return redirect("chat:models")
    size = path.stat().st_size if path.exists() else None
    return render(request, "downloads/delete.html", {
        "file_name": file_name, "size": size, "is_loaded": Path(loaded).name == file_name,
        "models_dir": settings.MODELS_DIR,
    })
