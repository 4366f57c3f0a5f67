"""A download into the models folder: the queue's persistent record, so it outlives the browser and the site."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class State(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("downloading")
    VERIFYING = "verifying", _("verifying")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


ACTIVE_STATES = (State.QUEUED, State.RUNNING, State.VERIFYING)


class DownloadQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state__in=ACTIVE_STATES)

    def recent(self, limit: int = 20):
        return self.order_by("-created_at")[:limit]


class Download(models.Model):
    """One GGUF file (all parts of a split one) fetched from a Hugging Face repository or an HTTPS URL.

    The runner (downloads/runner.py) takes queued records one at a time, oldest first; a record left
    `running` by a stopped site is taken again at the next start and resumes from the bytes on disk.
    """

    repo = models.CharField(max_length=200, blank=True, help_text=_("Hugging Face repository, owner/name."))
    revision = models.CharField(max_length=100, blank=True, default="main")
    url = models.URLField(max_length=2000, blank=True, help_text=_("A plain HTTPS URL, when not from a repository."))
    file_name = models.CharField(max_length=255, help_text=_("The file in the models folder (the first part)."))
    expected_sha256 = models.CharField(max_length=64, blank=True)
    # [{"name", "url", "size", "sha256"}]: every part of a split GGUF, filled when the download is accepted.
    parts = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total_bytes = models.PositiveBigIntegerField(default=0)
    done_bytes = models.PositiveBigIntegerField(default=0)
    bytes_per_s = models.FloatField(default=0)
    error = models.TextField(blank=True)
    # The advisor's settings to load it with, when an answer started it (null n_gpu_layers: "auto").
    n_gpu_layers = models.IntegerField(null=True, blank=True,
                                       validators=[MinValueValidator(-1), MaxValueValidator(1000)])
    n_ctx = models.PositiveIntegerField(null=True, blank=True)
    flash_attn = models.BooleanField(default=False)
    kv_type = models.CharField(max_length=5, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DownloadQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(repo="") | ~models.Q(url=""), name="download_has_a_source"),
        ]

    def __str__(self):
        return f"{self.repo or self.url} {self.file_name}".strip()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def seconds_left(self) -> float | None:
        if self.state != State.RUNNING or self.bytes_per_s <= 0 or not self.total_bytes:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / self.bytes_per_s)

    @property
    def has_load_settings(self) -> bool:
        return self.n_ctx is not None

    def as_dict(self) -> dict:
        """What the status channel sends (chat:models_status): plain JSON values, no secrets."""
        return {"id": self.pk, "repo": self.repo, "file_name": self.file_name, "state": self.state,
                "state_label": str(self.get_state_display()), "total_bytes": self.total_bytes,
                "done_bytes": self.done_bytes, "bytes_per_s": round(self.bytes_per_s),
                "seconds_left": None if self.seconds_left is None else round(self.seconds_left),
                "error": self.error}
