"""From a question ("this GPU, this much VRAM and RAM, this context") to ranked answers from the catalog.

The catalog rows become estimator inputs once per catalog version (`CatalogSnapshot`), so ranking every
model and quantization for one GPU is only arithmetic (bench/advisor_speed.py times it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from django.db.models import Count, Max

from advisor import estimate as est
from advisor import quant as quant_types
from advisor.models import GPU, KnownFile, LanguageModel, Quantization

GIB = est.GIB
# Quantizations with a bias term on q/k/v, or a norm on q and k, have a few extra small tensors.
ATTN_BIAS_ARCHS = {"qwen2", "qwen2moe"}
QK_NORM_ARCHS = {"qwen3", "qwen3moe", "gemma3", "gemma3n", "olmo2"}
USES = ("chat", "code", "reasoning", "long")
DEFAULT_CTX = 8192
DEFAULT_RAM_GIB = 32
# About reading speed: people read 4-8 words a second, a word is about 1.3 tokens.
DEFAULT_MIN_SPEED = 8.0
# Quality scores are only comparable on one benchmark; models scored on another rank after these.
RANKING_BENCHMARK = "MMLU-Pro"


@dataclass(frozen=True)
class Question:
    gpu: str | None = None          # catalog slug
    vram_gib: float | None = None   # None: the GPU's largest size
    ram_gib: float = DEFAULT_RAM_GIB
    ctx: int = DEFAULT_CTX
    use: str = ""
    min_speed: float = DEFAULT_MIN_SPEED

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def catalog_version() -> str:
    """Changes whenever a catalog row is added, edited or deleted."""
    parts = [
        f"{agg['n']}:{agg['last']}"
        for agg in (model.objects.aggregate(n=Count("pk"), last=Max("updated_at")) for model in (GPU, LanguageModel))
    ]
    # Quantizations and known files have no edit time; they are few, so their rows themselves are hashed.
    parts.append(repr(sorted(Quantization.objects.values_list("name", "bits_per_weight", "kld", "recommended"))))
    parts.append(repr(sorted(KnownFile.objects.values_list("model_id", "quant_id", "size_bytes"))))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def architecture_for(model: LanguageModel, quant_name: str | None = None, known_size: int | None = None):
    """The estimator's input for a catalog model; a measured file size rescales the computed tensor sizes."""
    arch = est.Architecture(
        n_layer=model.n_layers, n_embd=model.n_embd, n_head=model.n_head, n_head_kv=model.n_head_kv,
        n_ff=model.n_ff, n_vocab=model.n_vocab, head_dim_k=model.head_dim, head_dim_v=model.head_dim_v or 0,
        context_length=model.context_length, sliding_window=model.sliding_window or 0,
        swa_pattern=model.swa_pattern or 0, n_expert=model.n_expert, n_expert_used=model.n_expert_used,
        n_ff_expert=model.n_ff_expert or 0, n_expert_shared=model.n_shared_expert,
        n_layer_dense_lead=model.n_dense_layers, tied_embeddings=model.tied_embeddings,
        attn_bias=model.arch in ATTN_BIAS_ARCHS, qk_norm=model.arch in QK_NORM_ARCHS, arch=model.arch,
        expert_type=model.expert_tensor_type, name=model.name,
    )
    if not known_size or not quant_name:
        return arch
    computed = arch.sizes(quant_name)
    scale = known_size / computed.total
    return replace(
        arch, quant=quant_name,
        layer_bytes=tuple(int(b * scale) for b in computed.layer_bytes),
        layer_expert_bytes=tuple(int(b * scale) for b in computed.layer_expert_bytes),
        token_embd_bytes=int(computed.token_embd_bytes * scale),
        output_bytes=int(computed.output_bytes * scale),
        other_bytes=computed.other_bytes,
    )


def quality_after_quant(quality: float, kld: float | None) -> float:
    """Ranking score: the model's benchmark score, lowered by the quantization's divergence from F16.

    A heuristic, not a measurement: half the mean KL divergence is taken off as a share, capped at 50%
    (Q4_K_M loses about 1.5%, Q2_K about 22%).
    """
    return quality * (1 - min(0.5, (kld or 0) / 2))


@dataclass
class ModelEntry:
    slug: str
    name: str
    family: str
    quality: float
    quality_benchmark: str
    uses: list
    context_length: int
    params_b: float
    active_params_b: float
    is_moe: bool
    archs: dict = field(default_factory=dict)  # quant name -> Architecture (with measured size when known)
    measured: set = field(default_factory=set)  # quants whose size is a measured file size


@dataclass
class QuantEntry:
    name: str
    bits_per_weight: float
    kld: float | None
    recommended: bool


class CatalogSnapshot:
    """Everything ranking needs, read from the database once per catalog version."""

    def __init__(self):
        self.version = catalog_version()
        self.quants = [
            QuantEntry(q.name, q.bits_per_weight, q.kld, q.recommended)
            for q in Quantization.objects.order_by("-bits_per_weight")
            if _known_quant(q.name)
        ]
        known = {(k.model_id, k.quant.name): k.size_bytes for k in KnownFile.objects.select_related("quant")}
        self.models = []
        for m in LanguageModel.objects.all():
            entry = ModelEntry(m.slug, m.name, m.family, m.quality, m.quality_benchmark, list(m.uses or []),
                               m.context_length,
                               m.params_b, m.active_params_b, m.is_moe)
            for q in self.quants:
                size = known.get((m.pk, q.name))
                entry.archs[q.name] = architecture_for(m, q.name, size)
                if size:
                    entry.measured.add(q.name)
            self.models.append(entry)
        self.by_slug = {m.slug: m for m in self.models}


def _known_quant(name: str) -> bool:
    try:
        quant_types.normalize_name(name)
    except ValueError:
        return False
    return True


_SNAPSHOT: CatalogSnapshot | None = None


def snapshot() -> CatalogSnapshot:
    global _SNAPSHOT
    if _SNAPSHOT is None or _SNAPSHOT.version != catalog_version():
        _SNAPSHOT = CatalogSnapshot()
    return _SNAPSHOT


def hardware_for(gpu: GPU | None, vram_gib: float | None, ram_gib: float) -> est.Hardware:
    ram = int(ram_gib * GIB)
    if gpu is None and not vram_gib:
        return est.Hardware(backend="cpu", ram_total=ram)
    if gpu is None:  # only a VRAM size: a typical current NVIDIA card's speed
        return est.Hardware(backend="cuda", vram_total=int(vram_gib * GIB), gpu_bandwidth=450e9,
                            gpu_fp16_flops=60e12, ram_total=ram, name=f"{vram_gib:g} GiB GPU")
    vram = vram_gib or max(gpu.vram_gib)
    if gpu.unified_memory:
        # On Apple Silicon the "VRAM" is the Mac's memory, which the GPU shares with everything else.
        return est.Hardware(backend=gpu.backend, ram_total=int(vram * GIB), unified_memory=True,
                            gpu_bandwidth=gpu.memory_bandwidth_gbs * 1e9, gpu_fp16_flops=gpu.fp16_tflops * 1e12,
                            ram_bandwidth=gpu.memory_bandwidth_gbs * 1e9, name=gpu.name)
    return est.Hardware(backend=gpu.backend, vram_total=int(vram * GIB), gpu_bandwidth=gpu.memory_bandwidth_gbs * 1e9,
                        gpu_fp16_flops=gpu.fp16_tflops * 1e12, ram_total=ram, name=gpu.name)


def result_row(model: ModelEntry, q: QuantEntry, estimate: est.Estimate) -> dict:
    row = estimate.to_dict(explain=False)
    row.update(
        model=model.slug, model_name=model.name, family=model.family, quant=q.name,
        bits_per_weight=q.bits_per_weight, kld=q.kld, quality=model.quality,
        quality_benchmark=model.quality_benchmark, comparable=model.quality_benchmark == RANKING_BENCHMARK,
        score=round(quality_after_quant(model.quality, q.kld), 2), measured_size=q.name in model.measured,
        context_length=model.context_length, params_b=model.params_b, active_params_b=model.active_params_b,
    )
    return row


def runs(row, min_speed: float) -> bool:
    """Loads (on the GPU, split, or on the CPU) and decodes at least `min_speed` tokens/s."""
    fits, speed = (row.fits, row.decode_tokens_per_s) if isinstance(row, est.Ranked) else (
        row["fits"], row["decode_tokens_per_s"])
    return fits in ("full", "partial", "cpu") and speed >= min_speed


def runtime_for(model: ModelEntry, hardware: est.Hardware, ctx: int) -> est.Runtime:
    # Flash attention on wherever there is a GPU: the chat worker loads models the same way.
    return est.Runtime(n_ctx=min(ctx, model.context_length), flash_attn=hardware.has_gpu)


def evaluate(model: ModelEntry, q: QuantEntry, hardware: est.Hardware, ctx: int) -> dict:
    """The full answer for one model and quantization (memory breakdown, both speeds)."""
    return result_row(model, q, est.estimate(model.archs[q.name], q.name, runtime_for(model, hardware, ctx), hardware))


def model_rows(model: ModelEntry, hardware: est.Hardware, ctx: int, quants) -> list[dict]:
    return [evaluate(model, q, hardware, ctx) for q in quants]


def placements(models, quants, hardware: est.Hardware, ctx: int) -> dict:
    """(model slug, quant name) -> est.Ranked for every pair: placement and decode speed, no more.

    est.rank() takes one runtime, so models are grouped by the context they would run with.
    """
    by_runtime = {}
    for model in models:
        pairs = by_runtime.setdefault(runtime_for(model, hardware, ctx), [])
        pairs.extend((model.archs[q.name], q.name) for q in quants)
    owner = {id(model.archs[q.name]): model.slug for model in models for q in quants}
    placed = {}
    for runtime, pairs in by_runtime.items():
        for row in est.rank(pairs, runtime, hardware, include_no=True):
            placed[(owner[id(row.architecture)], row.quant)] = row
    return placed


def best_quant(model: ModelEntry, quants, placed: dict, min_speed: float):
    """Highest bits first: the first that runs entirely on the GPU fast enough; without one, the first that runs
    fast enough with part of the model in RAM. Returns (best or None, fastest that loads or None)."""
    first_running = fastest = None
    for q in quants:
        row = placed[(model.slug, q.name)]
        if runs(row, min_speed):
            if row.fits == "full":
                return q, None
            first_running = first_running or q
        elif row.fits != "no" and (fastest is None or row.decode_tokens_per_s > placed[(model.slug, fastest.name)]
                                   .decode_tokens_per_s):
            fastest = q
    return first_running, fastest


def answer(question: Question, catalog: CatalogSnapshot | None = None) -> dict:
    """Ranked results, what almost fits, and what would fit with a shorter context."""
    catalog = catalog or snapshot()
    gpu = GPU.objects.filter(slug=question.gpu).first() if question.gpu else None
    hardware = hardware_for(gpu, question.vram_gib, question.ram_gib)
    quants = [q for q in catalog.quants if q.recommended]
    models = [m for m in catalog.models if not question.use or question.use in m.uses]
    placed = placements(models, quants, hardware, question.ctx)
    results, almost, alternatives = [], [], []
    for model in models:
        best, fastest = best_quant(model, quants, placed, question.min_speed)
        if best:
            results.append(evaluate(model, best, hardware, question.ctx))
        elif fastest and placed[(model.slug, fastest.name)].decode_tokens_per_s >= 0.5 * question.min_speed:
            almost.append(evaluate(model, fastest, hardware, question.ctx))
        elif len(alternatives) < 8:
            shorter = _with_shorter_context(model, quants, hardware, question)
            if shorter:
                alternatives.append(shorter)
    order = lambda r: (not r["comparable"], -r["score"], -r["decode_tokens_per_s"])  # noqa: E731
    results.sort(key=order)
    almost.sort(key=order)
    alternatives.sort(key=order)
    return {
        "catalog_version": catalog.version,
        "hardware": {"name": hardware.name or "CPU only", "backend": hardware.backend,
                     "vram_bytes": hardware.gpu_budget_total, "ram_bytes": hardware.ram_total},
        "results": results,
        "almost": almost[:8],
        "alternatives": alternatives,
    }


def _with_shorter_context(model, quants, hardware, question) -> dict | None:
    ctx = min(question.ctx, model.context_length) // 2
    while ctx >= 2048:
        best, _fastest = best_quant(model, quants, placements([model], quants, hardware, ctx), question.min_speed)
        if best:
            return evaluate(model, best, hardware, ctx)
        ctx //= 2
    return None


def offload_curve(model: ModelEntry, q: QuantEntry, hardware: est.Hardware, ctx: int, points: int = 11) -> list:
    """Decode tokens/s at evenly spaced GPU-offload shares (0% .. 100% of the layers)."""
    n_layers = model.archs[q.name].n_layer + 1
    runtime = est.Runtime(n_ctx=min(ctx, model.context_length), flash_attn=hardware.has_gpu)
    # Speed at an offload that would not fit is still drawn: the chart shows where the limit is.
    roomy = replace(hardware, vram_total=max(hardware.vram_total, 1 << 50), vram_free=None)
    limit = est.estimate(model.archs[q.name], q.name, runtime, hardware).n_gpu_layers
    curve = []
    for i in range(points):
        layers = round(n_layers * i / (points - 1))
        e = est.estimate(model.archs[q.name], q.name, replace(runtime, n_gpu_layers=layers), roomy)
        curve.append({"offload": i / (points - 1), "n_gpu_layers": layers, "tokens_per_s": e.decode_tokens_per_s,
                      "fits": layers <= limit})
    return curve
