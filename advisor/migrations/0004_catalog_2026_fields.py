"""Issue 12's catalog fields: one quality scale (sourced or estimated, with coding and reasoning figures),
the tensor type a model keeps its experts in (gpt-oss: MXFP4), release dates, and the share of RAM a
unified-memory device's GPU may use.

The data step loads the seed, whole: on a fresh database this is the first load (0002 no longer loads it:
its models would refuse the new fields and choices); on an older one it replaces the seed rows, whose
quality figures were on other scales (a staff edit of an old figure is on an old scale too). Rows staff
added that are not in the seed are kept. A later migration that adds fields loads the seed itself the same way.
"""

import advisor.models
import django.core.validators
from django.db import migrations, models


def reload_seed(apps, schema_editor):
    from advisor.catalog_io import import_catalog, read_seed

    import_catalog(read_seed(), apps=apps)


class Migration(migrations.Migration):

    dependencies = [
        ('advisor', '0003_rtx_5070_ti_laptop_bandwidth'),
    ]

    operations = [
        migrations.AddField(
            model_name='gpu',
            name='gpu_memory_share',
            field=models.FloatField(blank=True, help_text='Unified memory: the share of system RAM the GPU may use by default (0 to 1).', null=True, validators=[django.core.validators.MinValueValidator(0.05), django.core.validators.MaxValueValidator(1)]),
        ),
        migrations.AddField(
            model_name='gpu',
            name='gpu_memory_share_source',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='expert_tensor_type',
            field=models.CharField(blank=True, help_text="The type the model's files keep their expert weights in whatever the quantization (MXFP4 for gpt-oss); empty: the quantization's own mix.", max_length=16, validators=[advisor.models.validate_tensor_type]),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='quality_code',
            field=models.FloatField(blank=True, help_text="Coding figure on the same scale, used for the use 'code'.", null=True, validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(100)]),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='quality_code_source',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='quality_estimated',
            field=models.BooleanField(default=False, help_text='The quality comes from the documented estimate rule, not from a source.'),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='quality_reasoning',
            field=models.FloatField(blank=True, help_text="Reasoning-mode figure on the same scale, for 'reasoning'.", null=True, validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(100)]),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='quality_reasoning_source',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='languagemodel',
            name='release_date',
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='gpu',
            name='segment',
            field=models.CharField(choices=[('desktop', 'Desktop'), ('laptop', 'Laptop'), ('workstation', 'Workstation'), ('datacenter', 'Data centre'), ('apple', 'Apple Silicon'), ('soc', 'Unified-memory system')], max_length=12),
        ),
        migrations.AlterField(
            model_name='gpu',
            name='unified_memory',
            field=models.BooleanField(default=False, help_text="The GPU uses the system's memory (Apple Silicon, Strix Halo, DGX Spark, Jetson)."),
        ),
        migrations.RunPython(reload_seed, migrations.RunPython.noop),
    ]
