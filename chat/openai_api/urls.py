from django.urls import path, re_path

from chat.openai_api import views

app_name = "openai_api"
urlpatterns = [
    path("models", views.models, name="models"),
    path("models/<str:name>", views.model, name="model"),
    path("chat/completions", views.chat_completions, name="chat_completions"),
    path("completions", views.completions, name="completions"),
    re_path(r"^", views.not_found),  # anything else under /v1/: a 404 in OpenAI's shape, not the site's page
]
