"""The account page where each person makes, names and revokes their own API keys (/accounts/api-keys/)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from chat.openai_api.forms import ApiKeyForm
from chat.openai_api.keys import create_key
from chat.openai_api.models import ApiKey

NEW_KEY_SESSION = "openai_api_new_key"


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def keys(request):
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        row, key = create_key(request.user, form.cleaned_data["name"], form.cleaned_data["store_conversations"])
        # Shown once, on the page this redirects to; only its hash is stored.
        request.session[NEW_KEY_SESSION] = {"id": row.pk, "key": key}
        return redirect("openai_api_keys:keys")
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    base_url = request.build_absolute_uri(reverse("openai_api:models")).rsplit("/models", 1)[0]
    return render(request, "openai_api/keys.html", {
        "form": form, "keys": ApiKey.objects.filter(owner=request.user), "new_key": new_key, "base_url": base_url})


def _own_key(request, pk):
    return get_object_or_404(ApiKey, pk=pk, owner=request.user)  # someone else's key is a 404, like a missing one


@login_required
@require_POST
def revoke(request, pk):
    key = _own_key(request, pk)
    if key.revoked_at is None:
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, _("The key “%(name)s” was revoked: it no longer works.") % {"name": key.name})
    return redirect("openai_api_keys:keys")


@login_required
@require_POST
def store(request, pk):
    key = _own_key(request, pk)
    key.store_conversations = request.POST.get("store") == "on"
    key.save(update_fields=["store_conversations"])
    if key.store_conversations:
        messages.success(request, _("Calls made with “%(name)s” are now kept as conversations.") % {"name": key.name})
    else:
        messages.success(request, _("Calls made with “%(name)s” are no longer kept.") % {"name": key.name})
    return redirect("openai_api_keys:keys")
