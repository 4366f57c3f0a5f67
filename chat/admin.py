"""Staff manage model settings here. Conversations are deliberately absent: each person's chats are theirs
(README, "Security" > "What staff can see"), so the admin neither lists, searches nor shows them, and pages that count
them when an account is deleted show numbers, not titles or text."""

from django.contrib import admin

from chat.models import ModelConfig


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    list_display = ["file_name", "n_gpu_layers", "n_ctx", "flash_attn", "kv_type", "is_active", "updated_at"]
    list_filter = ["is_active", "flash_attn", "kv_type"]
    search_fields = ["file_name"]
