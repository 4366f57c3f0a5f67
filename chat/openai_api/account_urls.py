from django.urls import path

from chat.openai_api import account_views

app_name = "openai_api_keys"
urlpatterns = [
    path("", account_views.keys, name="keys"),
    path("<int:pk>/revoke/", account_views.revoke, name="revoke"),
    path("<int:pk>/store/", account_views.store, name="store"),
]
