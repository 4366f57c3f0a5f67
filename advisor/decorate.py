"""What the advisor's pages draw beside a ranked row: memory bars, offload %, the warning for quantizations of
3 bits or fewer, this server's measured speed and a file of that model in the models folder.

Only the rows a page shows are decorated (the answer page shows its picks and a top list, not every row).
"""

import re

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.formats import get_format, number_format
from django.utils.html import avoid_wrapping
from django.utils.translation import gettext as _

from advisor import page_cache
from advisor.local_files import attach_known_files, attach_local_files
from advisor.models import Measurement, normalised_name

# "3 bits or fewer" is the quantization's nominal class (Q3_K_M, IQ3_XXS, Q2_K, IQ2_*, IQ1_*, TQ1_0), not
# its bits per weight: a Q3_K_M file averages about 3.9 bits a weight but is a 3-bit quantization.
FEW_BITS = 3
_NOMINAL_BITS = re.compile(r"^(?:I?Q|TQ)(\d)(?:_|$)")


def nominal_bits(quant_name: str) -> int | None:
    match = _NOMINAL_BITS.match(quant_name.upper())
    return int(match.group(1)) if match else None


def few_bits(quant_name: str) -> bool:
    bits = nominal_bits(quant_name)
    return bits is not None and bits <= FEW_BITS


# What decorate_rows adds to a row: never stored with a shared answer (shares.py leaves them out).
DECORATIONS = ("bars", "bar_label", "offload_percent", "few_bits", "measurement", "rank_reason", "runner_up_lines",
               "memory_text", "settings_line", "local_file", "runs", "recommended")


def bars(row: dict, capacity_bytes: int, size=filesizeformat) -> list[tuple[str, int, str]]:
    """(part, width in whole percent of the card's memory, title) for weights, KV cache, compute buffer and
    backend overhead on the GPU."""
    capacity = max(capacity_bytes, row["gpu_bytes"], 1)
    parts = [
        ("weights", row["weights_gpu_bytes"]),
        ("kv", row["kv_gpu_bytes"]),
        ("compute", row["compute_buffer_bytes"] if row["n_gpu_layers"] else 0),
        ("overhead", row["overhead_bytes"]),
    ]
    return [(name, round(100 * value / capacity), f"{name}: {size(value)}") for name, value in parts]


def recent_measurements() -> list:
    """(normalised model name, measurement) of this server's latest 500 measurements with a speed, newest
    first; read again only after a new measurement."""
    return page_cache.per_measurement("recent", lambda: [
        (normalised_name(m.model_name), m) for m in Measurement.objects.exclude(decode_tokens_per_s=None)[:500]])


def measurements_by_model(slugs_and_names) -> dict:
    """This server's latest measurement of each catalog model, matched by name (GGUF general.name)."""
    wanted = {normalised_name(name): slug for slug, name in slugs_and_names}
    found = {}
    for name, measurement in recent_measurements():
        slug = wanted.get(name)
        if slug and slug not in found:
            found[slug] = measurement
    return found


def decimal(value: float, places: int) -> str:
    """The number in the page's language with `places` decimals, rounded (number_format alone truncates)."""
    return number_format(round(value, places), places)


# filesizeformat's units, largest first (Django's own translations; a variable, so makemessages skips them).
_UNITS = ((1 << 50, "%s PB"), (1 << 40, "%s TB"), (1 << 30, "%s GB"), (1 << 20, "%s MB"), (1 << 10, "%s KB"))


class SizeFormat:
    """filesizeformat's text, its units and decimal separator looked up once for many sizes: called through
    the filter, the ~150 sizes of an answer page were a tenth of its drawing time."""

    def __init__(self):
        self.units = [(size, _(unit)) for size, unit in _UNITS]
        self.separator = get_format("DECIMAL_SEPARATOR")

    def __call__(self, value: int) -> str:
        if value >= 1 << 10:
            for size, unit in self.units:
                if value >= size:
                    return avoid_wrapping(unit % f"{round(value / size, 1):.1f}".replace(".", self.separator))
        return filesizeformat(value)


def few_bits_note(row: dict) -> str:
    """The warning a quantization of 3 bits or fewer carries, with its measured quality cost."""
    if row.get("kld") is None:
        return _("%(q)s keeps 3 bits or fewer a weight; its quality cost has not been measured.") % {"q": row["quant"]}
    return _("%(q)s keeps 3 bits or fewer a weight: it costs %(c)s%% of the model's quality (KL divergence "
             "%(k)s against F16, measured by llama.cpp).") % {
        "q": row["quant"], "c": decimal(row["quant_cost_percent"], 1), "k": decimal(row["kld"], 3)}


def rank_reason(row: dict) -> str:
    """One line that says how the row's score was made (issue 12: every row explains its rank)."""
    return _("Score %(s)s = quality %(q)s − %(c)s%% for %(quant)s × %(f)s for speed") % {
        "s": decimal(row["score"], 1), "q": decimal(row["quality_used"], 1),
        "c": decimal(row["quant_cost_percent"], 1), "quant": row["quant"],
        "f": decimal(row["speed_factor"], 2)}


def placement_text(option: dict) -> str:
    if option["placement"] == "gpu":
        return _("all on the GPU")
    if option["placement"] == "experts":
        return _("experts of %(n)s layers in RAM") % {"n": option["n_cpu_moe"]}
    if option["placement"] == "split":
        return _("%(n)s layers on the GPU") % {"n": option["n_gpu_layers"]}
    return _("CPU only")


def runner_up_line(alt: dict, size=filesizeformat) -> str:
    speed = decimal(alt["decode_tokens_per_s"], 0)
    score = _("score %(s)s") % {"s": decimal(alt["score"], 1)}
    line = (f"{alt['quant']}, {placement_text(alt)}: ~{speed} tok/s, {size(alt['gpu_bytes'])} + "
            f"{size(alt['cpu_bytes'])} {_('in RAM')}, {score}")
    return line + (f" ({_('1–2-bit')})" if alt.get("low_bit") else "")


def memory_text(row: dict, size=filesizeformat) -> str:
    text = size(row["gpu_bytes"])
    if row["cpu_bytes"]:
        text += f" + {size(row['cpu_bytes'])} {_('in RAM')}"
    return text


def settings_line(row: dict) -> str:
    """The llama.cpp settings the row was estimated with (llama-cpp-python's names)."""
    line = f"n_gpu_layers={row['n_gpu_layers']} n_ctx={row['n_ctx']} type_k=f16 type_v=f16"
    if row["n_gpu_layers"]:
        line += " flash_attn=True"
    if row["n_cpu_moe"]:
        line += f" --n-cpu-moe {row['n_cpu_moe']}"
    return line


def decorate_rows(rows: list[dict], capacity_bytes: int) -> list[dict]:
    """Everything a row's template needs beyond the ranking's figures, for these rows only. Texts are made
    here, not with template filters: a row drawn by the template alone cost about 1.5 ms."""
    if not rows:
        return rows
    measured = measurements_by_model((row["model"], row["model_name"]) for row in rows)
    size = SizeFormat()
    for row in rows:
        row["bars"] = bars(row, capacity_bytes, size)
        row["bar_label"] = _("GPU memory: weights %(w)s, KV cache %(k)s") % {
            "w": size(row["weights_gpu_bytes"]), "k": size(row["kv_gpu_bytes"])}
        row["offload_percent"] = round(100 * row["offload_ratio"])
        row["few_bits"] = few_bits_note(row) if few_bits(row["quant"]) else ""
        row["measurement"] = measured.get(row["model"])
        row["rank_reason"] = rank_reason(row) if row.get("score") is not None else ""
        row["runner_up_lines"] = [runner_up_line(alt, size) for alt in row.get("runners_up") or ()]
        row["memory_text"] = memory_text(row, size)
        row["settings_line"] = settings_line(row)
    attach_local_files(rows, page_cache.snapshot(), settings.MODELS_DIR)
    attach_known_files(rows, page_cache.known_files())
    return rows
