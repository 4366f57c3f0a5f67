import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    """A model per conversation: the model that wrote each reply, and a model staff pin so it is never swapped,
    and how many replies a model writes at once."""

    dependencies = [
        ("chat", "0003_reply_versions_and_presets"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="model_file",
            field=models.CharField(blank=True, max_length=255, verbose_name="model file"),
        ),
        migrations.AddField(
            model_name="modelconfig",
            name="pinned",
            field=models.BooleanField(default=False, verbose_name="pinned"),
        ),
        migrations.AddField(
            model_name="modelconfig",
            name="parallel",
            field=models.PositiveSmallIntegerField(blank=True, null=True,
                                                   validators=[django.core.validators.MaxValueValidator(64)],
                                                   verbose_name="replies at once"),
        ),
        migrations.AddConstraint(
            model_name="modelconfig",
            constraint=models.UniqueConstraint(condition=models.Q(("pinned", True)), fields=("pinned",),
                                               name="one_pinned_model"),
        ),
    ]
