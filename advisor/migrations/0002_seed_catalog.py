"""Loaded the curated catalog shipped in advisor/seed/ (GPUs, models, quantizations, measured file sizes).

Since 0004 the seed is loaded there, whole: the seed now has fields and choices (segment "soc", quality_code,
...) that the models of 0002's time would refuse, and a fresh database gets every row from 0004 anyway.
Databases that ran this before keep what it loaded; 0004 re-loads the seed over it.
"""

from django.db import migrations


def load_seed(apps, schema_editor):
    """Nothing any more: 0004_catalog_2026_fields loads the seed with the fields it has."""


def unload_seed(apps, schema_editor):
    for name in ("KnownFile", "LanguageModel", "GPU", "Quantization"):
        apps.get_model("advisor", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("advisor", "0001_initial")]

    operations = [migrations.RunPython(load_seed, unload_seed)]
