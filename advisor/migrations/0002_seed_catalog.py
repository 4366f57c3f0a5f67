"""Load the curated catalog shipped in advisor/seed/ (GPUs, models, quantizations, measured file sizes).

Later corrections ship as new migrations or through the admin; this one only runs on a fresh database.
"""

from django.db import migrations


def load_seed(apps, schema_editor):
    from advisor.catalog_io import import_catalog, read_seed

    import_catalog(read_seed(), apps=apps)


def unload_seed(apps, schema_editor):
    for name in ("KnownFile", "LanguageModel", "GPU", "Quantization"):
        apps.get_model("advisor", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("advisor", "0001_initial")]

    operations = [migrations.RunPython(load_seed, unload_seed)]
