"""While the site has no account at all, pages that need one lead to the first-run setup instead."""

from django.shortcuts import redirect
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import urlencode

from accounts.services import setup_needed

# Sign-in (where every login_required page sends visitors) and the admin. Public pages such as the advisor
# keep working on a fresh install; they hold nothing private.
NEEDS_AN_ACCOUNT = ("/accounts/", "/admin/")


class FirstRunMiddleware(MiddlewareMixin):
    # Synchronous only, and last in MIDDLEWARE: Django then runs the whole middleware chain and the (sync)
    # view in one hop to its sync thread instead of a thread switch per middleware method (about 30 per
    # request under daphne; README "Performance").
    async_capable = False

    def process_request(self, request):
        if request.path_info.startswith(NEEDS_AN_ACCOUNT) and setup_needed():
            target = reverse("setup")
            # Back where the visitor was going once the administrator exists: the sign-in page's own
            # `next`, or the admin page itself.
            following = request.GET.get("next") if request.path_info.startswith("/accounts/") else (
                request.get_full_path())
            if following:
                target += "?" + urlencode({"next": following})
            return redirect(target)
        return None
