from django.contrib import admin
from django.urls import include, path

from accounts import views as accounts_views
from llmsite import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("advisor/", include("advisor.urls")),
    path("api/advisor/", include("advisor.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("setup/", accounts_views.setup, name="setup"),
    path("accounts/api-keys/", include("chat.openai_api.account_urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("chat/", include("chat.urls")),
    path("v1/", include("chat.openai_api.urls")),
]
