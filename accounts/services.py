"""The few writes that must be race-safe: the first administrator, and using an invitation."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import FirstRun, Invitation


class SetupClosed(Exception):
    """An account already exists (or another setup won the race): the first-run setup is over."""


class InvitationUnusable(Exception):
    """The invitation was used or expired between showing the form and submitting it."""


def setup_needed() -> bool:
    """True only on a fresh install: no account at all, and no setup done before.

    createsuperuser counts like the setup page. Once setup has run, deleting every account does not reopen
    it to whoever comes first: `createsuperuser` makes a new administrator then.
    """
    return not get_user_model().objects.exists() and not FirstRun.objects.exists()


def create_first_admin(username: str, password: str, email: str = ""):
    """Create the administrator, once. Raises SetupClosed when any account exists or appears meanwhile."""
    User = get_user_model()
    try:
        with transaction.atomic():
            if User.objects.exists():
                raise SetupClosed
            # Inserting the single FirstRun row is the guard: a concurrent setup's insert fails here.
            first_run = FirstRun.objects.create(pk=1)
            admin = User.objects.create_superuser(username=username, email=email, password=password)
            first_run.admin = admin
            first_run.save(update_fields=["admin"])
    except IntegrityError:
        raise SetupClosed from None
    return admin


def accept_invitation(invitation: Invitation, username: str, password: str):
    """Create the invited person's account and mark the invitation used, or raise InvitationUnusable."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=invitation.email, password=password)
        # A conditional UPDATE claims the invitation: of two people submitting the same link, one wins.
        claimed = Invitation.objects.usable().filter(pk=invitation.pk).update(used_by=user, used_at=timezone.now())
        if claimed != 1:
            raise InvitationUnusable  # leaving the atomic block by an exception undoes the new account
    return user
