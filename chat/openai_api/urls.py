from django.urls import path

from chat.openai_api import views

app_name = "openai_api"
urlpatterns = [
    path("models", views.models, name="models"),
    path("chat/completions", views.chat_completions, name="chat_completions"),
]
