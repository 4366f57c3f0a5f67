"""The catalog: seeded by migrations, exported and imported whole, validated row by row."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from advisor.catalog_io import CatalogError, export_catalog, import_catalog
from advisor.models import GPU, KnownFile, LanguageModel, Quantization

pytestmark = pytest.mark.django_db


def test_migrations_load_the_seed_catalog():
    assert GPU.objects.count() >= 120
    assert LanguageModel.objects.count() >= 40
    assert Quantization.objects.filter(name__in=["F16", "Q8_0", "Q4_K_M", "IQ2_XXS"]).count() == 4
    assert KnownFile.objects.count() >= 30
    for vendor in ["nvidia", "amd", "intel", "apple"]:
        assert GPU.objects.by_vendor(vendor).exists(), vendor


def test_every_catalog_number_has_a_source():
    for model in (GPU, LanguageModel, Quantization, KnownFile):
        assert not model.objects.filter(source="").exists(), model.__name__


def test_export_then_import_round_trips_without_changes():
    before = export_catalog()
    result = import_catalog(json.loads(json.dumps(before)))
    assert sum(result.created.values()) == 0
    assert export_catalog() == before


def test_a_bad_row_imports_nothing():
    data = export_catalog()
    data["gpus"][0]["name"] = "Renamed card"
    data["gpus"][1]["memory_bandwidth_gbs"] = -5
    data["models"][0]["n_expert_used"] = data["models"][0]["n_expert"] + 4
    with pytest.raises(CatalogError) as caught:
        import_catalog(data)
    text = "\n".join(caught.value.errors)
    assert "gpus[1]" in text and "memory_bandwidth_gbs" in text
    assert "models[0]" in text and "n_expert_used" in text
    assert not GPU.objects.filter(name="Renamed card").exists()


def test_a_known_file_of_an_unknown_model_is_refused():
    data = {"version": 1, "known_files": [
        {"model": "no-such-model", "quant": "Q4_K_M", "filename": "x.gguf", "size_bytes": 5_000_000, "source": "s"}]}
    with pytest.raises(CatalogError, match="no-such-model"):
        import_catalog(data)


def test_import_command_reports_bad_json_and_changes_nothing(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text("{not json")
    count = GPU.objects.count()
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("catalog_import", str(path))
    assert GPU.objects.count() == count


def test_export_command_writes_a_file_that_imports(tmp_path):
    path = tmp_path / "catalog.json"
    call_command("catalog_export", str(path))
    data = json.loads(path.read_text())
    assert len(data["gpus"]) == GPU.objects.count()
    GPU.objects.filter(slug=data["gpus"][0]["slug"]).update(memory_bandwidth_gbs=1)
    call_command("catalog_import", str(path))
    assert GPU.objects.get(slug=data["gpus"][0]["slug"]).memory_bandwidth_gbs == data["gpus"][0]["memory_bandwidth_gbs"]


def _model_row(**changes):
    row = next(m for m in export_catalog()["models"] if m["slug"] == "qwen3-8b")
    row.update(changes)
    return {"version": 1, "models": [row]}


def test_the_2026_fields_round_trip_through_export_and_import():
    data = _model_row(quality_code=41.0, quality_code_source="a leaderboard", quality_reasoning=52.5,
                      quality_reasoning_source="the same index, reasoning mode", quality_estimated=True,
                      release_date="2025-04-29")
    import_catalog(data)
    model = LanguageModel.objects.get(slug="qwen3-8b")
    assert (model.quality_code, model.quality_reasoning, model.quality_estimated) == (41.0, 52.5, True)
    assert str(model.release_date) == "2025-04-29"
    exported = next(m for m in export_catalog()["models"] if m["slug"] == "qwen3-8b")
    assert exported["release_date"] == "2025-04-29" and exported["quality_code_source"] == "a leaderboard"


def test_a_figure_without_its_source_is_refused():
    with pytest.raises(CatalogError, match="quality_code_source"):
        import_catalog(_model_row(quality_code=41.0, quality_code_source=""))


def test_an_unknown_expert_tensor_type_is_refused():
    with pytest.raises(CatalogError, match="expert_tensor_type"):
        row = next(m for m in export_catalog()["models"] if m["slug"] == "gpt-oss-20b")
        import_catalog({"version": 1, "models": [{**row, "expert_tensor_type": "FP5"}]})


def test_a_memory_share_needs_unified_memory_and_a_source():
    gpu = next(g for g in export_catalog()["gpus"] if g["slug"] == "nvidia-geforce-rtx-3060")
    with pytest.raises(CatalogError, match="gpu_memory_share"):
        import_catalog({"version": 1, "gpus": [{**gpu, "gpu_memory_share": 0.5, "gpu_memory_share_source": "x"}]})
    soc = {**gpu, "slug": "test-soc", "segment": "soc", "unified_memory": True, "gpu_memory_share": 0.75}
    with pytest.raises(CatalogError, match="gpu_memory_share_source"):
        import_catalog({"version": 1, "gpus": [soc]})
    import_catalog({"version": 1, "gpus": [{**soc, "gpu_memory_share_source": "vendor page"}]})
    assert GPU.objects.get(slug="test-soc").gpu_memory_share == 0.75


def test_gpt_oss_keeps_its_experts_in_mxfp4_and_mxfp4_is_a_catalog_type():
    assert LanguageModel.objects.get(slug="gpt-oss-20b").expert_tensor_type == "MXFP4"
    assert Quantization.objects.get(name="MXFP4").bits_per_weight == 4.25
    assert Quantization.objects.filter(name="BF16").exists()


@pytest.mark.parametrize("bad", [20250429, ["2025-04-29"], "29/04/2025"])
def test_a_release_date_that_is_not_a_date_is_refused(bad):
    with pytest.raises(CatalogError, match="release_date"):
        import_catalog(_model_row(release_date=bad))
