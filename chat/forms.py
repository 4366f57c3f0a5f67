"""Every input of the chat pages goes through one of these forms; `clean_<field>` normalises."""

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from chat.models import PARALLEL_AUTO_STORED, Conversation, KVType, ModelConfig, Preset
from chat.protocol import MAX_SYSTEM_CHARS, NUMBER_OPTIONS, max_tokens_cap
from chat.worker.types import (
    N_CTX_MAX,
    N_CTX_MIN,
    PARALLEL_AUTO,
    PARALLEL_MAX,
    LoadSettings,
    LoadSettingsError,
    parse_parallel,
)

N_GPU_LAYERS_MAX = 1000


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search conversations"), required=False, max_length=200, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Search"), "autocomplete": "off"}),
    )


class RenameForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ["title"]
        labels = {"title": _("Title")}
        widgets = {"title": forms.TextInput(attrs={"maxlength": 200, "required": True})}

    def clean_title(self):
        # Whitespace-only titles would make an invisible sidebar entry.
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError(_("A title cannot be empty."), code="empty")
        return title


class SystemPromptForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ["system_prompt"]
        labels = {"system_prompt": _("System prompt")}
        widgets = {
            "system_prompt": forms.Textarea(
                attrs={"rows": 3, "placeholder": _("You are a helpful assistant."), "maxlength": MAX_SYSTEM_CHARS}
            )
        }

    def clean_system_prompt(self):
        prompt = self.cleaned_data["system_prompt"].strip()
        if len(prompt) > MAX_SYSTEM_CHARS:  # the socket refuses longer ones (chat/protocol.py)
            raise forms.ValidationError(
                _("A system prompt can be at most %(max)s characters long.") % {"max": MAX_SYSTEM_CHARS}, code="long"
            )
        return prompt


class SamplingForm(forms.Form):
    """The sampling settings panel. The browser sends these as the `options` of a `send` frame; the limits
    are the protocol's (chat/protocol.py checks them again on the server), shown here as input limits."""

    temperature = forms.FloatField(label=_("Temperature"), required=False,
                                   widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "0.8"}))
    top_p = forms.FloatField(label=_("Top P"), required=False,
                             widget=forms.NumberInput(attrs={"step": "0.01", "placeholder": "0.95"}))
    top_k = forms.IntegerField(label=_("Top K"), required=False, widget=forms.NumberInput(attrs={"placeholder": "40"}))
    min_p = forms.FloatField(label=_("Min P"), required=False,
                             widget=forms.NumberInput(attrs={"step": "0.01", "placeholder": "0.05"}))
    repeat_penalty = forms.FloatField(label=_("Repeat penalty"), required=False,
                                      widget=forms.NumberInput(attrs={"step": "0.05", "placeholder": "1.1"}))
    max_tokens = forms.IntegerField(label=_("Max tokens"), required=False,
                                    widget=forms.NumberInput(attrs={"placeholder": "512"}))
    seed = forms.IntegerField(label=_("Seed"), required=False,
                              widget=forms.NumberInput(attrs={"placeholder": _("random")}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limits = {name: (low, high) for name, (_kind, low, high) in NUMBER_OPTIONS.items()}
        limits["max_tokens"] = (1, max_tokens_cap())
        for name, field in self.fields.items():
            low, high = limits[name]
            field.min_value, field.max_value = low, high
            field.validators += [MinValueValidator(low), MaxValueValidator(high)]
            # Ids the script finds the inputs by; names it sends them under.
            field.widget.attrs.update({"id": f"option-{name}", "data-option": name, "min": low, "max": high})


class PresetForm(forms.ModelForm):
    """A person's preset: a name, a system prompt, the sampling fields of the chat's panel (empty: the model's
    default), and whether it starts new conversations."""

    class Meta:
        model = Preset
        fields = ["name", "system_prompt", "is_default"]
        labels = {"name": _("Name"), "system_prompt": _("System prompt"),
                  "is_default": _("Use for new conversations")}
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 4, "maxlength": MAX_SYSTEM_CHARS,
                                                          "placeholder": _("You are a helpful assistant.")})}

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner if owner is not None else self.instance.owner
        sampling = SamplingForm()
        for name, field in sampling.fields.items():
            field.widget.attrs["id"] = f"id_preset_{name}"
            field.widget.attrs.pop("data-option", None)
            self.fields[name] = field
            if self.instance.pk and name in self.instance.options:
                self.initial[name] = self.instance.options[name]
        self.sampling_names = list(sampling.fields)

    def sampling_fields(self):
        return [self[name] for name in self.sampling_names]

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("A name cannot be empty."), code="empty")
        taken = Preset.objects.owned_by(self.owner).filter(name=name).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(_("You already have a preset named “%(name)s”.") % {"name": name},
                                        code="taken")
        return name

    def clean_system_prompt(self):
        return self.cleaned_data["system_prompt"].strip()

    def save(self, commit=True):
        preset = super().save(commit=False)
        preset.owner = self.owner
        preset.options = {name: self.cleaned_data[name] for name in self.sampling_names
                          if self.cleaned_data.get(name) is not None}
        if commit:
            preset.save_as_default() if preset.is_default else preset.save()
        return preset


class NGpuLayersField(forms.CharField):
    """`auto` (None: the advisor's estimate at load time), -1 (all layers) or a number of layers."""

    def to_python(self, value):
        value = (super().to_python(value) or "").strip().lower()
        if value in ("", "auto"):
            return None
        try:
            number = int(value)
        except ValueError:
            raise forms.ValidationError(
                _("Enter “auto”, -1 for all layers, or a number of layers."), code="invalid"
            ) from None
        if not -1 <= number <= N_GPU_LAYERS_MAX:
            raise forms.ValidationError(
                _("Enter a number from -1 to %(max)s.") % {"max": N_GPU_LAYERS_MAX}, code="range"
            )
        return number

    def prepare_value(self, value):
        return "auto" if value is None else value


class ParallelField(forms.CharField):
    """Replies at once: empty (None: LLMSITE_PARALLEL), "auto" (the slots that fit in memory), 0 (one at a
    time, no engine) or a number of slots; parsed by the worker's own rule (chat/worker/types.py)."""

    def to_python(self, value):
        value = (super().to_python(value) or "").strip()
        if not value:
            return None
        try:
            return parse_parallel(value)
        except LoadSettingsError:
            raise forms.ValidationError(
                _("Enter “auto”, 0 for one at a time, or a number of replies up to %(max)s.") % {"max": PARALLEL_MAX},
                code="invalid") from None

    def prepare_value(self, value):
        return PARALLEL_AUTO if value == PARALLEL_AUTO_STORED else value

    @staticmethod
    def stored(value):
        """The cleaned value as ModelConfig.parallel keeps it."""
        return PARALLEL_AUTO_STORED if value == PARALLEL_AUTO else value


# The worker's refusals (chat/worker/types.py LoadSettingsError codes) that the form's own fields cannot catch.
LOAD_SETTINGS_MESSAGES = {
    "kv_needs_flash_attn": _("A %(kv_type)s KV cache needs flash attention: turn flash attention on, or use f16."),
}


class ModelLoadForm(forms.Form):
    file_name = forms.ChoiceField(widget=forms.HiddenInput)
    n_gpu_layers = NGpuLayersField(
        label=_("GPU layers"), required=False, initial=None,
        help_text=_("“auto”, -1 for all, or a number."),
        widget=forms.TextInput(attrs={"size": 5, "autocomplete": "off", "placeholder": "auto"}),
    )
    n_ctx = forms.IntegerField(label=_("Context length"), min_value=N_CTX_MIN, max_value=N_CTX_MAX, initial=4096)
    flash_attn = forms.BooleanField(label=_("Flash attention"), required=False)
    kv_type = forms.ChoiceField(label=_("KV cache type"), choices=KVType.choices, initial=KVType.F16)
    parallel = ParallelField(
        label=_("Replies at once"), required=False,
        help_text=_("Slots, each with its own context (empty: the site's setting; “auto”: as many as fit in "
                    "memory; 0: one at a time, no batching)."),
        widget=forms.TextInput(attrs={"size": 4, "autocomplete": "off", "placeholder": _("default")}),
    )

    def __init__(self, *args, file_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file_name"].choices = [(name, name) for name in file_names]

    def clean(self):
        """Refuse what the worker would refuse, by asking the worker's own validation (chat/worker/types.py):
        a setting saved as active that every start refuses would leave the chat without a model."""
        data = super().clean()
        if self.errors:
            return data  # a field is already wrong; its own message says how
        try:
            LoadSettings(data["file_name"], data["n_gpu_layers"], data["n_ctx"], data["flash_attn"], data["kv_type"],
                         parallel=data["parallel"] or 0)
        except LoadSettingsError as exc:
            message = LOAD_SETTINGS_MESSAGES.get(exc.code)
            message = message % {"kv_type": data["kv_type"]} if message else str(exc)
            self.add_error(exc.field if exc.field in self.fields else None,
                           forms.ValidationError(message, code=exc.code))
        return data

    @classmethod
    def for_config(cls, file_name: str, config: ModelConfig | None, file_names, row: int):
        """The unbound form of one file's row; ids are numbered by row since every row has one."""
        initial = {"file_name": file_name}
        if config is not None:
            initial.update(n_gpu_layers=config.n_gpu_layers, n_ctx=config.n_ctx, flash_attn=config.flash_attn,
                           kv_type=config.kv_type, parallel=config.parallel)
        return cls(initial=initial, file_names=file_names, auto_id=f"id_load{row}_%s")
