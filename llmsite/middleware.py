"""Headers Django does not set itself, and how many pages are drawn at once."""

import threading

from django.conf import settings
from django.http import HttpResponse
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _


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


class PageSlotsMiddleware:
    """At most LLMSITE_PAGE_THREADS requests run the site's Python code at once.

    In MIDDLEWARE after the header middleware (so its 503 has the site's security headers) and before any that
    does real work (static files, sessions, the view).

    Under daphne, Django gives every request a thread of its own (asgiref's ThreadSensitiveContext), so eight
    clients asking for new advisor answers meant eight threads taking turns with one interpreter lock: each
    page then cost 42 CPU-ms instead of 24 (futex wake-ups and cold caches at every switch), and the site
    answered 24 of them a second instead of 42 (bench/http_load.py, "answer page, new inputs"). The others
    wait here, asleep, for a slot; after LLMSITE_PAGE_WAIT_S they get a 503 with Retry-After rather than
    hang. The body was read before this runs (Django reads it first) and a streamed response is sent after,
    so a slow client holds no slot. The OpenAI-compatible API has a handler of its own, without this gate.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        slots = settings.LLMSITE_PAGE_THREADS
        self.slots = threading.BoundedSemaphore(slots) if slots else None

    def __call__(self, request):
        if self.slots is None:
            return self.get_response(request)
        if not self.slots.acquire(timeout=settings.LLMSITE_PAGE_WAIT_S):
            response = HttpResponse(_("The site is busy. Try again in a few seconds."), status=503,
                                    content_type="text/plain; charset=utf-8")
            response["Retry-After"] = "5"
            return response
        try:
            return self.get_response(request)
        finally:
            self.slots.release()
