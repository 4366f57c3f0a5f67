from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils.translation import gettext_lazy as _

from accounts import throttle


class NewAccountForm(UserCreationForm):
    """Username and password twice; Django's password validators run against the new account."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username"]


class NewAccountWithEmailForm(NewAccountForm):
    email = forms.EmailField(label=_("Email (optional)"), required=False)

    class Meta(NewAccountForm.Meta):
        fields = ["username", "email"]


class SignInForm(AuthenticationForm):
    """Django's sign-in form, which also tells a person whose account still awaits approval."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "pending": _("Your account is waiting for an administrator's approval."),
        "throttled": _("Too many failed sign-ins for this account from your address. "
                       "Try again in %(minutes)s minutes."),
        "throttled_account": _("Too many failed sign-ins for this account from other addresses. Sign in from "
                               "a device that has signed in to it before, or try again in %(minutes)s minutes."),
    }

    def clean(self):
        wait = throttle.wait(self.cleaned_data.get("username") or "", throttle.client_address(self.request))
        if wait.seconds:
            code = "throttled_account" if wait.reason == "account" else "throttled"
            raise forms.ValidationError(self.error_messages[code], code=code,
                                        params={"minutes": max(1, -(-wait.seconds // 60))})
        try:
            return super().clean()
        except forms.ValidationError:
            # Said only to someone who knows the password, so it reveals nothing about who has an account.
            user = get_user_model()._default_manager.filter(
                username=self.cleaned_data.get("username") or "").first()
            if user is not None and not user.is_active and user.check_password(self.cleaned_data.get("password")):
                raise forms.ValidationError(self.error_messages["pending"], code="pending") from None
            raise
