from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OpenAIApiConfig(AppConfig):
    name = "chat.openai_api"
    label = "openai_api"
    verbose_name = _("OpenAI-compatible API")
    default_auto_field = "django.db.models.BigAutoField"
