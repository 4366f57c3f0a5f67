from django import forms
from django.utils.translation import gettext_lazy as _

from advisor import page_cache
from advisor.matrix import quant_choices
from advisor.models import GPU, Vendor
from advisor.recommend import DEFAULT_CTX, DEFAULT_MIN_SPEED, DEFAULT_RAM_GIB, DEFAULT_RUNTIME, Question

USE_CHOICES = [
    ("", _("Anything")),
    ("chat", _("Chat")),
    ("code", _("Code")),
    ("reasoning", _("Reasoning")),
    ("long", _("Long documents")),
]
CTX_MIN, CTX_MAX = 512, 1_048_576
# The programs an answer can be for (estimate.RUNTIMES holds each one's defaults).
RUNTIME_CHOICES = [
    ("llmsite", _("This site's chat")),
    ("llama-server", _("llama.cpp (llama-server)")),
    ("lmstudio", _("LM Studio")),
    ("ollama", _("Ollama")),
]


def gpu_label(gpu: GPU) -> str:
    sizes = "/".join(f"{size:g}" for size in gpu.vram_gib)
    return f"{gpu.name} ({sizes} GB)"


def grouped_gpu_choices():
    """The catalog's GPUs grouped by vendor, for a <select> with <optgroup>s."""
    groups = {}
    for gpu in GPU.objects.order_by("vendor", "name"):
        groups.setdefault(gpu.get_vendor_display(), []).append((gpu.slug, gpu_label(gpu)))
    return [("", _("Choose a GPU…"))] + [(vendor, items) for vendor, items in groups.items()]


class AdvisorForm(forms.Form):
    """The advisor's question. A GET form: the address of the answer is the answer."""

    gpu = forms.SlugField(required=False, label=_("GPU"), widget=forms.Select)
    vram_gib = forms.FloatField(
        required=False, min_value=0.5, max_value=2048, label=_("GPU memory (GiB)"),
        help_text=_("Filled in from the GPU; many cards come in several sizes."),
    )
    ram_gib = forms.FloatField(required=False, min_value=1, max_value=4096, label=_("System RAM (GiB)"),
                               initial=DEFAULT_RAM_GIB)
    ctx = forms.IntegerField(required=False, min_value=CTX_MIN, max_value=CTX_MAX, label=_("Context length (tokens)"),
                             initial=DEFAULT_CTX)
    use = forms.ChoiceField(required=False, choices=USE_CHOICES, label=_("What it is for"))
    min_speed = forms.FloatField(required=False, min_value=0, max_value=10_000, label=_("Minimum speed (tokens/s)"),
                                 initial=DEFAULT_MIN_SPEED,
                                 help_text=_("About 8 tokens/s is reading speed."))
    runtime = forms.ChoiceField(required=False, choices=RUNTIME_CHOICES, initial=DEFAULT_RUNTIME,
                                label=_("Program that runs the model"),
                                help_text=_("Each has its own defaults (flash attention, cache size, memory it keeps "
                                            "free)."))
    ram_reserve_gib = forms.FloatField(
        required=False, min_value=0, max_value=4096, label=_("RAM kept for other programs (GiB)"),
        help_text=_("Empty: 15% of the RAM, at least 4 GiB, for the operating system and your other programs."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A callable: the GPU list is read only when the form is drawn (a cached answer page never draws it).
        self.fields["gpu"].widget.choices = grouped_gpu_choices

    def clean_gpu(self):
        slug = self.cleaned_data["gpu"]
        if not slug:
            return None
        gpu = page_cache.gpus_by_slug().get(slug)
        if gpu is None:
            raise forms.ValidationError(_("There is no GPU %(slug)s in the catalog."), params={"slug": slug})
        return gpu

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("gpu") and not data.get("vram_gib"):
            raise forms.ValidationError(_("Choose a GPU or give its memory in GiB."))
        reserve, ram = data.get("ram_reserve_gib"), data.get("ram_gib") or DEFAULT_RAM_GIB
        if reserve is not None and reserve >= ram:
            self.add_error("ram_reserve_gib", _("Keep less than the whole RAM (%(ram)s GiB) for other programs.")
                           % {"ram": f"{ram:g}"})
        return data

    def question(self) -> Question:
        data = self.cleaned_data
        gpu = data.get("gpu")
        return Question(
            gpu=gpu.slug if gpu else None,
            vram_gib=data.get("vram_gib") or (max(gpu.vram_gib) if gpu else None),
            ram_gib=data.get("ram_gib") or DEFAULT_RAM_GIB,
            ctx=data.get("ctx") or DEFAULT_CTX,
            use=data.get("use") or "",
            min_speed=data["min_speed"] if data.get("min_speed") is not None else DEFAULT_MIN_SPEED,
            runtime=data.get("runtime") or DEFAULT_RUNTIME,
            ram_reserve_gib=data.get("ram_reserve_gib"),
        )


class MatrixForm(forms.Form):
    vendor = forms.ChoiceField(required=False, choices=[("", _("All vendors")), *Vendor.choices], label=_("Vendor"))
    min_vram = forms.FloatField(required=False, min_value=0, max_value=2048, label=_("At least (GiB)"))
    max_vram = forms.FloatField(required=False, min_value=0, max_value=2048, label=_("At most (GiB)"))
    ctx = forms.IntegerField(required=False, min_value=CTX_MIN, max_value=CTX_MAX, label=_("Context length"),
                             initial=DEFAULT_CTX)
    quant = forms.ChoiceField(required=False, initial="Q4_K_M", label=_("Quantization"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quant"].choices = quant_choices

