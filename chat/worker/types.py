"""Plain types shared by the web side and the worker (no Django, no llama_cpp).

LoadSettings is the one validation of what a worker is asked to load: the worker manager builds one before
it starts anything, `manage.py llmworker` before it reaches Redis, and the Models page's form in its clean(),
so the page cannot save as active a setting that every later start would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

KV_TYPES = ("f16", "q8_0", "q4_0")
N_CTX_MIN, N_CTX_MAX = 256, 1_048_576
N_THREADS_MAX = 1024
PARALLEL_MAX = 64
PARALLEL_AUTO = "auto"  # as many slots as fit in memory (chat/worker/offload.py auto_parallel)
AUTO_PARALLEL_RANGE = (1, 16)  # what "auto" chooses from: at least one slot, never more than 16


class LoadSettingsError(ValueError):
    """A setting the worker refuses; `field` names it and `code` says why (the form translates by code)."""

    def __init__(self, field: str, code: str, message: str):
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class LoadSettings:
    """What to load and how. n_gpu_layers None means "auto" (the advisor's estimate at load time)."""

    file_name: str
    n_gpu_layers: int | None = None
    n_ctx: int = 4096
    flash_attn: bool = False
    kv_type: str = "f16"
    n_threads: int | None = None
    # Replies at once through the batched engine; 0: one at a time, without the engine; "auto": the slots that
    # fit in memory, resolved when the model is loaded.
    parallel: int | str = 0

    def __post_init__(self):
        if not isinstance(self.file_name, str) or not self.file_name:
            raise LoadSettingsError("file_name", "file_name", f"{self.file_name!r} is not a model file name")
        if self.kv_type not in KV_TYPES:
            raise LoadSettingsError("kv_type", "kv_type", f"kv_type must be f16, q8_0 or q4_0; got {self.kv_type!r}")
        if self.kv_type != "f16" and not self.flash_attn:
            # llama.cpp cannot create a context with a quantized V cache without flash attention.
            raise LoadSettingsError(
                "kv_type", "kv_needs_flash_attn",
                f"A {self.kv_type} KV cache needs flash attention: turn flash attention on, or use f16.")
        if type(self.n_ctx) is not int or not N_CTX_MIN <= self.n_ctx <= N_CTX_MAX:
            raise LoadSettingsError("n_ctx", "n_ctx",
                                    f"n_ctx must be a number from {N_CTX_MIN} to {N_CTX_MAX}; got {self.n_ctx!r}")
        if self.n_gpu_layers is not None and (type(self.n_gpu_layers) is not int or self.n_gpu_layers < -1):
            raise LoadSettingsError("n_gpu_layers", "n_gpu_layers",
                                    f"n_gpu_layers must be 'auto', -1 or a number of layers; got {self.n_gpu_layers!r}")
        if self.n_threads is not None and (type(self.n_threads) is not int
                                           or not 1 <= self.n_threads <= N_THREADS_MAX):
            raise LoadSettingsError("n_threads", "n_threads",
                                    f"n_threads must be a number from 1 to {N_THREADS_MAX}; got {self.n_threads!r}")
        check_parallel(self.parallel)
        if not isinstance(self.flash_attn, bool):
            raise LoadSettingsError("flash_attn", "flash_attn", f"flash_attn must be true or false; "
                                                                f"got {self.flash_attn!r}")


def parse_parallel(text) -> int | str:
    """LLMSITE_PARALLEL, `llmworker --parallel` and the Models page's field as text: "auto" (any case) or a
    number, checked by LoadSettings' own rule. Raises LoadSettingsError."""
    value = str(text).strip().lower()
    if value != PARALLEL_AUTO:
        try:
            value = int(value)
        except ValueError:
            value = str(text)
    check_parallel(value)
    return value


def check_parallel(value) -> None:
    """LoadSettings' rule for `parallel`: "auto", or 0 (no engine) to PARALLEL_MAX slots."""
    if value != PARALLEL_AUTO and (type(value) is not int or not 0 <= value <= PARALLEL_MAX):
        raise LoadSettingsError("parallel", "parallel",
                                f"parallel must be 'auto' or a number from 0 to {PARALLEL_MAX}; got {value!r}")
