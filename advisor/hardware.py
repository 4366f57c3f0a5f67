"""This machine: its GPUs (NVIDIA's NVML, the `pynvml` module of nvidia-ml-py), its RAM and its CPU.

The one module that probes the host, for the advisor and the chat; advisor/estimate.py stays a pure model
that is handed an `estimate.Hardware`.

No NVIDIA driver, no GPU, or an NVML error all mean "no GPU found": an empty list, never an exception,
because a CPU-only server is a normal place to run llmsite.
"""

import functools
import logging
import os
from dataclasses import asdict, dataclass

from advisor import estimate as est

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


def ram_total_bytes(meminfo: str = "/proc/meminfo") -> int:
    """MemTotal from /proc/meminfo; 0 where there is none (not Linux)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * est.KIB
    except OSError:
        pass
    return 0


@functools.cache
def cpu_simd_factor(cpuinfo: str = "/proc/cpuinfo") -> float:
    """How much faster than AVX2 this CPU runs llama.cpp's prompt (matrix-matrix) products (1.0 where unknown).
    Read once: /proc/cpuinfo is large on big machines, and this_machine() is asked for every model row of a page."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return est.CPU_SIMD_FACTOR_AVX512_VNNI if {"avx512_vnni", "avx512bw"} <= flags else 1.0
    except OSError:
        pass
    return 1.0


def this_machine(**overrides) -> est.Hardware:
    """The CPU of the machine running this code, as the estimator's Hardware (overrides win)."""
    values = dict(backend="cpu", ram_total=ram_total_bytes() or 8 * est.GIB, cpu_threads=os.cpu_count() or 2,
                  ram_bandwidth=20e9, cpu_flops_per_thread=est.CPU_FLOPS_PER_THREAD,
                  cpu_prompt_factor=cpu_simd_factor(),
                  name="this machine")
    values.update(overrides)
    return est.Hardware(**values)
