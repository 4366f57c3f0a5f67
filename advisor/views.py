"""The advisor's pages: the question form and its answer, a model's page, the matrix, shared answers."""

import re

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from advisor import charts, page_cache, recommend
from advisor.forms import AdvisorForm, MatrixForm, grouped_gpu_choices
from advisor.hardware import detect_gpus
from advisor.limits import share_budget, spend, work_budget
from advisor.local_files import attach_known_files, attach_local_files
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
    attach_known_files(rows)


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


# Units of the per-address budget (advisor/limits.py) that uncached work costs: the matrix ranks every GPU.
ANSWER_COST, MATRIX_COST = 1, 10


def too_many(request, retry_after: int):
    """429 with Retry-After, and a page that says what happened and when to try again."""
    response = render(request, "advisor/limited.html", {"retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def answer_or_wait(request, form, version):
    """(answer, None), or (None, seconds to wait) when computing it is over this address's budget."""
    data = form.cleaned_data
    answer = page_cache.cached_answer(version, data)
    if answer is not None:
        return answer, None
    retry = spend(request, work_budget(), ANSWER_COST)
    if retry:
        return None, retry
    return page_cache.compute_answer(version, data, form.question()), None


def form_context(form) -> dict:
    """What _form.html draws besides the form: the GPU list (read once per catalog version) and sizes.

    The GPU <select> is written out by the template: Django's widget renders each of its ~150 options through
    a template of its own, which was a quarter of the time of a new answer page.
    """
    placeholder, *groups, sizes = page_cache.per_catalog("gpu-form", lambda: [
        *grouped_gpu_choices(), {g.slug: g.vram_gib for g in GPU.objects.only("slug", "vram_gib")}])
    field = form["gpu"]
    return {"form": form, "gpu_sizes": sizes, "gpu_placeholder": placeholder[1], "gpu_groups": groups,
            "gpu_selected": str(field.value() or "")}


@require_GET
def index(request):
    form = AdvisorForm(request.GET or None)
    if form.is_bound and not form.is_valid():  # the errors, nothing computed or cached
        return render(request, "advisor/index.html", {
            "content": render_to_string("advisor/_index_content.html", form_context(form), request)})
    version = page_cache.catalog_version()
    key = page_cache.page_key("index", version, form.cleaned_data if form.is_bound else None, request,
                              measured=form.is_bound)
    page = page_cache.cached_page(key)
    if page is None:
        context = {**form_context(form), "csrf_token": page_cache.CSRF_PLACEHOLDER}
        summary = ""
        if form.is_bound:
            answer, retry = answer_or_wait(request, form, version)
            if retry:
                return too_many(request, retry)
            question = form.question()
            summary = summary_line(question, answer)
            context.update(question=question, answer=decorate(answer), summary=summary,
                           query=urlencode(question.as_dict()))
        page = {"content": render_to_string("advisor/_index_content.html", context, request), "summary": summary}
        page_cache.remember_page(key, page)
    return render(request, "advisor/index.html", {
        "content": page_cache.with_csrf(page["content"], request), "summary": page["summary"],
        "page_url": request.build_absolute_uri()})


@require_POST
def share(request):
    """The explicit Share button: store this answer as a permanent link (one per question and catalog)."""
    form = AdvisorForm(request.POST)
    if not form.is_valid():
        return render(request, "advisor/index.html", {
            "content": render_to_string("advisor/_index_content.html", form_context(form), request)}, status=400)
    question = form.question()
    version = page_cache.catalog_version()
    existing = SharedAnswer.objects.filter(inputs_key=question.key(), catalog_version=version).first()
    if existing is None:
        retry = spend(request, share_budget())
        if retry:
            return too_many(request, retry)
        answer, retry = answer_or_wait(request, form, version)
        if retry:
            return too_many(request, retry)
        existing = share_for(question, answer)
    messages.success(request, _("This answer has a link of its own now: copy it and send it to anyone."))
    return redirect("advisor:shared", existing.slug)


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
    # Only the row's id here: its stored answer (tens of kB of JSON) is read when the page is not cached.
    share = get_object_or_404(SharedAnswer.objects.only("pk", "slug"), slug=slug)
    version = page_cache.catalog_version()
    # The page shows its own address, so the scheme and host are part of the key.
    place = f"shared:{share.pk}:{request.scheme}://{request.get_host()}"
    key = page_cache.page_key(place, version, None, request, measured=True)
    page = page_cache.cached_page(key)
    if page is None:
        question = recommend.Question(**share.inputs)
        summary = summary_line(question, share.answer)
        context = {
            "share": share, "question": question, "answer": decorate(share.answer), "query": urlencode(share.inputs),
            "summary": summary, "catalog_changed": share.catalog_version != version,
            "today_url": reverse("advisor:index") + "?" + urlencode(share.inputs),
            "share_url": request.build_absolute_uri(), "csrf_token": page_cache.CSRF_PLACEHOLDER,
        }
        page = {"content": render_to_string("advisor/_shared_content.html", context, request), "summary": summary}
        page_cache.remember_page(key, page)
    return render(request, "advisor/shared.html", {
        "content": page_cache.with_csrf(page["content"], request), "summary": page["summary"],
        "page_url": request.build_absolute_uri()})


@require_GET
def model_detail(request, slug):
    catalog = recommend.snapshot()
    model = catalog.by_slug.get(slug)
    if model is None:
        raise Http404(_("No such model in the catalog."))
    form = AdvisorForm(request.GET or None)
    if not (form.is_bound and form.is_valid()):
        return render(request, "advisor/model.html", {**form_context(form), "model": model})
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
        **form_context(form), "model": model, "question": question, "rows": rows, "chosen": chosen, "chart": chart,
        "hardware_name": hardware.name or _("CPU only"), "query": urlencode(question.as_dict()),
    })


@require_GET
def matrix(request):
    form = MatrixForm(request.GET or None)
    valid = form.is_valid()
    version = page_cache.catalog_version()
    key = page_cache.page_key("matrix", version, form.cleaned_data if valid else None, request, measured=False)
    page = page_cache.cached_page(key) if valid or not form.is_bound else None
    if page is None:
        retry = spend(request, work_budget(), MATRIX_COST)
        if retry:
            return too_many(request, retry)
        page = {"content": render_to_string("advisor/_matrix_content.html", matrix_context(form), request)}
        if valid or not form.is_bound:
            page_cache.remember_page(key, page)
    return render(request, "advisor/matrix.html", {"content": page_cache.with_csrf(page["content"], request)})


def matrix_context(form) -> dict:
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
    return {"form": form, "models": models, "table": table, "quant": quant, "ctx": ctx}


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
