from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from chat.models import Conversation, Message, ModelConfig


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ["file_name", "n_gpu_layers", "n_ctx", "flash_attn", "kv_type", "is_active", "updated_at"]
    list_filter = ["is_active", "flash_attn", "kv_type"]
    search_fields = ["file_name"]


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["role", "content", "status", "error", "completion_tokens", "ttft_ms", "decode_tokens_per_s",
              "created_at"]
    readonly_fields = ["created_at"]
    show_change_link = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "model_file", "message_count", "updated_at"]
    list_filter = ["model_file", "updated_at"]
    search_fields = ["title", "owner__username", "messages__content"]
    raw_id_fields = ["owner"]
    date_hierarchy = "updated_at"
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description=_("messages"), ordering="message_total")
    def message_count(self, obj):
        return obj.message_total
