"""The GGUF files the chat can load: `*.gguf` in settings.MODELS_DIR, the default model always among them."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from advisor.local_files import printable_name
from advisor.modelfiles import default_model_file, link_default_model

logger = logging.getLogger(__name__)


def list_model_files() -> list[Path]:
    """Every `*.gguf` in the models folder, sorted by name; the default model is linked there first."""
    folder = Path(settings.MODELS_DIR)
    try:
        link_default_model(folder)
    except OSError as exc:  # a read-only models folder: list the package's file directly
        logger.warning("could not link the default model into %s: %s", folder, exc)
    files = {}
    for path in sorted(folder.glob("*.gguf")):
        if not printable_name(path.name):  # bytes that are not UTF-8: no page could show or send it back
            logger.warning("ignored a model file whose name is not UTF-8 text: %r", path.name)
        elif path.is_file():
            files[path.name] = path
    default = default_model_file()
    if default is not None and default.name not in files:
        files[default.name] = default
    return [files[name] for name in sorted(files)]


def default_model_name() -> str | None:
    default = default_model_file()
    return default.name if default else None


def resolve_model_file(file_name: str) -> Path:
    """The path of `file_name` among list_model_files(); ValueError for anything else (no paths allowed)."""
    if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
        raise ValueError(f"{file_name!r} is not a model file name")
    for path in list_model_files():
        if path.name == file_name:
            return path
    raise ValueError(f"{file_name} is not in the models folder ({settings.MODELS_DIR})")
