"""The GPUs NVML reports, as a test wants them, whatever this machine has.

NVML's own functions (the `pynvml` module that advisor.hardware.detect_gpus asks) are replaced, so the
site's code runs as it does on a server with these cards, or with no NVIDIA driver at all. Only this
test process sees them: a server or worker started as a subprocess asks the real NVML.
"""

from types import SimpleNamespace

import pynvml

GIB = 2**30


def no_gpu(monkeypatch) -> None:
    """No NVIDIA driver, as on a CPU-only server."""

    def missing_library():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", missing_library)


def install_gpus(monkeypatch, *cards: tuple[str, float, float]) -> None:
    """Cards given as (name, total GiB, free GiB); none means no driver."""
    if not cards:
        no_gpu(monkeypatch)
        return

    def memory(index):
        _name, total, free = cards[index]
        return SimpleNamespace(total=int(total * GIB), free=int(free * GIB), used=int((total - free) * GIB))

    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "550.54.14")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(cards))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: index)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda index: cards[index][0])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", memory)
