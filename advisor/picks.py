"""The answer's lead: a few picks from the ranked results, each with the reason it was picked, and the one
line that link previews show.

- best quality: the highest quality after the quantization's measured loss, among the options that reach the
  person's minimum speed (speed does not count here, unlike the ranking's score);
- fastest good one: the fastest option whose quality after that loss is at least GOOD_SHARE of the best's;
- biggest that runs: the model with the most parameters that reaches the minimum speed.

A row picked twice is shown once, with both labels.
"""

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from advisor import page_cache
from advisor.decorate import decimal

GOOD_SHARE = 0.85


def kept_quality(row: dict) -> float:
    """The row's quality for the use, less its quantization's measured cost."""
    return (row.get("quality_used") or row["quality"]) * (1 - row.get("quant_cost", 0.0))


def picks(results: list[dict]) -> list[dict]:
    """[{"kinds": [...], "row": row, "why": [...]}], at most three, in the order above."""
    if not results:
        return []
    best = max(results, key=lambda r: (kept_quality(r), r["score"], r["decode_tokens_per_s"]))
    floor = GOOD_SHARE * kept_quality(best)
    good = [r for r in results if kept_quality(r) >= floor]
    fastest = max(good, key=lambda r: (r["decode_tokens_per_s"], r["score"]))
    # 1-2-bit options rank only where nothing better of their model is fast enough; not picked if others run.
    biggest = max([r for r in results if not r.get("low_bit")] or results, key=lambda r: (r["params_b"], r["score"]))
    chosen: list[dict] = []
    for kind, row, why in (
        ("best", best, _("The highest quality after its quantization's measured loss (%(q)s) that reaches "
                         "your minimum speed.") % {"q": decimal(kept_quality(best), 1)}),
        ("fastest", fastest, _("The fastest option within %(share)s%% of the best quality: ~%(speed)s tokens/s.")
         % {"share": round(100 * GOOD_SHARE), "speed": decimal(fastest["decode_tokens_per_s"], 0)}),
        ("biggest", biggest, _("The most parameters (%(size)sB) that still reach your minimum speed.")
         % {"size": number_format(biggest["params_b"])}),
    ):
        same = next((pick for pick in chosen if pick["row"] is row), None)
        if same:
            same["kinds"].append(kind)
            same["why"].append(why)
        else:
            chosen.append({"kinds": [kind], "row": row, "why": [why]})
    return chosen


def summary_line(question, answer) -> str:
    """One line for link previews: 'RTX 4060 8 GB: Qwen3 8B Q4_K_M, 100% on GPU, ~40 tok/s'."""
    gpu = page_cache.gpus_by_slug().get(question.gpu) if question.gpu else None
    head = f"{gpu.name if gpu else _('GPU')} {question.vram_gib:g} GB" if question.vram_gib else _("CPU only")
    if not answer["results"]:
        return _("%(head)s: no model in the catalog runs fast enough") % {"head": head}
    best = answer["results"][0]
    return _("%(head)s: %(model)s %(quant)s, %(offload)s%% on GPU, ~%(speed)s tok/s") % {
        "head": head, "model": best["model_name"], "quant": best["quant"],
        "offload": round(100 * best["offload_ratio"]), "speed": round(best["decode_tokens_per_s"]),
    }
