from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from accounts import views as accounts_views
from llmsite import views

# The admin names this site, not "Django administration".
admin.site.site_header = _("llmsite administration")
admin.site.site_title = _("llmsite admin")
admin.site.index_title = _("Catalog, accounts and models")

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
    path("chat/models/downloads/", include("downloads.urls")),
    path("chat/", include("chat.urls")),
    path("v1/", include("chat.openai_api.urls")),
]
