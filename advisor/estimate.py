"""Memory, GPU offload and speed of a GGUF model under llama.cpp, counted the way llama.cpp allocates.

Pure Python (no Django, no numpy): the advisor's views, the `advise` command, the chat worker and the
benchmarks all call `estimate()`.  Every rule below names the llama.cpp behaviour it copies; the numbers
were checked against llama.cpp's own log lines (model / KV / compute buffer sizes) on SmolLM2-135M Q4_1
and Gemma-3-270M Q4_K_M by ``advisor/tests/test_accuracy.py``.

llama.cpp version modelled: the one vendored by llama-cpp-python 0.3.36.  What that worker runs by
default (``llama_cpp.Llama(...)`` with no options): n_ctx 512, n_batch 512, n_ubatch 512, flash attention
*disabled* (the Python wrapper passes LLAMA_FLASH_ATTN_TYPE_DISABLED unless flash_attn=True), swa_full
*true* (llama_context_default_params; the wrapper leaves it), KV cache f16, offload_kqv and op_offload on,
n_gpu_layers 0, n_threads = cpu_count // 2 for decoding and cpu_count for prompts.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import NamedTuple

from advisor import quant

KIB, MIB, GIB = 1024, 1024**2, 1024**3

# KV cache element types: (elements per block, bytes per block) as in ggml (gguf.GGML_QUANT_SIZES).
KV_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2),
    "q8_0": (32, 34), "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
    "iq4_nl": (32, 18),
}

# Fixed memory a GPU backend takes before any buffer: CUDA context, cuBLAS handles and kernels.
# CUDA and ROCm: 457 MiB, the "minimum memory" Ollama reserves per GPU (ollama discover/gpu.go,
# cudaMinimumMemory / rocmMinimumMemory).  Vulkan and Metal: our assumption (no published figure).
BACKEND_OVERHEAD: dict[str, int] = {"cuda": 457 * MIB, "rocm": 457 * MIB, "vulkan": 256 * MIB,
                                    "metal": 128 * MIB, "cpu": 0}

# Share of an Apple Silicon Mac's RAM that Metal lets the GPU wire: MTLDevice.recommendedMaxWorkingSetSize,
# which ggml-metal prints at start-up; about 2/3 of RAM up to 36 GB and about 3/4 above (the macOS
# iogpu.wired_limit_mb default; see llama.cpp discussion #2182 and ggml-metal's log line).  Used only when the
# catalog gives a unified-memory device no gpu_memory_share of its own.
def apple_gpu_fraction(ram_total: int) -> float:
    return 2 / 3 if ram_total <= 36 * GIB else 3 / 4


# System RAM an answer leaves to the operating system and the person's other programs: 15% of the RAM, at
# least 4 GiB.  Why: a desktop session with a browser holds 3-4 GiB (a fresh Windows 11 or macOS login uses
# 2.5-4 GiB before any program), so a fixed 2 GiB left a 32 GiB machine swapping; a share keeps big machines
# (128 GiB: 19 GiB) from handing the model memory their page cache and other work need.  Adjustable per
# question (Hardware.ram_reserved).
RAM_RESERVE_MIN = 4 * GIB
RAM_RESERVE_SHARE = 0.15


def default_ram_reserve(ram_total: int) -> int:
    return max(RAM_RESERVE_MIN, int(ram_total * RAM_RESERVE_SHARE))


# Roofline efficiencies: the share of peak bandwidth / FLOPs llama.cpp reaches.
# GPU: token generation reads dense weights at ~70-76% of memory bandwidth once the per-layer launch cost
# below is counted apart (RTX 4090, Llama 8B Q4_K_M: ~130-150 tok/s from 1008 GB/s; the RX 7900 XT's
# full-offload 27B-32B rows in bench/answers_setups.json: 67-76%); prompt processing uses int8/fp16 tensor
# cores, so it is quoted against the card's FP16 tensor throughput.
EFF_GPU_DECODE = 0.75
EFF_GPU_PROMPT = 0.8
# CPU: calibrated on this project's 2-core test machine (advisor/tests/test_accuracy.py measures it):
# with llama-cpp-python's defaults (1 decode thread of 2) SmolLM2-135M Q4_1 decodes ~57 tok/s and
# Gemma-3-270M Q4_K_M ~31 tok/s; prompts (2 threads) ~180 and ~280 tok/s.  Two points fit a compute
# efficiency of 0.37 of CPU_FLOPS_PER_THREAD plus ~78 us of per-layer overhead per token.
EFF_CPU_DECODE = 0.37
EFF_CPU_PROMPT = 0.45
EFF_RAM = 0.75                         # share of RAM bandwidth a decode reaches when memory-bound
CPU_FLOPS_PER_THREAD = 3.0e9 * 16      # 3 GHz x an effective 16 FLOP/cycle (AVX2 int8 dot products)
# AVX-512 / VNNI: llama.cpp uses them on x86 in its matrix-matrix products, i.e. prompt batches: the repacked
# gemm kernels (ggml-cpu/arch/x86/repack.cpp, ggml_gemm_*_8x8 under __AVX512BW__ && __AVX512DQ__) and
# llamafile's tinyBLAS (sgemm.cpp: 512-bit F32/F16/BF16 tiles, vpdpbusd for Q8_0/Q4_0/Q5_0/IQ4_NL).  The
# matrix-vector products of a decode step (ggml_gemv_*, ggml_vec_dot_q4_1_q8_1, _q4_K_q8_K, ...) have AVX2
# code only (read in ggml as vendored by ollama/ollama f63eea3d, 2026-05-24), so decode keeps the AVX2 rate.
# Measured per CPU-second (time.process_time, so time-sharing on a loaded host does not count) on this
# project's 2-core AVX-512 VNNI Xeon, 2026-12-05: decode 50.5 (SmolLM2) and 23.2 (Gemma-3-270M) tok/s, the
# AVX2 machine's ~57 and ~31; one-thread prompts 158 and 329 tok/s, about twice the AVX2 machine's per-thread
# ~90 and ~140.  (A 2-core AMD EPYC VM, 2026-12-02, wall clock: decode ~81 and ~48-54, prompts ~260-307 and
# ~715-744 with 2 threads.)
CPU_SIMD_FACTOR_AVX512_VNNI = 2.0
GPU_LAYER_LATENCY_S = 12e-6            # kernel launches and synchronisation per layer and token
# A mixture-of-experts layer runs about ten more small kernels per token than a dense one (router matmul,
# softmax, top-k argsort, get_rows of the weights, three mul_mat_id over the chosen experts, weighting and
# sum), and each expert matrix is too small (1-5 MB) to reach the card's bandwidth: ~50 us more per layer.
# Set from two full-offload rows of bench/answers_setups.json (ids 12 and 24: Qwen3-30B-A3B on an RTX 3090 Ti
# and an RX 7900 XT), which the bench labels as calibration; every other MoE row is held out.
GPU_MOE_LAYER_LATENCY_S = 50e-6
CPU_LAYER_LATENCY_S = 78e-6            # graph scheduling and thread barriers per layer and token
# --n-cpu-moe: every layer whose experts stay in RAM is a graph split of its own: the hidden state goes to
# the host, the CPU threads run the expert products (a CPU layer's barriers, CPU_LAYER_LATENCY_S), and the
# result comes back: two small PCIe copies with a stream synchronisation each.
GPU_CPU_ROUND_TRIP_S = 20e-6


# DeepSeek V2/V3/R1 (llama.cpp arch "deepseek2") use multi-head latent attention; their config.json has
# kv_lora_rank 512, q_lora_rank 1536, qk_rope_head_dim 64 (V3/R1).  llama.cpp caches only the compressed
# latent plus the rope part per token and layer (K of kv_lora_rank + rope dims; V is a view of it).
MLA_DEFAULTS: dict[str, tuple[int, int, int]] = {"deepseek2": (512, 1536, 64)}


@dataclass(frozen=True)
class Architecture:
    """A model's shape, and, when read from a GGUF file, its exact tensor sizes."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    head_dim_k: int = 0                 # 0: n_embd // n_head
    head_dim_v: int = 0
    context_length: int = 4096          # training context
    sliding_window: int = 0             # 0: no sliding-window attention
    swa_pattern: int = 0                # N: every N-th layer is global, the others use the window
    swa_layers: tuple[bool, ...] | None = None  # explicit per-layer flags (win over swa_pattern)
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_expert: int = 0
    n_expert_shared: int = 0
    n_ff_shared: int = 0
    n_layer_dense_lead: int = 0         # MoE models whose first layers are dense (DeepSeek, GLM)
    tied_embeddings: bool = False       # no output.weight: the output reuses token_embd
    attn_bias: bool = False
    qk_norm: bool = False
    kv_lora_rank: int = 0               # latent attention (DeepSeek): 0 = the arch's default (MLA_DEFAULTS)
    q_lora_rank: int = 0
    rope_dim: int = 0
    arch: str = "llama"                 # general.architecture
    expert_type: str = ""               # tensor type the expert weights keep whatever the quant (gpt-oss: MXFP4)
    name: str = ""
    quant: str = ""                     # file type of the exact sizes below, e.g. "Q4_K_M"
    # Exact sizes from a GGUF file (bytes); None: computed from the shape for the requested quant.
    layer_bytes: tuple[int, ...] | None = None          # per block: everything except expert tensors
    layer_expert_bytes: tuple[int, ...] | None = None   # per block: ffn_*_exps tensors
    layer_repack_bytes: tuple[int, ...] | None = None   # per block: tensors llama.cpp repacks on CPU
    token_embd_bytes: int | None = None
    output_bytes: int | None = None     # 0 when tied
    other_bytes: int = 0                # output_norm, rope_freqs, ...

    @property
    def head_k(self) -> int:
        return self.head_dim_k or self.n_embd // self.n_head

    @property
    def head_v(self) -> int:
        return self.head_dim_v or self.head_k

    @property
    def mla(self) -> tuple[int, int, int]:
        """(kv_lora_rank, q_lora_rank, rope_dim) for latent-attention models, zeros otherwise."""
        if self.kv_lora_rank:
            return self.kv_lora_rank, self.q_lora_rank, self.rope_dim
        return MLA_DEFAULTS.get(self.arch, (0, 0, 0))

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 1

    def is_swa(self, il: int) -> bool:
        """llama.cpp hparams.is_swa: with a pattern N, layer il uses the window unless il % N == N-1."""
        if not self.sliding_window:
            return False
        if self.swa_layers is not None:
            return self.swa_layers[il]
        n = self.swa_pattern
        return n == 0 or il % n < n - 1

    def shape(self) -> quant.ShapeSpec:
        return quant.ShapeSpec(
            n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head, n_head_kv=self.n_head_kv,
            head_dim_k=self.head_k, head_dim_v=self.head_v, n_ff=self.n_ff, n_vocab=self.n_vocab,
            n_expert=self.n_expert, n_expert_used=self.n_expert_used, n_ff_expert=self.n_ff_expert,
            n_expert_shared=self.n_expert_shared, n_ff_shared=self.n_ff_shared,
            n_layer_dense_lead=self.n_layer_dense_lead, tied_embeddings=self.tied_embeddings,
            attn_bias=self.attn_bias, qk_norm=self.qk_norm, arch=self.arch,
            kv_lora_rank=self.mla[0], q_lora_rank=self.mla[1], rope_dim=self.mla[2], expert_type=self.expert_type)

    def sizes(self, quant_name: str | None = None) -> quant.ModelSizes:
        """Tensor bytes: the file's exact ones when known (and no other quant is asked), else computed."""
        exact = self.layer_bytes is not None
        if exact and (not quant_name or not self.quant
                      or quant.normalize_name(quant_name) == quant.normalize_name(self.quant)):
            n = self.n_layer
            repack = self.layer_repack_bytes
            if repack is None and self.quant in quant.DEFAULT_TYPE:
                # e.g. a catalog entry rescaled to a measured file size: repack shares from the mix
                repack = quant.model_sizes(self.shape(), self.quant).layer_repack_bytes
            return quant.ModelSizes(
                layer_bytes=tuple(self.layer_bytes),
                layer_expert_bytes=tuple(self.layer_expert_bytes or (0,) * n),
                token_embd_bytes=self.token_embd_bytes or 0,
                output_bytes=self.output_bytes or 0,
                other_bytes=self.other_bytes,
                layer_repack_bytes=tuple(repack or (0,) * n))
        if not quant_name and not self.quant:
            raise ValueError("no exact tensor sizes: name a quantization")
        return quant.model_sizes(self.shape(), quant_name or self.quant)

    def n_params(self) -> tuple[int, int]:
        """(total, active per token) parameter counts of the weight matrices, from the shape."""
        s = self.shape()
        e, q, kv = s.n_embd, s.n_head * s.head_dim_k, s.n_head_kv * (s.head_dim_k + s.head_dim_v)
        attn = e * q + e * kv + s.n_head * s.head_dim_v * e
        if s.kv_lora_rank:
            r = s.kv_lora_rank
            q_params = (e * s.q_lora_rank + s.q_lora_rank * q) if s.q_lora_rank else e * q
            attn = (q_params + e * (r + s.rope_dim) + r * s.n_head * (s.head_dim_k - s.rope_dim + s.head_dim_v)
                    + s.n_head * s.head_dim_v * e)
        total = active = 0
        for il in range(s.n_layer):
            if s.n_expert > 1 and il >= s.n_layer_dense_lead:
                f = s.n_ff_expert or s.n_ff
                shared = 3 * e * (s.n_ff_shared or f * s.n_expert_shared) if s.n_expert_shared else 0
                total += attn + 3 * e * f * s.n_expert + shared
                active += attn + 3 * e * f * s.n_expert_used + shared
            else:
                total += attn + 3 * e * s.n_ff
                active += attn + 3 * e * s.n_ff
        embd = s.n_vocab * e
        total += embd if s.tied_embeddings else 2 * embd
        return total, active + embd


@dataclass(frozen=True)
class Runtime:
    """llama.cpp context settings; the defaults are what llama_cpp.Llama() uses (see module docstring)."""

    n_ctx: int = 512
    n_batch: int = 512
    n_ubatch: int = 512
    kv_type: str = "f16"                # type_k and type_v
    flash_attn: bool = False
    swa_full: bool = True
    n_gpu_layers: int | None = None     # None: the largest that fits; -1: all (n_layer + 1)
    n_cpu_moe: int | None = None        # MoE only. None: choose; N: expert tensors of the first N layers in RAM
    n_seq: int = 1                      # parallel sequences (n_seq_max), KV not unified
    op_offload: bool = True
    decode_context: int | None = None   # tokens already in the context when decode speed is quoted;
                                        # None: half of n_ctx, at most 2048
    n_threads: int | None = None        # decode threads; None: cpu_threads // 2 (llama-cpp-python)
    n_threads_batch: int | None = None  # prompt threads; None: cpu_threads
    vram_margin: int | None = None      # GPU memory kept free when choosing layers (None: Hardware.safety_margin)
    expert_offload: bool = True         # the runtime can keep the experts of chosen layers in RAM (--n-cpu-moe)

    def __hash__(self) -> int:
        # Every (model, quant) of a ranking looks its sizes up by runtime: the fields' hash is computed once.
        try:
            return self.__dict__["_hash"]
        except KeyError:
            h = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", h)
            return h


@dataclass(frozen=True)
class RuntimeProfile:
    """What a program that runs GGUF models does by default, where it differs between programs."""

    label: str
    flash_attn: bool                    # on wherever there is a GPU
    swa_full: bool                      # sliding-window layers keep a full-size cache
    n_batch: int
    n_ubatch: int
    default_ctx: int                    # the context it loads a model with unless told
    vram_margin: int                    # GPU memory it keeps free when it chooses the layers itself
    source: str
    expert_offload: bool = True         # can keep the experts of the first N layers in RAM (--n-cpu-moe)


# Each value names where it was read; "assumed" marks what no source text gave us.
RUNTIMES: dict[str, RuntimeProfile] = {
    "llmsite": RuntimeProfile(
        "This site's worker", True, True, 512, 512, 8192, 256 * MIB,
        "chat worker: llama_cpp.Llama with flash_attn on a GPU, n_batch/n_ubatch 512, swa_full left true "
        "(llama_context_default_params); margin: this estimator's own 256 MiB"),
    "llama-server": RuntimeProfile(
        "llama-server", True, False, 2048, 512, 0, 1024 * MIB,
        "llama.cpp common/common.h (common_params): flash_attn_type AUTO, swa_full false, n_batch 2048, "
        "n_ubatch 512, n_ctx 0 = the model's trained context, fit_params true with fit_params_target "
        "1024 MiB per device"),
    "lmstudio": RuntimeProfile(
        "LM Studio", False, False, 512, 512, 4096, 512 * MIB,
        "LM Studio's load defaults: context 4096, flash attention off (its model-load panel); batch 512 and the "
        "512 MiB margin assumed (closed source); its load places whole layers (GPU offload slider), the option "
        "that forces expert weights onto the CPU is off by default", expert_offload=False),
    "ollama": RuntimeProfile(
        "Ollama", False, False, 512, 512, 4096, 0,
        "Ollama docs/faq.md: default context 4096, flash attention only with OLLAMA_FLASH_ATTENTION=1; num_batch "
        "512; its GPU reserve is the 457 MiB minimum memory already counted as the backend overhead "
        "(discover/gpu.go), OLLAMA_GPU_OVERHEAD 0; it splits a model by whole layers (num_gpu) and has no "
        "setting that keeps only the experts in RAM", expert_offload=False),
}
DEFAULT_RUNTIME_NAME = "llmsite"


@dataclass(frozen=True)
class Hardware:
    """One GPU (or none) and the host.  Bandwidths in bytes/s, throughput in FLOP/s."""

    backend: str = "cpu"                # cuda, rocm, metal, vulkan or cpu
    vram_total: int = 0
    vram_free: int | None = None        # None: vram_total (nothing else on the GPU)
    gpu_bandwidth: float = 0.0
    gpu_fp16_flops: float = 0.0
    ram_total: int = 32 * GIB           # a typical desktop: 32 GiB dual-channel DDR4-3200 / DDR5
    ram_bandwidth: float = 60e9
    cpu_threads: int = 16               # logical CPUs (os.cpu_count())
    cpu_flops_per_thread: float = CPU_FLOPS_PER_THREAD
    cpu_prompt_factor: float = 1.0      # prompt (matrix-matrix) speed over AVX2 (CPU_SIMD_FACTOR_AVX512_VNNI)
    pcie_bandwidth: float = 25e9        # PCIe 4.0 x16 in practice
    unified_memory: bool = False        # the GPU uses part of system RAM (Apple, Strix Halo, DGX Spark, Jetson)
    gpu_memory_fraction: float | None = None  # unified memory: share the GPU may use (None: Apple's default)
    safety_margin: int = 256 * MIB      # kept free on the GPU on top of every counted buffer (Runtime may override)
    ram_reserved: int | None = None     # RAM left to the OS and other programs (None: default_ram_reserve)
    name: str = ""

    # Computed once per object (it is frozen): a ranking reads them for every model and quantization.
    @cached_property
    def ram_reserve(self) -> int:
        return self.ram_reserved if self.ram_reserved is not None else default_ram_reserve(self.ram_total)

    @cached_property
    def ram_usable(self) -> int:
        return max(0, self.ram_total - self.ram_reserve)

    @property
    def has_gpu(self) -> bool:
        return self.backend != "cpu" and self.gpu_budget_total > 0

    @cached_property
    def gpu_budget_total(self) -> int:
        if self.unified_memory:
            frac = self.gpu_memory_fraction or apple_gpu_fraction(self.ram_total)
            # the OS reserve comes out of the same memory: the GPU never gets more than what is left
            return min(int(self.ram_total * frac), self.ram_usable)
        return self.vram_free if self.vram_free is not None else self.vram_total


@dataclass(slots=True)
class Estimate:
    """The answer for one model, quantization, runtime and hardware.  Sizes in bytes."""

    weights_bytes: int
    weights_gpu_bytes: int
    weights_cpu_bytes: int
    repack_bytes: int                   # llama.cpp's CPU_REPACK buffer (replaces mmap'd pages: not in cpu_bytes)
    kv_cache_bytes: int
    kv_gpu_bytes: int
    compute_buffer_bytes: int           # GPU compute buffer when offloading, else the CPU one
    host_compute_bytes: int             # CPU-side compute buffer + output buffer
    overhead_bytes: int
    gpu_bytes: int
    cpu_bytes: int
    gpu_budget_bytes: int               # usable GPU memory after the safety margin
    n_layers: int                       # block layers + the output layer (llama.cpp's count)
    n_gpu_layers: int
    offload_ratio: float
    n_cpu_moe: int
    fits: str                           # full | partial | cpu | no
    decode_tokens_per_s: float
    prompt_tokens_per_s: float
    speedup_vs_cpu: float
    n_ctx: int
    kv_cells: int
    kv_cells_swa: int
    architecture: Architecture = field(repr=False, compare=False, default=None)
    runtime: Runtime = field(repr=False, compare=False, default=None)
    hardware: Hardware = field(repr=False, compare=False, default=None)
    quant: str = ""
    cpu_moe_considered: bool = False    # an --n-cpu-moe plan fitted and was weighed against whole layers
    cpu_decode_tokens_per_s: float = 0.0
    placement: str = ""                 # gpu | split | experts | cpu
    ram_reserve_bytes: int = 0          # system RAM left to the OS and other programs

    @property
    def explanation(self) -> list[str]:
        return _explain(self)

    def to_dict(self, explain: bool = True) -> dict:
        """Plain JSON-able values; explain=False skips the sentences (ranking tables don't need them)."""
        keys = ("weights_bytes", "weights_gpu_bytes", "weights_cpu_bytes", "repack_bytes",
                "kv_cache_bytes", "kv_gpu_bytes", "compute_buffer_bytes", "host_compute_bytes",
                "overhead_bytes", "gpu_bytes", "cpu_bytes", "gpu_budget_bytes", "n_layers",
                "n_gpu_layers", "offload_ratio", "n_cpu_moe", "fits", "decode_tokens_per_s",
                "prompt_tokens_per_s", "speedup_vs_cpu", "n_ctx", "kv_cells", "kv_cells_swa", "placement",
                "ram_reserve_bytes")
        d = {k: getattr(self, k) for k in keys}
        for k in ("offload_ratio", "decode_tokens_per_s", "prompt_tokens_per_s", "speedup_vs_cpu"):
            d[k] = round(d[k], 4 if k == "offload_ratio" else 2)
        if explain:
            d["explanation"] = self.explanation
        return d


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def _row_bytes(kv_type: str, n: int) -> int:
    per_block, block_bytes = KV_TYPES[kv_type]
    return n // per_block * block_bytes


# --------------------------------------------------------------------------------------------------
# Per-model figures that do not depend on the runtime: cached per (architecture, quant).


class _Profile:
    """Per (architecture, quant): byte sums over the k highest layers, so any split costs O(1)."""

    __slots__ = ("n", "dense_top", "expert_top", "repack_top", "swa_top", "moe_top", "expert_bottom", "token_embd",
                 "output_gpu", "other", "total", "expert_frac", "active_params", "dense_total", "expert_total",
                 "repack_total", "tied", "params_per_byte", "n_swa", "n_global", "runtimes", "offloadable",
                 "memo")

    def __init__(self, arch: Architecture, quant_name: str | None):
        s = arch.sizes(quant_name)
        n = arch.n_layer
        self.n = n

        def top_sums(values):
            # top[k] = sum over the k highest layers (the ones llama.cpp offloads first)
            out = [0] * (n + 1)
            acc = 0
            for k in range(1, n + 1):
                acc += values[n - k]
                out[k] = acc
            return out

        self.dense_top = top_sums(s.layer_bytes)
        self.expert_top = top_sums(s.layer_expert_bytes)
        self.repack_top = top_sums(s.layer_repack_bytes or (0,) * n)
        self.swa_top = top_sums([1 if arch.is_swa(il) else 0 for il in range(n)])
        # MoE layers among the k highest (dense lead layers of DeepSeek / GLM are not)
        self.moe_top = top_sums([1 if arch.is_moe and il >= arch.n_layer_dense_lead else 0 for il in range(n)])
        self.n_swa = self.swa_top[n]
        self.n_global = n - self.n_swa
        self.dense_total = self.dense_top[n]
        self.expert_total = self.expert_top[n]
        self.repack_total = self.repack_top[n]
        # expert bytes of the first m layers: what --n-cpu-moe m keeps in RAM
        self.expert_bottom = [self.expert_total - self.expert_top[n - m] for m in range(n + 1)]
        self.token_embd = s.token_embd_bytes
        # The output layer on the GPU is output.weight, or a copy of token_embd when tied
        # (llama.cpp loads the duplicated tensor into the output layer's buffer).
        self.tied = s.output_bytes == 0
        self.output_gpu = s.output_bytes or s.token_embd_bytes
        self.other = s.other_bytes
        self.total = self.dense_total + self.expert_total + s.token_embd_bytes + s.output_bytes + s.other_bytes
        self.offloadable = self.dense_total + self.expert_total + self.output_gpu + self.other
        self.expert_frac = (arch.n_expert_used / arch.n_expert) if arch.is_moe else 1.0
        self.active_params = arch.n_params()[1]
        read = self.dense_total + self.expert_total * self.expert_frac + self.output_gpu
        self.params_per_byte = self.active_params / max(1.0, read)
        self.runtimes: dict[Runtime, _RtInfo] = {}
        self.memo: tuple | None = None      # (runtime, hardware, _Ctx) of the last call: a ranking repeats them


class _RtInfo:
    """Per (profile, runtime): the runtime-dependent sizes, computed once."""

    __slots__ = ("n_ctx", "cells", "cells_swa", "unit", "compute", "partial_compute", "output_buf", "n_ub",
                 "host_min", "ctx_tokens", "attn_flops", "kv_all", "prompt_flops", "cpu_times", "ff_max",
                 "hardware", "full_need", "need")

    def __init__(self, arch: Architecture, p: _Profile, rt: Runtime):
        n_ctx, cells, cells_swa = kv_cells(arch, rt)
        self.n_ctx, self.cells, self.cells_swa = n_ctx, cells, cells_swa
        self.unit = kv_bytes_per_cell(arch, rt.kv_type) * (rt.n_seq if rt.n_seq > 1 else 1)
        self.compute = compute_buffer_bytes(arch, rt, p.n_global > 0)
        # op_offload copies a CPU-resident output matrix to the GPU for prompt batches
        self.partial_compute = self.compute + (p.output_gpu if rt.op_offload else 0)
        self.output_buf = 4 * arch.n_vocab * (rt.n_seq if rt.n_seq > 1 else 1)
        n_ub = min(rt.n_ubatch, rt.n_batch, n_ctx)
        self.n_ub = n_ub
        self.host_min = 8 * n_ub * arch.n_embd        # input embeddings etc. stay on the host
        self.ctx_tokens = rt.decode_context if rt.decode_context is not None else min(n_ctx // 2, 2048)
        # attention of one new token over the context: Q.K and softmax.V, every layer
        self.attn_flops = 4.0 * arch.n_head * arch.head_k * self.ctx_tokens * arch.n_layer
        self.kv_all = self.unit * (p.n_global * cells + p.n_swa * cells_swa)
        # only the last prompt token goes through the output matrix (llama-cpp-python: logits_all off);
        # attention over on average half the batch
        self.prompt_flops = (2.0 * (p.active_params - arch.n_vocab * arch.n_embd)
                             + 2.0 * arch.n_head * arch.head_k * n_ub * arch.n_layer)
        self.ff_max = max(arch.n_ff, arch.n_ff_expert, arch.n_embd)
        self.cpu_times: dict = {}
        # (hw, figures) of the last Hardware: a ranking reuses one object for every pair. One entry, not a dict
        # by id(hw): every request brings a new Hardware, and a dict kept each of them alive forever.
        self.hardware: tuple | None = None
        # GPU bytes of everything on the GPU (the output layer too), and need[k]: block weights and KV cache
        # of the k highest layers. need only grows with k, so the most layers that fit is one bisection.
        self.full_need = p.dense_total + p.expert_total + p.output_gpu + p.other + self.kv_all + self.compute
        unit, swa_top = self.unit, p.swa_top
        self.need = [p.dense_top[k] + p.expert_top[k] + unit * ((k - swa_top[k]) * cells + swa_top[k] * cells_swa)
                     for k in range(p.n + 1)]


_PROFILES: dict[tuple[int, str], tuple[Architecture, _Profile]] = {}


def _profile(arch: Architecture, quant_name: str | None) -> _Profile:
    key = (id(arch), quant_name or "")
    hit = _PROFILES.get(key)
    if hit is not None and hit[0] is arch:
        return hit[1]
    if len(_PROFILES) > 20000:
        _PROFILES.clear()
    prof = _Profile(arch, quant_name)
    _PROFILES[key] = (arch, prof)
    return prof


# --------------------------------------------------------------------------------------------------
# Memory pieces


def kv_cells(arch: Architecture, rt: Runtime) -> tuple[int, int, int]:
    """(n_ctx as llama.cpp runs it, cells per stream of the full cache and of the window cache).

    llama_context pads n_ctx to a multiple of 256; with n_seq > 1 each sequence gets n_ctx / n_seq,
    padded to 256 again.  llama_kv_cache_iswa sizes the window cache to
    pad(min(full, n_swa * (unified ? n_seq : 1) + n_ubatch), 256) unless swa_full.
    """
    n_ctx = rt.n_ctx if rt.n_ctx > 0 else arch.context_length
    n_ctx = _pad(n_ctx, 256)
    if rt.n_seq > 1:
        per_seq = _pad(n_ctx // rt.n_seq, 256)
        n_ctx = per_seq * rt.n_seq
    else:
        per_seq = n_ctx
    full = per_seq
    n_ubatch = min(rt.n_ubatch, rt.n_batch, n_ctx)
    if arch.sliding_window and not rt.swa_full:
        swa = _pad(min(full, arch.sliding_window + n_ubatch), 256)
    else:
        swa = full
    return n_ctx, full, swa


def kv_bytes_per_cell(arch: Architecture, kv_type: str) -> int:
    """K and V bytes of one cell (token) in one layer: GQA heads only (latent attention: the latent)."""
    rank, _, rope = arch.mla
    if rank:
        return _row_bytes(kv_type, rank + rope)
    return (_row_bytes(kv_type, arch.n_head_kv * arch.head_k)
            + _row_bytes(kv_type, arch.n_head_kv * arch.head_v))


def kv_cache_bytes(arch: Architecture, rt: Runtime) -> int:
    """The whole KV cache: every layer, its own cell count (window layers may be smaller), all streams."""
    _, full, swa = kv_cells(arch, rt)
    n_swa = sum(1 for il in range(arch.n_layer) if arch.is_swa(il))
    per_cell = kv_bytes_per_cell(arch, rt.kv_type)
    return per_cell * ((arch.n_layer - n_swa) * full + n_swa * swa) * max(1, rt.n_seq)


def compute_buffer_bytes(arch: Architecture, rt: Runtime, has_global: bool | None = None) -> int:
    """The worst-case graph's buffer as ggml-alloc sizes it (llama_context::sched_reserve).

    The reserve graph processes n_ubatch tokens against the whole cache (n_kv = its size) with one output
    per token.  ggml-alloc reuses memory, so the buffer is the larger of two peaks:
    - the end of the graph: logits, n_vocab x n_ubatch f32, beside two n_embd x n_ubatch activations;
    - attention without flash attention: KQ (n_kv x n_ubatch x n_head f32, softmax runs in place) and
      the f32 mask (n_kv x n_ubatch), plus a few activation rows; with flash attention no KQ is
      materialised and the mask is f16.
    Fitted and checked against llama.cpp's "compute buffer size" on the two test models, n_ctx 512-32768.
    """
    n_ctx, full, swa = kv_cells(arch, rt)
    n_ub = min(rt.n_ubatch, rt.n_batch, n_ctx)
    e = arch.n_embd
    logits_peak = 4 * n_ub * (arch.n_vocab + 2 * e)
    rows = 4 * n_ub * (5 * e + arch.n_head * arch.head_v)
    if has_global is None:
        has_global = not arch.sliding_window or any(not arch.is_swa(il) for il in range(arch.n_layer))
    masks = full if has_global else 0
    if arch.sliding_window and swa != full:
        masks += swa
    n_kv_max = full if has_global else swa
    if rt.flash_attn:
        attn_peak = 2 * n_ub * masks + rows
    else:
        attn_peak = 4 * n_ub * n_kv_max * arch.n_head + 4 * n_ub * masks + rows
    return max(logits_peak, attn_peak)


def output_buffer_bytes(arch: Architecture, rt: Runtime) -> int:
    # llama_context's host "output buffer": logits of n_seq outputs (llama-cpp-python: logits_all off)
    return 4 * arch.n_vocab * max(1, rt.n_seq)


# --------------------------------------------------------------------------------------------------
# Placement and speed.  One estimate is a few dozen arithmetic operations once the profile is cached:
# the advisor ranks ~1000 model x quantization pairs per request.


def _hardware_figures(hw: Hardware, r: _RtInfo, rt: Runtime) -> tuple:
    """(has GPU, fixed GPU overhead, GPU budget, budget left after overhead, decode threads, VRAM margin,
    usable RAM)."""
    backend = hw.backend
    total = hw.gpu_budget_total
    gpu = backend != "cpu" and total > 0
    overhead = 0
    if gpu:
        overhead = BACKEND_OVERHEAD.get(backend, 0)
        if backend in ("cuda", "rocm"):
            # ggml-cuda's memory pool (activations converted for the quantized matmul kernels) lives
            # outside llama.cpp's reported buffers: a few activation-sized blocks.
            overhead += 8 * r.n_ub * r.ff_max
    margin = rt.vram_margin if rt.vram_margin is not None else hw.safety_margin
    budget = total - margin if gpu else 0
    return (gpu, overhead, budget, budget - overhead, rt.n_threads or max(1, hw.cpu_threads // 2), margin,
            hw.ram_usable)


class _Ctx:
    __slots__ = ("arch", "p", "rt", "hw", "r", "unit", "cells", "cells_swa", "gpu", "overhead", "avail",
                 "budget", "threads", "margin", "ram_usable")

    def __init__(self, arch: Architecture, p: _Profile, rt: Runtime, hw: Hardware):
        self.arch, self.p, self.rt, self.hw = arch, p, rt, hw
        r = p.runtimes.get(rt)
        if r is None:
            r = p.runtimes[rt] = _RtInfo(arch, p, rt)
        self.r = r
        self.unit, self.cells, self.cells_swa = r.unit, r.cells, r.cells_swa
        hit = r.hardware
        if hit is None or hit[0] is not hw:
            hit = r.hardware = (hw, *_hardware_figures(hw, r, rt))
        _, self.gpu, self.overhead, self.budget, self.avail, self.threads, self.margin, self.ram_usable = hit

    def kv_top(self, k: int) -> int:
        swa = self.p.swa_top[k]
        return self.unit * ((k - swa) * self.cells + swa * self.cells_swa)

    def need(self, ngl: int, ncmoe: int = 0) -> int:
        """GPU bytes besides the fixed overhead for n_gpu_layers = ngl (and --n-cpu-moe ncmoe)."""
        p = self.p
        n = p.n
        if ngl <= 0:
            return 0
        if ngl > n:
            return (p.dense_total + p.expert_total - p.expert_bottom[ncmoe] + p.output_gpu + p.other
                    + self.r.kv_all + self.r.compute)
        k = ngl
        swa = p.swa_top[k]
        return (p.dense_top[k] + p.expert_top[k if ncmoe == 0 else min(k, n - ncmoe)]
                + self.unit * ((k - swa) * self.cells + swa * self.cells_swa) + self.r.partial_compute)

    def best_layers(self) -> int:
        """Largest n_gpu_layers that fits: everything when it fits, else a bisection of need (it only grows)."""
        r, avail = self.r, self.avail
        n = self.p.n
        if r.full_need <= avail:
            return n + 1
        avail -= r.partial_compute
        need = r.need
        if need[1] > avail:
            return 0
        k = bisect_right(need, avail) - 1
        return k if k < n else n

    def best_cpu_moe(self) -> int | None:
        """Smallest --n-cpu-moe that fits with every layer and the output on the GPU, or None."""
        p = self.p
        n = p.n
        if not self.gpu or p.expert_total == 0:
            return None
        excess = self.need(n + 1) - self.avail
        if excess <= 0:
            return 0
        if p.expert_bottom[n] < excess:
            return None
        return bisect_left(p.expert_bottom, excess)

    def decode_time(self, ngl: int, ncmoe: int) -> float:
        """Seconds per generated token: every active weight and the used KV read once."""
        p, arch, hw = self.p, self.arch, self.hw
        n = p.n
        k = ngl if ngl < n else n
        out_on_gpu = ngl > n
        ef = p.expert_frac
        kx = k if k < n - ncmoe else n - ncmoe
        gpu_read = p.dense_top[k] + p.expert_top[kx] * ef + (p.output_gpu if out_on_gpu else 0)
        cpu_read = (p.dense_total - p.dense_top[k] + (p.expert_total - p.expert_top[kx]) * ef
                    + (0 if out_on_gpu else p.output_gpu))
        r = self.r
        ctx_tokens = r.ctx_tokens
        win = min(ctx_tokens, arch.sliding_window) if arch.sliding_window else ctx_tokens
        swa_k = p.swa_top[k]
        kv_gpu = self.unit * ((k - swa_k) * ctx_tokens + swa_k * win)
        swa_rest = p.n_swa - swa_k
        kv_cpu = self.unit * ((n - k - swa_rest) * ctx_tokens + swa_rest * win)
        t = 0.0
        if gpu_read:
            t += ((gpu_read + kv_gpu) / (hw.gpu_bandwidth * EFF_GPU_DECODE) + k * GPU_LAYER_LATENCY_S
                  + p.moe_top[k] * GPU_MOE_LAYER_LATENCY_S)
        if cpu_read:
            # CPU decoding is memory-bound on desktops but compute-bound on few cores: take the slower
            cpu_flops = 2.0 * cpu_read * p.params_per_byte + r.attn_flops * (n - k) / n
            mem_t = (cpu_read + kv_cpu) / (hw.ram_bandwidth * EFF_RAM)
            flop_t = cpu_flops / (self.threads * hw.cpu_flops_per_thread * EFF_CPU_DECODE)
            t += (mem_t if mem_t > flop_t else flop_t) + (n - k) * CPU_LAYER_LATENCY_S
            # GPU layers whose experts stay in RAM: a CPU split and a round trip each
            t += (k - kx) * (CPU_LAYER_LATENCY_S + GPU_CPU_ROUND_TRIP_S) if k > kx else 0.0
        return t

    def prompt_rate(self, ngl: int, weights_cpu: int) -> float:
        """Tokens per second over a full n_ubatch prompt batch: compute-bound."""
        p, hw, rt = self.p, self.hw, self.rt
        n = p.n
        flops_per_token = self.r.prompt_flops
        ub = self.r.n_ub
        threads = rt.n_threads_batch or hw.cpu_threads
        # prompt batches run llama.cpp's matrix-matrix kernels, which use AVX-512 / VNNI where the CPU has them
        cpu_flops = threads * hw.cpu_flops_per_thread * hw.cpu_prompt_factor * EFF_CPU_PROMPT
        if ngl == 0 or not self.gpu:
            return cpu_flops / flops_per_token
        t_batch = ub * flops_per_token / (hw.gpu_fp16_flops * EFF_GPU_PROMPT)
        if rt.op_offload:
            # weights in RAM cross PCIe once per batch to be multiplied on the GPU
            t_batch += (weights_cpu - p.token_embd) / hw.pcie_bandwidth
        else:
            t_batch += ub * flops_per_token * (1 - min(ngl, n) / n) / cpu_flops
        return ub / t_batch


# --------------------------------------------------------------------------------------------------
# Public API

def _ctx(arch: Architecture, p: _Profile, rt: Runtime, hw: Hardware) -> _Ctx:
    memo = p.memo
    if memo is not None and memo[0] is rt and memo[1] is hw:
        return memo[2]
    c = _Ctx(arch, p, rt, hw)
    p.memo = (rt, hw, c)
    return c


class Placement(NamedTuple):
    """Where one model's tensors go: the one arithmetic that rank() and estimate() share."""

    kind: str                           # gpu (everything), split (n_gpu_layers), experts (--n-cpu-moe), cpu
    n_gpu_layers: int
    n_cpu_moe: int
    weights_gpu: int
    weights_cpu: int
    kv_gpu: int
    gpu_compute: int                    # 0 without a GPU
    host_compute: int
    overhead: int
    gpu_bytes: int
    cpu_bytes: int
    fits: str                           # full | partial | cpu | no
    decode_time: float                  # seconds per generated token


def _place(c: _Ctx, ngl: int, ncmoe: int, margin_applies: bool = True) -> Placement:
    """Memory and decode time of n_gpu_layers = ngl and --n-cpu-moe ncmoe, counted as llama.cpp allocates.

    margin_applies=False checks a placement someone chose (n_gpu_layers given) against what loading needs,
    without the margin an automatic choice keeps.
    """
    p, r, hw = c.p, c.r, c.hw
    n = p.n
    k = ngl if ngl < n else n
    out_on_gpu = ngl > n
    w_gpu = p.dense_top[k] + p.expert_top[k if ncmoe == 0 or k < n - ncmoe else n - ncmoe]
    if out_on_gpu:
        w_gpu += p.output_gpu + p.other         # output_norm travels with the output
    # tied embeddings: the GPU gets a copy of token_embd for the output, the original stays in RAM
    w_cpu = p.total - w_gpu + (p.token_embd if out_on_gpu and p.tied else 0)
    kv_gpu = c.kv_top(k)
    if ngl == 0:
        gpu_compute, host_compute, overhead = 0, r.compute, 0
    else:
        gpu_compute = r.compute if out_on_gpu else r.partial_compute
        host_compute, overhead = r.host_min, c.overhead
    gpu_total = w_gpu + kv_gpu + gpu_compute + overhead if ngl else 0
    cpu_total = w_cpu + r.kv_all - kv_gpu + host_compute + r.output_buf
    budget = c.budget if margin_applies else c.budget + c.margin
    fits_memory = (cpu_total + (gpu_total if hw.unified_memory else 0) <= c.ram_usable
                   and not (ngl and gpu_total > budget))
    fits = _fit_class(fits_memory, ngl, out_on_gpu, ncmoe)
    kind = "cpu" if ngl == 0 else ("experts" if ncmoe else ("gpu" if out_on_gpu else "split"))
    return Placement(kind, ngl, ncmoe, w_gpu, w_cpu, kv_gpu, gpu_compute, host_compute, overhead, gpu_total,
                     cpu_total, fits, c.decode_time(ngl, ncmoe))


def _options(c: _Ctx, rt: Runtime) -> list[Placement]:
    """The real choices for one model and quant: all on the GPU when it fits; else the most layers that fit
    (n_gpu_layers) and, for MoE models, every layer on the GPU with the experts of the first layers in RAM
    (--n-cpu-moe); without a GPU, the CPU.  A runtime that fixes n_gpu_layers / n_cpu_moe gets that one."""
    p = c.p
    n = p.n
    if not c.gpu:
        return [_place(c, 0, 0)]
    if rt.n_gpu_layers is not None:
        ngl = n + 1 if rt.n_gpu_layers < 0 or rt.n_gpu_layers > n else rt.n_gpu_layers
        return [_place(c, ngl, min(rt.n_cpu_moe or 0, n), margin_applies=False)]
    ngl = c.best_layers()
    if ngl > n:
        return [_place(c, ngl, 0)]
    options = [_place(c, ngl, 0)]
    if p.expert_total and rt.expert_offload:
        if rt.n_cpu_moe is None:
            m = c.best_cpu_moe()
        else:
            m = rt.n_cpu_moe if rt.n_cpu_moe < n else n
            m = m if c.need(n + 1, m) <= c.avail else None
        if m is not None:
            options.append(_place(c, n + 1, m))
    return options


def _fastest(options: list[Placement]) -> Placement:
    return min(options, key=lambda o: (o.fits == "no", o.decode_time))


class Ranked(NamedTuple):
    """One row of rank(): enough to sort and filter; estimate() gives the full answer."""

    decode_tokens_per_s: float
    fits: str
    n_gpu_layers: int
    n_cpu_moe: int
    gpu_bytes: int
    architecture: Architecture
    quant: str | None
    cpu_bytes: int = 0
    kind: str = ""


def _ranked(o: Placement, arch: Architecture, quant_name: str | None) -> Ranked:
    t = o.decode_time
    return Ranked(1.0 / t if t > 0 else 0.0, o.fits, o.n_gpu_layers, o.n_cpu_moe, o.gpu_bytes, arch, quant_name,
                  o.cpu_bytes, o.kind)


_RUNTIMES: dict[Runtime, Runtime] = {}


def _interned(rt: Runtime) -> Runtime:
    """One object for equal runtimes: the per-model tables are then found by identity, not by comparing
    every field (the advisor builds a new but equal Runtime for every request)."""
    known = _RUNTIMES.get(rt)
    if known is None:
        if len(_RUNTIMES) > 10000:
            _RUNTIMES.clear()
        known = _RUNTIMES[rt] = rt
    return known


def rank(pairs, runtime: Runtime | None = None, hardware: Hardware | None = None,
         include_no: bool = False, every_placement: bool = False) -> list[Ranked]:
    """Place and time many (architecture, quant) pairs on one machine, fastest first.

    The advisor's ranking path: the same placements and decode speed as estimate(), without building
    the full Estimate (memory breakdown, prompt speed, explanation) for every pair.  every_placement: one row
    per real option (all on the GPU, layers split, experts in RAM) instead of the fastest only.
    """
    rt = _interned(runtime or _DEFAULT_RUNTIME)
    hw = hardware or _DEFAULT_HARDWARE
    rows = []
    for arch, quant_name in pairs:
        p = _profile(arch, quant_name)
        c = _ctx(arch, p, rt, hw)
        options = _options(c, rt)
        for o in (options if every_placement else [_fastest(options)]):
            if o.fits == "no" and not include_no:
                continue
            rows.append(_ranked(o, arch, quant_name))
    rows.sort(key=_speed_key, reverse=True)
    return rows


def weight_bytes(arch: Architecture, quant_name: str | None) -> tuple[int, float]:
    """(bytes of all the weights, bytes of them a token reads): what Limits needs of a model."""
    p = _profile(arch, quant_name)
    return p.total, p.dense_total + p.expert_total * p.expert_frac + p.output_gpu


class Limits:
    """Upper bounds for one machine, for skipping options before placing them.

    fits(total): False when no placement of that many bytes of weights fits, at any context: at most the
    GPU's budget of them on the GPU (a unified-memory GPU's share is RAM too), the rest in usable RAM.
    Runtimes keep a margin of 0 or more on the GPU, so the budget itself is an upper bound.
    speed(read): tokens/s that no placement that fits reaches, at any context: a token reads every active
    weight once, at most the GPU's budget of them at the GPU's rate and the rest at the RAM's; the KV cache,
    CPU compute and per-layer latencies only add time (_Ctx.decode_time).
    """

    def __init__(self, hardware: Hardware):
        self.room = hardware.ram_usable
        if hardware.has_gpu and not hardware.unified_memory:
            self.room += hardware.gpu_budget_total
        self.ram_rate = hardware.ram_bandwidth * EFF_RAM
        self.gpu_rate = hardware.gpu_bandwidth * EFF_GPU_DECODE if hardware.has_gpu else 0.0
        self.gpu_bytes = hardware.gpu_budget_total if self.gpu_rate > self.ram_rate else 0

    def fits(self, total: int) -> bool:
        return total <= self.room

    def speed(self, read: float) -> float:
        if self.ram_rate <= 0:
            return math.inf
        on_gpu = read if read < self.gpu_bytes else self.gpu_bytes
        t = (on_gpu / self.gpu_rate if on_gpu > 0 else 0.0) + (read - on_gpu) / self.ram_rate
        return 1.0 / t if t > 0 else math.inf


def _fit_class(fits_memory: bool, ngl: int, out_on_gpu: bool, ncmoe: int) -> str:
    """full: every layer on the GPU; partial: some; cpu: none; no: does not fit in memory at all."""
    if not fits_memory:
        return "no"
    if ngl == 0:
        return "cpu"
    return "full" if out_on_gpu and ncmoe == 0 else "partial"


def _speed_key(row: Ranked) -> float:
    return row.decode_tokens_per_s


_DEFAULT_RUNTIME = Runtime()
_DEFAULT_HARDWARE = Hardware()


def estimate(arch: Architecture, quant_name: str | None = None, runtime: Runtime | None = None,
             hardware: Hardware | None = None, placement: tuple[int, int] | None = None) -> Estimate:
    """Memory, offload and speed of `arch` in `quant_name` (None: the file's own tensor sizes).

    runtime.n_gpu_layers None picks the largest count that fits (and, for MoE models, the --n-cpu-moe
    plan when it decodes faster); an explicit count is evaluated as given.  placement (n_gpu_layers,
    n_cpu_moe) evaluates one option that rank(every_placement=True) listed.
    """
    rt = _interned(runtime or _DEFAULT_RUNTIME)
    hw = hardware or _DEFAULT_HARDWARE
    p = _profile(arch, quant_name)
    c = _ctx(arch, p, rt, hw)
    n = p.n
    options = _options(c, rt)
    if placement is not None:
        o = _place(c, *placement)
    else:
        o = _fastest(options)
    moe_considered = any(opt.kind == "experts" for opt in options) and rt.n_cpu_moe is None
    r = c.r
    # CPU-resident block weights of repackable types get a second, interleaved copy (CPU_REPACK).  The
    # memory-mapped originals are then never touched again and the kernel may drop them, so with mmap
    # (llama-cpp-python's default) the copy replaces rather than adds RSS: reported, not added to cpu_bytes.
    k = o.n_gpu_layers if o.n_gpu_layers < n else n
    t = o.decode_time
    if o.n_gpu_layers:
        cpu_key = (hw.ram_bandwidth, hw.cpu_flops_per_thread, c.threads)
        t_cpu = r.cpu_times.get(cpu_key)
        if t_cpu is None:
            t_cpu = r.cpu_times[cpu_key] = c.decode_time(0, 0)
    else:
        t_cpu = t
    offloadable = p.offloadable
    return Estimate(
        weights_bytes=p.total, weights_gpu_bytes=o.weights_gpu, weights_cpu_bytes=o.weights_cpu,
        repack_bytes=p.repack_total - p.repack_top[k], kv_cache_bytes=r.kv_all, kv_gpu_bytes=o.kv_gpu,
        compute_buffer_bytes=o.gpu_compute if o.n_gpu_layers else o.host_compute,
        host_compute_bytes=o.host_compute + r.output_buf, overhead_bytes=o.overhead, gpu_bytes=o.gpu_bytes,
        cpu_bytes=o.cpu_bytes, gpu_budget_bytes=c.budget if c.budget > 0 else 0, n_layers=n + 1,
        n_gpu_layers=o.n_gpu_layers,
        offload_ratio=(o.weights_gpu / offloadable if o.weights_gpu < offloadable else 1.0) if offloadable else 0.0,
        n_cpu_moe=o.n_cpu_moe, fits=o.fits, decode_tokens_per_s=1.0 / t if t > 0 else 0.0,
        prompt_tokens_per_s=c.prompt_rate(o.n_gpu_layers, o.weights_cpu),
        speedup_vs_cpu=t_cpu / t if t > 0 else 1.0, n_ctx=r.n_ctx, kv_cells=c.cells, kv_cells_swa=c.cells_swa,
        architecture=arch, runtime=rt, hardware=hw, quant=quant_name or arch.quant,
        cpu_moe_considered=moe_considered, cpu_decode_tokens_per_s=1.0 / t_cpu if t_cpu else 0.0,
        placement=o.kind, ram_reserve_bytes=hw.ram_reserve)


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 4 else f"{n / MIB:.0f} MiB"


def _explain(e: Estimate) -> list[str]:
    arch, rt, hw = e.architecture, e.runtime, e.hardware
    q = e.quant or "as stored in the file"
    lines = [f"Weights ({q}): {_gib(e.weights_bytes)} in {arch.n_layer} block layers plus token "
             f"embeddings and output layer."]
    kv = (f"KV cache: {_gib(e.kv_cache_bytes)} for {e.n_ctx} tokens ({rt.kv_type}, "
          f"{arch.n_head_kv} KV heads of {arch.head_k} dims per layer")
    if arch.sliding_window:
        n_swa = sum(1 for il in range(arch.n_layer) if arch.is_swa(il))
        if e.kv_cells_swa < e.kv_cells:
            kv += (f"; {n_swa} sliding-window layers keep only {e.kv_cells_swa} cells "
                   f"(window {arch.sliding_window} + batch)")
        else:
            kv += f"; its {n_swa} sliding-window layers keep a full-size cache (swa_full)"
    lines.append(kv + ").")
    scores = "" if rt.flash_attn else ", and attention scores without flash attention"
    lines.append(f"Compute buffer: {_gib(e.compute_buffer_bytes)} (logits for {rt.n_ubatch} tokens over "
                 f"{arch.n_vocab} vocabulary entries{scores}).")
    if not hw.has_gpu:
        lines.append(f"No GPU: everything runs on the CPU, {_gib(e.cpu_bytes)} of RAM.")
    else:
        runtime_note = (f"; {_gib(e.overhead_bytes)} of it goes to the {hw.backend.upper()} runtime itself"
                        if e.overhead_bytes else "")
        margin = rt.vram_margin if rt.vram_margin is not None else hw.safety_margin
        lines.append(f"GPU memory usable: {_gib(e.gpu_budget_bytes)} after keeping "
                     f"{_gib(margin)} free{runtime_note}.")
        if e.fits == "full":
            lines.append(f"Fits entirely on the GPU: all {e.n_layers} layers ({arch.n_layer} blocks + output), "
                         f"{_gib(e.gpu_bytes)} of GPU memory.")
        elif e.n_cpu_moe:
            lines.append(f"All layers on the GPU but the expert weights of the first {e.n_cpu_moe} layers "
                         f"stay in RAM (--n-cpu-moe {e.n_cpu_moe}): faster than leaving whole layers behind.")
        elif e.fits == "partial":
            lines.append(f"Partial offload: {e.n_gpu_layers} of {e.n_layers} layers on the GPU "
                         f"({e.offload_ratio:.0%} of the weights), the rest from RAM; "
                         f"GPU {_gib(e.gpu_bytes)}, RAM {_gib(e.cpu_bytes)}.")
        elif e.fits == "cpu":
            lines.append("Not even one layer fits beside the compute buffer: the model runs on the CPU.")
    lines.append(f"System RAM: {_gib(e.cpu_bytes)} for the model, {_gib(e.ram_reserve_bytes)} of "
                 f"{_gib(hw.ram_total)} left to the operating system and other programs.")
    if e.fits == "no":
        lines.append(f"Does not fit: needs {_gib(e.cpu_bytes)} of RAM and {_gib(e.gpu_bytes)} of GPU memory.")
    lines.append(f"Speed: about {e.decode_tokens_per_s:.1f} tokens/s generating (reading every active "
                 f"weight once per token), {e.prompt_tokens_per_s:.0f} tokens/s reading the prompt"
                 + (f"; {e.speedup_vs_cpu:.1f}x the CPU alone." if hw.has_gpu else "."))
    if arch.is_moe:
        lines.append(f"Mixture of experts: {arch.n_expert_used} of {arch.n_expert} experts per token count "
                     f"for speed, all {arch.n_expert} for memory.")
    return lines
