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
    data.update({"uses": json.dumps(model.uses), "n_expert_used": model.n_expert + 1,
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
    assert "Give a file inside the models folder." in response.content.decode()


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
