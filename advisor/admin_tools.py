"""Admin views beyond Django's generic ones: a model from a GGUF header, and the catalog as JSON."""

import json
import os
import tempfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from advisor.catalog_io import CatalogError, export_catalog, import_catalog
from advisor.gguf_info import GGUFError, read_gguf

MAX_CATALOG_UPLOAD = 20 * 1024 * 1024


def gguf_files_in_models_folder() -> list[tuple[str, str]]:
    """(path relative to the models folder, label with its size) for every .gguf file there, sorted."""
    models_dir = Path(os.path.abspath(settings.MODELS_DIR))
    if not models_dir.is_dir():
        return []
    files = []
    for path in sorted(models_dir.rglob("*.gguf")):
        if path.is_file():
            relative = path.relative_to(models_dir).as_posix()
            files.append((relative, f"{relative} ({path.stat().st_size / 1e9:.2f} GB)"))
    return files


class GGUFSourceForm(forms.Form):
    path = forms.ChoiceField(required=False, label=gettext_lazy("File in the models folder"))
    upload = forms.FileField(required=False, label=gettext_lazy("Or upload a GGUF file"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        files = gguf_files_in_models_folder()
        # The folder is read when the form is made, so a file copied there a moment ago is offered.
        self.fields["path"].choices = [("", _("Choose a file") if files else _("No .gguf files there"))] + files
        self.fields["path"].help_text = _("The .gguf files in %(folder)s.") % {"folder": settings.MODELS_DIR}

    def clean_path(self):
        raw = self.cleaned_data["path"].strip()
        if not raw:
            return None
        models_dir = Path(os.path.abspath(settings.MODELS_DIR))
        # A path that leaves the models folder (../../etc/passwd, an absolute path) is refused. Symlinks in
        # the folder are followed: the default model is one.
        candidate = Path(os.path.normpath(models_dir / raw))
        if models_dir not in candidate.parents:
            raise forms.ValidationError(_("Give a file inside the models folder."))
        if not candidate.is_file():
            raise forms.ValidationError(_("There is no file %(name)s in the models folder.") % {"name": raw})
        return candidate

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("path")) == bool(data.get("upload")):
            raise forms.ValidationError(_("Give either a file in the models folder or an upload, not both."))
        return data


def model_fields_from_gguf(info) -> dict:
    """Initial values for a LanguageModel from a GGUF header, for staff to review and complete."""
    arch = info.architecture
    total, active = arch.n_params()
    name = info.name or Path(info.path).stem
    return {
        "name": name, "slug": slugify(name)[:80], "family": name.split()[0] if name else "", "arch": arch.arch,
        "params_b": round(total / 1e9, 3), "active_params_b": round(active / 1e9, 3),
        "n_layers": arch.n_layer, "n_embd": arch.n_embd, "n_head": arch.n_head, "n_head_kv": arch.n_head_kv,
        "head_dim": arch.head_k, "head_dim_v": arch.head_v if arch.head_v != arch.head_k else "",
        "n_ff": arch.n_ff, "n_expert": arch.n_expert, "n_expert_used": arch.n_expert_used,
        "n_ff_expert": arch.n_ff_expert or "", "n_shared_expert": arch.n_expert_shared,
        "n_dense_layers": arch.n_layer_dense_lead, "n_vocab": arch.n_vocab,
        "context_length": info.context_length or arch.context_length,
        "sliding_window": arch.sliding_window or "", "swa_pattern": arch.swa_pattern or "",
        "tied_embeddings": "on" if arch.tied_embeddings else "",
        "source": _("GGUF header of %(file)s") % {"file": Path(info.path).name},
    }


def import_gguf_view(model_admin, request):
    """Read a GGUF header and open the 'add model' form filled in with it, to review before saving."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = GGUFSourceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            info = _read_source(form.cleaned_data)
        except GGUFError as exc:
            form.add_error(None, str(exc))
        else:
            initial = {k: v for k, v in model_fields_from_gguf(info).items() if v != ""}
            messages.info(request, _("Read from %(file)s (%(quant)s). Check the values, add licence, quality and "
                                     "source, then save.") % {"file": Path(info.path).name, "quant": info.quant})
            return redirect(reverse("admin:advisor_languagemodel_add") + "?" + urlencode(initial))
    context = {**model_admin.admin_site.each_context(request), "form": form, "opts": model_admin.model._meta,
               "title": _("Import a model from a GGUF file")}
    return render(request, "admin/advisor/import_gguf.html", context)


def _read_source(data):
    if data.get("path"):
        return read_gguf(data["path"])
    upload = data["upload"]
    # Only the header is read, but the reader needs a real file: uploads land in a temporary one.
    with tempfile.NamedTemporaryFile(suffix=".gguf", delete=False) as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
        temp = handle.name
    try:
        info = read_gguf(temp)
        return info.__class__(**{**info.__dict__, "path": upload.name})
    finally:
        os.unlink(temp)


@admin.action(description=gettext_lazy("Export the whole catalog as JSON"))
def export_catalog_action(model_admin, request, queryset):
    response = HttpResponse(json.dumps(export_catalog(), indent=2, ensure_ascii=False),
                            content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="llmsite-catalog.json"'
    return response


class CatalogUploadForm(forms.Form):
    catalog = forms.FileField(label=gettext_lazy("Catalog JSON file"))

    def clean_catalog(self):
        upload = self.cleaned_data["catalog"]
        if upload.size > MAX_CATALOG_UPLOAD:
            raise forms.ValidationError(_("The file is larger than 20 MB."))
        try:
            return json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(_("This is not a JSON file: %(error)s") % {"error": exc}) from None
        except RecursionError:  # "[[[[..." nested deeper than Python's parser goes
            raise forms.ValidationError(_("This JSON file is nested too deeply to be a catalog.")) from None


def import_catalog_view(model_admin, request):
    if not (model_admin.has_add_permission(request) and model_admin.has_change_permission(request)):
        raise PermissionDenied
    form = CatalogUploadForm(request.POST or None, request.FILES or None)
    problems = []
    if request.method == "POST" and form.is_valid():
        try:
            result = import_catalog(form.cleaned_data["catalog"])
        except CatalogError as exc:
            problems = exc.errors
            messages.error(request, _("Nothing was imported: %(n)d problem(s) were found.") % {"n": len(problems)})
        else:
            messages.success(request, _("Catalog imported: %(summary)s.") % {"summary": result.summary()})
            return redirect(reverse(f"admin:{model_admin.model._meta.app_label}_{model_admin.model._meta.model_name}"
                                    "_changelist"))
    context = {**model_admin.admin_site.each_context(request), "form": form, "problems": problems[:200],
               "title": _("Import a catalog"), "opts": model_admin.model._meta}
    return render(request, "admin/advisor/import_catalog.html", context)
