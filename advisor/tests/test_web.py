"""The advisor's pages, driven through Django's test client."""

import re

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from advisor.models import GPU, SharedAnswer
from tests.gpus import install_gpus

pytestmark = pytest.mark.django_db

RTX_4060 = "nvidia-geforce-rtx-4060"



def test_the_form_lists_gpus_grouped_by_vendor(client):
    html = client.get("/advisor/").content.decode()
    for vendor in ("NVIDIA", "AMD", "Intel", "Apple"):
        assert f'<optgroup label="{vendor}">' in html
    assert "NVIDIA GeForce RTX 4060 (8 GB)" in html


def test_an_answer_ranks_models_that_run_on_the_gpu(client):
    response = client.get("/advisor/", {"gpu": RTX_4060, "ctx": 8192})
    assert response.status_code == 200
    answer = response.context["answer"]
    assert answer["results"], "an 8 GB card runs something from the catalog"
    ranked = [-row["score"] for row in answer["results"]]
    assert ranked == sorted(ranked), "one scale: best score first"
    for row in answer["results"]:
        assert row["fits"] in ("full", "partial")
        assert row["decode_tokens_per_s"] >= 8
        assert row["gpu_bytes"] <= 8 * 2**30
    html = response.content.decode()
    assert 'class="membar"' in html and "n_gpu_layers=" in html


def answer_html(response) -> str:
    """The answer section, each visitor's own CSRF token left out."""
    html = response.content.decode()
    start = html.index('<section class="answer"')
    section = html[start:html.index("</section>", start)]  # flash messages sit in a section before it
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", section)


def test_the_answer_address_is_the_answer(client):
    first = client.get("/advisor/", {"gpu": RTX_4060, "ctx": 4096})
    again = Client().get("/advisor/", {"gpu": RTX_4060, "ctx": 4096})
    assert [r["model"] for r in first.context["answer"]["results"]]
    assert answer_html(first) == answer_html(again)


def test_more_vram_runs_at_least_as_much(client):
    small = client.get("/advisor/", {"vram_gib": 4}).context["answer"]["results"]
    large = client.get("/advisor/", {"vram_gib": 24}).context["answer"]["results"]
    assert len(large) >= len(small)
    assert {r["model"] for r in large if r["fits"] == "full"} >= {r["model"] for r in small if r["fits"] == "full"}


def test_a_minimum_speed_filters_slow_answers(client):
    rows = client.get("/advisor/", {"gpu": RTX_4060, "min_speed": 60}).context["answer"]["results"]
    assert all(r["decode_tokens_per_s"] >= 60 for r in rows)


def test_use_filters_models(client):
    rows = client.get("/advisor/", {"vram_gib": 24, "use": "code"}).context["answer"]["results"]
    assert rows
    from advisor.models import LanguageModel

    coders = set(LanguageModel.objects.for_use("code").values_list("slug", flat=True))
    assert {r["model"] for r in rows} <= coders


@pytest.mark.parametrize("params, field", [
    ({"gpu": "no-such-gpu"}, "gpu"),
    ({"vram_gib": "-3"}, "vram_gib"),
    ({"vram_gib": "1e308"}, "vram_gib"),
    ({"vram_gib": "8", "ctx": "99999999999"}, "ctx"),
    ({"vram_gib": "8", "ram_gib": "nan"}, "ram_gib"),
    ({"vram_gib": "8", "min_speed": "fast"}, "min_speed"),
    ({"vram_gib": "8", "use": "<script>"}, "use"),
])
def test_bad_input_gives_a_form_error_not_a_crash(client, params, field):
    response = client.get("/advisor/", params)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert "answer" not in response.context


def test_neither_gpu_nor_vram_asks_for_one(client):
    response = client.get("/advisor/", {"ctx": 4096})
    assert "Choose a GPU or give its memory" in response.content.decode()


def share(client, **inputs):
    """Press the answer page's Share button: POST its hidden inputs (with the page's CSRF token)."""
    page = client.get("/advisor/", inputs).content.decode()
    form = re.search(r'<form method="post" action="/advisor/share/"[^>]*>(.*?)</form>', page, re.S).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return client.post("/advisor/share/", fields)


def test_a_share_link_shows_the_answer_as_it_was(client):
    asked = client.get("/advisor/", {"gpu": RTX_4060})
    response = share(client, gpu=RTX_4060)
    assert response.status_code == 302
    slug = re.fullmatch(r"/advisor/r/([A-Za-z0-9_-]{8})/", response["Location"]).group(1)
    shared = client.get(reverse("advisor:shared", args=[slug]))
    assert shared.status_code == 200
    assert [r["model"] for r in shared.context["answer"]["results"]] == [
        r["model"] for r in asked.context["answer"]["results"]]
    assert not shared.context["catalog_changed"]
    html = shared.content.decode()
    assert "og:title" in html and f'value="http://testserver/advisor/r/{slug}/"' in html
    assert "This answer has a link of its own now" in html


def test_sharing_again_reuses_the_same_link(client):
    first = share(client, gpu=RTX_4060)["Location"]
    second = share(Client(), gpu=RTX_4060)["Location"]
    assert first == second
    assert SharedAnswer.objects.count() == 1


def test_the_share_button_refuses_a_bad_question_and_stores_nothing(client):
    response = client.post("/advisor/share/", {"gpu": "no-such-gpu", "vram_gib": "-1"})
    assert response.status_code == 400
    assert "There is no GPU no-such-gpu in the catalog." in response.content.decode()
    assert SharedAnswer.objects.count() == 0
    assert client.get("/advisor/share/").status_code == 405


def test_the_share_button_needs_the_pages_csrf_token():
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/advisor/share/", {"gpu": RTX_4060}).status_code == 403
    assert share(strict, gpu=RTX_4060).status_code == 302


def test_a_shared_answer_says_when_the_catalog_changed(client):
    link = share(client, gpu=RTX_4060)["Location"]
    gpu = GPU.objects.get(slug=RTX_4060)
    gpu.vram_gib = [16]
    gpu.save()
    shared = client.get(link)
    assert shared.context["catalog_changed"]
    html = shared.content.decode()
    assert "The catalog has changed since this answer was given." in html
    assert "See today" in html


def row_counts() -> dict:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def test_anonymous_questions_write_nothing_to_the_database(client):
    before = row_counts()
    for vram in (4, 6, 8, 12, 24):
        assert client.get("/advisor/", {"vram_gib": vram, "ctx": 8192}).status_code == 200
        assert client.get("/api/advisor/recommendations", {"vram_gib": vram}).status_code == 200
    assert client.get("/advisor/matrix/", {"ctx": 1048576}).status_code == 200
    assert client.get("/advisor/models/llama-3.1-8b-instruct/", {"gpu": RTX_4060}).status_code == 200
    assert row_counts() == before


@pytest.fixture
def counted_answers(monkeypatch):
    """recommend.answer, still doing its work, counting its calls."""
    from advisor import recommend

    calls = []
    real = recommend.answer

    def counting(question, catalog=None):
        calls.append(question)
        return real(question, catalog)

    monkeypatch.setattr(recommend, "answer", counting)
    return calls


def test_repeated_inputs_are_answered_from_the_cache_until_the_catalog_changes(client, counted_answers):
    first = client.get("/advisor/", {"gpu": RTX_4060})
    # The same inputs written differently are the same question; the API shares the computed answer.
    again = Client().get("/advisor/", {"gpu": RTX_4060, "vram_gib": "", "use": ""})
    api = client.get("/api/advisor/recommendations", {"gpu": RTX_4060}).json()
    assert len(counted_answers) == 1
    assert answer_html(first) == answer_html(again)
    assert [r["model"] for r in api["results"]] == [r["model"] for r in first.context["answer"]["results"]]

    gpu = GPU.objects.get(slug=RTX_4060)
    gpu.vram_gib = [16]
    gpu.save()  # what the admin's Save does
    after = client.get("/advisor/", {"gpu": RTX_4060})
    assert len(counted_answers) == 2
    assert after.context["answer"]["hardware"]["vram_bytes"] == 2 * first.context["answer"]["hardware"]["vram_bytes"]
    assert "RTX 4060 16 GB" in answer_html(after)


def test_the_cached_page_carries_each_visitors_own_csrf_token(client):
    share(client, gpu=RTX_4060)  # renders and caches the page
    other = Client(enforce_csrf_checks=True)
    assert share(other, gpu=RTX_4060).status_code == 302, "another visitor's token in a cached page would be 403"


def test_too_many_new_questions_from_one_address_answer_429(client, settings):
    settings.LLMSITE_ADVISOR_LIMIT = 3
    for vram in (4, 6, 8):
        assert client.get("/advisor/", {"vram_gib": vram}).status_code == 200
    refused = client.get("/advisor/", {"vram_gib": 10})
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= settings.LLMSITE_ADVISOR_LIMIT_WINDOW_S
    assert "Please try again in" in refused.content.decode()
    api = client.get("/api/advisor/recommendations", {"vram_gib": 10})
    assert api.status_code == 429 and int(api["Retry-After"]) >= 1 and "try again" in api.json()["error"]
    assert client.get("/advisor/matrix/").status_code == 429
    # What was answered before costs nothing, and other addresses have their own budget.
    assert client.get("/advisor/", {"vram_gib": 6}).status_code == 200
    assert client.get("/advisor/", {"vram_gib": 10}, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_shares_are_limited_per_address(client, settings):
    settings.LLMSITE_ADVISOR_SHARES_PER_HOUR = 2
    assert share(client, vram_gib=4).status_code == 302
    assert share(client, vram_gib=6).status_code == 302
    refused = share(client, vram_gib=8)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert share(client, vram_gib=4).status_code == 302, "a link that exists already is free"
    assert SharedAnswer.objects.count() == 2


def test_a_shared_page_is_served_from_the_cache_until_the_share_is_deleted(client):
    link = share(client, gpu=RTX_4060)["Location"]
    first, again = client.get(link), Client().get(link)
    assert answer_html(first) == answer_html(again)
    assert "answer" not in again.context, "the second visit drew nothing"
    SharedAnswer.objects.all().delete()
    assert client.get(link).status_code == 404


def test_an_unknown_share_is_404(client):
    assert client.get("/advisor/r/nosuchlk/").status_code == 404


def test_an_admin_edit_shows_in_the_next_answer(client):
    before = client.get("/advisor/", {"gpu": RTX_4060}).context["answer"]["hardware"]["vram_bytes"]
    gpu = GPU.objects.get(slug=RTX_4060)
    gpu.vram_gib = [16]
    gpu.save()
    after = client.get("/advisor/", {"gpu": RTX_4060}).context["answer"]["hardware"]["vram_bytes"]
    assert after == 2 * before


def test_link_previews_name_the_best_answer(client):
    html = client.get("/advisor/", {"gpu": RTX_4060}).content.decode()
    title = re.search(r'<meta property="og:title" content="([^"]+)"', html).group(1)
    assert title.startswith("NVIDIA GeForce RTX 4060 8 GB: ")
    assert "% on GPU, ~" in title and title.endswith("tok/s")


def test_a_model_page_lists_every_quantization_and_draws_speed_against_offload(client):
    response = client.get("/advisor/models/llama-3.1-8b-instruct/", {"gpu": RTX_4060})
    assert response.status_code == 200
    rows = response.context["rows"]
    assert {"Q8_0", "Q4_K_M", "Q2_K"} <= {r["quant"] for r in rows}
    html = response.content.decode()
    assert "<svg" in html and "<polyline" in html
    speeds = [p["tokens_per_s"] for p in response.context["chart"]["points"]]
    assert speeds[-1] > speeds[0], "more layers on the GPU decode faster"


def test_an_unknown_model_page_is_404(client):
    assert client.get("/advisor/models/no-such-model/").status_code == 404


def test_the_matrix_filters_by_vendor_and_vram(client):
    response = client.get("/advisor/matrix/", {"vendor": "amd", "min_vram": 16})
    assert response.status_code == 200
    lines = [line for group in response.context["groups"] for line in group["lines"]]
    gpus = [line["gpu"] for line in lines]
    assert gpus and all(g["vendor"] == "amd" and g["max_vram_gib"] >= 16 for g in gpus)
    assert GPU.objects.filter(vendor="amd", max_vram_gib__gte=16).count() == len(gpus)
    cells = lines[0]["cells"]
    assert len(cells) == len(response.context["models"])


def test_this_servers_gpu_without_nvidia_says_so(client, monkeypatch):
    install_gpus(monkeypatch)  # the same on a machine with a GPU
    response = client.get("/advisor/this-server/", follow=True)
    assert "No NVIDIA GPU was found on this server" in response.content.decode()


def test_the_advisor_speaks_spanish(client):
    html = client.get("/advisor/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "¿Qué puede ejecutar mi GPU?" in html
    assert "Memoria de la GPU (GiB)" in html


@pytest.fixture
def gemma_in_models_folder(settings, tmp_path, gemma3_path):
    settings.MODELS_DIR = tmp_path
    (tmp_path / "gemma-3-270m-it-Q4_K_M.gguf").symlink_to(gemma3_path)
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    return tmp_path


def test_staff_can_open_a_local_file_in_the_chat_loaded_as_the_answer_says(client, admin_user, gemma_in_models_folder):
    client.force_login(admin_user)
    response = client.get("/advisor/models/gemma-3-270m-it/", {"gpu": RTX_4060, "ctx": 4096})
    row = next(r for r in response.context["rows"] if r["quant"] == "Q4_K_M")
    assert row["local_file"] == "gemma-3-270m-it-Q4_K_M.gguf"
    assert all(r["local_file"] is None for r in response.context["rows"] if r["quant"] != "Q4_K_M")
    html = response.content.decode()
    form = re.search(r'<form method="post" action="/chat/models/load/" class="open-in-chat">(.*?)</form>', html, re.S)
    assert form, "a button posts the load to the chat's Models page"
    assert 'name="file_name" value="gemma-3-270m-it-Q4_K_M.gguf"' in form.group(1)
    assert f'name="n_gpu_layers" value="{row["n_gpu_layers"]}"' in form.group(1)
    assert 'name="n_ctx" value="4096"' in form.group(1) and 'name="then" value="chat"' in form.group(1)


def test_people_who_are_not_staff_see_no_load_button(client, gemma_in_models_folder):
    html = client.get("/advisor/models/gemma-3-270m-it/", {"gpu": RTX_4060}).content.decode()
    assert "open-in-chat" not in html


def test_the_share_page_keeps_the_runtime_and_each_row_says_why_it_ranks_there(client):
    response = client.get("/advisor/", {"gpu": "nvidia-geforce-rtx-3060", "runtime": "ollama"})
    html = response.content.decode()
    results = response.context["answer"]["results"]
    assert "For Ollama." in html and html.count('class="muted small rank-reason"') >= len(
        response.context["shown"]) == min(10, len(results)) > 0
    everything = client.get("/advisor/", {"gpu": "nvidia-geforce-rtx-3060", "runtime": "ollama", "all": "1"})
    assert everything.content.decode().count('class="muted small rank-reason"') >= len(results) > 10
    shared_at = share(client, gpu="nvidia-geforce-rtx-3060", runtime="ollama")["Location"]
    slug = re.fullmatch(r"/advisor/r/([A-Za-z0-9_-]{8})/", shared_at).group(1)
    assert SharedAnswer.objects.get(slug=slug).inputs["runtime"] == "ollama"
    shared = client.get(reverse("advisor:shared", args=[slug])).content.decode()
    assert "For Ollama." in shared and "runtime=ollama" in shared
