from django.urls import path

from advisor import api

app_name = "advisor_api"
urlpatterns = [
    path("gpus", api.gpus, name="gpus"),
    path("models", api.models, name="models"),
    path("recommendations", api.recommendations, name="recommendations"),
    path("openapi.json", api.openapi, name="openapi"),
]
