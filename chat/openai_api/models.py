"""Personal API keys, and a record of each reply the API wrote (what the Models page shows)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ApiKeyQuerySet(models.QuerySet):
    def usable(self):
        """Keys that open the API: not revoked, of an active account."""
        return self.filter(revoked_at__isnull=True, owner__is_active=True)


class ApiKey(models.Model):
    """A personal API key. Only its SHA-256 is kept: the key itself is shown once, when it is made."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, help_text=_("The key's first characters, to recognise it."))
    key_hash = models.CharField(max_length=64, unique=True)
    store_conversations = models.BooleanField(
        _("store calls as conversations"), default=False,
        help_text=_("Keep each call made with this key as a conversation in the chat."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        indexes = [models.Index(fields=["owner", "created_at"], name="apikey_owner_created")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class ApiReply(models.Model):
    """One reply the API wrote: who, with which key and model, how long, how fast. Never its text."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_replies")
    key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="replies")
    model_file = models.CharField(max_length=255)
    status = models.CharField(max_length=10)  # complete, stopped (the client went away), error
    streamed = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    decode_tokens_per_s = models.FloatField(null=True, blank=True)
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.model_file}: {self.completion_tokens or 0} tokens ({self.status})"
