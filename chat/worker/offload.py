"""`n_gpu_layers = auto`: as many layers as the advisor's estimate puts on the GPU this server has."""

from __future__ import annotations

import logging
from pathlib import Path

from advisor.hardware import detect_gpus, this_machine
from chat.worker.types import AUTO_PARALLEL_RANGE

logger = logging.getLogger(__name__)

# Placeholder speeds: the layer count depends only on memory, but the estimator wants a whole Hardware.
_GPU_BANDWIDTH = 500e9
_GPU_FP16_FLOPS = 50e12


def server_hardware(gpus=None):
    """This server as the estimator sees it: its GPU with the most free memory (None: ask NVML), or the CPU."""
    gpus = detect_gpus() if gpus is None else gpus
    if not gpus:
        return this_machine()
    gpu = max(gpus, key=lambda g: g.vram_free_bytes)
    return this_machine(
        backend="cuda",
        vram_total=gpu.vram_total_bytes,
        vram_free=gpu.vram_free_bytes,
        gpu_bandwidth=_GPU_BANDWIDTH,
        gpu_fp16_flops=_GPU_FP16_FLOPS,
        name=gpu.name,
    )


def estimate_offload(architecture, *, n_ctx: int, flash_attn: bool, kv_type: str, gpus=None, parallel: int = 1):
    """The advisor's estimate (largest n_gpu_layers that fits) for a model file's architecture on this server.

    `parallel` slots each hold a KV cache of `n_ctx` tokens (the batching engine's context is n_ctx x slots),
    so N caches are counted, not one."""
    from advisor.estimate import Runtime, estimate

    n_seq = max(1, int(parallel or 1))
    runtime = Runtime(n_ctx=n_ctx * n_seq, n_seq=n_seq, flash_attn=flash_attn, kv_type=kv_type, n_gpu_layers=None)
    return estimate(architecture, None, runtime, server_hardware(gpus))


def auto_parallel_for(path: Path, *, n_ctx: int, flash_attn: bool, kv_type: str) -> int:
    """auto_parallel for a model file on this server; 1 when its header cannot be estimated."""
    try:
        from advisor.gguf_info import read_gguf

        return auto_parallel(read_gguf(path).architecture, n_ctx=n_ctx, flash_attn=flash_attn, kv_type=kv_type)
    except Exception:  # an estimate is a convenience: never let it stop a model from loading
        logger.exception("could not estimate the slots for %s; loading with one", path)
        return 1


def auto_gpu_layers(path: Path, *, n_ctx: int, flash_attn: bool, kv_type: str, parallel: int = 1) -> int:
    """Layers to offload: 0 (CPU only) when no GPU is found or the file cannot be estimated."""
    gpus = detect_gpus()
    if not gpus:
        return 0
    try:
        from advisor.gguf_info import read_gguf

        info = read_gguf(path)
        return int(estimate_offload(info.architecture, n_ctx=n_ctx, flash_attn=flash_attn, kv_type=kv_type,
                                    gpus=gpus, parallel=parallel).n_gpu_layers)
    except Exception:  # an estimate is a convenience: never let it stop a model from loading
        logger.exception("could not estimate n_gpu_layers for %s; loading on the CPU", path)
        return 0


def slots_that_fit(budget_bytes: int, bytes_for_slots, *, low: int = AUTO_PARALLEL_RANGE[0],
                   high: int = AUTO_PARALLEL_RANGE[1]) -> int:
    """`parallel = auto`: the most slots whose memory fits the budget, from `low` to `high`.

    bytes_for_slots(n) is the memory the loaded model needs with n slots (weights, n KV caches of n_ctx tokens,
    compute buffers); `low` slots are kept even when nothing fits (the load then fails or spills as it would
    with a number given by hand)."""
    best = low
    for n in range(low, high + 1):
        if bytes_for_slots(n) > budget_bytes:
            break
        best = n
    return best


def auto_parallel(architecture, *, n_ctx: int, flash_attn: bool, kv_type: str, gpus=None) -> int:
    """The slots the advisor's estimate fits on this server: beside the whole model in the GPU's free memory
    when a GPU is found (a model that does not fit the GPU whole gets the minimum, 1), else in the RAM the
    advisor counts as usable (total less its reserve for the system)."""
    from advisor.estimate import Runtime, estimate

    hardware = server_hardware(gpus)
    on_gpu = hardware.has_gpu

    def needed(n: int) -> int:
        runtime = Runtime(n_ctx=n_ctx * n, n_seq=n, flash_attn=flash_attn, kv_type=kv_type,
                          n_gpu_layers=-1 if on_gpu else 0)
        result = estimate(architecture, None, runtime, hardware)
        return result.gpu_bytes if on_gpu else result.cpu_bytes

    budget = hardware.ram_usable
    if on_gpu:  # usable GPU memory after the estimator's safety margin
        budget = estimate(architecture, None, Runtime(n_ctx=n_ctx, flash_attn=flash_attn, kv_type=kv_type,
                                                      n_gpu_layers=-1), hardware).gpu_budget_bytes
    return slots_that_fit(budget, needed)


def gpu_name(n_gpu_layers: int) -> str:
    """The GPU a model with this offload runs on, as a Measurement records it ("" for the CPU)."""
    if not n_gpu_layers:
        return ""
    gpus = detect_gpus()
    return max(gpus, key=lambda g: g.vram_total_bytes).name if gpus else ""
