"""Who may use the site: the first-run record, invitations, and the site's sign-up setting."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

INVITATION_DAYS = 7


def new_token() -> str:
    # 32 random URL-safe characters (192 bits): the link is the only credential an invited person has.
    return secrets.token_urlsafe(24)


def default_expiry():
    return timezone.now() + timedelta(days=INVITATION_DAYS)


class FirstRun(models.Model):
    """One row, written in the same transaction as the first administrator.

    Its fixed primary key is the guard that makes two concurrent setups create one administrator: the
    second insert of pk=1 fails with an IntegrityError on every database, even where "no user exists yet"
    cannot be locked (an empty table has no row to SELECT ... FOR UPDATE).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    admin = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    completed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("first run")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="accounts_firstrun_single_row")]

    def __str__(self):
        return f"first run {self.completed_at:%Y-%m-%d %H:%M}"


class InvitationQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """A link that lets one person create an account."""

    token = models.CharField(_("token"), max_length=64, unique=True, default=new_token, editable=False)
    email = models.EmailField(_("email"), blank=True, help_text=_("Optional: given to the new account."))
    note = models.CharField(_("note"), max_length=200, blank=True, help_text=_("Who it is for, for your records."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="invitations_sent", verbose_name=_("created by"))
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires"), default=default_expiry)
    used_by = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="invitation", verbose_name=_("used by"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self):
        return self.note or self.email or _("invitation of %(date)s") % {"date": f"{self.created_at:%Y-%m-%d}"}

    def get_absolute_url(self):
        return reverse("accounts:invitation", args=[self.token])

    @property
    def is_used(self) -> bool:
        return self.used_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class SiteSettings(models.Model):
    """The site's own switches, one row, edited in the admin."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    open_signup = models.BooleanField(
        _("open sign-up"), default=False,
        help_text=_("Anyone who can reach the site may ask for an account; staff approve each one in the admin "
                    "(Users, action “Approve”)."),
    )

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="accounts_sitesettings_single_row")]

    def __str__(self):
        return str(_("Site settings"))

    @classmethod
    def load(cls) -> "SiteSettings":
        # Reading never writes: until staff save the settings once, the defaults apply.
        return cls.objects.filter(pk=1).first() or cls()
