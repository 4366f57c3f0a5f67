"""RTX 5070 Ti Laptop: 672 GB/s (192-bit x 28 Gbps GDDR7), not 576 (a 24 Gbps guess). Checked against two
sources on 2026-12-02 (the `source` below, as in advisor/seed/gpus.json). A value staff have changed is left alone;
a fresh database already has 672 from 0002."""

from django.db import migrations

SLUG = "nvidia-geforce-rtx-5070-ti-laptop"
SOURCE = "NVIDIA GeForce RTX 50 Series Laptops spec page (nvidia.com/en-us/geforce/laptops/50-series/): 992 AI TOPS at max TGP; bandwidth = 192-bit x 28 Gbps GDDR7 = 672 GB/s (Wikipedia, 'GeForce RTX 50 series', laptop table; also the spec table in github.com/CYBIRD-D/How-to-Choose-your-LLM-Model-for-translation Nvidia_GPU_Specification.md; corrected 2026-12-02 from 576, a 24 Gbps guess); derived: dense FP16 tensor rate = AI TOPS (FP4, sparse) / 8 (NVIDIA RTX Blackwell whitepaper: RTX 5090 3352 AI TOPS, 419 dense FP16 TFLOPS)"


def correct(apps, schema_editor):
    apps.get_model("advisor", "GPU").objects.filter(slug=SLUG, memory_bandwidth_gbs=576.0).update(
        memory_bandwidth_gbs=672.0, source=SOURCE
    )


class Migration(migrations.Migration):
    dependencies = [("advisor", "0002_seed_catalog")]

    operations = [migrations.RunPython(correct, migrations.RunPython.noop)]
