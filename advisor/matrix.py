"""Every GPU against every model for one quantization and context: the share of layers on the GPU and the
speed-up over the CPU alone.

The whole table for a (catalog version, quantization, context) is computed once and kept in the advisor
cache; the vendor and memory filters only pick rows from it. GPUs come in groups, the cards people buy
first, the data-centre ones last.
"""

from django.utils.translation import gettext_lazy as _

from advisor import page_cache, recommend
from advisor import quant as quant_types
from advisor.models import GPU, Segment

DEFAULT_QUANT = "Q4_K_M"
# (segments, heading): consumer cards first, data-centre ones last.
GROUPS = [
    ((Segment.DESKTOP, Segment.LAPTOP), _("Desktop and laptop cards")),
    ((Segment.APPLE, Segment.SOC), _("Apple Silicon and other unified-memory systems")),
    ((Segment.WORKSTATION,), _("Workstation cards")),
    ((Segment.DATACENTER,), _("Data-centre cards")),
]


def quant_choices() -> list[tuple[str, str]]:
    """The catalog's quantizations the matrix can draw (native formats such as MXFP4 fit only some models)."""
    return page_cache.per_catalog("matrix-quants", lambda: [
        (q.name, q.name) for q in page_cache.snapshot().quants
        if q.name not in quant_types.ALIASES])


def _table(quant_name: str, ctx: int) -> dict:
    catalog = page_cache.snapshot()
    quant = next(q for q in catalog.quants if q.name == quant_name)
    models = sorted(catalog.models, key=lambda m: (m.params_b, m.name))
    cpu_only = recommend.hardware_for(None, None, recommend.DEFAULT_RAM_GIB)
    cpu_speed = {slug: row.decode_tokens_per_s
                 for (slug, _q), row in recommend.placements(models, [quant], cpu_only, ctx).items()}
    lines = []
    for gpu in GPU.objects.order_by("max_vram_gib", "name"):  # small cards first: where the choice is hard
        hardware = recommend.hardware_for(gpu, None, recommend.DEFAULT_RAM_GIB)
        placed = recommend.placements(models, [quant], hardware, ctx)
        cells = []
        for model in models:
            row = placed[(model.slug, quant.name)]
            n_layers = model.archs[quant.name].n_layer + 1
            cpu = cpu_speed.get(model.slug)
            # Like LM Studio's GPU-offload slider: the share of layers on the GPU. The texts are made here: the
            # template draws ~13,000 cells, and a filter for each was most of the page's time.
            offload = round(100 * row.n_gpu_layers / n_layers) if row.fits != "no" else None
            speedup = row.decode_tokens_per_s / cpu if cpu else None
            cells.append({
                "offload": offload, "speedup": speedup, "fits": row.fits, "tokens_per_s": row.decode_tokens_per_s,
                "offload_text": "" if offload is None else f"{offload}%",
                "speedup_text": "" if speedup is None else f"{speedup:.1f}×",
                "title": f"{row.decode_tokens_per_s:.1f} tok/s",
            })
        lines.append({"gpu": {"slug": gpu.slug, "name": gpu.name, "vendor": gpu.vendor, "segment": gpu.segment,
                              "max_vram_gib": gpu.max_vram_gib}, "cells": cells})
    return {"models": [{"slug": m.slug, "name": m.name, "params_b": m.params_b} for m in models], "lines": lines}


def table(quant_name: str, ctx: int) -> dict:
    """The whole table, from the cache when this catalog version has drawn it before."""
    key = f"matrix:{page_cache.catalog_version()}:{quant_name}:{ctx}"
    found = page_cache.store().get(key)
    if found is None:
        found = _table(quant_name, ctx)
        page_cache.store().set(key, found)
    return found


def grouped(quant_name: str, ctx: int, vendor: str = "", min_vram: float | None = None,
            max_vram: float | None = None) -> dict:
    """{"models": [...], "groups": [{"title", "lines"}]}: the filtered rows, in GROUPS order."""
    whole = table(quant_name, ctx)

    def wanted(gpu):
        return ((not vendor or gpu["vendor"] == vendor)
                and (min_vram is None or gpu["max_vram_gib"] >= min_vram)
                and (max_vram is None or gpu["max_vram_gib"] <= max_vram))

    lines = [line for line in whole["lines"] if wanted(line["gpu"])]
    groups = []
    for segments, title in GROUPS:
        members = [line for line in lines if line["gpu"]["segment"] in segments]
        if members:
            groups.append({"title": title, "lines": members})
    known = {s for segments, _t in GROUPS for s in segments}
    others = [line for line in lines if line["gpu"]["segment"] not in known]
    if others:
        groups.append({"title": _("Other"), "lines": others})
    return {"models": whole["models"], "groups": groups}
