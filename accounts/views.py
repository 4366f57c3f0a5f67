"""First-run setup, invitations, open sign-up, and Django's sign-in and sign-out with our templates."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.db import IntegrityError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import services, throttle
from accounts.forms import NewAccountForm, NewAccountWithEmailForm, SignInForm
from accounts.models import Invitation, SiteSettings

BACKEND = "accounts.backends.ThrottledModelBackend"


def _next_url(request, default="/"):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return default


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "open_signup": SiteSettings.load().open_signup}


class SignOutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET): a link or an image cannot sign anyone out."""


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's own (old password, new one twice, the site's password validators); this session stays signed
    in, every other session of the account is signed out (their chat sockets close with `signed_out`)."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def setup(request):
    """Shown while the site has no account at all: the first visitor creates the administrator."""
    if not services.setup_needed():
        raise Http404(_("This site is already set up."))
    form = NewAccountWithEmailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            admin = services.create_first_admin(data["username"], data["password1"], data.get("email") or "")
        except services.SetupClosed:
            raise Http404(_("This site is already set up.")) from None
        login(request, admin, backend=BACKEND)
        messages.success(request, _("Welcome, %(name)s. You are this site's administrator: invite people from "
                                    "the admin.") % {"name": admin.get_username()})
        return redirect(_next_url(request))
    return render(request, "accounts/setup.html", {"form": form, "next": _next_url(request, "")})


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request, token):
    invite = get_object_or_404(Invitation, token=token)
    if invite.is_used or invite.is_expired:
        return _refuse(request, invite)
    form = NewAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.accept_invitation(invite, form.cleaned_data["username"], form.cleaned_data["password1"])
        except services.InvitationUnusable:
            invite.refresh_from_db()
            return _refuse(request, invite)
        except IntegrityError:  # the same username taken a moment ago
            form.add_error("username", _("A user with that username already exists."))
        else:
            login(request, user, backend=BACKEND)
            messages.success(request, _("Welcome, %(name)s.") % {"name": user.get_username()})
            return redirect("/")
    return render(request, "accounts/invitation.html", {"form": form, "invitation": invite})


def _refuse(request, invite):
    if invite.is_used:
        reason = _("This invitation has already been used. Ask an administrator for a new one.")
    else:
        reason = _("This invitation has expired. Ask an administrator for a new one.")
    return render(request, "accounts/invitation_refused.html", {"reason": reason}, status=410)


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def signup(request):
    """Open sign-up, when staff have switched it on: the account waits inactive for their approval.

    Rationed (accounts/throttle.py): LLMSITE_SIGNUP_PER_ADDRESS accounts an hour from one address, and no
    new one while LLMSITE_SIGNUP_MAX_PENDING already wait for approval.
    """
    if not SiteSettings.load().open_signup:
        raise Http404(_("Sign-up is closed on this site."))
    form = NewAccountWithEmailForm(request.POST or None)
    if request.method == "POST":
        refusal = _signup_refusal(request)
        if refusal:
            form.is_valid()  # keeps what was typed on the page
            form.add_error(None, refusal)
            return render(request, "accounts/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save(commit=False)
        user.is_active = False
        try:
            user.save()
        except IntegrityError:
            form.add_error("username", _("A user with that username already exists."))
        else:
            throttle.signup_recorded(throttle.client_address(request))
            return render(request, "accounts/signup_done.html", {"username": user.get_username()})
    return render(request, "accounts/signup.html", {"form": form})


def _signup_refusal(request) -> str | None:
    wait = throttle.signup_wait(throttle.client_address(request))
    if wait:
        return _("Too many accounts were asked for from your address. Try again in %(minutes)s minutes.") % {
            "minutes": max(1, -(-wait // 60))}
    pending = get_user_model().objects.filter(is_active=False, last_login__isnull=True).count()
    if pending >= settings.LLMSITE_SIGNUP_MAX_PENDING:
        return _("Too many accounts are waiting for an administrator's approval. Try again later.")
    return None
