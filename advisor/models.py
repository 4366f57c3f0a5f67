"""The curated catalog (GPUs, models, quantizations, measured file sizes) and measurements from the chat.

The seed catalog ships as a data migration (advisor/seed/*.json); staff edit it in the admin afterwards.
Every number has a `source`.
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Vendor(models.TextChoices):
    NVIDIA = "nvidia", "NVIDIA"
    AMD = "amd", "AMD"
    INTEL = "intel", "Intel"
    APPLE = "apple", "Apple"


class Backend(models.TextChoices):
    CUDA = "cuda", "CUDA"
    ROCM = "rocm", "ROCm"
    METAL = "metal", "Metal"
    VULKAN = "vulkan", "Vulkan"
    SYCL = "sycl", "SYCL"


class Segment(models.TextChoices):
    DESKTOP = "desktop", _("Desktop")
    LAPTOP = "laptop", _("Laptop")
    WORKSTATION = "workstation", _("Workstation")
    DATACENTER = "datacenter", _("Data centre")
    APPLE = "apple", _("Apple Silicon")
    SOC = "soc", _("Unified-memory system")


def validate_vram_options(value):
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Give the memory sizes as a list of numbers, e.g. [8, 16]."))
    for size in value:
        if not isinstance(size, int | float) or isinstance(size, bool) or not 0.5 <= size <= 2048:
            raise ValidationError(_("Each memory size must be a number of GiB from 0.5 to 2048; got %(v)r."),
                                  params={"v": size})


class GPUQuerySet(models.QuerySet):
    def by_vendor(self, vendor: str):
        return self.filter(vendor=vendor)

    def with_vram_at_least(self, gib: float):
        return self.filter(max_vram_gib__gte=gib)

    def matching_name(self, name: str):
        """The GPU whose name is the longest one contained in `name` (NVML or WebGL renderer text), or None."""
        target = normalised_name(name)
        best = None
        for gpu in self.only("slug", "name"):
            key = normalised_name(gpu.name.replace("NVIDIA ", "").replace("AMD ", "").replace("Intel ", ""))
            if key and key in target and (best is None or len(key) > len(best[0])):
                best = (key, gpu)
        return best[1] if best else None


def normalised_name(name: str) -> str:
    """Lowercase letters and digits only: how GPU and model names are compared across sources."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


class GPU(models.Model):
    slug = models.SlugField(_("slug (in addresses)"), max_length=80, unique=True)
    name = models.CharField(_("name"), max_length=120)
    vendor = models.CharField(_("vendor"), max_length=12, choices=Vendor.choices)
    family = models.CharField(_("family"), max_length=80, blank=True)
    segment = models.CharField(_("segment"), max_length=12, choices=Segment.choices)
    vram_gib = models.JSONField(
        _("VRAM (GiB)"),
        validators=[validate_vram_options], help_text=_("Memory sizes this card is sold with, in GiB.")
    )
    # Kept in step with vram_gib by save(), so the database can filter and sort on it.
    max_vram_gib = models.FloatField(_("largest VRAM (GiB)"), editable=False, default=0)
    memory_bandwidth_gbs = models.FloatField(
        _("memory bandwidth (GB/s)"),
        validators=[MinValueValidator(10), MaxValueValidator(20_000)], help_text=_("GB/s (10⁹ bytes per second).")
    )
    fp16_tflops = models.FloatField(
        _("FP16 TFLOPS"),
        validators=[MinValueValidator(0.1), MaxValueValidator(20_000)], help_text=_("Peak dense FP16 TFLOPS.")
    )
    backend = models.CharField(_("backend"), max_length=8, choices=Backend.choices)
    unified_memory = models.BooleanField(
        _("unified memory"),
        default=False, help_text=_("The GPU uses the system's memory (Apple Silicon, Strix Halo, DGX Spark, Jetson).")
    )
    gpu_memory_share = models.FloatField(
        _("GPU share of RAM"),
        null=True, blank=True, validators=[MinValueValidator(0.05), MaxValueValidator(1)],
        help_text=_("Unified memory: the share of system RAM the GPU may use by default (0 to 1)."),
    )
    gpu_memory_share_source = models.TextField(_("source of the GPU share"), blank=True)
    release_year = models.PositiveSmallIntegerField(
        _("release year"),
        null=True, blank=True, validators=[MinValueValidator(2010), MaxValueValidator(2100)]
    )
    source = models.TextField(_("source"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = GPUQuerySet.as_manager()

    class Meta:
        ordering = ["vendor", "name"]
        verbose_name = "GPU"
        verbose_name_plural = "GPUs"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.max_vram_gib = max(self.vram_gib) if self.vram_gib else 0
        super().save(*args, **kwargs)

    def clean(self):
        if self.gpu_memory_share is not None and not self.unified_memory:
            raise ValidationError({"gpu_memory_share": _("Only a unified-memory device shares system RAM.")})
        if self.gpu_memory_share is not None and not self.gpu_memory_share_source:
            raise ValidationError({"gpu_memory_share_source": _("Say where the share comes from.")})


class LanguageModelQuerySet(models.QuerySet):
    def for_use(self, use: str):
        # The JSON list is searched as text ('"code"'): JSON containment is not available on SQLite.
        return self.filter(uses__icontains=f'"{use}"') if use else self


# Model slugs keep version dots ("llama-3.1-8b-instruct"), which Django's SlugField does not allow.
validate_model_slug = RegexValidator(r"^[a-z0-9][a-z0-9.-]*$", _("Use lowercase letters, digits, dots and hyphens."))


def validate_tensor_type(value):
    from advisor.quant import GGML_BLOCK

    if value and value not in GGML_BLOCK:
        raise ValidationError(_("Unknown GGUF tensor type %(v)s (e.g. MXFP4, BF16, Q8_0)."), params={"v": value})


def quality_validators():
    return [MinValueValidator(0), MaxValueValidator(100)]


class LanguageModel(models.Model):
    """An open-weight LLM and its architecture, as its config.json gives it."""

    slug = models.CharField(_("slug (in addresses)"), max_length=80, unique=True, validators=[validate_model_slug])
    name = models.CharField(_("name"), max_length=120)
    family = models.CharField(_("family"), max_length=60)
    arch = models.CharField(
        _("architecture (GGUF)"), max_length=40, help_text=_("GGUF general.architecture, e.g. llama, qwen3, gemma3.")
    )
    params_b = models.FloatField(
        _("parameters (billions)"), validators=[MinValueValidator(0.01), MaxValueValidator(5000)]
    )
    active_params_b = models.FloatField(
        _("active parameters (billions)"), validators=[MinValueValidator(0.01), MaxValueValidator(5000)]
    )
    n_layers = models.PositiveIntegerField(_("layers"), validators=[MinValueValidator(1), MaxValueValidator(1000)])
    n_embd = models.PositiveIntegerField(
        _("embedding size"), validators=[MinValueValidator(8), MaxValueValidator(100_000)]
    )
    n_head = models.PositiveIntegerField(
        _("attention heads"), validators=[MinValueValidator(1), MaxValueValidator(1024)]
    )
    n_head_kv = models.PositiveIntegerField(
        _("key/value heads"), validators=[MinValueValidator(1), MaxValueValidator(1024)]
    )
    head_dim = models.PositiveIntegerField(
        _("head size (keys)"), validators=[MinValueValidator(1), MaxValueValidator(2048)]
    )
    head_dim_v = models.PositiveIntegerField(
        _("head size (values)"), null=True, blank=True, validators=[MaxValueValidator(2048)]
    )
    n_ff = models.PositiveIntegerField(_("feed-forward size"), validators=[MaxValueValidator(1_000_000)])
    n_expert = models.PositiveIntegerField(_("experts"), default=0, validators=[MaxValueValidator(1024)])
    n_expert_used = models.PositiveIntegerField(
        _("experts used per token"), default=0, validators=[MaxValueValidator(1024)]
    )
    n_ff_expert = models.PositiveIntegerField(
        _("expert feed-forward size"), null=True, blank=True, validators=[MaxValueValidator(1_000_000)]
    )
    n_shared_expert = models.PositiveIntegerField(_("shared experts"), default=0, validators=[MaxValueValidator(64)])
    n_dense_layers = models.PositiveIntegerField(
        _("dense layers before the experts"), default=0, validators=[MaxValueValidator(1000)]
    )
    n_vocab = models.PositiveIntegerField(
        _("vocabulary size"), validators=[MinValueValidator(2), MaxValueValidator(2_000_000)]
    )
    context_length = models.PositiveIntegerField(
        _("context length (tokens)"), validators=[MinValueValidator(128), MaxValueValidator(100_000_000)]
    )
    sliding_window = models.PositiveIntegerField(_("sliding window (tokens)"), null=True, blank=True)
    swa_pattern = models.PositiveSmallIntegerField(
        _("sliding-window pattern"),
        null=True, blank=True, help_text=_("Every N-th layer uses full attention; the others the sliding window.")
    )
    tied_embeddings = models.BooleanField(_("tied embeddings"), default=False)
    license = models.CharField(_("licence"), max_length=80)
    # One scale for every model (README: "How the advisor ranks"); an estimate where no source gives one.
    quality = models.FloatField(_("quality (0-100)"), validators=quality_validators())
    quality_benchmark = models.CharField(_("quality benchmark"), max_length=60)
    quality_source = models.TextField(_("quality source"))
    quality_estimated = models.BooleanField(
        _("quality estimated"),
        default=False, help_text=_("The quality comes from the documented estimate rule, not from a source."))
    quality_code = models.FloatField(
        _("coding quality"), null=True, blank=True, validators=quality_validators(),
        help_text=_("Coding figure on the same scale, used for the use 'code'."))
    quality_code_source = models.TextField(_("coding quality source"), blank=True)
    quality_reasoning = models.FloatField(
        _("reasoning quality"), null=True, blank=True, validators=quality_validators(),
        help_text=_("Reasoning-mode figure on the same scale, for 'reasoning'."))
    quality_reasoning_source = models.TextField(_("reasoning quality source"), blank=True)
    expert_tensor_type = models.CharField(
        _("expert tensor type"),
        max_length=16, blank=True, validators=[validate_tensor_type],
        help_text=_("The type the model's files keep their expert weights in whatever the quantization "
                    "(MXFP4 for gpt-oss); empty: the quantization's own mix."))
    release_date = models.DateField(_("release date"), null=True, blank=True)
    uses = models.JSONField(_("uses"), default=list, blank=True, help_text=_("Any of chat, code, reasoning, long."))
    source = models.TextField(_("source"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = LanguageModelQuerySet.as_manager()

    class Meta:
        verbose_name = _("language model")
        verbose_name_plural = _("language models")
        ordering = ["family", "params_b"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(n_expert_used__lte=models.F("n_expert")), name="experts_used_within_experts"
            ),
            models.CheckConstraint(
                condition=models.Q(active_params_b__lte=models.F("params_b")), name="active_params_within_total"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    def clean(self):
        errors = {}
        if self.n_expert_used is not None and self.n_expert is not None and self.n_expert_used > self.n_expert:
            errors["n_expert_used"] = _("Experts used per token cannot exceed the number of experts.")
        if self.n_expert and not self.n_expert_used:
            errors["n_expert_used"] = _("A mixture-of-experts model uses at least one expert per token.")
        if self.active_params_b and self.params_b and self.active_params_b > self.params_b:
            errors["active_params_b"] = _("Active parameters cannot exceed total parameters.")
        if self.n_head and self.n_head_kv and self.n_head % self.n_head_kv:
            errors["n_head_kv"] = _("Attention heads must be a multiple of key/value heads.")
        for figure in ("quality_code", "quality_reasoning"):
            if getattr(self, figure) is not None and not getattr(self, f"{figure}_source"):
                errors[f"{figure}_source"] = _("Say where the figure comes from.")
        if self.expert_tensor_type and not self.n_expert:
            errors["expert_tensor_type"] = _("Only a mixture-of-experts model has expert weights.")
        if self.swa_pattern and not self.sliding_window:
            errors["swa_pattern"] = _("A sliding-window pattern needs a sliding-window size.")
        uses = self.uses or []
        if not isinstance(uses, list) or not all(isinstance(use, str) for use in uses):
            errors["uses"] = _('Give the uses as a list of words, e.g. ["chat", "code"].')
        elif bad_uses := set(uses) - {"chat", "code", "reasoning", "long"}:
            errors["uses"] = _("Unknown uses: %(uses)s.") % {"uses": ", ".join(sorted(map(str, bad_uses)))}
        if errors:
            raise ValidationError(errors)


class Quantization(models.Model):
    """A GGUF tensor type or quantization mix (Q4_K_M ...) and its quality loss against F16."""

    name = models.CharField(_("name"), max_length=16, unique=True)
    bits_per_weight = models.FloatField(_("bits per weight"), validators=[MinValueValidator(1), MaxValueValidator(32)])
    kld = models.FloatField(_("KL divergence"), null=True, blank=True, validators=[MinValueValidator(0)],
                            help_text=_("KL divergence against F16 (Llama 3 8B)."))
    ppl_delta = models.FloatField(
        _("perplexity increase"), null=True, blank=True, help_text=_("Perplexity increase against F16.")
    )
    recommended = models.BooleanField(_("recommended"), default=True, help_text=_("Offered in answers."))
    source = models.TextField(_("source"))

    class Meta:
        verbose_name = _("quantization")
        verbose_name_plural = _("quantizations")
        ordering = ["-bits_per_weight"]

    def __str__(self):
        return self.name


class KnownFile(models.Model):
    """A measured GGUF file size: it wins over the size computed from tensor classes."""

    model = models.ForeignKey(
        LanguageModel, on_delete=models.CASCADE, related_name="known_files", verbose_name=_("model")
    )
    quant = models.ForeignKey(
        Quantization, on_delete=models.PROTECT, related_name="known_files", verbose_name=_("quantization")
    )
    filename = models.CharField(_("file name"), max_length=200)
    # Where to get it ("owner/name" on Hugging Face): the answer's "Get this model" button fetches it from there.
    repo = models.CharField(
        _("Hugging Face repository"), max_length=200, blank=True, default="",
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                                   _("Write the repository as owner/name."))],
        help_text=_("Hugging Face repository that holds this file (owner/name)."))
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), validators=[MinValueValidator(1_000_000)])
    source = models.TextField(_("source"))

    class Meta:
        verbose_name = _("known file size")
        verbose_name_plural = _("known file sizes")
        ordering = ["model", "-size_bytes"]
        constraints = [models.UniqueConstraint(fields=["model", "quant"], name="one_known_file_per_model_quant")]

    def __str__(self):
        return self.filename


class Measurement(models.Model):
    """One chat reply, measured on this server: what the advisor shows next to its estimate."""

    created_at = models.DateTimeField(_("measured at"), auto_now_add=True, db_index=True)
    gpu_name = models.CharField(_("GPU"), max_length=120, blank=True, help_text=_("Empty when it ran on the CPU only."))
    model_file = models.CharField(_("model file"), max_length=255)
    model_name = models.CharField(_("model name"), max_length=200, blank=True)
    quant = models.CharField(_("quantization"), max_length=16, blank=True)
    n_gpu_layers = models.IntegerField(_("layers on the GPU"))
    n_layers = models.PositiveIntegerField(_("layers"), null=True, blank=True)
    n_ctx = models.PositiveIntegerField(_("context length (tokens)"))
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"))
    completion_tokens = models.PositiveIntegerField(_("reply tokens"))
    ttft_ms = models.FloatField(_("time to first token (ms)"))
    prompt_tokens_per_s = models.FloatField(_("prompt speed (tokens/s)"), null=True, blank=True)
    decode_tokens_per_s = models.FloatField(_("reply speed (tokens/s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("measurement")
        verbose_name_plural = _("measurements")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.model_file} on {self.gpu_name or 'CPU'}: {self.decode_tokens_per_s or 0:.1f} tok/s"


class SharedAnswer(models.Model):
    """A permanent link to one answer: the inputs and the answer as they were when it was shared."""

    slug = models.CharField(max_length=16, unique=True, help_text=_("Random, never a counter."))
    inputs = models.JSONField()
    # sha256 of the canonical inputs: the same question on the same catalog reuses one link.
    inputs_key = models.CharField(max_length=64)
    answer = models.JSONField()
    catalog_version = models.CharField(max_length=64, help_text=_("Fingerprint of the catalog the answer used."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["catalog_version", "inputs_key"], name="one_share_per_answer")]

    def __str__(self):
        return self.slug
