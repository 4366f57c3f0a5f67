"""The site's URLs plus views that fail on purpose, for the error page tests (tests/test_error_pages.py)."""

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.urls import path

from llmsite.urls import urlpatterns as site_urlpatterns


def broken_view(request):
    raise RuntimeError("a bug in a view")


def database_gone_view(request):
    raise DatabaseError("the database went away")


def forbidden_view(request):
    raise PermissionDenied


urlpatterns = [
    *site_urlpatterns,
    path("test-errors/bug/", broken_view),
    path("test-errors/database/", database_gone_view),
    path("test-errors/forbidden/", forbidden_view),
]
