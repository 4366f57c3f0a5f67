"""Django's ModelBackend, behind the sign-in throttle (accounts/throttle.py): every sign-in form uses it,
ours and the admin's."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts import throttle


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        address = throttle.client_address(request)
        if username is not None and throttle.wait_seconds(username, address):
            raise PermissionDenied  # refused without checking the password (and without timing it)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if username is not None:
            if user is None:
                throttle.failed(username, address)
            else:
                throttle.succeeded(username, address)
        return user
