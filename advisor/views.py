"""The advisor's pages: the question form and its answer, a model's page, the matrix, shared answers.

Views parse the input, call the advisor's modules (recommend, picks, decorate, model_page, matrix) and render.
"""


from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from advisor import matrix as matrix_table
from advisor import page_cache, recommend
from advisor.decorate import decorate_rows
from advisor.forms import AdvisorForm, MatrixForm, grouped_gpu_choices
from advisor.hardware import detect_gpus
from advisor.limits import share_budget, spend, work_budget
from advisor.model_page import model_options
from advisor.models import GPU, SharedAnswer
from advisor.picks import picks, summary_line
from advisor.shares import share_for

GIB = recommend.GIB
# The answer page draws its picks and this many ranked rows; "Show all" draws the rest.
TOP_ROWS = 10
def show_all(request) -> bool:
    return request.GET.get("all") == "1"


def answer_context(answer: dict, everything: bool) -> dict:
    """What _answer.html draws: the picks, the shown rows (decorated), and how many are left for "Show all"."""
    results = answer["results"]
    shown = results if everything else results[:TOP_ROWS]
    lead = picks(results)
    # What almost fits, and what would with a shorter context: with "Show all", or when nothing runs.
    extra = answer["almost"] + answer["alternatives"] if everything or not results else []
    capacity = answer["hardware"]["vram_bytes"]
    decorate_rows([*{id(r): r for r in [*(p["row"] for p in lead), *shown, *extra]}.values()], capacity)
    return {"answer": answer, "picks": lead, "shown": shown, "everything": everything,
            "show_extra": bool(extra),
            "hidden_count": len(results) - len(shown) + (len(answer["almost"]) + len(answer["alternatives"])
                                                         if not extra else 0)}


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
    """What _form.html draws besides the form: the GPU list (drawn once per catalog version) and sizes.

    The GPU <select>'s ~170 options are drawn once per catalog version and language, and the chosen one is
    marked in that HTML: drawing them for every page was a quarter of the time of a new answer page.
    """
    placeholder, *groups, sizes = page_cache.per_catalog("gpu-form", lambda: [
        *grouped_gpu_choices(), {g.slug: g.vram_gib for g in GPU.objects.only("slug", "vram_gib")}])
    options = page_cache.per_catalog(f"gpu-options:{get_language()}", lambda: render_to_string(
        "advisor/_gpu_options.html", {"gpu_groups": groups}))
    selected = str(form["gpu"].value() or "")
    if selected and selected in sizes:  # a catalog slug: letters, digits and hyphens
        options = options.replace(f'<option value="{selected}">', f'<option value="{selected}" selected>', 1)
    return {"form": form, "gpu_sizes": sizes, "gpu_placeholder": placeholder[1], "gpu_options": mark_safe(options),
            "gpu_selected": selected}


@require_GET
def index(request):
    form = AdvisorForm(request.GET or None)
    if form.is_bound and not form.is_valid():  # the errors, nothing computed or cached
        return render(request, "advisor/index.html", {
            "content": render_to_string("advisor/_index_content.html", form_context(form), request)})
    version = page_cache.catalog_version()
    everything = show_all(request)
    key = page_cache.page_key("index-all" if everything else "index", version,
                              form.cleaned_data if form.is_bound else None, request, measured=form.is_bound)
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
            context.update(answer_context(answer, everything), question=question, summary=summary,
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


@require_GET
def shared(request, slug):
    # Only the row's id here: its stored answer (tens of kB of JSON) is read when the page is not cached.
    share = get_object_or_404(SharedAnswer.objects.only("pk", "slug"), slug=slug)
    version = page_cache.catalog_version()
    everything = show_all(request)
    # The page shows its own address, so the scheme and host are part of the key.
    place = f"shared{'-all' if everything else ''}:{share.pk}:{request.scheme}://{request.get_host()}"
    key = page_cache.page_key(place, version, None, request, measured=True)
    page = page_cache.cached_page(key)
    if page is None:
        question = recommend.Question(**share.inputs)
        summary = summary_line(question, share.answer)
        share_url = request.build_absolute_uri(reverse("advisor:shared", args=[share.slug]))
        context = {
            **answer_context(share.answer, everything),
            "share": share, "question": question, "query": urlencode(share.inputs),
            "summary": summary, "catalog_changed": share.catalog_version != version,
            "today_url": reverse("advisor:index") + "?" + urlencode(share.inputs),
            "share_url": share_url, "csrf_token": page_cache.CSRF_PLACEHOLDER,
        }
        page = {"content": render_to_string("advisor/_shared_content.html", context, request), "summary": summary}
        page_cache.remember_page(key, page)
    return render(request, "advisor/shared.html", {
        "content": page_cache.with_csrf(page["content"], request), "summary": page["summary"],
        "page_url": request.build_absolute_uri()})


@require_GET
def model_detail(request, slug):
    model = page_cache.snapshot().by_slug.get(slug)
    if model is None:
        raise Http404(_("No such model in the catalog."))
    form = AdvisorForm(request.GET or None)
    if not (form.is_bound and form.is_valid()):
        return render(request, "advisor/model.html", {**form_context(form), "model": model})
    question = form.question()
    options = model_options(model, question)
    return render(request, "advisor/model.html", {
        **form_context(form), "model": model, "question": question, "rows": options.rows,
        "chosen": options.recommended, "chart": options.chart, "hardware_name": options.hardware_name or _("CPU only"),
        "query": urlencode(question.as_dict()),
    })


@require_GET
def matrix(request):
    form = MatrixForm(request.GET or None)
    valid = form.is_valid()
    version = page_cache.catalog_version()
    key = page_cache.page_key("matrix", version, form.cleaned_data if valid else None, request, measured=False)
    page = page_cache.cached_page(key) if valid or not form.is_bound else None
    if page is None:
        filters = form.cleaned_data if valid else {}
        quant = filters.get("quant") or matrix_table.DEFAULT_QUANT
        ctx = filters.get("ctx") or recommend.DEFAULT_CTX
        if page_cache.store().get(f"matrix:{version}:{quant}:{ctx}") is None:  # only new tables cost budget
            retry = spend(request, work_budget(), MATRIX_COST)
            if retry:
                return too_many(request, retry)
        table = matrix_table.grouped(quant, ctx, filters.get("vendor") or "", filters.get("min_vram"),
                                     filters.get("max_vram"))
        context = {"form": form, "quant": quant, "ctx": ctx, **table}
        page = {"content": render_to_string("advisor/_matrix_content.html", context, request)}
        if valid or not form.is_bound:
            page_cache.remember_page(key, page)
    return render(request, "advisor/matrix.html", {"content": page_cache.with_csrf(page["content"], request)})


@require_GET
def server_gpu(request):
    """Fill the form with this server's own GPU (NVML); say so when there is none."""
    gpus = detect_gpus()
    if not gpus:
        messages.info(request, _("No NVIDIA GPU was found on this server, so nothing was filled in."))
        return redirect("advisor:index")
    found = gpus[0]
    params = {"vram_gib": round(found.vram_free_bytes / GIB, 1), "ctx": recommend.DEFAULT_CTX}
    match = GPU.objects.matching_name(found.name)
    if match:
        params["gpu"] = match.slug
    messages.success(request, _("Using this server's %(name)s with %(free).1f GiB free of %(total).1f GiB.") % {
        "name": found.name, "free": found.vram_free_bytes / GIB, "total": found.vram_total_bytes / GIB})
    return redirect(reverse("advisor:index") + "?" + urlencode(params))
