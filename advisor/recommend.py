"""From a question ("this GPU, this much VRAM and RAM, this context") to ranked answers from the catalog.

The catalog rows become estimator inputs once per catalog version (`CatalogSnapshot`), so ranking every
model and quantization for one GPU is only arithmetic (bench/advisor_speed.py times it).
"""

from __future__ import annotations

import hashlib
import json
import math
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
# Above this, a faster answer is no better to read: skimming speed (about 15 words a second).
COMFORTABLE_SPEED = 20.0
# Share of the score speed moves between the floor and COMFORTABLE_SPEED.
SPEED_WEIGHT = 0.10
# The most of a model's quality a quantization's divergence can take away (the KLD rule below).
MAX_QUANT_COST = 0.5
# 1- and 2-bit quantizations: offered only where nothing better meets the speed floor.
LOW_BIT_BPW = 3.0
LOW_BIT_NAMES = {"Q2_K", "Q2_K_S"}
# The estimate rule's slope: quality points per doubling of effective size (see estimated_quality).
ESTIMATE_SLOPE = 4.0
RUNTIMES = est.RUNTIMES
DEFAULT_RUNTIME = est.DEFAULT_RUNTIME_NAME


@dataclass(frozen=True)
class Question:
    gpu: str | None = None          # catalog slug
    vram_gib: float | None = None   # None: the GPU's largest size
    ram_gib: float = DEFAULT_RAM_GIB
    ctx: int = DEFAULT_CTX
    use: str = ""
    min_speed: float = DEFAULT_MIN_SPEED
    runtime: str = DEFAULT_RUNTIME
    ram_reserve_gib: float | None = None   # None: max(4 GiB, 15% of the RAM) (estimate.default_ram_reserve)

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


# --------------------------------------------------------------------------------------------------
# The ranking rule (README: "How the advisor ranks").  One number per option, on the catalog's quality scale:
#
#     score = quality for the use  x  (1 - quantization cost)  x  speed factor
#
# - quality: the model's figure on the one scale (`quality`), or its coding / reasoning figure for the uses
#   "code" / "reasoning" where the catalog has one; a model without a sourced figure gets estimated_quality().
# - quantization cost = min(MAX_QUANT_COST, KLD / 2), the quant's mean KL divergence against F16 measured by
#   llama.cpp (Quantization.kld): Q8_0 0.07%, Q4_K_M 1.6%, Q3_K_M 5.1%, Q2_K 22%, IQ2_XXS 41%.  Only the
#   tensors the quant changes pay it: a model that keeps its experts in their native type (gpt-oss, MXFP4)
#   pays on its other tensors only, and its native file pays nothing.
# - speed factor = 1 - SPEED_WEIGHT + SPEED_WEIGHT * s, s = ln(speed / floor) / ln(comfortable / floor)
#   clipped to 0..1, comfortable = max(COMFORTABLE_SPEED, 1.5 x floor): at the floor an option keeps 90% of
#   its quality, from a comfortable reading speed on 100%.  Below the floor an option is not offered.
# - 1- and 2-bit quants (under LOW_BIT_BPW bits a weight, or Q2_K) compete only when no better quant of the
#   model meets the floor, and are marked low_bit.
# Every real placement of every quant (all on the GPU, layers split, experts in RAM) is scored by the same
# rule; the best is the model's answer, the next ones its runners-up.


def is_low_bit(name: str, bits_per_weight: float) -> bool:
    return bits_per_weight < LOW_BIT_BPW or name in LOW_BIT_NAMES


def quant_cost(kld: float | None, native_share: float = 0.0, native: bool = False) -> float:
    """Share of quality a quantization takes away: KLD / 2, at most MAX_QUANT_COST, on the tensors it changes."""
    if native:
        return 0.0
    return min(MAX_QUANT_COST, (kld or 0.0) / 2) * (1.0 - native_share)


def speed_factor(speed: float, floor: float) -> float:
    floor = max(floor, 1.0)
    comfortable = max(COMFORTABLE_SPEED, 1.5 * floor)
    if speed <= floor:
        share = 0.0
    elif speed >= comfortable:
        share = 1.0
    else:
        share = math.log(speed / floor) / math.log(comfortable / floor)
    return 1.0 - SPEED_WEIGHT + SPEED_WEIGHT * share


def quality_for_use(model, use: str) -> tuple[float, str]:
    """(figure, which one): the coding or reasoning figure for those uses where there is one."""
    if use == "code" and model.quality_code is not None:
        return model.quality_code, "code"
    if use == "reasoning" and model.quality_reasoning is not None:
        return model.quality_reasoning, "reasoning"
    return model.quality, "general"


def effective_size(params_b: float, active_params_b: float) -> float:
    """Billions of parameters a model's quality goes with: sqrt(total x active) (= total for dense models)."""
    return math.sqrt(params_b * active_params_b)


def estimated_quality(target, sourced) -> float:
    """The documented estimate for a model without a sourced figure (README: "How the advisor ranks").

    Within its family: interpolate in log2(effective size) between the nearest sourced sizes below and
    above; with sourced sizes on one side only, the nearest one plus ESTIMATE_SLOPE points per doubling; with
    none in the family, the median over all sourced models of (quality - slope x log2 size), plus the slope
    x log2 of its own size.  Clamped to 1..100, one decimal.
    """
    size = effective_size(target.params_b, target.active_params_b)
    family = [m for m in sourced if m.family == target.family]

    def groups(members):
        out = {}
        for m in members:
            out.setdefault(effective_size(m.params_b, m.active_params_b), []).append(m.quality)
        return {e: sum(q) / len(q) for e, q in out.items()}

    if family:
        g = groups(family)
        below = [e for e in g if e <= size]
        above = [e for e in g if e >= size]
        if below and above:
            lo, hi = max(below), min(above)
            q = g[lo] if hi == lo else g[lo] + (g[hi] - g[lo]) * math.log2(size / lo) / math.log2(hi / lo)
        else:
            base = max(below) if below else min(above)
            q = g[base] + ESTIMATE_SLOPE * math.log2(size / base)
    elif sourced:
        offsets = sorted(m.quality - ESTIMATE_SLOPE * math.log2(effective_size(m.params_b, m.active_params_b))
                         for m in sourced)
        mid = len(offsets) // 2
        k = offsets[mid] if len(offsets) % 2 else (offsets[mid - 1] + offsets[mid]) / 2
        q = k + ESTIMATE_SLOPE * math.log2(size)
    else:
        q = 0.0
    return round(min(100.0, max(1.0, q)), 1)


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
    weights: dict = field(default_factory=dict)  # quant name -> est.weight_bytes() (for est.Limits)
    measured: set = field(default_factory=set)  # quants whose size is a measured file size
    quality_estimated: bool = False
    quality_code: float | None = None
    quality_reasoning: float | None = None
    expert_tensor_type: str = ""
    native_share: float = 0.0                  # share of the weights kept in expert_tensor_type


@dataclass
class QuantEntry:
    name: str
    bits_per_weight: float
    kld: float | None
    recommended: bool

    @property
    def low_bit(self) -> bool:
        return is_low_bit(self.name, self.bits_per_weight)


def offered(model: ModelEntry, q: QuantEntry) -> bool:
    """A native-format quant (MXFP4) only for the models that ship in it."""
    if q.name in quant_types.ALIASES:
        return model.expert_tensor_type == q.name
    return True


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
        rows = list(LanguageModel.objects.all())
        sourced = [m for m in rows if not m.quality_estimated]
        self.models = []
        for m in rows:
            quality = estimated_quality(m, sourced) if m.quality_estimated else m.quality
            entry = ModelEntry(m.slug, m.name, m.family, quality, m.quality_benchmark, list(m.uses or []),
                               m.context_length, m.params_b, m.active_params_b, m.is_moe,
                               quality_estimated=m.quality_estimated, quality_code=m.quality_code,
                               quality_reasoning=m.quality_reasoning, expert_tensor_type=m.expert_tensor_type)
            for q in self.quants:
                size = known.get((m.pk, q.name))
                entry.archs[q.name] = architecture_for(m, q.name, size)
                entry.weights[q.name] = est.weight_bytes(entry.archs[q.name], q.name)
                if size:
                    entry.measured.add(q.name)
            if m.expert_tensor_type and entry.archs:
                arch = next(iter(entry.archs.values()))
                total, _active = arch.n_params()
                experts = 3 * arch.n_embd * (arch.n_ff_expert or arch.n_ff) * arch.n_expert * (
                    arch.n_layer - arch.n_layer_dense_lead)
                entry.native_share = min(1.0, experts / total) if total else 0.0
            self.models.append(entry)
        self.by_slug = {m.slug: m for m in self.models}
        # The GPU a question names, without a query per question (advisor/page_cache.gpus_by_slug).
        self.gpus = {gpu.slug: gpu for gpu in GPU.objects.all()}


def _known_quant(name: str) -> bool:
    try:
        quant_types.normalize_name(name)
    except ValueError:
        return False
    return True


_SNAPSHOT: CatalogSnapshot | None = None


def snapshot(version: str | None = None) -> CatalogSnapshot:
    """The catalog as ranking reads it; `version`, when the caller knows it, saves reading it again."""
    global _SNAPSHOT
    if _SNAPSHOT is None or _SNAPSHOT.version != (version or catalog_version()):
        _SNAPSHOT = CatalogSnapshot()
    return _SNAPSHOT


# A unified-memory device the catalog gives no share: Apple's Metal default, else half the RAM (assumed).
OTHER_UNIFIED_SHARE = 0.5


def hardware_for(gpu: GPU | None, vram_gib: float | None, ram_gib: float,
                 ram_reserve_gib: float | None = None) -> est.Hardware:
    ram = int(ram_gib * GIB)
    reserve = int(ram_reserve_gib * GIB) if ram_reserve_gib is not None else None
    if gpu is None and not vram_gib:
        return est.Hardware(backend="cpu", ram_total=ram, ram_reserved=reserve)
    if gpu is None:  # only a VRAM size: a typical current NVIDIA card's speed
        return est.Hardware(backend="cuda", vram_total=int(vram_gib * GIB), gpu_bandwidth=450e9,
                            gpu_fp16_flops=60e12, ram_total=ram, name=f"{vram_gib:g} GiB GPU", ram_reserved=reserve)
    vram = vram_gib or max(gpu.vram_gib)
    if gpu.unified_memory:
        # The "VRAM" of a unified-memory device is the machine's memory, which the GPU shares with everything
        # else; the GPU may use the catalog's share of it.
        share = gpu.gpu_memory_share or (None if gpu.vendor == "apple" else OTHER_UNIFIED_SHARE)
        return est.Hardware(backend=gpu.backend, ram_total=int(vram * GIB), unified_memory=True,
                            gpu_memory_fraction=share,
                            gpu_bandwidth=gpu.memory_bandwidth_gbs * 1e9, gpu_fp16_flops=gpu.fp16_tflops * 1e12,
                            ram_bandwidth=gpu.memory_bandwidth_gbs * 1e9, name=gpu.name, ram_reserved=reserve)
    return est.Hardware(backend=gpu.backend, vram_total=int(vram * GIB), gpu_bandwidth=gpu.memory_bandwidth_gbs * 1e9,
                        gpu_fp16_flops=gpu.fp16_tflops * 1e12, ram_total=ram, name=gpu.name, ram_reserved=reserve)


def question_hardware(question: Question, gpu: GPU | None = None) -> est.Hardware:
    if gpu is None and question.gpu:
        gpu = GPU.objects.filter(slug=question.gpu).first()
    return hardware_for(gpu, question.vram_gib, question.ram_gib, question.ram_reserve_gib)


def score_of(model: ModelEntry, q: QuantEntry, speed: float, use: str, floor: float) -> dict:
    """The rule's terms for one option (see the comment above is_low_bit)."""
    quality, kind = quality_for_use(model, use)
    cost = quant_cost(q.kld, model.native_share, native=q.name == model.expert_tensor_type)
    factor = speed_factor(speed, floor)
    return {"quality_used": round(quality, 2), "quality_kind": kind, "quant_cost": round(cost, 4),
            "quant_cost_percent": round(100 * cost, 1),
            "speed_factor": round(factor, 4), "score": round(quality * (1 - cost) * factor, 2)}


def result_row(model: ModelEntry, q: QuantEntry, estimate: est.Estimate, use: str = "",
               floor: float = DEFAULT_MIN_SPEED) -> dict:
    row = estimate.to_dict(explain=False)
    row.update(
        model=model.slug, model_name=model.name, family=model.family, quant=q.name,
        bits_per_weight=q.bits_per_weight, kld=q.kld, quality=model.quality,
        quality_benchmark=model.quality_benchmark, quality_estimated=model.quality_estimated,
        measured_size=q.name in model.measured, low_bit=q.low_bit,
        context_length=model.context_length, params_b=model.params_b, active_params_b=model.active_params_b,
    )
    row.update(score_of(model, q, estimate.decode_tokens_per_s, use, floor))
    return row


def runs(row, min_speed: float) -> bool:
    """Loads (on the GPU, split, or on the CPU) and decodes at least `min_speed` tokens/s."""
    fits, speed = (row.fits, row.decode_tokens_per_s) if isinstance(row, est.Ranked) else (
        row["fits"], row["decode_tokens_per_s"])
    return fits in ("full", "partial", "cpu") and speed >= min_speed


def runtime_for(model: ModelEntry, hardware: est.Hardware, ctx: int, runtime: str = DEFAULT_RUNTIME) -> est.Runtime:
    """The estimator's settings for the program the person runs (est.RUNTIMES: its defaults)."""
    profile = RUNTIMES[runtime]
    return est.Runtime(n_ctx=min(ctx, model.context_length), flash_attn=profile.flash_attn and hardware.has_gpu,
                       swa_full=profile.swa_full, n_batch=profile.n_batch, n_ubatch=profile.n_ubatch,
                       vram_margin=profile.vram_margin, expert_offload=profile.expert_offload)


def evaluate(model: ModelEntry, q: QuantEntry, hardware: est.Hardware, ctx: int, runtime: str = DEFAULT_RUNTIME,
             placement: tuple[int, int] | None = None, use: str = "", floor: float = DEFAULT_MIN_SPEED) -> dict:
    """The full answer for one model and quantization (memory breakdown, both speeds)."""
    e = est.estimate(model.archs[q.name], q.name, runtime_for(model, hardware, ctx, runtime), hardware, placement)
    return result_row(model, q, e, use, floor)


def model_rows(model: ModelEntry, hardware: est.Hardware, ctx: int, quants, runtime: str = DEFAULT_RUNTIME,
               use: str = "", floor: float = DEFAULT_MIN_SPEED) -> list[dict]:
    return [evaluate(model, q, hardware, ctx, runtime, use=use, floor=floor) for q in quants if offered(model, q)]


def placements(models, quants, hardware: est.Hardware, ctx: int, runtime: str = DEFAULT_RUNTIME,
               every_placement: bool = False, min_speed: float = 0.0) -> dict:
    """(model slug, quant name) -> est.Ranked (the fastest placement) or, with every_placement, a list of them.

    est.rank() takes one runtime, so models are grouped by the context they would run with. min_speed: pairs
    that cannot fit or reach that speed at any context (est.could_fit, est.decode_speed_limit) are left out.
    """
    by_runtime = {}
    limits = est.Limits(hardware) if min_speed else None
    for model in models:
        pairs = by_runtime.setdefault(runtime_for(model, hardware, ctx, runtime), [])
        pairs.extend((model.archs[q.name], q.name) for q in quants
                     if offered(model, q) and (limits is None or may_reach(model, q, limits, min_speed)))
    owner = {id(model.archs[q.name]): model.slug for model in models for q in quants}
    placed = {}
    for rt, pairs in by_runtime.items():
        for row in est.rank(pairs, rt, hardware, include_no=True, every_placement=every_placement):
            key = (owner[id(row.architecture)], row.quant)
            if every_placement:
                placed.setdefault(key, []).append(row)
            else:
                placed[key] = row
    return placed


def may_reach(model: ModelEntry, q: QuantEntry, limits: est.Limits, speed: float) -> bool:
    """False when this model and quant cannot fit or decode at `speed` at any context on the machine of
    `limits`: placing them would change no answer. The speed limit is an upper bound; the margin covers
    rounding."""
    total, read = model.weights[q.name]
    return limits.fits(total) and limits.speed(read) * (1 + 1e-9) >= speed


def choose(model: ModelEntry, quants, placed: dict, question: Question) -> tuple[list, object]:
    """Every option of one model that meets the floor, best first by the rule, and the fastest that loads.

    Low-bit quants are dropped when any other quant meets the floor.
    """
    running, fastest = [], None
    quality = quality_for_use(model, question.use)[0]
    for q in quants:
        # score_of()'s score, its speed-independent part taken once per quant
        kept = quality * (1 - quant_cost(q.kld, model.native_share, native=q.name == model.expert_tensor_type))
        for row in placed.get((model.slug, q.name), []):
            if runs(row, question.min_speed):
                score = round(kept * speed_factor(row.decode_tokens_per_s, question.min_speed), 2)
                running.append((score, row.decode_tokens_per_s, q, row))
            elif row.fits != "no" and (fastest is None or row.decode_tokens_per_s > fastest[1].decode_tokens_per_s):
                fastest = (q, row)
    if any(not q.low_bit for _s, _v, q, _r in running):
        running = [option for option in running if not option[2].low_bit]
    # equal scores (gpt-oss: its Q8_0 file is nearly its MXFP4 file) go to the model's native format, then to
    # the faster option, then to more bits
    running.sort(key=lambda o: (o[0], o[2].name == model.expert_tensor_type, o[1], o[2].bits_per_weight),
                 reverse=True)
    return running, fastest


def _runner_up(q: QuantEntry, row, score: float) -> dict:
    return {"quant": q.name, "placement": row.kind, "n_gpu_layers": row.n_gpu_layers, "n_cpu_moe": row.n_cpu_moe,
            "decode_tokens_per_s": round(row.decode_tokens_per_s, 2), "gpu_bytes": row.gpu_bytes,
            "cpu_bytes": row.cpu_bytes, "score": score, "low_bit": q.low_bit}


def answer(question: Question, catalog: CatalogSnapshot | None = None, gpu: GPU | None = None) -> dict:
    """Ranked results (each with its runners-up), what almost fits, and what would fit with a shorter context."""
    catalog = catalog or snapshot()
    hardware = question_hardware(question, gpu or catalog.gpus.get(question.gpu))
    quants = [q for q in catalog.quants if q.recommended]
    models = [m for m in catalog.models if not question.use or question.use in m.uses]
    # Options that could be neither run nor "almost" (half the floor) are never placed: the answer is the same.
    placed = placements(models, quants, hardware, question.ctx, question.runtime, every_placement=True,
                        min_speed=0.5 * question.min_speed)
    results, almost, alternatives = [], [], []
    for model in models:
        running, fastest = choose(model, quants, placed, question)
        if running:
            _score, _speed, q, row = running[0]
            result = evaluate(model, q, hardware, question.ctx, question.runtime,
                              (row.n_gpu_layers, row.n_cpu_moe), question.use, question.min_speed)
            result["runners_up"] = [_runner_up(oq, orow, oscore) for oscore, _v, oq, orow in running[1:4]]
            results.append(result)
        elif fastest and fastest[1].decode_tokens_per_s >= 0.5 * question.min_speed:
            q, row = fastest
            almost.append(evaluate(model, q, hardware, question.ctx, question.runtime,
                                   (row.n_gpu_layers, row.n_cpu_moe), question.use, question.min_speed))
        elif len(alternatives) < 8:
            shorter = _with_shorter_context(model, quants, hardware, question)
            if shorter:
                alternatives.append(shorter)
    order = lambda r: (-r["score"], -r["decode_tokens_per_s"])  # noqa: E731
    results.sort(key=order)
    almost.sort(key=order)
    alternatives.sort(key=order)
    return {
        "catalog_version": catalog.version,
        "hardware": {"name": hardware.name or "CPU only", "backend": hardware.backend,
                     "vram_bytes": hardware.gpu_budget_total, "ram_bytes": hardware.ram_total,
                     "ram_reserve_bytes": hardware.ram_reserve},
        "runtime": question.runtime,
        "results": results,
        "almost": almost[:8],
        "alternatives": alternatives,
    }


def _with_shorter_context(model, quants, hardware, question) -> dict | None:
    """The longest halved context (down to 2048) at which the model runs, with its best option, or None.

    A shorter context needs less memory and reads less KV cache a token, so what runs at a context runs at
    every shorter one: the shortest is tried first, and a model that does not run there (most of those asked
    about) costs one ranking, not one per halving (test_answer_page compares it with trying every halving).
    """
    ctx = min(question.ctx, model.context_length) // 2
    halvings = []
    while ctx >= 2048:
        halvings.append(ctx)
        ctx //= 2
    if not halvings:
        return None
    at_shortest = choose(model, quants, placements([model], quants, hardware, halvings[-1], question.runtime,
                                                   every_placement=True, min_speed=question.min_speed), question)[0]
    if not at_shortest:
        return None
    for ctx in halvings:
        running = at_shortest if ctx == halvings[-1] else choose(model, quants, placements(
            [model], quants, hardware, ctx, question.runtime, every_placement=True, min_speed=question.min_speed),
            question)[0]
        if running:
            _score, _speed, q, row = running[0]
            return evaluate(model, q, hardware, ctx, question.runtime, (row.n_gpu_layers, row.n_cpu_moe),
                            question.use, question.min_speed)
    return None


def offload_curve(model: ModelEntry, q: QuantEntry, hardware: est.Hardware, ctx: int, points: int = 11,
                  runtime: str = DEFAULT_RUNTIME) -> list:
    """Decode tokens/s at evenly spaced GPU-offload shares (0% .. 100% of the layers)."""
    n_layers = model.archs[q.name].n_layer + 1
    rt = runtime_for(model, hardware, ctx, runtime)
    # Speed at an offload that would not fit is still drawn: the chart shows where the limit is.
    roomy = replace(hardware, vram_total=max(hardware.vram_total, 1 << 50), vram_free=None)
    limit = est.estimate(model.archs[q.name], q.name, rt, hardware).n_gpu_layers
    curve = []
    for i in range(points):
        layers = round(n_layers * i / (points - 1))
        e = est.estimate(model.archs[q.name], q.name, replace(rt, n_gpu_layers=layers), roomy)
        curve.append({"offload": i / (points - 1), "n_gpu_layers": layers, "tokens_per_s": e.decode_tokens_per_s,
                      "fits": layers <= limit})
    return curve
