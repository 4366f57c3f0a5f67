"""`{% downloads_panel %}`: the Models page's download form and queue, without the chat's view knowing of it."""

from pathlib import Path

from django import template
from django.conf import settings
from django.urls import reverse

from downloads.forms import DownloadForm
from downloads.models import Download

register = template.Library()


@register.inclusion_tag("downloads/_panel.html", takes_context=True)
def downloads_panel(context):
    downloads = list(Download.objects.recent(10))
    folder = Path(settings.MODELS_DIR)
    for download in downloads:
        download.in_folder = (folder / download.file_name).exists()
    return {
        "request": context.get("request"), "user": context.get("user"), "csrf_token": context.get("csrf_token"),
        "form": DownloadForm(auto_id="id_download_%s"), "downloads": downloads,
        "downloads_config": {"statusUrl": reverse("chat:models_status"), "reloadOnDone": True},
    }
