import pytest

pytestmark = pytest.mark.browser


def test_a_visitor_switches_the_home_page_to_spanish(site, page, output_dir):
    page.goto(site.url + "/")
    assert page.locator("h1").inner_text() == "Local LLMs on your own hardware"
    page.select_option("#language-select", "es")  # the switcher submits itself (static/js/site.js)
    page.wait_for_load_state("load")
    page.locator("h1", has_text="LLM locales en tu propio hardware").wait_for()
    assert page.locator("html").get_attribute("lang") == "es"
    page.screenshot(path=output_dir / "home-es.png", full_page=True)
