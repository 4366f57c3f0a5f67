"""Conversations, their messages, and the staff's settings for each model file."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from chat.worker.types import PARALLEL_AUTO

PARALLEL_AUTO_STORED = -1  # ModelConfig.parallel's "auto"

class KVType(models.TextChoices):
    F16 = "f16", "f16"
    Q8_0 = "q8_0", "q8_0"
    Q4_0 = "q4_0", "q4_0"


class ModelConfig(models.Model):
    """How a model file in the models folder is loaded. The active one is loaded at start."""

    file_name = models.CharField(_("model file"), max_length=255, unique=True)
    # None means "auto": the advisor's estimate for the GPU found at load time.
    n_gpu_layers = models.IntegerField(
        _("layers on the GPU"), null=True, blank=True, validators=[MinValueValidator(-1), MaxValueValidator(1000)],
        help_text=_("Layers on the GPU: empty for automatic, -1 for all."),
    )
    n_ctx = models.PositiveIntegerField(
        _("context length (tokens)"), default=4096, validators=[MinValueValidator(256), MaxValueValidator(1_048_576)]
    )
    flash_attn = models.BooleanField(_("flash attention"), default=False)
    kv_type = models.CharField(_("KV cache type"), max_length=5, choices=KVType.choices, default=KVType.F16)
    # Replies written at once (slots of n_ctx tokens each); None: LLMSITE_PARALLEL; PARALLEL_AUTO_STORED (-1):
    # "auto", the slots that fit in memory. parallel_setting() gives the value the worker takes.
    parallel = models.SmallIntegerField(
        _("replies at once"), null=True, blank=True, validators=[MinValueValidator(-1), MaxValueValidator(64)],
        help_text=_("Empty: the site's setting; -1: auto (as many as fit in memory); 0: one at a time."))
    is_active = models.BooleanField(_("loaded at start"), default=False)
    # Staff pinned this model: the site's worker keeps it loaded and never swaps it for another.
    pinned = models.BooleanField(_("pinned"), default=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("model setting")
        verbose_name_plural = _("model settings")
        ordering = ["file_name"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model"),
            models.UniqueConstraint(fields=["pinned"], condition=models.Q(pinned=True), name="one_pinned_model"),
        ]

    def __str__(self):
        return self.file_name

    def parallel_setting(self) -> int | str | None:
        """Replies at once as LoadSettings takes it: a number, "auto", or None for LLMSITE_PARALLEL."""
        return PARALLEL_AUTO if self.parallel == PARALLEL_AUTO_STORED else self.parallel


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)

    def matching(self, text: str):
        if not text:
            return self
        return self.filter(models.Q(title__icontains=text) | models.Q(messages__content__icontains=text)).distinct()


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    model_file = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        # gettext, not the lazy _: str() must get a real str, or every page that shows the title fails.
        return self.title or gettext("New conversation")


INTERRUPTED = "The server restarted before this reply finished."


class Role(models.TextChoices):
    SYSTEM = "system", _("System")
    USER = "user", _("User")
    ASSISTANT = "assistant", _("Assistant")


class Status(models.TextChoices):
    STREAMING = "streaming", _("Streaming")
    COMPLETE = "complete", _("Complete")
    STOPPED = "stopped", _("Stopped")
    ERROR = "error", _("Error")


class MessageQuerySet(models.QuerySet):
    def streaming(self):
        return self.filter(status=Status.STREAMING)

    def interrupt(self) -> int:
        """End the streaming replies among these: the server that wrote them stopped. Their text is kept."""
        return self.streaming().update(status=Status.ERROR, error=INTERRUPTED, finished_at=timezone.now())


class FinishReason(models.TextChoices):
    STOP = "", _("Ended")
    LENGTH = "length", _("Stopped at the length limit")


class Message(models.Model):
    """One message of a conversation. Messages form a tree: `parent` is the message before this one, and the
    messages with the same parent are versions of one turn (a regenerated reply, an edited question), of which
    one is `selected`. The conversation shown, and the context of the next turn, is the path of selected
    versions from the first message down."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    selected = models.BooleanField(default=True)
    finish_reason = models.CharField(max_length=10, choices=FinishReason.choices, default=FinishReason.STOP,
                                     blank=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    model_file = models.CharField(_("model file"), max_length=255, blank=True)  # the model that wrote this reply
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    prompt_tokens_per_s = models.FloatField(null=True, blank=True)
    decode_tokens_per_s = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_order")]

    def __str__(self):
        return f"{self.role}: {self.content[:40]}"

    def save(self, *args, first_version: bool = False, **kwargs):
        """A new message without a parent follows the last message shown, so a conversation written message after
        message is one path; `first_version=True` makes it a version of the conversation's first turn instead."""
        if self._state.adding and self.parent_id is None and not first_version and self.role != Role.SYSTEM:
            path = selected_path(Message.objects.filter(conversation_id=self.conversation_id)
                                 .exclude(role=Role.SYSTEM))
            self.parent = path[-1] if path else None
        super().save(*args, **kwargs)


def selected_path(messages) -> list:
    """The conversation as shown: from the first turn down, the selected version of each turn, each message
    given `version` (1-based) and `versions` (how many the turn has). `messages`: all of one conversation's."""
    children: dict = {}
    for message in sorted(messages, key=lambda m: (m.created_at, m.id)):
        children.setdefault(message.parent_id, []).append(message)
    path, parent = [], None
    while versions := children.get(parent):
        chosen = next((m for m in reversed(versions) if m.selected), versions[-1])
        chosen.version, chosen.versions = versions.index(chosen) + 1, len(versions)
        chosen.siblings = versions
        path.append(chosen)
        parent = chosen.id
    return path


class PresetQuerySet(models.QuerySet):
    def owned_by(self, user):
        return self.filter(owner=user)


class Preset(models.Model):
    """A person's named system prompt and sampling options; the default one starts new conversations."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(_("name"), max_length=80)
    system_prompt = models.TextField(_("system prompt"), blank=True, max_length=20_000)
    options = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(_("default for new conversations"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PresetQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="preset_name_per_owner"),
            models.UniqueConstraint(fields=["owner"], condition=models.Q(is_default=True),
                                    name="one_default_preset_per_owner"),
        ]

    def __str__(self):
        return self.name

    def save_as_default(self) -> None:
        """Save this preset as its owner's default; the one that was the default no longer is."""
        with transaction.atomic():
            Preset.objects.owned_by(self.owner).filter(is_default=True).exclude(pk=self.pk).update(is_default=False)
            self.is_default = True
            self.save()

    def as_config(self) -> dict:
        return {"id": self.pk, "name": self.name, "system_prompt": self.system_prompt, "options": self.options,
                "is_default": self.is_default}
