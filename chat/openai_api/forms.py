from django import forms
from django.utils.translation import gettext_lazy as _

from chat.openai_api.models import ApiKey


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "store_conversations"]
        labels = {"name": _("Name"), "store_conversations": _("Store calls as conversations")}
        error_messages = {"name": {"required": _("Give the key a name.")}}
        help_texts = {"name": _("Where you will use it, e.g. “laptop editor”."),
                      "store_conversations": _("Off: calls made with this key are not kept. On: each call is kept as "
                                               "a conversation in your chat.")}

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("Give the key a name."))
        return name
