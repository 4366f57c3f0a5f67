"""The staff Models page: the GGUF files in the models folder, the worker's state, load and unload."""

import logging

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from advisor.gguf_info import GGUFError, read_gguf
from advisor.hardware import detect_gpus
from chat import worker as chat_worker
from chat.forms import ModelLoadForm, ParallelField
from chat.models import ModelConfig
from chat.openai_api.activity import recent_replies
from chat.views import staff_required
from chat.worker import worker_status
from chat.worker.offload import auto_parallel, estimate_offload
from chat.worker.types import PARALLEL_AUTO
from downloads.services import status_list as download_status_list

logger = logging.getLogger(__name__)


def _describe_file(path, config, gpus):
    """Header facts and the advisor's suggested offload for one file; a bad file gives an error, not a 500."""
    row = {"name": path.name, "size": None, "info": None, "error": "", "suggested": None, "n_layers": None,
           "fits": ""}
    try:
        row["size"] = path.stat().st_size
    except OSError as exc:
        row["error"] = _("Cannot read this file: %(error)s") % {"error": exc.strerror or exc}
        return row
    try:
        info = read_gguf(path)
    except GGUFError as exc:
        row["error"] = str(exc).replace(str(path), path.name)
        return row
    except Exception as exc:  # a reader bug on a strange file still must not take the page down
        logger.exception("Reading the GGUF header of %s failed", path)
        row["error"] = _("Cannot read this file's header: %(error)s") % {"error": exc}
        return row
    row["info"] = info
    try:
        # The same estimate that n_gpu_layers "auto" loads with (chat.worker.offload).
        result = estimate_offload(info.architecture, n_ctx=config.n_ctx if config else 4096,
                                  flash_attn=bool(config and config.flash_attn),
                                  kv_type=config.kv_type if config else "f16", gpus=gpus,
                                  parallel=_parallel(config, info.architecture, gpus))
        row.update(suggested=result.n_gpu_layers, n_layers=result.n_layers, fits=result.fits)
    except Exception:  # the estimate is advice; without it the file can still be loaded
        logger.exception("Estimating %s failed", path)
    return row


def _parallel(config, architecture, gpus) -> int:
    """The slots a file is loaded with: its own setting, else LLMSITE_PARALLEL (0, no engine, is one cache;
    "auto" is what the load would choose on this server)."""
    parallel = config.parallel_setting() if config is not None and config.parallel is not None \
        else settings.LLMSITE_PARALLEL
    if parallel == PARALLEL_AUTO:
        return auto_parallel(architecture, n_ctx=config.n_ctx if config else 4096,
                             flash_attn=bool(config and config.flash_attn),
                             kv_type=config.kv_type if config else "f16", gpus=gpus)
    return max(1, parallel)


def models_context(request, bound_form: ModelLoadForm | None = None) -> dict:
    try:
        paths = list(chat_worker.list_model_files())
    except Exception as exc:
        logger.warning("Could not list the models folder: %s", exc)
        paths = []
        messages.error(request, _("Could not list the models folder: %(error)s") % {"error": exc})
    names = [p.name for p in paths]
    configs = {c.file_name: c for c in ModelConfig.objects.filter(file_name__in=names)}
    gpus = detect_gpus()
    status = worker_status()
    rows = []
    for number, path in enumerate(paths):
        config = configs.get(path.name)
        row = _describe_file(path, config, gpus)
        row["config"] = config
        row["loaded"] = status.get("model_file") in (path.name, str(path))
        if bound_form is not None and bound_form.data.get("file_name") == path.name:
            row["form"] = bound_form
        else:
            row["form"] = ModelLoadForm.for_config(path.name, config, names, number)
        rows.append(row)
    return {
        "rows": rows,
        "gpus": gpus,
        "worker": status,
        "bound_form": bound_form,
        "recent_replies": recent_replies(),
        "models_config": {"statusUrl": reverse("chat:models_status"), "worker": status,
                          "workersUrl": reverse("chat:models_workers") if status.get("mode") == "redis" else None},
    }


@never_cache
@staff_required
@require_GET
def models(request):
    return render(request, "chat/models.html", models_context(request))


@staff_required
@require_POST
def model_load(request):
    try:
        names = [p.name for p in chat_worker.list_model_files()]
    except Exception:
        names = []
    form = ModelLoadForm(request.POST, file_names=names)
    if not form.is_valid():
        return render(request, "chat/models.html", models_context(request, bound_form=form))
    data = form.cleaned_data
    parallel = data["parallel"] if data["parallel"] is not None else settings.LLMSITE_PARALLEL
    pinned = worker_status().get("pinned")
    if pinned and pinned != data["file_name"]:
        messages.error(request, _("%(pinned)s is pinned: unpin it before loading another model.") % {"pinned": pinned})
        return redirect("chat:models")
    with transaction.atomic():
        ModelConfig.objects.filter(is_active=True).exclude(file_name=data["file_name"]).update(is_active=False)
        ModelConfig.objects.update_or_create(
            file_name=data["file_name"],
            defaults={"n_gpu_layers": data["n_gpu_layers"], "n_ctx": data["n_ctx"], "flash_attn": data["flash_attn"],
                      "kv_type": data["kv_type"], "parallel": ParallelField.stored(data["parallel"]),
                      "is_active": True},
        )
    try:
        chat_worker.get_manager().load(
            data["file_name"], n_gpu_layers=data["n_gpu_layers"], n_ctx=data["n_ctx"],
            flash_attn=data["flash_attn"], kv_type=data["kv_type"], parallel=parallel,
        )
    except Exception as exc:  # a refused load is reported on the page; the setting is kept
        logger.warning("Loading %s failed: %s", data["file_name"], exc)
        messages.error(request, _("Could not load %(model)s: %(error)s") % {"model": data["file_name"], "error": exc})
    else:
        messages.success(request, _("Loading %(model)s…") % {"model": data["file_name"]})
        if request.POST.get("then") == "chat":  # the advisor's "open in the chat" button
            return redirect("chat:index")
    return redirect("chat:models")


@staff_required
@require_POST
def model_pin(request):
    """Pin the loaded model (never swapped out for a conversation that uses another), or unpin it."""
    status = worker_status()
    pin = request.POST.get("pin") == "1"
    file_name = request.POST.get("file_name", "")
    if status.get("mode") == "redis":
        messages.error(request, _("With Redis, each worker pins its own model: start it with "
                                  "“manage.py llmworker --model FILE --pin”."))
        return redirect("chat:models")
    if pin and (not file_name or file_name != status.get("model_file")):
        messages.error(request, _("Only the loaded model can be pinned; load %(model)s first.")
                       % {"model": file_name[:255] or "?"})
        return redirect("chat:models")
    with transaction.atomic():
        ModelConfig.objects.filter(pinned=True).update(pinned=False)
        if pin:
            config, _created = ModelConfig.objects.get_or_create(file_name=file_name, defaults={
                "n_gpu_layers": None if status.get("n_gpu_layers_auto") else status.get("n_gpu_layers"),
                "n_ctx": status.get("n_ctx") or 4096, "flash_attn": bool(status.get("flash_attn")),
                "kv_type": status.get("kv_type") or "f16"})
            config.pinned = True
            config.save(update_fields=["pinned", "updated_at"])
    chat_worker.get_manager().pin(file_name if pin else None)
    if pin:
        messages.success(request, _("%(model)s is pinned: it stays loaded.") % {"model": file_name})
    else:
        messages.success(request, _("No model is pinned: each conversation's model is loaded when it is needed."))
    return redirect("chat:models")


@staff_required
@require_POST
def model_unload(request):
    ModelConfig.objects.filter(is_active=True).update(is_active=False)
    ModelConfig.objects.filter(pinned=True).update(pinned=False)
    try:
        chat_worker.get_manager().pin(None)
        chat_worker.get_manager().unload()
    except Exception as exc:
        messages.error(request, _("Could not unload the model: %(error)s") % {"error": exc})
    else:
        messages.success(request, _("The model was unloaded."))
    return redirect("chat:models")


@never_cache
@staff_required
@require_GET
def models_status(request):
    """The worker's state, the GPUs' memory and the downloads, polled by static/js/chat-models.js and
    static/js/downloads.js (the Models page and the advisor answers that started a download)."""
    return JsonResponse({"worker": worker_status(), "gpus": [gpu.as_dict() for gpu in detect_gpus()],
                         "downloads": download_status_list()})


@never_cache
@staff_required
@require_GET
def models_workers(request):
    """The Models page's workers table alone (Redis mode), refreshed by static/js/chat-models.js."""
    return render(request, "chat/_workers.html", {"worker": worker_status()})
