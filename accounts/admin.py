"""Staff invite people, switch open sign-up on or off, and approve the accounts that sign-up creates."""

from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Invitation, SiteSettings


class LabelledDateTimeMixin:
    """Django's date-and-time inputs say "Date:" and "Time:" in plain text, and the field's label points at
    neither: each input gets its own accessible name ("Expires: date")."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and isinstance(formfield.widget, AdminSplitDateTime):
            label = capfirst(str(formfield.label or db_field.verbose_name))
            date, time = formfield.widget.widgets
            date.attrs["aria-label"] = gettext("%(field)s: date") % {"field": label}
            time.attrs["aria-label"] = gettext("%(field)s: time") % {"field": label}
        return formfield


@admin.register(Invitation)
class InvitationAdmin(LabelledDateTimeMixin, admin.ModelAdmin):
    list_display = ["__str__", "email", "created_by", "created_at", "expires_at", "used_by", "state", "link"]
    list_filter = ["used_at", "expires_at"]
    search_fields = ["email", "note", "used_by__username"]
    fields = ["email", "note", "expires_at", "link", "created_by", "created_at", "used_by", "used_at"]
    readonly_fields = ["link", "created_by", "created_at", "used_by", "used_at"]

    @admin.display(description=_("state"))
    def state(self, invitation):
        if invitation.is_used:
            return _("used")
        return _("expired") if invitation.is_expired else _("open")

    @admin.display(description=_("link to send"))
    def link(self, invitation):
        if not invitation.pk:
            return _("Saved invitations show their link here.")
        url = invitation.get_absolute_url()
        return format_html('<a href="{}">{}</a>', url, url)

    def save_model(self, request, invitation, form, change):
        if not change:
            invitation.created_by = request.user
        super().save_model(request, invitation, form, change)

    def response_add(self, request, invitation, post_url_continue=None):
        url = request.build_absolute_uri(invitation.get_absolute_url())
        self.message_user(request, format_html(gettext("Send this link to the person you invite: {}"), url),
                          messages.SUCCESS)
        return super().response_add(request, invitation, post_url_continue)


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "open_signup"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not SiteSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(LabelledDateTimeMixin, UserAdmin):
    """Django's user admin, with the approval of accounts that open sign-up created."""

    list_display = ["username", "email", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups"]
    ordering = ["is_active", "-date_joined"]
    actions = ["approve"]
    # Django's two-box chooser (SelectFilter2.js) puts aria-label on role-less spans, which screen readers
    # ignore (axe: aria-prohibited-attr); a labelled multiple select is read and used from the keyboard.
    filter_horizontal = ()

    def get_deleted_objects(self, objs, request):
        """Django lists everything a deletion takes with it; for accounts that would show their
        conversations' titles and the start of their messages to staff. Only the accounts are listed
        by name; the rest is counted (the summary by kind stays)."""
        _listed, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        return [str(obj) for obj in objs], model_count, perms_needed, protected

    @admin.action(description=_("Approve the selected accounts (they can sign in)"), permissions=["change"])
    def approve(self, request, queryset):
        count = queryset.filter(is_active=False).update(is_active=True)
        self.message_user(request, ngettext("%(n)d account approved.", "%(n)d accounts approved.", count)
                          % {"n": count}, messages.SUCCESS)
