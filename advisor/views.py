"""The advisor's pages: the question form and its answer, a model's page, the matrix, shared answers."""

import re

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from advisor import charts, recommend
from advisor.forms import AdvisorForm, MatrixForm
from advisor.hardware import detect_gpus
from advisor.local_files import attach_local_files
from advisor.models import GPU, Measurement, SharedAnswer
from advisor.shares import share_for

GIB = recommend.GIB


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def measurements_by_model(slugs_and_names) -> dict:
    """This server's latest measurement of each catalog model, matched by name (GGUF general.name)."""
    wanted = {_normalise(name): slug for slug, name in slugs_and_names}
    found = {}
    for measurement in Measurement.objects.exclude(decode_tokens_per_s=None)[:500]:
        slug = wanted.get(_normalise(measurement.model_name))
        if slug and slug not in found:
            found[slug] = measurement
    return found


def _attach_local(rows):
    attach_local_files(rows, recommend.snapshot(), settings.MODELS_DIR)


def _attach_measurements(rows):
    measured = measurements_by_model((row["model"], row["model_name"]) for row in rows)
    for row in rows:
        row["measurement"] = measured.get(row["model"])


def _bars(row, capacity_bytes):
    """Widths (percent of the card's memory) of weights, KV cache, compute buffer and overhead on the GPU."""
    capacity = max(capacity_bytes, row["gpu_bytes"], 1)
    parts = [
        ("weights", row["weights_gpu_bytes"]),
        ("kv", row["kv_gpu_bytes"]),
        ("compute", row["compute_buffer_bytes"] if row["n_gpu_layers"] else 0),
        ("overhead", row["overhead_bytes"]),
    ]
    return [(name, round(100 * value / capacity, 1), value) for name, value in parts]


def decorate(answer: dict) -> dict:
    capacity = answer["hardware"]["vram_bytes"]
    for key in ("results", "almost", "alternatives"):
        for row in answer[key]:
            row["bars"] = _bars(row, capacity)
            row["offload_percent"] = round(100 * row["offload_ratio"])
    _attach_measurements(answer["results"])
    _attach_local(answer["results"])
    return answer


@require_GET
def index(request):
    form = AdvisorForm(request.GET or None)
    context = {"form": form, "gpu_sizes": {g.slug: g.vram_gib for g in GPU.objects.only("slug", "vram_gib")}}
    if form.is_bound and form.is_valid():
        question = form.question()
        answer = recommend.answer(question)
        share = share_for(question, answer)
        context.update(question=question, answer=decorate(answer), share=share, query=urlencode(question.as_dict()),
                       share_url=request.build_absolute_uri(reverse("advisor:shared", args=[share.slug])),
                       summary=summary_line(question, answer))
    return render(request, "advisor/index.html", context)


def summary_line(question, answer) -> str:
    """One line for link previews: 'RTX 4060 8 GB: Qwen3 8B Q4_K_M, 100% on GPU, ~40 tok/s'."""
    gpu = GPU.objects.filter(slug=question.gpu).first() if question.gpu else None
    head = f"{gpu.name if gpu else _('GPU')} {question.vram_gib:g} GB" if question.vram_gib else _("CPU only")
    if not answer["results"]:
        return _("%(head)s: no model in the catalog runs fast enough") % {"head": head}
    best = answer["results"][0]
    return _("%(head)s: %(model)s %(quant)s, %(offload)s%% on GPU, ~%(speed)s tok/s") % {
        "head": head, "model": best["model_name"], "quant": best["quant"],
        "offload": round(100 * best["offload_ratio"]), "speed": round(best["decode_tokens_per_s"]),
    }


@require_GET
def shared(request, slug):
    share = get_object_or_404(SharedAnswer, slug=slug)
    question = recommend.Question(**share.inputs)
    current = recommend.catalog_version()
    context = {
        "share": share, "question": question, "answer": decorate(share.answer), "query": urlencode(share.inputs),
        "summary": summary_line(question, share.answer),
        "catalog_changed": share.catalog_version != current,
        "today_url": reverse("advisor:index") + "?" + urlencode(share.inputs),
        "share_url": request.build_absolute_uri(),
    }
    return render(request, "advisor/shared.html", context)


@require_GET
def model_detail(request, slug):
    catalog = recommend.snapshot()
    model = catalog.by_slug.get(slug)
    if model is None:
        raise Http404(_("No such model in the catalog."))
    form = AdvisorForm(request.GET or None)
    if not (form.is_bound and form.is_valid()):
        return render(request, "advisor/model.html", {"model": model, "form": form})
    question = form.question()
    gpu = GPU.objects.filter(slug=question.gpu).first() if question.gpu else None
    hardware = recommend.question_hardware(question, gpu)
    rows = recommend.model_rows(model, hardware, question.ctx, catalog.quants, question.runtime, question.use,
                                question.min_speed)
    capacity = hardware.gpu_budget_total
    for row in rows:
        row["bars"] = _bars(row, capacity)
        row["offload_percent"] = round(100 * row["offload_ratio"])
        row["runs"] = recommend.runs(row, question.min_speed)
    chosen = next((r for r in rows if r["runs"]), rows[-1] if rows else None)
    chart = None
    if chosen:
        q = next(q for q in catalog.quants if q.name == chosen["quant"])
        chart = charts.offload_chart(recommend.offload_curve(model, q, hardware, question.ctx,
                                                             runtime=question.runtime))
    _attach_measurements(rows)
    _attach_local(rows)
    return render(request, "advisor/model.html", {
        "model": model, "form": form, "question": question, "rows": rows, "chosen": chosen, "chart": chart,
        "hardware_name": hardware.name or _("CPU only"), "query": urlencode(question.as_dict()),
    })


@require_GET
def matrix(request):
    form = MatrixForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    quant_name = (filters.get("quant") or "Q4_K_M").upper()
    ctx = filters.get("ctx") or recommend.DEFAULT_CTX
    catalog = recommend.snapshot()
    quant = next((q for q in catalog.quants if q.name == quant_name), None)
    if quant is None:
        if form.is_bound:
            form.add_error("quant", _("Unknown quantization %(q)s.") % {"q": quant_name})
        quant = next(q for q in catalog.quants if q.name == "Q4_K_M")
    gpus = GPU.objects.all()
    if filters.get("vendor"):
        gpus = gpus.by_vendor(filters["vendor"])
    if filters.get("min_vram") is not None:
        gpus = gpus.with_vram_at_least(filters["min_vram"])
    if filters.get("max_vram") is not None:
        gpus = gpus.filter(max_vram_gib__lte=filters["max_vram"])
    models = sorted(catalog.models, key=lambda m: m.params_b)
    cpu_only = recommend.hardware_for(None, None, recommend.DEFAULT_RAM_GIB)
    cpu_speed = {slug: row.decode_tokens_per_s
                 for (slug, _q), row in recommend.placements(models, [quant], cpu_only, ctx).items()}
    table = []
    for gpu in gpus:
        hardware = recommend.hardware_for(gpu, None, recommend.DEFAULT_RAM_GIB)
        placed = recommend.placements(models, [quant], hardware, ctx)
        cells = []
        for model in models:
            row = placed[(model.slug, quant.name)]
            n_layers = model.archs[quant.name].n_layer + 1
            cells.append({
                # Like LM Studio's GPU-offload slider: the share of layers on the GPU.
                "offload": round(100 * row.n_gpu_layers / n_layers) if row.fits != "no" else None,
                "speedup": row.decode_tokens_per_s / cpu_speed[model.slug] if cpu_speed.get(model.slug) else None,
                "fits": row.fits, "tokens_per_s": row.decode_tokens_per_s,
            })
        table.append({"gpu": gpu, "cells": cells})
    return render(request, "advisor/matrix.html", {
        "form": form, "models": models, "table": table, "quant": quant, "ctx": ctx})


@require_GET
def server_gpu(request):
    """Fill the form with this server's own GPU (NVML); say so when there is none."""
    gpus = detect_gpus()
    if not gpus:
        messages.info(request, _("No NVIDIA GPU was found on this server, so nothing was filled in."))
        return redirect("advisor:index")
    found = gpus[0]
    params = {"vram_gib": round(found.vram_free_bytes / GIB, 1), "ctx": recommend.DEFAULT_CTX}
    match = match_gpu_name(found.name)
    if match:
        params["gpu"] = match.slug
    messages.success(request, _("Using this server's %(name)s with %(free).1f GiB free of %(total).1f GiB.") % {
        "name": found.name, "free": found.vram_free_bytes / GIB, "total": found.vram_total_bytes / GIB})
    return redirect(reverse("advisor:index") + "?" + urlencode(params))


def match_gpu_name(name: str):
    """The catalog GPU whose name is the longest one contained in `name` (NVML or WebGL renderer text)."""
    target = _normalise(name)
    best = None
    for gpu in GPU.objects.only("slug", "name"):
        key = _normalise(gpu.name.replace("NVIDIA ", "").replace("AMD ", "").replace("Intel ", ""))
        if key and key in target and (best is None or len(key) > len(best[0])):
            best = (key, gpu)
    return best[1] if best else None
