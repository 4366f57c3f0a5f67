"""The inputs of the download views; `clean` says which source was given."""

from django import forms
from django.utils.translation import gettext_lazy as _

from chat.forms import NGpuLayersField
from chat.models import KVType
from chat.worker.types import N_CTX_MAX, N_CTX_MIN


class DownloadForm(forms.Form):
    """A Hugging Face repository and file name, or a plain HTTPS URL (with its SHA-256 if known).

    The advisor's answer also sends the settings to load the file with (hidden fields)."""

    repo = forms.CharField(label=_("Hugging Face repository"), required=False, max_length=200,
                           widget=forms.TextInput(attrs={"placeholder": "unsloth/gemma-3-270m-it-GGUF",
                                                         "autocomplete": "off", "spellcheck": "false"}))
    file_name = forms.CharField(label=_("File"), required=False, max_length=255,
                                widget=forms.TextInput(attrs={"placeholder": "gemma-3-270m-it-Q4_K_M.gguf",
                                                              "autocomplete": "off", "spellcheck": "false"}))
    url = forms.CharField(label=_("or an HTTPS URL to a .gguf"), required=False, max_length=2000,
                          widget=forms.URLInput(attrs={"placeholder": "https://example.org/model.gguf",
                                                       "autocomplete": "off"}))
    sha256 = forms.CharField(label=_("SHA-256 (optional)"), required=False, max_length=64,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    n_gpu_layers = NGpuLayersField(required=False, widget=forms.HiddenInput)
    n_ctx = forms.IntegerField(required=False, min_value=N_CTX_MIN, max_value=N_CTX_MAX, widget=forms.HiddenInput)
    flash_attn = forms.BooleanField(required=False, widget=forms.HiddenInput)
    kv_type = forms.ChoiceField(required=False, choices=[("", "")] + list(KVType.choices), widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        repo, file_name, url = data["repo"].strip(), data["file_name"].strip(), data["url"].strip()
        if url and (repo or file_name):
            raise forms.ValidationError(_("Give a repository and a file, or a URL, not both."), code="both")
        if not url and not (repo and file_name):
            raise forms.ValidationError(_("Give a Hugging Face repository and a file name, or an HTTPS URL."),
                                        code="missing")
        if data["sha256"].strip() and not url:
            self.add_error("sha256", _("The hub publishes the hash of its files; give a hash only with a URL."))
        return data

    def load_settings(self) -> dict | None:
        data = self.cleaned_data
        if data.get("n_ctx") is None:
            return None
        return {"n_gpu_layers": data["n_gpu_layers"], "n_ctx": data["n_ctx"], "flash_attn": data["flash_attn"],
                "kv_type": data["kv_type"] or KVType.F16}
