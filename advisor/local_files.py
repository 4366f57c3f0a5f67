"""GGUF files in this server's models folder, matched to catalog models by their architecture.

A file matches a catalog model when its header has the same shape (layers, width, heads, KV heads,
vocabulary): file names and general.name vary too much between publishers to be trusted.
"""

from dataclasses import dataclass
from pathlib import Path

from advisor.gguf_info import GGUFError, read_gguf


@dataclass(frozen=True)
class LocalFile:
    name: str
    quant: str
    shape: tuple


def shape_of(arch) -> tuple:
    return (arch.n_layer, arch.n_embd, arch.n_head, arch.n_head_kv, arch.n_vocab)


# (path, size, mtime) -> LocalFile or None: a header is read once per version of a file.
_HEADERS: dict = {}


def printable_name(name: str) -> bool:
    """False for a file name that is not text (bytes that are not UTF-8): no page can show or send it back."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def local_files(models_dir) -> list[LocalFile]:
    """The readable GGUF files of the folder; any file whose header cannot be read simply matches nothing
    (read_gguf raises only GGUFError: a hostile header is that file's error, never the page's)."""
    found = []
    for path in sorted(Path(models_dir).glob("*.gguf")):
        if not printable_name(path.name):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _HEADERS:
            try:
                info = read_gguf(path)
                _HEADERS[key] = LocalFile(path.name, info.quant, shape_of(info.architecture))
            except GGUFError:  # a bad file is the Models page's business; here it simply matches nothing
                _HEADERS[key] = None
        if _HEADERS[key] is not None:
            found.append(_HEADERS[key])
    return found


def attach_local_files(rows, catalog, models_dir) -> None:
    """Set row["local_file"] to the name of a file in the models folder of that model and quantization."""
    files = {(f.shape, f.quant): f.name for f in local_files(models_dir)}
    for row in rows:
        model = catalog.by_slug.get(row["model"])
        arch = model.archs.get(row["quant"]) if model else None
        row["local_file"] = files.get((shape_of(arch), row["quant"])) if arch else None


def attach_known_files(rows, known: dict) -> None:
    """Set row["known_file"] to {"repo", "filename", "size_bytes"} where the catalog knows where that model's
    quantization is published (staff get "Get this model" for it), else None. `known`: page_cache.known_files()."""
    for row in rows:
        row["known_file"] = known.get((row["model"], row["quant"]))
