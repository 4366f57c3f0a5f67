import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    """ModelConfig.parallel may be -1: "auto", as many slots as fit in memory (LLMSITE_PARALLEL=auto)."""

    dependencies = [
        ("chat", "0004_model_per_conversation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="modelconfig",
            name="parallel",
            field=models.SmallIntegerField(
                blank=True, null=True,
                help_text="Empty: the site's setting; -1: auto (as many as fit in memory); 0: one at a time.",
                validators=[django.core.validators.MinValueValidator(-1),
                            django.core.validators.MaxValueValidator(64)],
                verbose_name="replies at once"),
        ),
    ]
