"""Admin form fields for people: memory sizes typed as numbers ("16" or "8, 12, 16"), uses as checkboxes.

The model keeps both as JSON lists (the catalog's seed and export format); only the admin's forms change.
"""

import json
import re

from django import forms
from django.utils.translation import gettext_lazy as _

from advisor.forms import USE_CHOICES
from advisor.models import GPU, LanguageModel

MIN_GIB, MAX_GIB = 0.5, 2048
SEPARATORS = re.compile(r"[,;\s]+")


def format_gib(size) -> str:
    return f"{size:g}" if isinstance(size, int | float) else str(size)


class GiBSizesField(forms.Field):
    """One memory size or several, in GiB, separated by commas: "16" or "8, 12, 16" (a JSON list is read too)."""

    widget = forms.TextInput
    default_error_messages = {
        "required": _("Give at least one memory size in GiB, e.g. 16 or 8, 16."),
        "invalid": _("“%(value)s” is not a number of GiB. Give numbers separated by commas, e.g. 8, 12, 16."),
        "range": _("Each memory size must be from %(min)s to %(max)s GiB; got %(value)s."),
    }

    def widget_attrs(self, widget):
        return {**super().widget_attrs(widget), "inputmode": "decimal", "autocomplete": "off",
                "placeholder": "8, 16", "size": 24}

    def prepare_value(self, value):
        if isinstance(value, str):
            try:  # the stored JSON text, as a bound form without data shows it
                value = json.loads(value)
            except json.JSONDecodeError:
                return value
        if isinstance(value, list):
            return ", ".join(format_gib(size) for size in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        text = (value or "").strip().strip("[]").strip()
        if not text:
            return []
        sizes = []
        for item in filter(None, SEPARATORS.split(text)):
            try:
                size = float(item)
            except ValueError:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid",
                                            params={"value": item}) from None
            if not MIN_GIB <= size <= MAX_GIB:  # also refuses nan and inf
                raise forms.ValidationError(self.error_messages["range"], code="range",
                                            params={"value": item, "min": format_gib(MIN_GIB),
                                                    "max": format_gib(MAX_GIB)})
            sizes.append(int(size) if size.is_integer() else size)
        return sorted(set(sizes))

    def validate(self, value):
        if not value and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial, data):
        try:
            return self.to_python(initial) != self.to_python(data)
        except forms.ValidationError:
            return True


class GPUAdminForm(forms.ModelForm):
    vram_gib = GiBSizesField(
        label=_("VRAM (GiB)"),
        help_text=_("The memory sizes this card is sold with, in GiB: one number, or several separated by commas "
                    "(8, 16)."))

    class Meta:
        model = GPU
        fields = "__all__"  # noqa: DJ007 (the admin shows every field, as without this form)


class LanguageModelAdminForm(forms.ModelForm):
    uses = forms.MultipleChoiceField(
        label=_("Uses"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(value, label) for value, label in USE_CHOICES if value],
        help_text=_("What the model is good for; the advisor's “What it is for” picks from these."))

    class Meta:
        model = LanguageModel
        fields = "__all__"  # noqa: DJ007 (the admin shows every field, as without this form)
