"""The GPUs of this server, through NVIDIA's NVML (the `pynvml` module of nvidia-ml-py).

No NVIDIA driver, no GPU, or an NVML error all mean "no GPU found": an empty list, never an exception,
because a CPU-only server is a normal place to run llmsite.
"""

import logging
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectedGPU:
    index: int
    name: str
    vram_total_bytes: int
    vram_free_bytes: int
    vram_used_bytes: int
    driver_version: str

    def as_dict(self) -> dict:
        return asdict(self)


def _text(value) -> str:
    # Older NVML bindings return bytes, newer ones str.
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_gpus() -> list[DetectedGPU]:
    try:
        import pynvml
    except ImportError:  # nvidia-ml-py is a dependency, but a trimmed install should still serve pages
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        logger.debug("No NVIDIA GPU found: %s", exc)
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                DetectedGPU(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    vram_total_bytes=int(memory.total),
                    vram_free_bytes=int(memory.free),
                    vram_used_bytes=int(memory.used),
                    driver_version=driver,
                )
            )
        return gpus
    except pynvml.NVMLError as exc:
        logger.warning("NVML answered with an error while listing GPUs: %s", exc)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
