from django.contrib import admin
from django.urls import path
from django.utils.translation import gettext_lazy as _

from advisor.admin_forms import GPUAdminForm, LanguageModelAdminForm
from advisor.admin_tools import export_catalog_action, import_catalog_view, import_gguf_view
from advisor.models import GPU, KnownFile, LanguageModel, Measurement, Quantization


@admin.register(GPU)
class GPUAdmin(admin.ModelAdmin):
    form = GPUAdminForm
    list_display = ["name", "vendor", "family", "segment", "vram_gib", "memory_bandwidth_gbs", "fp16_tflops", "backend",
                    "unified_memory", "gpu_memory_share"]
    list_filter = ["vendor", "segment", "backend", "unified_memory", "family"]
    search_fields = ["name", "slug", "family"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["updated_at"]
    actions = [export_catalog_action]

    def get_urls(self):
        extra = [path("import-catalog/", self.admin_site.admin_view(lambda r: import_catalog_view(self, r)),
                      name="advisor_gpu_import_catalog")]
        return extra + super().get_urls()


class KnownFileInline(admin.TabularInline):
    model = KnownFile
    extra = 0
    fields = ["quant", "filename", "repo", "size_bytes", "source"]


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    form = LanguageModelAdminForm
    list_display = ["name", "family", "params_b", "active_params_b", "n_layers", "context_length", "quality",
                    "quality_estimated", "release_date", "license"]
    list_filter = ["family", "arch", "quality_estimated", "license"]
    search_fields = ["name", "slug", "family", "arch"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["updated_at"]
    inlines = [KnownFileInline]
    actions = [export_catalog_action]
    fieldsets = [
        (None, {"fields": ["slug", "name", "family", "arch", "license", "release_date", "uses", "source",
                           "updated_at"]}),
        (_("Size"), {"fields": ["params_b", "active_params_b"]}),
        (_("Architecture"), {"fields": [
            "n_layers", "n_embd", "n_head", "n_head_kv", "head_dim", "head_dim_v", "n_ff", "n_vocab",
            "context_length", "sliding_window", "swa_pattern", "tied_embeddings"]}),
        (_("Mixture of experts"), {"fields": [
            "n_expert", "n_expert_used", "n_ff_expert", "n_shared_expert", "n_dense_layers", "expert_tensor_type"]}),
        (_("Quality"), {"fields": ["quality", "quality_benchmark", "quality_source", "quality_estimated",
                                   "quality_code", "quality_code_source", "quality_reasoning",
                                   "quality_reasoning_source"]}),
    ]

    def get_urls(self):
        extra = [
            path("import-gguf/", self.admin_site.admin_view(lambda r: import_gguf_view(self, r)),
                 name="advisor_languagemodel_import_gguf"),
            path("import-catalog/", self.admin_site.admin_view(lambda r: import_catalog_view(self, r)),
                 name="advisor_languagemodel_import_catalog"),
        ]
        return extra + super().get_urls()


@admin.register(Quantization)
class QuantizationAdmin(admin.ModelAdmin):
    list_display = ["name", "bits_per_weight", "kld", "ppl_delta", "recommended"]
    list_filter = ["recommended"]
    search_fields = ["name"]


@admin.register(KnownFile)
class KnownFileAdmin(admin.ModelAdmin):
    list_display = ["filename", "repo", "model", "quant", "size_bytes"]
    list_filter = ["quant", "model__family"]
    search_fields = ["filename", "repo", "model__name"]
    autocomplete_fields = ["model"]


@admin.register(Measurement)
class MeasurementAdmin(admin.ModelAdmin):
    list_display = ["created_at", "model_file", "quant", "gpu_name", "n_gpu_layers", "n_ctx", "decode_tokens_per_s",
                    "ttft_ms"]
    list_filter = ["quant", "gpu_name"]
    search_fields = ["model_file", "model_name", "gpu_name"]
    readonly_fields = [f.name for f in Measurement._meta.fields]

    def has_add_permission(self, request):  # measurements come from real replies only
        return False
