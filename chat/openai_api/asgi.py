"""/v1/ gets a Django handler of its own, with only async-capable middleware.

The site's middleware chain is synchronous (accounts.middleware.FirstRunMiddleware: one hop to the sync thread
per page). Through it an async view runs in a task of its own that a client's disconnect does not cancel, so a
client that gave up would still be answered to the end. With an all-async chain the view runs in the request's
own task, which Django cancels the moment the client disconnects (ASGIHandler.listen_for_disconnect): the
reply is then stopped in the worker (chat/openai_api/views.py). No session, CSRF or message middleware: the API
reads nothing but its Bearer key.
"""

from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

PREFIX = "/v1/"
API_MIDDLEWARE = [
    "llmsite.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",  # ALLOWED_HOSTS, as for every page
]


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        # BaseHandler reads settings.MIDDLEWARE: give it the API's chain while it builds this handler (once,
        # at start-up), and put the site's back.
        site_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site_middleware


class ApiRouter:
    """HTTP under /v1/ to the API's handler, everything else to the site's."""

    def __init__(self, site_application):
        self.site_application = site_application
        self.api_application = ApiHandler()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            return await self.api_application(scope, receive, send)
        return await self.site_application(scope, receive, send)
