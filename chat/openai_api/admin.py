"""Staff see every API key (never the key itself: only its prefix) and revoke any of them."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from chat.openai_api.models import ApiKey, ApiReply


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "prefix", "store_conversations", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "store_conversations"]
    search_fields = ["name", "prefix", "owner__username"]
    fields = ["name", "owner", "prefix", "store_conversations", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["owner", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # each person makes their own keys, on their account page: a key is shown only to them

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count)
                          % {"count": count}, messages.SUCCESS)


@admin.register(ApiReply)
class ApiReplyAdmin(admin.ModelAdmin):
    list_display = ["created_at", "owner", "key", "model_file", "status", "streamed", "prompt_tokens",
                    "completion_tokens", "ttft_ms", "decode_tokens_per_s"]
    list_filter = ["status", "streamed", "model_file"]
    search_fields = ["owner__username", "key__name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
