"""JSON API (a fixed interface: README.md and /api/advisor/openapi.json describe it)."""

from django.http import JsonResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from advisor import page_cache
from advisor.forms import AdvisorForm
from advisor.limits import spend, work_budget
from advisor.models import GPU, LanguageModel
from advisor.openapi import SPEC

GPU_FIELDS = ["slug", "name", "vendor", "family", "segment", "vram_gib", "memory_bandwidth_gbs", "fp16_tflops",
              "backend", "unified_memory", "gpu_memory_share", "release_year"]
MODEL_FIELDS = ["slug", "name", "family", "arch", "params_b", "active_params_b", "n_layers", "context_length",
                "quality", "quality_benchmark", "quality_estimated", "quality_code", "quality_reasoning",
                "expert_tensor_type", "release_date", "license", "uses"]
RESULT_FIELDS = ["model", "model_name", "quant", "fits", "n_gpu_layers", "n_layers", "offload_ratio", "gpu_bytes",
                 "cpu_bytes", "weights_bytes", "kv_cache_bytes", "compute_buffer_bytes", "overhead_bytes",
                 "decode_tokens_per_s", "prompt_tokens_per_s", "speedup_vs_cpu", "quality", "score", "n_ctx",
                 "n_cpu_moe", "placement", "quality_used", "quality_kind", "quality_estimated", "quant_cost",
                 "speed_factor", "low_bit", "ram_reserve_bytes"]


@require_GET
def gpus(request):
    return JsonResponse({"gpus": list(GPU.objects.values(*GPU_FIELDS))})


@require_GET
def models(request):
    return JsonResponse({"models": list(LanguageModel.objects.values(*MODEL_FIELDS))})


def _rows(rows):
    return [{**{key: row[key] for key in RESULT_FIELDS}, **({"runners_up": row["runners_up"]} if "runners_up" in row
                                                             else {})} for row in rows]


@require_GET
def recommendations(request):
    form = AdvisorForm(request.GET)
    if not form.is_valid():
        errors = {field: [str(m) for m in messages] for field, messages in form.errors.items()}
        if "__all__" in errors:
            errors["gpu"] = errors.pop("__all__")
        return JsonResponse({"errors": errors}, status=400)
    question = form.question()
    version = page_cache.catalog_version()
    answer = page_cache.cached_answer(version, form.cleaned_data)
    if answer is None:
        retry = spend(request, work_budget())
        if retry:
            response = JsonResponse({"error": f"Too many new questions from this address; try again in {retry} s."},
                                    status=429)
            response["Retry-After"] = str(retry)
            return response
        answer = page_cache.compute_answer(version, form.cleaned_data, question)
    return JsonResponse({
        "inputs": question.as_dict(),
        "catalog_version": answer["catalog_version"],
        "results": _rows(answer["results"]),
        "almost": _rows(answer["almost"]),
        "alternatives": _rows(answer["alternatives"]),
        # The answer page for these inputs; its Share button makes a permanent link (nothing is stored here).
        "share_url": request.build_absolute_uri(reverse("advisor:index") + "?" + urlencode(question.as_dict())),
    })


@require_GET
def openapi(request):
    return JsonResponse(SPEC)
