"""The catalog in Django's admin: validation, GGUF import, catalog export and import."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from advisor.models import GPU, LanguageModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("staff", "staff@example.invalid", "pw-for-tests-only")
    client.force_login(user)
    return client


def gpu_form(gpu, **changes):
    data = {"slug": gpu.slug, "name": gpu.name, "vendor": gpu.vendor, "family": gpu.family, "segment": gpu.segment,
            "vram_gib": json.dumps(gpu.vram_gib), "memory_bandwidth_gbs": gpu.memory_bandwidth_gbs,
            "fp16_tflops": gpu.fp16_tflops, "backend": gpu.backend, "release_year": gpu.release_year or "",
            "source": gpu.source}
    data.update(changes)
    return data


def test_staff_edit_a_gpus_memory(staff):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    response = staff.post(f"/admin/advisor/gpu/{gpu.pk}/change/", gpu_form(gpu, vram_gib="[8, 16]"))
    assert response.status_code == 302
    gpu.refresh_from_db()
    assert gpu.vram_gib == [8, 16] and gpu.max_vram_gib == 16


@pytest.mark.parametrize("field, value", [
    ("vram_gib", "[]"), ("vram_gib", "[-8]"), ("vram_gib", '"lots"'), ("memory_bandwidth_gbs", "-1"),
    ("fp16_tflops", "0"), ("slug", "nvidia-geforce-rtx-4090"), ("release_year", "1850"),
])
def test_implausible_gpu_values_are_refused(staff, field, value):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    response = staff.post(f"/admin/advisor/gpu/{gpu.pk}/change/", gpu_form(gpu, **{field: value}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert GPU.objects.get(pk=gpu.pk).vram_gib == [8]


def test_active_experts_cannot_exceed_experts(staff):
    model = LanguageModel.objects.get(slug="qwen3-30b-a3b")
    form = staff.get(f"/admin/advisor/languagemodel/{model.pk}/change/").context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields if form.initial.get(name) is not None}
    data.update({"uses": model.uses, "n_expert_used": model.n_expert + 1,
                 "known_files-TOTAL_FORMS": 0, "known_files-INITIAL_FORMS": 0})
    response = staff.post(f"/admin/advisor/languagemodel/{model.pk}/change/", data)
    assert response.status_code == 200
    assert "n_expert_used" in response.context["adminform"].form.errors


def test_the_admin_searches_and_filters_gpus_by_vendor(staff):
    response = staff.get("/admin/advisor/gpu/", {"vendor__exact": "amd", "q": "7900"})
    names = [gpu.name for gpu in response.context["cl"].result_list]
    assert "AMD Radeon RX 7900 XTX" in names
    assert all(name.startswith("AMD") and "7900" in name for name in names)


def test_a_gguf_in_the_models_folder_fills_in_a_new_model(staff, settings, smollm2_path, tmp_path):
    settings.MODELS_DIR = tmp_path
    (tmp_path / "smol.gguf").symlink_to(smollm2_path)
    response = staff.post("/admin/advisor/languagemodel/import-gguf/", {"path": "smol.gguf"})
    assert response.status_code == 302
    review = staff.get(response["Location"])
    initial = review.context["adminform"].form.initial
    assert int(initial["n_layers"]) == 30 and int(initial["n_embd"]) == 576 and int(initial["n_head_kv"]) == 3
    assert initial["arch"] == "llama"
    assert not LanguageModel.objects.filter(slug=initial["slug"]).exists(), "nothing is saved before review"


def test_an_uploaded_gguf_fills_in_a_new_model(staff, smollm2_path):
    upload = SimpleUploadedFile("smol.gguf", smollm2_path.read_bytes())
    response = staff.post("/admin/advisor/languagemodel/import-gguf/", {"upload": upload})
    assert response.status_code == 302
    assert "n_layers=30" in response["Location"]


@pytest.mark.parametrize("content", [b"", b"not a gguf at all", b"GGUF\x03\x00\x00\x00" + b"\x00" * 7])
def test_a_bad_upload_is_a_form_error(staff, content):
    count = LanguageModel.objects.count()
    response = staff.post("/admin/advisor/languagemodel/import-gguf/",
                          {"upload": SimpleUploadedFile("bad.gguf", content)})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert LanguageModel.objects.count() == count


def test_a_path_outside_the_models_folder_is_refused(staff, settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    response = staff.post("/admin/advisor/languagemodel/import-gguf/", {"path": "../../etc/passwd"})
    assert response.status_code == 200
    assert "path" in response.context["form"].errors


def test_the_gguf_import_offers_the_files_in_the_models_folder(staff, settings, smollm2_path, tmp_path):
    settings.MODELS_DIR = tmp_path
    (tmp_path / "smol.gguf").symlink_to(smollm2_path)
    (tmp_path / "family").mkdir()
    (tmp_path / "family" / "other.gguf").symlink_to(smollm2_path)
    (tmp_path / "notes.txt").write_text("not a model")
    form = staff.get("/admin/advisor/languagemodel/import-gguf/").context["form"]
    offered = [value for value, _label in form.fields["path"].choices if value]
    assert offered == ["family/other.gguf", "smol.gguf"]
    response = staff.post("/admin/advisor/languagemodel/import-gguf/", {"path": "family/other.gguf"})
    assert response.status_code == 302 and "n_layers=30" in response["Location"]


def test_an_empty_models_folder_says_so(staff, settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    html = staff.get("/admin/advisor/languagemodel/import-gguf/").content.decode()
    assert "No .gguf files there" in html


# --- Fields for people: names, memory sizes as numbers, uses as checkboxes ----------------------------------


def test_the_admin_names_the_site(staff):
    html = staff.get("/admin/").content.decode()
    assert "llmsite administration" in html and "Django administration" not in html
    assert "<title>Catalog, accounts and models | llmsite admin</title>" in html


def test_the_admin_names_the_site_in_spanish(staff):
    html = staff.get("/admin/", headers={"accept-language": "es"}).content.decode()
    assert "Administración de llmsite" in html


def test_gpu_fields_are_labelled_for_people(staff):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    html = staff.get(f"/admin/advisor/gpu/{gpu.pk}/change/").content.decode()
    for label in ("VRAM (GiB)", "FP16 TFLOPS", "Memory bandwidth (GB/s)", "Release year"):
        assert f">{label}:</label>" in html, label
    assert "Vram gib" not in html and "Fp16 tflops" not in html
    changelist = staff.get("/admin/advisor/gpu/").content.decode()
    assert "VRAM (GiB)" in changelist and "Vram gib" not in changelist


def test_every_admin_field_has_a_label_written_for_people():
    """Every field of the site's own models in the admin has a label of its own, not Django's default made from
    its name ("Vram gib", "Fp16 tflops")."""
    from django.contrib import admin

    unlabelled = [
        f"{model.__name__}.{field.name}"
        for model in admin.site._registry if model._meta.app_label in ("advisor", "accounts", "chat")
        for field in model._meta.concrete_fields if not field.primary_key and field._verbose_name is None
    ]
    assert not unlabelled


@pytest.mark.parametrize("typed, stored", [
    ("16", [16]), ("8, 12, 16", [8, 12, 16]), ("16 8", [8, 16]), ("[8, 16]", [8, 16]), ("5.5", [5.5]),
    ("8,8", [8]),
])
def test_staff_type_memory_sizes_as_numbers(staff, typed, stored):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    response = staff.post(f"/admin/advisor/gpu/{gpu.pk}/change/", gpu_form(gpu, vram_gib=typed))
    assert response.status_code == 302, response.context["adminform"].form.errors
    gpu.refresh_from_db()
    assert gpu.vram_gib == stored and gpu.max_vram_gib == max(stored)


@pytest.mark.parametrize("typed, message", [
    ("", "Give at least one memory size"), ("lots", "“lots” is not a number of GiB"),
    ("8, 0", "from 0.5 to 2048 GiB; got 0"), ("nan", "from 0.5 to 2048 GiB"), ("4096", "got 4096"),
])
def test_a_bad_memory_size_says_what_is_wrong_and_changes_nothing(staff, typed, message):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    response = staff.post(f"/admin/advisor/gpu/{gpu.pk}/change/", gpu_form(gpu, vram_gib=typed, name="Renamed"))
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["vram_gib"])
    gpu.refresh_from_db()
    assert gpu.vram_gib == [8] and gpu.name != "Renamed"


def test_the_memory_sizes_field_shows_numbers_not_json(staff):
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4060")
    gpu.vram_gib = [8, 16]
    gpu.save()
    html = staff.get(f"/admin/advisor/gpu/{gpu.pk}/change/").content.decode()
    assert 'value="8, 16"' in html and 'inputmode="decimal"' in html


def model_form_data(staff, model, **changes):
    form = staff.get(f"/admin/advisor/languagemodel/{model.pk}/change/").context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields if form.initial.get(name) is not None}
    data.update({"known_files-TOTAL_FORMS": 0, "known_files-INITIAL_FORMS": 0, **changes})
    return data


def test_uses_are_checkboxes(staff):
    model = LanguageModel.objects.get(slug="qwen3-30b-a3b")
    html = staff.get(f"/admin/advisor/languagemodel/{model.pk}/change/").content.decode()
    for value in ("chat", "code", "reasoning", "long"):
        assert f'type="checkbox" name="uses" value="{value}"' in html
    response = staff.post(f"/admin/advisor/languagemodel/{model.pk}/change/",
                          model_form_data(staff, model, uses=["code", "chat"]))
    assert response.status_code == 302
    model.refresh_from_db()
    assert sorted(model.uses) == ["chat", "code"]


def test_an_unknown_use_is_refused(staff):
    model = LanguageModel.objects.get(slug="qwen3-30b-a3b")
    before = list(model.uses)
    response = staff.post(f"/admin/advisor/languagemodel/{model.pk}/change/",
                          model_form_data(staff, model, uses=["poetry"]))
    assert response.status_code == 200 and "uses" in response.context["adminform"].form.errors
    model.refresh_from_db()
    assert model.uses == before


def test_the_export_action_downloads_the_whole_catalog(staff):
    gpu = GPU.objects.first()
    response = staff.post("/admin/advisor/gpu/", {"action": "export_catalog_action", "_selected_action": [gpu.pk]})
    assert response["Content-Disposition"] == 'attachment; filename="llmsite-catalog.json"'
    data = json.loads(response.content)
    assert len(data["gpus"]) == GPU.objects.count() and data["models"]


def test_a_catalog_upload_with_a_bad_row_changes_nothing(staff):
    data = json.loads(staff.post("/admin/advisor/gpu/", {"action": "export_catalog_action",
                                                         "_selected_action": [GPU.objects.first().pk]}).content)
    data["gpus"][0]["name"] = "Changed"
    data["gpus"][1]["fp16_tflops"] = "fast"
    upload = SimpleUploadedFile("catalog.json", json.dumps(data).encode())
    response = staff.post("/admin/advisor/gpu/import-catalog/", {"catalog": upload})
    assert response.status_code == 200
    assert "gpus[1]" in response.content.decode()
    assert not GPU.objects.filter(name="Changed").exists()


def test_a_good_catalog_upload_imports(staff):
    data = json.loads(staff.post("/admin/advisor/gpu/", {"action": "export_catalog_action",
                                                         "_selected_action": [GPU.objects.first().pk]}).content)
    data["gpus"][0]["name"] = "Changed"
    upload = SimpleUploadedFile("catalog.json", json.dumps(data).encode())
    response = staff.post("/admin/advisor/gpu/import-catalog/", {"catalog": upload})
    assert response.status_code == 302
    assert GPU.objects.filter(name="Changed").exists()


def test_the_admin_is_staff_only(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("someone", password="pw-for-tests-only"))
    assert client.get("/admin/advisor/languagemodel/import-gguf/").status_code == 302
