"""A model's page: every quantization on the asked hardware, the recommended one, and its offload chart."""

from dataclasses import dataclass

from advisor import charts, page_cache, recommend
from advisor.decorate import decorate_rows
from advisor.models import GPU


@dataclass
class ModelOptions:
    hardware_name: str
    rows: list
    recommended: dict | None
    chart: dict | None


def recommended_row(rows: list[dict], offered: set) -> dict | None:
    """The row the ranking's rule scores highest among those that run, of the quantizations answers offer
    (1-2-bit ones only if nothing else runs)."""
    running = [r for r in rows if r["runs"] and r["quant"] in offered]
    if any(not r["low_bit"] for r in running):
        running = [r for r in running if not r["low_bit"]]
    return max(running, key=lambda r: (r["score"], r["decode_tokens_per_s"]), default=None)


def model_options(model: recommend.ModelEntry, question: recommend.Question) -> ModelOptions:
    catalog = page_cache.snapshot()
    gpu = GPU.objects.filter(slug=question.gpu).first() if question.gpu else None
    hardware = recommend.question_hardware(question, gpu)
    rows = recommend.model_rows(model, hardware, question.ctx, catalog.quants, question.runtime, question.use,
                                question.min_speed)
    for row in rows:
        row["runs"] = recommend.runs(row, question.min_speed)
    decorate_rows(rows, hardware.gpu_budget_total)
    chosen = recommended_row(rows, {q.name for q in catalog.quants if q.recommended})
    for row in rows:
        row["recommended"] = row is chosen
    shown = chosen or (rows[-1] if rows else None)
    chart = None
    if shown:
        quant = next(q for q in catalog.quants if q.name == shown["quant"])
        chart = charts.offload_chart(recommend.offload_curve(model, quant, hardware, question.ctx,
                                                             runtime=question.runtime))
        chart["quant"] = shown["quant"]
    return ModelOptions(hardware.name, rows, chosen, chart)
