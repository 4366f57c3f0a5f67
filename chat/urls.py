from django.urls import path

from chat import model_views, views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.new, name="new"),
    path("c/<int:pk>/", views.conversation, name="conversation"),
    path("c/<int:pk>/rename/", views.rename, name="rename"),
    path("c/<int:pk>/delete/", views.delete, name="delete"),
    path("c/<int:pk>/system-prompt/", views.system_prompt, name="system_prompt"),
    path("c/<int:pk>/export.<str:fmt>", views.export, name="export"),
    path("presets/", views.presets, name="presets"),
    path("presets/<int:pk>/", views.preset_edit, name="preset_edit"),
    path("presets/<int:pk>/default/", views.preset_default, name="preset_default"),
    path("presets/<int:pk>/delete/", views.preset_delete, name="preset_delete"),
    path("models/", model_views.models, name="models"),
    path("models/load/", model_views.model_load, name="model_load"),
    path("models/unload/", model_views.model_unload, name="model_unload"),
    path("models/pin/", model_views.model_pin, name="model_pin"),
    path("models/status/", model_views.models_status, name="models_status"),
    path("models/workers/", model_views.models_workers, name="models_workers"),
]
