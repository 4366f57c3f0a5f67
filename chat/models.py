"""Conversations, their messages, and the staff's settings for each model file."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class KVType(models.TextChoices):
    F16 = "f16", "f16"
    Q8_0 = "q8_0", "q8_0"
    Q4_0 = "q4_0", "q4_0"


class ModelConfig(models.Model):
    """How a model file in the models folder is loaded. The active one is loaded at start."""

    file_name = models.CharField(max_length=255, unique=True)
    # None means "auto": the advisor's estimate for the GPU found at load time.
    n_gpu_layers = models.IntegerField(
        null=True, blank=True, validators=[MinValueValidator(-1), MaxValueValidator(1000)],
        help_text=_("Layers on the GPU: empty for automatic, -1 for all."),
    )
    n_ctx = models.PositiveIntegerField(default=4096, validators=[MinValueValidator(256), MaxValueValidator(1_048_576)])
    flash_attn = models.BooleanField(default=False)
    kv_type = models.CharField(max_length=5, choices=KVType.choices, default=KVType.F16)
    # Replies written at once (slots of n_ctx tokens each); None: LLMSITE_PARALLEL.
    parallel = models.PositiveSmallIntegerField(null=True, blank=True, validators=[MaxValueValidator(64)])
    is_active = models.BooleanField(default=False)
    # Staff pinned this model: the site's worker keeps it loaded and never swaps it for another.
    pinned = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["file_name"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model"),
            models.UniqueConstraint(fields=["pinned"], condition=models.Q(pinned=True), name="one_pinned_model"),
        ]

    def __str__(self):
        return self.file_name


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


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    model_file = models.CharField(max_length=255, blank=True)  # the model that wrote this reply
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
