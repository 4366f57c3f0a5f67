"""The advisor in a real browser: ask, share, open the link elsewhere, edit the catalog, see it change."""

import os
import re

import pytest

pytestmark = pytest.mark.browser


def ask(page, site_url, gpu_label, vram=None):
    page.goto(site_url + "/advisor/")
    page.select_option("#id_gpu", label=gpu_label)
    if vram is not None:
        page.fill("#id_vram_gib", str(vram))
    page.click("text=Show what runs")
    page.wait_for_selector("#answer")


def test_the_gpu_list_can_be_searched(site, page):
    page.goto(site.url + "/advisor/")
    page.fill("#gpu-filter", "rtx 4060 ti")
    assert page.locator("#id_gpu").input_value() == "nvidia-geforce-rtx-4060-ti"
    visible = page.evaluate("[...document.querySelectorAll('#id_gpu option')].filter(o => o.value && !o.hidden)"
                            ".map(o => o.value)")
    assert visible and all("4060-ti" in slug for slug in visible)
    assert page.input_value("#id_vram_gib") == "16", "the chosen card's memory is filled in"


def result_rows(page):
    return page.locator("#answer table.results").first.locator("tbody tr").all_inner_texts()


def shares_in_database(site) -> int:
    return int(site.manage("shell", "-c", "from advisor.models import SharedAnswer; "
                                          "print(SharedAnswer.objects.count())").split()[-1])


def test_an_answer_is_shared_and_opens_the_same_in_a_fresh_browser(site, chromium, output_dir):
    context = chromium.new_context(locale="en-US")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    shares_before = shares_in_database(site)
    ask(page, site.url, "NVIDIA GeForce RTX 4060 (8 GB)")
    assert page.input_value("#id_vram_gib") == "8", "picking the GPU fills in its memory"
    heading = page.locator("#answer h2").inner_text()
    assert heading.startswith("NVIDIA GeForce RTX 4060 8 GB: ")
    rows = result_rows(page)
    assert rows
    assert shares_in_database(site) == shares_before, "asking stores nothing; only the Share button does"
    page.screenshot(path=output_dir / "advisor-answer.png", full_page=True)

    page.click("#share-answer")
    page.wait_for_url(re.compile(r".*/advisor/r/[A-Za-z0-9_-]{8}/$"))
    assert page.locator(".messages", has_text="This answer has a link of its own now").is_visible()
    assert page.input_value("#share-url") == page.url
    page.click("#copy-link")
    page.locator("#copy-link", has_text="Copied").wait_for()
    link = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(re.escape(site.url) + r"/advisor/r/[A-Za-z0-9_-]{8}/", link)
    assert shares_in_database(site) == shares_before + 1
    page.screenshot(path=output_dir / "advisor-shared.png", full_page=True)
    context.close()

    fresh = chromium.new_context(locale="en-US")
    other = fresh.new_page()
    other.goto(link)
    assert other.locator("#answer h2").inner_text() == heading
    assert result_rows(other) == rows
    fresh.close()


def test_staff_change_a_gpus_memory_in_the_admin_and_the_answer_changes(site, chromium, output_dir):
    env = {"DJANGO_SUPERUSER_PASSWORD": "correct-horse-battery"}
    os.environ.update(env)
    site.env.update(env)
    site.manage("createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.invalid")
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    ask(page, site.url, "NVIDIA GeForce GTX 1650 (4 GB)")
    before = page.locator("#answer h2").inner_text()
    # The GPU alone (its memory from the catalog): the same address before and after the edit, the second
    # visit before it served from the cache.
    same_question = site.url + "/advisor/?gpu=nvidia-geforce-gtx-1650"
    for _visit in range(2):
        page.goto(same_question)
        assert page.locator("#answer h2").inner_text().startswith("NVIDIA GeForce GTX 1650 4 GB: ")

    page.goto(site.url + "/admin/login/?next=/admin/advisor/gpu/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.fill("#searchbar", "GTX 1650")
    page.keyboard.press("Enter")
    page.locator("#result_list a", has_text=re.compile(r"^NVIDIA GeForce GTX 1650$")).click()
    page.fill("#id_vram_gib", "24")  # a number, as people type it
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(same_question)
    assert page.locator("#answer h2").inner_text().startswith("NVIDIA GeForce GTX 1650 24 GB: "), (
        "a staff edit is seen at once, cache or not")
    ask(page, site.url, "NVIDIA GeForce GTX 1650 (24 GB)")
    after = page.locator("#answer h2").inner_text()
    assert "24 GB" in after and after != before

    page.goto(site.url + "/advisor/matrix/?vendor=nvidia&min_vram=16")
    page.wait_for_selector("table.matrix")
    assert page.locator("table.matrix tbody tr").count() > 5
    page.screenshot(path=output_dir / "advisor-matrix.png")
    context.close()
