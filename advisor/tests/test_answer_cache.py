"""What makes a new answer fast must not change it: a cached answer and page equal freshly computed ones, a
catalog edit in the admin is seen by the next request, and the options the ranking skips (est.Limits) are
options that could not have been part of any answer."""

import random
import re

import pytest

from advisor import estimate as est
from advisor import page_cache, recommend
from advisor.forms import AdvisorForm
from advisor.models import GPU, LanguageModel

pytestmark = pytest.mark.django_db

QUESTION = {"gpu": "nvidia-geforce-rtx-4060", "vram_gib": 8, "ram_gib": 32, "ctx": 8192, "use": "chat"}
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def forget_everything():
    """No cached answer, page, catalog snapshot or estimator table: the next answer is computed from scratch."""
    from django.core.cache import caches

    caches["advisor"].clear()
    page_cache.forget()
    recommend._SNAPSHOT = None
    est._PROFILES.clear()
    est._RUNTIMES.clear()
    page_cache._per_catalog.clear()


def fresh_answer(data: dict) -> dict:
    forget_everything()
    form = AdvisorForm(data)
    assert form.is_valid(), form.errors
    return recommend.answer(form.question(), recommend.CatalogSnapshot())


def cached_answer(data: dict) -> dict:
    form = AdvisorForm(data)
    assert form.is_valid(), form.errors
    return page_cache.cached_answer(page_cache.catalog_version(), form.cleaned_data)


def page(client, data: dict) -> str:
    response = client.get("/advisor/", data)
    assert response.status_code == 200
    return CSRF.sub("", response.content.decode())


@pytest.fixture
def staff(django_user_model):
    from django.test import Client

    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("staff", "staff@example.invalid", "pw-for-tests"))
    return staff


def test_a_cached_answer_and_page_equal_freshly_computed_ones(client):
    first = page(client, QUESTION)
    again = page(client, QUESTION)
    kept = cached_answer(QUESTION)
    assert kept is not None, "the first request cached the answer"
    assert kept == fresh_answer(QUESTION)
    assert again == first == page(client, QUESTION)  # the last one drawn from scratch (fresh_answer forgot all)


def test_editing_the_catalog_in_the_admin_changes_the_next_answer(client, staff):
    before = page(client, QUESTION)
    old = cached_answer(QUESTION)
    gpu = GPU.objects.get(slug=QUESTION["gpu"])
    response = staff.post(f"/admin/advisor/gpu/{gpu.pk}/change/", {
        "slug": gpu.slug, "name": gpu.name, "vendor": gpu.vendor, "family": gpu.family, "segment": gpu.segment,
        "vram_gib": "[8]", "memory_bandwidth_gbs": 2 * gpu.memory_bandwidth_gbs, "fp16_tflops": gpu.fp16_tflops,
        "backend": gpu.backend, "release_year": gpu.release_year or "", "source": gpu.source})
    assert response.status_code == 302, "the admin saved the edit"

    after = page(client, QUESTION)
    new = cached_answer(QUESTION)
    assert after != before and new != old, "twice the bandwidth: faster answers at once"
    assert new["results"][0]["decode_tokens_per_s"] > old["results"][0]["decode_tokens_per_s"]
    assert new == fresh_answer(QUESTION)
    assert after == page(client, QUESTION)


def test_a_model_edited_in_the_admin_leaves_the_answer_at_once(client, staff):
    html = page(client, QUESTION)
    first = cached_answer(QUESTION)["results"][0]
    model = LanguageModel.objects.get(slug=first["model"])
    assert model.name in html
    model.uses = [u for u in model.uses if u != "chat"]
    model.save()  # what the admin's save does; test_admin.py covers the form itself
    assert f">{model.name}</a>" not in page(client, QUESTION)
    assert first["model"] not in {r["model"] for r in cached_answer(QUESTION)["results"]}


def random_questions(count: int, seed: int):
    rnd = random.Random(seed)
    gpus = list(GPU.objects.order_by("slug")) + [None, None]
    for _ in range(count):
        gpu = rnd.choice(gpus)
        yield gpu, recommend.Question(
            gpu=gpu.slug if gpu else None,
            vram_gib=rnd.choice([None, round(rnd.uniform(1, 96), 3)]) if gpu else rnd.choice([None, 6.5, 24]),
            ram_gib=rnd.choice([8, 16, 32, 64, 128]), ctx=rnd.choice([2048, 8192, 32768, 131072]),
            use=rnd.choice(["", "chat", "code"]), min_speed=rnd.choice([0.0, 3.0, 8.0, 30.0]),
            runtime=rnd.choice(["llmsite", "llama-server", "lmstudio", "ollama"]))


def test_skipping_what_cannot_fit_or_reach_the_speed_changes_no_answer(monkeypatch):
    catalog = recommend.snapshot()
    for gpu, question in random_questions(40, seed=11):
        fast = recommend.answer(question, catalog, gpu)
        with monkeypatch.context() as patched:
            patched.setattr(recommend, "may_reach", lambda *args: True)
            every_option = recommend.answer(question, catalog, gpu)
        assert fast == every_option, question


def test_no_option_that_fits_is_faster_than_the_limit_or_larger_than_the_room():
    catalog = recommend.snapshot()
    checked = skipped = 0
    for gpu, question in random_questions(25, seed=5):
        hardware = recommend.question_hardware(question, gpu)
        limits = est.Limits(hardware)
        placed = recommend.placements(catalog.models, catalog.quants, hardware, question.ctx, question.runtime,
                                      every_placement=True)
        for model in catalog.models:
            for q in catalog.quants:
                total, read = model.weights[q.name]
                for row in placed.get((model.slug, q.name), []):
                    if row.fits != "no":
                        assert limits.fits(total), (question, model.slug, q.name)
                        assert row.decode_tokens_per_s <= limits.speed(read), (question, model.slug, q.name)
                        checked += 1
                if not recommend.may_reach(model, q, limits, question.min_speed):
                    skipped += 1
    assert checked > 1000 and skipped > 100, "the questions cover options that fit and options that are skipped"
