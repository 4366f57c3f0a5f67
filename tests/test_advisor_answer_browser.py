"""The advisor's answer, model page and matrix in Chromium at desktop (1366 px) and phone (390 px) widths:
the picks lead, every new control is pressed, nothing is wider than the window. Screenshots go to test-output/.
"""

import math
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

WIDTHS = {1366: 900, 390: 844}
QUESTION = "/advisor/?gpu=nvidia-geforce-rtx-4060&vram_gib=8&ram_gib=32&ctx=8192&use=chat"
# The first model header's text, all of it inside its cell: not turned sideways, not cut.
HEADERS_READABLE = """() => [...document.querySelectorAll("table.matrix thead th.model-col")].map((th) => {
  const style = getComputedStyle(th);
  const link = th.querySelector("a");
  return {writing: style.writingMode, transform: style.transform,
          cut: link.scrollWidth > th.clientWidth + 1 || th.scrollHeight > th.clientHeight + 1};
})"""


@pytest.fixture(params=list(WIDTHS), ids=lambda width: f"{width}px")
def sized_page(request, chromium):
    width = request.param
    context = chromium.new_context(locale="en-US", viewport={"width": width, "height": WIDTHS[width]})
    page = context.new_page()
    page.width = width
    yield page
    context.close()


def page_fits(page) -> None:
    width, scroll = page.evaluate("[document.documentElement.clientWidth, document.documentElement.scrollWidth]")
    assert scroll <= width, f"{page.url} is {scroll} px wide in a {width} px window"


def test_the_answer_leads_with_picks_then_a_short_ranked_list(site, sized_page, output_dir):
    page, width = sized_page, sized_page.width
    page.goto(site.url + QUESTION)
    page_fits(page)
    picks = page.locator("#picks .pick")
    assert 1 <= picks.count() <= 3
    kinds = " ".join(picks.locator(".pick-kinds").all_inner_texts()).lower()
    for kind in ("best quality", "fastest good one", "biggest that runs"):
        assert kind in kinds, f"the picks name the {kind}"
    for pick in picks.all():
        assert pick.locator(".pick-why").first.inner_text().strip(), "each pick says why"
        expect(pick.locator(".membar")).to_be_visible()
        expect(pick.locator("a.next-model")).to_be_visible()
        expect(pick.locator(".quality")).to_be_visible()
    rows = page.locator("#answer table.results tbody tr")
    assert rows.count() == 10, "ten ranked rows up front"
    for row in rows.all():
        expect(row.locator(".quality")).to_be_visible()
        assert row.locator(".rank-reason").inner_text().startswith("Score ")
    if width == 390:  # cards: each row a block of its own, no table header
        assert page.evaluate("getComputedStyle(document.querySelector('#answer table.results tr')).display") == "block"
        expect(page.locator("#answer table.results thead")).to_be_hidden()
    # The settings line is folded away until asked for.
    first_settings = rows.first.locator("details.settings")
    expect(first_settings.locator("code.run-line")).to_be_hidden()
    first_settings.locator("summary").click()
    expect(first_settings.locator("code.run-line")).to_contain_text("n_gpu_layers=")
    # So is the question, with the form inside.
    expect(page.locator("#advisor-form")).to_be_hidden()
    page.click("#question > summary")
    expect(page.locator("#advisor-form")).to_be_visible()
    page.click("#rank-rule > summary")
    expect(page.locator("#rank-rule")).to_contain_text("Ranked by one rule")
    page_fits(page)
    page.screenshot(path=output_dir / f"advisor-answer-{width}.png", full_page=True)

    hidden = int(re.search(r"(\d+) more", page.locator("#show-all").inner_text()).group(1))
    page.click("#show-all")
    page.wait_for_url(re.compile(r"all=1"))
    assert page.locator("#answer table.results").first.locator("tbody tr").count() > 10
    assert page.locator("#answer table.results tbody tr").count() == 10 + hidden
    page_fits(page)
    page.screenshot(path=output_dir / f"advisor-answer-all-{width}.png", full_page=True)
    page.click("#show-top")
    page.wait_for_url(re.compile(r"^(?!.*all=1)"))
    assert page.locator("#answer table.results tbody tr").count() == 10

    # The first pick's next step: the model's page, its recommended quantization marked.
    name = page.locator("#pick-1 .pick-name a").inner_text()
    page.click("#pick-1 a.next-model")
    expect(page.locator("h1")).to_have_text(name)
    page_fits(page)
    expect(page.locator("tr#recommended .badge")).to_have_text("Recommended")
    page.click("#recommended-note a")
    assert page.url.endswith("#recommended")
    texts = page.locator("figure.chart text.tick").evaluate_all("ticks => ticks.map((t) => t.textContent)")
    labels = [float(t) for t in texts if "%" not in t]
    steps = {round(b - a, 6) for a, b in zip(labels, labels[1:], strict=False)}
    assert labels[0] == 0 and len(steps) == 1, labels
    step = steps.pop()
    assert step / 10 ** math.floor(math.log10(step)) in (1, 2, 5), f"round ticks, not {labels}"
    expect(page.locator("figure.chart text.y-unit")).to_have_text("tokens/s")
    page.screenshot(path=output_dir / f"advisor-model-{width}.png", full_page=True)


def test_quantizations_of_three_bits_or_fewer_carry_their_measured_cost(site, sized_page, output_dir):
    page = sized_page
    page.goto(site.url + "/advisor/models/llama-3.1-8b-instruct/?gpu=nvidia-geforce-rtx-4060")
    page_fits(page)
    row = page.locator("table.results tbody tr", has=page.locator("strong", has_text=re.compile(r"^Q3_K_M$")))
    # Q3_K_M's KL divergence against F16 in the catalog is 0.1019: the rule's cost is half of it.
    expect(row.locator(".few-bits")).to_contain_text("costs 5.1% of the model's quality")
    expect(row.locator(".few-bits")).to_contain_text("KL divergence 0.102")
    expect(row.locator(".few-bits-mark")).to_be_visible()
    q4 = page.locator("table.results tbody tr", has=page.locator("strong", has_text=re.compile(r"^Q4_K_M$")))
    assert q4.locator(".few-bits").count() == 0, "4-bit quantizations carry no warning"
    row.scroll_into_view_if_needed()
    page.screenshot(path=output_dir / f"advisor-few-bits-{page.width}.png")


def test_the_matrix_starts_with_consumer_cards_and_takes_a_quantization_from_a_list(site, sized_page, output_dir):
    page, width = sized_page, sized_page.width
    page.goto(site.url + "/advisor/matrix/")
    page_fits(page)
    groups = page.locator("table.matrix tr.group").all_inner_texts()
    assert groups[0] == "Desktop and laptop cards" and groups[-1] == "Data-centre cards", groups
    headers = page.evaluate(HEADERS_READABLE)
    assert headers and all(h["writing"] == "horizontal-tb" and h["transform"] == "none" for h in headers)
    assert not any(h["cut"] for h in headers), "every model name is whole in its header"
    assert page.locator("#id_quant").evaluate("el => el.tagName") == "SELECT"
    page.screenshot(path=output_dir / f"advisor-matrix-{width}.png")
    page.select_option("#id_quant", "Q8_0")
    page.locator("#matrix-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"quant=Q8_0"))
    expect(page.locator("p.lead")).to_contain_text("in Q8_0 with a 8192-token context")
    expect(page.locator("#id_quant")).to_have_value("Q8_0")
    page_fits(page)
    page.screenshot(path=output_dir / f"advisor-matrix-q8-{width}.png")
