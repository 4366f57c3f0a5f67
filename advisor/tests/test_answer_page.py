"""The answer page's lead (picks), its short list and "Show all", the 3-bit warning, the model page's
recommended row and chart, and the matrix's groups and quantization list, through Django's test client."""

import re

import pytest
from django.test import Client

from advisor import charts
from advisor.decorate import few_bits, nominal_bits
from advisor.models import GPU, Quantization
from advisor.picks import GOOD_SHARE, kept_quality, picks

pytestmark = pytest.mark.django_db

RTX_4060 = {"gpu": "nvidia-geforce-rtx-4060", "vram_gib": 8, "ram_gib": 32, "ctx": 8192, "use": "chat"}


def test_the_picks_are_the_best_quality_the_fastest_good_one_and_the_biggest_that_runs(client):
    response = client.get("/advisor/", RTX_4060)
    results = response.context["answer"]["results"]
    lead = response.context["picks"]
    by_kind = {kind: pick["row"] for pick in lead for kind in pick["kinds"]}
    assert set(by_kind) == {"best", "fastest", "biggest"}
    assert kept_quality(by_kind["best"]) == max(kept_quality(r) for r in results)
    good = [r for r in results if kept_quality(r) >= GOOD_SHARE * kept_quality(by_kind["best"])]
    assert by_kind["fastest"]["decode_tokens_per_s"] == max(r["decode_tokens_per_s"] for r in good)
    assert by_kind["biggest"]["params_b"] == max(r["params_b"] for r in results if not r["low_bit"])
    assert len(lead) == len({id(p["row"]) for p in lead}), "a row picked twice is shown once"
    html = response.content.decode()
    assert html.count('class="pick"') == len(lead)
    assert all(f'>{p["row"]["model_name"]}</a>' in html for p in lead)


def test_no_results_no_picks():
    assert picks([]) == []


def test_the_page_draws_ten_ranked_rows_and_show_all_draws_the_rest(client):
    top = client.get("/advisor/", RTX_4060)
    results = top.context["answer"]["results"]
    assert len(results) > 10
    assert [(r["model"], r["quant"]) for r in top.context["shown"]] == [(r["model"], r["quant"]) for r in results[:10]]
    html = top.content.decode()
    assert html.count('class="muted small rank-reason"') == 10
    assert 'id="show-all"' in html and "all=1" in html
    everything = client.get("/advisor/", {**RTX_4060, "all": "1"})
    assert [r["model"] for r in everything.context["shown"]] == [r["model"] for r in results]
    answer = everything.context["answer"]
    rows_drawn = everything.content.decode().count("<tr class=\"fits-")
    assert rows_drawn == len(results) + len(answer["almost"]) + len(answer["alternatives"])
    assert 'id="show-top"' in everything.content.decode()


def test_show_all_is_cached_apart_from_the_short_page(client):
    first = client.get("/advisor/", RTX_4060)
    assert "answer" in first.context
    again = Client().get("/advisor/", RTX_4060)
    assert "answer" not in again.context, "the short page came from the cache"
    everything = Client().get("/advisor/", {**RTX_4060, "all": "1"})
    assert "answer" in everything.context and len(everything.context["shown"]) > 10


def test_the_settings_line_is_folded_away(client):
    html = client.get("/advisor/", RTX_4060).content.decode()
    assert re.search(r'<details class="settings small"><summary>llama\.cpp settings</summary><code class="run-line">'
                     r'n_gpu_layers=\d+ n_ctx=\d+', html)


@pytest.mark.parametrize("name, bits", [("Q3_K_M", 3), ("IQ3_XXS", 3), ("Q2_K", 2), ("IQ2_XXS", 2), ("IQ1_S", 1),
                                        ("TQ1_0", 1), ("Q4_K_M", 4), ("IQ4_XS", 4), ("Q8_0", 8), ("F16", None),
                                        ("MXFP4", None)])
def test_the_nominal_bits_of_a_quantization(name, bits):
    assert nominal_bits(name) == bits
    assert few_bits(name) == (bits is not None and bits <= 3)


def test_three_bits_or_fewer_carry_the_measured_cost_and_more_bits_do_not(client):
    response = client.get("/advisor/models/llama-3.1-8b-instruct/", {"gpu": "nvidia-geforce-rtx-4060"})
    rows = {row["quant"]: row for row in response.context["rows"]}
    for name in ("Q2_K", "Q3_K_M"):  # Q3_K_M's 0.1019 checks the rounding (0.102, not 0.101)
        kld = Quantization.objects.get(name=name).kld
        assert f"costs {round(100 * kld / 2, 1)}% of the model's quality" in rows[name]["few_bits"]
        assert f"KL divergence {kld:.3f}" in rows[name]["few_bits"]
    assert "has not been measured" in rows["IQ3_M"]["few_bits"]  # the catalog has no KLD for IQ3_M
    assert not rows["Q4_K_M"]["few_bits"] and not rows["Q8_0"]["few_bits"]
    html = response.content.decode()
    assert html.count('class="few-bits small"') == sum(1 for r in rows.values() if r["few_bits"])


def test_the_model_page_marks_the_recommended_row(client):
    response = client.get("/advisor/models/llama-3.1-8b-instruct/", {"gpu": "nvidia-geforce-rtx-4060"})
    rows = response.context["rows"]
    chosen = response.context["chosen"]
    offered = set(Quantization.objects.filter(recommended=True).values_list("name", flat=True))
    candidates = [r for r in rows if r["runs"] and r["quant"] in offered and not r["low_bit"]]
    assert chosen["score"] == max(r["score"] for r in candidates)
    assert [r["quant"] for r in rows if r["recommended"]] == [chosen["quant"]]
    html = response.content.decode()
    assert html.count('id="recommended"') == 1 and "Recommended:" in html
    assert response.context["chart"]["quant"] == chosen["quant"]


@pytest.mark.parametrize("top, expected", [(3.7, [0, 1, 2, 3, 4]), (25, [0, 5, 10, 15, 20, 25]),
                                           (26.2, [0, 10, 20, 30]), (99, [0, 20, 40, 60, 80, 100])])
def test_chart_ticks_are_round(top, expected):
    assert charts.nice_ticks(top) == expected


def test_the_chart_has_a_unit_and_round_ticks(client):
    response = client.get("/advisor/models/llama-3.1-8b-instruct/", {"gpu": "nvidia-geforce-rtx-4060"})
    labels = [float(t["label"]) for t in response.context["chart"]["y_ticks"]]
    assert labels[0] == 0 and len({round(b - a, 6) for a, b in zip(labels, labels[1:], strict=False)}) == 1
    assert "6.25" not in response.content.decode()
    assert ">tokens/s</text>" in response.content.decode()


def test_the_matrix_puts_consumer_cards_first_and_data_centre_cards_last(client):
    groups = client.get("/advisor/matrix/").context["groups"]
    titles = [str(g["title"]) for g in groups]
    assert titles[0] == "Desktop and laptop cards" and titles[-1] == "Data-centre cards"
    assert {line["gpu"]["segment"] for line in groups[0]["lines"]} <= {"desktop", "laptop"}
    assert sum(len(g["lines"]) for g in groups) == GPU.objects.count()


def test_the_matrix_offers_its_quantizations_in_a_list_and_refuses_others(client):
    html = client.get("/advisor/matrix/").content.decode()
    select = re.search(r'<select name="quant"[^>]*>(.*?)</select>', html, re.S).group(1)
    assert '<option value="Q4_K_M" selected>' in select and 'value="Q8_0"' in select
    assert 'value="MXFP4"' not in select, "a native format fits only some models"
    q8 = client.get("/advisor/matrix/", {"quant": "Q8_0"})
    assert q8.context["quant"] == "Q8_0" and "in Q8_0 with a 8192-token context" in q8.content.decode()
    bad = client.get("/advisor/matrix/", {"quant": "Q9_Z"})
    assert bad.status_code == 200 and "quant" in bad.context["form"].errors
    assert bad.context["quant"] == "Q4_K_M", "bad input draws the default table and says what was wrong"


def test_the_matrix_table_is_computed_once_per_catalog_version(client, monkeypatch):
    from advisor import matrix

    calls = []
    real = matrix._table
    monkeypatch.setattr(matrix, "_table", lambda *args: calls.append(args) or real(*args))
    client.get("/advisor/matrix/")
    client.get("/advisor/matrix/", {"vendor": "amd"})
    client.get("/advisor/matrix/", {"min_vram": 16})
    assert len(calls) == 1, "filters pick rows from the one table"
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    gpu.vram_gib = [16]
    gpu.save()
    client.get("/advisor/matrix/", {"vendor": "amd"})
    assert len(calls) == 2, "a catalog edit draws it again"


def every_halving(model, quants, hardware, question):
    """The plain search: each halved context in turn, longest first."""
    from advisor import recommend

    ctx = min(question.ctx, model.context_length) // 2
    while ctx >= 2048:
        placed = recommend.placements([model], quants, hardware, ctx, question.runtime, every_placement=True)
        running, _fastest = recommend.choose(model, quants, placed, question)
        if running:
            _score, _speed, q, row = running[0]
            return recommend.evaluate(model, q, hardware, ctx, question.runtime, (row.n_gpu_layers, row.n_cpu_moe),
                                      question.use, question.min_speed)
        ctx //= 2
    return None


def test_the_shorter_context_search_finds_what_trying_every_halving_finds(monkeypatch):
    from advisor import recommend

    alternatives = 0
    for gpu in ("nvidia-geforce-gtx-1650", "nvidia-geforce-rtx-4060", "amd-radeon-rx-7900-xtx"):
        for ctx, speed in ((8192, 8), (32768, 8), (131072, 30)):
            question = recommend.Question(gpu=gpu, ctx=ctx, min_speed=speed)
            fast = recommend.answer(question)
            with monkeypatch.context() as patched:
                patched.setattr(recommend, "_with_shorter_context", every_halving)
                plain = recommend.answer(question)
            assert fast == plain, (gpu, ctx, speed)
            alternatives += len(plain["alternatives"])
    assert alternatives > 0, "some of these questions have answers with a shorter context"


def test_staff_get_this_model_on_each_pick_and_row_with_a_published_file(admin_client, client):
    response = admin_client.get("/advisor/", RTX_4060)
    html = response.content.decode()
    rows = [p["row"] for p in response.context["picks"]] + response.context["shown"]
    offered = [r for r in rows if r.get("known_file") and r["fits"] != "no" and not r.get("local_file")]
    assert offered, "the seed publishes files for some of an 8 GB card's answers"
    assert html.count('class="button-small secondary get-model-button"') == len(offered)
    assert f'value="{offered[0]["known_file"]["repo"]}"' in html
    assert "get-model-button" not in client.get("/advisor/", RTX_4060).content.decode(), "staff only"


def test_the_answer_speaks_spanish_with_spanish_numbers(client):
    html = client.get("/advisor/", RTX_4060, HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Mejor calidad" in html and "Las mejores opciones, ordenadas" in html
    assert re.search(r"Puntuación \d+,\d = calidad \d+,\d", html), "numbers made in Python are localised too"
    assert re.search(r"La mayor calidad tras la pérdida medida de su cuantización \(\d+,\d\)", html)


@pytest.mark.parametrize("language", ["en", "es"])
def test_sizes_read_as_filesizeformat_writes_them(language):
    from django.template.defaultfilters import filesizeformat
    from django.utils import translation

    from advisor.decorate import SizeFormat

    with translation.override(language):
        size = SizeFormat()
        for value in (0, 1, 1023, 1024, 1536, 10**6, 2**20, 7_654_321_098, 12 * 2**30 - 1, 3 * 2**40, 2**51):
            assert size(value) == filesizeformat(value), value
