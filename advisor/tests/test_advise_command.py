"""`manage.py advise`, the estimator's fixed command-line interface."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db
KEYS = {"weights_bytes", "kv_cache_bytes", "compute_buffer_bytes", "overhead_bytes", "gpu_bytes", "cpu_bytes",
        "n_layers", "n_gpu_layers", "offload_ratio", "fits", "decode_tokens_per_s", "prompt_tokens_per_s",
        "speedup_vs_cpu"}


def advise(*args) -> dict:
    out = StringIO()
    call_command("advise", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_a_catalog_model_on_a_catalog_gpu():
    result = advise("--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-4090",
                    "--ctx", "8192")
    assert KEYS <= set(result)
    assert result["fits"] == "full"
    assert result["kv_cache_bytes"] == 2**30
    assert result["offload_ratio"] == 1


def test_too_little_vram_offloads_part_of_the_model():
    result = advise("--model", "llama-3.1-8b-instruct", "--quant", "Q8_0", "--vram-gib", "6", "--ctx", "4096")
    assert result["fits"] == "partial"
    assert 0 < result["n_gpu_layers"] < result["n_layers"]
    assert 0 < result["offload_ratio"] < 1


def test_no_gpu_describes_this_machines_cpu():
    result = advise("--model", "smollm2-135m-instruct", "--quant", "Q4_K_M")
    assert result["fits"] == "cpu" and result["n_gpu_layers"] == 0 and result["gpu_bytes"] == 0


def test_a_gguf_file(smollm2_path):
    result = advise("--gguf", str(smollm2_path), "--ctx", "2048", "--vram-gib", "2")
    assert result["fits"] == "full"
    assert result["weights_bytes"] > 80 * 2**20


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such"], "--model needs --quant"),
    (["--model", "no-such", "--quant", "Q4_K_M"], "No model 'no-such'"),
    (["--model", "llama-3.1-8b-instruct", "--quant", "Q9_Z"], "unknown quantization"),
    (["--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--gpu", "nope"], "No GPU 'nope'"),
    (["--gguf", "/no/such/file.gguf"], "No such file"),
])
def test_bad_arguments_give_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("advise", *args)


def test_a_malformed_gguf_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(CommandError, match="truncated or malformed|malformed|truncated"):
        call_command("advise", "--gguf", str(bad))


def test_a_catalog_gpu_with_one_of_its_memory_sizes():
    small = advise("--model", "qwen3-14b", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-4060-ti",
                   "--vram-gib", "8")
    large = advise("--model", "qwen3-14b", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-4060-ti",
                   "--vram-gib", "16")
    assert small["fits"] == "partial" and large["fits"] == "full"


def test_the_runtime_brings_its_defaults():
    site = advise("--model", "gemma-3-12b-it", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-3060",
                  "--ctx", "16384")
    server = advise("--model", "gemma-3-12b-it", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-3060",
                    "--ctx", "16384", "--runtime", "llama-server")
    # llama-server keeps only the window's cells in Gemma's sliding-window layers (swa_full false)
    assert server["kv_cache_bytes"] < site["kv_cache_bytes"]
    assert server["gpu_budget_bytes"] < site["gpu_budget_bytes"]   # --fit keeps 1 GiB free


def test_the_ram_reserve_is_an_option():
    result = advise("--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--vram-gib", "4", "--ram-gib", "16",
                    "--ram-reserve-gib", "2")
    assert result["ram_reserve_bytes"] == 2 * 2**30
    with pytest.raises(CommandError, match="ram-reserve"):
        advise("--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--ram-gib", "16", "--ram-reserve-gib", "20")


def test_parallel_sequences_each_get_a_kv_cache_of_the_context():
    one = advise("--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-4090",
                 "--ctx", "8192")
    four = advise("--model", "llama-3.1-8b-instruct", "--quant", "Q4_K_M", "--gpu", "nvidia-geforce-rtx-4090",
                  "--ctx", "8192", "--parallel", "4")
    assert four["kv_cache_bytes"] == 4 * one["kv_cache_bytes"] == 4 * 2**30
    assert four["gpu_bytes"] > one["gpu_bytes"]


@pytest.mark.parametrize("value", ["0", "-2", "257"])
def test_a_bad_parallel_gives_a_clear_error(value):
    with pytest.raises(CommandError, match="--parallel must be between 1 and 256"):
        advise("--model", "smollm2-135m-instruct", "--quant", "Q4_K_M", "--parallel", value)
