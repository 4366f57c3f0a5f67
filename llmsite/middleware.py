"""Headers Django does not set itself."""

from django.conf import settings
from django.utils.deprecation import MiddlewareMixin


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sends settings.CONTENT_SECURITY_POLICY on every response that has none yet.

    Django 5.2 has no CSP support of its own (it arrives in 6.0). Every page of the site, the admin
    included, works without inline scripts or styles, so one strict policy covers them all.
    """

    def process_response(self, request, response):
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class LowerPagePriorityMiddleware:
    """First in MIDDLEWARE: the request's own thread (middleware, view, template) runs at page priority, below
    the worker and the event loop that stream replies (chat/worker/priority.py; only under `make run`)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from chat.worker.priority import lower_this_thread

        lower_this_thread()
        return self.get_response(request)
