"""GGUF quantization types: block sizes, llama.cpp's per-tensor quantization mixes, quality loss.

Pure Python, no Django and no numpy, so the estimator can size a quantized file from an architecture
alone (the catalog case, where no file is at hand).

Sources:
- Block sizes: the `gguf` package, ``gguf.constants.GGML_QUANT_SIZES`` (elements per block, bytes per
  block); ``tests/test_estimate.py`` checks this copy against the installed package.
- File types (``general.file_type``): ``enum llama_ftype`` in llama.cpp's ``include/llama.h``.
- Mixes: llama.cpp ``src/llama-quant.cpp``, ``llama_ftype_get_default_type``, ``tensor_allows_quantization``,
  ``llama_tensor_get_type_impl`` and ``tensor_type_fallback`` (as vendored by llama-cpp-python 0.3.36).
  The rules below restate what those functions decide, tensor class by tensor class.
- Quality loss: llama.cpp ``tools/perplexity/README.md`` ("LLaMA 3 8b Scoreboard", no imatrix unless
  marked) and ``tools/quantize/README.md``; copied into ``/work/shared/reference/quantizations.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# ggml type -> (elements per block, bytes per block).  Source: gguf.constants.GGML_QUANT_SIZES.
GGML_BLOCK: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "F64": (1, 8),
    "I8": (1, 1),
    "I16": (1, 2),
    "I32": (1, 4),
    "I64": (1, 8),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q8_1": (32, 40),
    "Q2_K": (256, 84),
    "Q3_K": (256, 110),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "Q8_K": (256, 292),
    "IQ2_XXS": (256, 66),
    "IQ2_XS": (256, 74),
    "IQ2_S": (256, 82),
    "IQ3_XXS": (256, 98),
    "IQ3_S": (256, 110),
    "IQ1_S": (256, 50),
    "IQ1_M": (256, 56),
    "IQ4_NL": (32, 18),
    "IQ4_XS": (256, 136),
    "TQ1_0": (256, 54),
    "TQ2_0": (256, 66),
    "MXFP4": (32, 17),
    "NVFP4": (64, 36),
    "Q1_0": (128, 18),
}

# llama_ftype values as stored in general.file_type (llama.h).
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}

# A file type's default tensor type (llama_ftype_get_default_type).
DEFAULT_TYPE: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16",
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q8_0": "Q8_0",
    "Q2_K": "Q2_K", "Q2_K_S": "Q2_K",
    "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S",
    "IQ3_XXS": "IQ3_XXS", "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S",
    "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M", "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS",
    "TQ1_0": "TQ1_0", "TQ2_0": "TQ2_0", "MXFP4_MOE": "MXFP4", "NVFP4": "NVFP4", "Q1_0": "Q1_0",
}

_UNQUANTIZED = {"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"}
_IQ_LOW = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}
# File types whose low-bit tensors llama-quantize refuses to write without an importance matrix.
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS", "Q2_K_S"}


# Block-layer weights of these types get a second, interleaved copy in llama.cpp's CPU_REPACK buffer when
# they stay on an x86 AVX2 CPU (ggml-cpu repack.cpp; seen here: Gemma 3 Q4_K_M repacks its Q4_K tensors,
# SmolLM2 Q4_1 repacks nothing).
REPACK_TYPES = {"Q4_0", "Q4_K", "IQ4_NL"}


# Names people and repositories use for a file type llama.h spells otherwise ("gpt-oss-20b-mxfp4.gguf").
ALIASES = {"MXFP4": "MXFP4_MOE"}


def normalize_name(name: str) -> str:
    """'q4_k_m', 'Q4_K_M', 'MOSTLY_Q4_K_M' -> 'Q4_K_M'; 'MXFP4' -> 'MXFP4_MOE'."""
    key = name.strip().upper().replace("-", "_")
    if key.startswith("MOSTLY_"):
        key = key[len("MOSTLY_"):]
    key = ALIASES.get(key, key)
    if key not in DEFAULT_TYPE:
        raise ValueError(f"unknown quantization type {name!r}")
    return key


def tensor_bytes(ggml_type: str, n_elements: int) -> int:
    """Bytes a tensor of n_elements takes in ggml_type (rows are whole blocks)."""
    per_block, block_bytes = GGML_BLOCK[ggml_type]
    return n_elements // per_block * block_bytes


def bits_per_weight(ggml_type: str) -> float:
    per_block, block_bytes = GGML_BLOCK[ggml_type]
    return block_bytes * 8 / per_block


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    # The layers llama.cpp's *_M mixes give more bits: first and last eighth, and every third between.
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _fallback(ggml_type: str, ncols: int) -> str:
    """tensor_type_fallback: a row length the block size does not divide gets a compatible type."""
    if ncols % GGML_BLOCK[ggml_type][0] == 0:
        return ggml_type
    if ggml_type in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_XS"):
        new = "IQ4_NL"
    elif ggml_type in ("Q2_K", "Q3_K", "TQ1_0", "TQ2_0"):
        new = "Q4_0"
    elif ggml_type == "Q4_K":
        new = "Q5_0"
    elif ggml_type == "Q5_K":
        new = "Q5_1"
    elif ggml_type == "Q6_K":
        new = "Q8_0"
    else:
        return "F16"
    return new if ncols % GGML_BLOCK[new][0] == 0 else "F16"


@dataclass(frozen=True)
class MixContext:
    """What llama-quantize knows about the model when it picks a tensor's type."""

    ftype: str
    n_layer: int
    n_gqa: int = 1            # n_head / n_head_kv
    n_expert: int = 0
    tied_embeddings: bool = False
    arch: str = "llama"
    imatrix: bool = False


def tensor_type(ctx: MixContext, category: str, i_layer: int, ncols: int) -> str:
    """The ggml type llama-quantize writes for a quantizable weight of a tensor class.

    category: token_embd, output, attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_up, ffn_gate,
    ffn_down (expert and shared-expert variants share their class), or other.
    i_layer: the block index (for attn_v this is also llama.cpp's running attn_v counter, since every
    block has one attn_v). ncols: the tensor's row length (ne[0]).
    """
    ftype = ctx.ftype
    default = DEFAULT_TYPE[ftype]
    if default in _UNQUANTIZED:
        return default
    new = default
    falcon = ctx.arch == "falcon"
    if category == "output" or (ctx.tied_embeddings and category == "token_embd"):
        if ftype == "MXFP4_MOE" or falcon or ncols % GGML_BLOCK[default][0] != 0:
            new = "Q8_0"
        elif ftype in _IQ_LOW or ftype == "IQ3_XXS":
            new = "Q5_K"
        elif new != "Q8_0":
            new = "Q6_K"
    elif ftype == "MXFP4_MOE":
        new = "MXFP4" if category.endswith("_exps") else "Q8_0"
    elif category == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            new = "Q2_K"
        elif ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            new = "IQ3_S"
        elif ftype in ("TQ1_0", "TQ2_0"):
            new = "Q4_K"
    else:
        new = _block_tensor_type(ctx, category.removesuffix("_exps").removesuffix("_shexp"), i_layer, new)
    return _fallback(new, ncols)


def _block_tensor_type(ctx: MixContext, cat: str, i: int, new: str) -> str:
    ftype, n, gqa, n_expert = ctx.ftype, ctx.n_layer, ctx.n_gqa, ctx.n_expert
    falcon = ctx.arch == "falcon"
    attn_v_like = cat in ("attn_v", "attn_qkv", "attn_kv_b")
    if ftype in _IQ_LOW:
        if attn_v_like:
            if gqa >= 4 or n_expert >= 4:
                return "Q4_K"
            return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
        if n_expert == 8 and cat == "attn_k":
            return "Q4_K"
        if cat == "ffn_down":
            if i < n // 8:
                return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            return new
        if cat == "attn_output":
            if n_expert == 8:
                return "Q5_K"
            if ftype in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            if ftype in ("IQ2_S", "IQ2_M"):
                return "IQ3_S"
        return new
    if attn_v_like:
        if ftype == "Q2_K":
            new = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_XXS":
            new = "Q4_K" if gqa >= 4 else ("IQ3_S" if not ctx.imatrix else "IQ3_XXS")
        elif ftype in ("IQ3_XS", "IQ3_S") and gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_M":
            new = "Q4_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if ctx.arch == "llama" and n == 80 and gqa > 1 and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"  # llama.cpp's LLM_TYPE_70B special case
        if n_expert == 8:
            new = "Q8_0"
        return new
    if cat == "attn_k":
        if n_expert == 8:
            return "Q8_0"
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "attn_q":
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "ffn_down":
        more = _use_more_bits(i, n)
        if ftype == "Q2_K":
            return "Q3_K"
        if ftype == "Q2_K_S":
            return "Q4_K" if i < n // 8 else new
        if ftype == "IQ3_XXS" and not ctx.imatrix:
            return "Q4_K" if i < n // 8 else "Q3_K"
        if ftype == "Q3_K_M":
            if i < n // 16:
                return "Q5_K"
            return "Q4_K" if (not falcon or more) else "Q3_K"
        if ftype == "IQ3_M" and (i < n // 8 or (n_expert == 8 and more)):
            return "Q4_K"
        if ftype == "Q3_K_L":
            return "Q4_K" if falcon else "Q5_K"
        if ftype == "Q4_K_M":
            if falcon:
                return "Q6_K" if i < n // 16 else ("Q5_K" if more else "Q4_K")
            return "Q6_K" if more else new
        if i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not ctx.imatrix:
            return "Q5_K"
        if ftype == "Q5_K_M" and more:
            return "Q6_K"
        if ftype == "Q4_K_S" and not falcon and i < n // 8:
            return "Q5_K"
        if ftype in ("Q4_0", "Q5_0") and ctx.imatrix and i < n // 8:
            return "Q4_1" if ftype == "Q4_0" else "Q5_1"
        return new
    if cat == "attn_output":
        if falcon:
            return "Q4_K" if ftype == "Q3_K_L" else new
        if n_expert == 8:
            if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S",
                         "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS"):
                return "Q5_K"
            return new
        return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K",
                "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(ftype, new)
    if cat == "attn_qkv":
        if ftype in ("Q3_K_M", "Q3_K_L", "IQ3_M"):
            return "Q4_K"
        return {"Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, new)
    if cat in ("ffn_gate", "ffn_up"):
        if ftype == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
            return "IQ3_XXS"
        return new
    return new


# ---------------------------------------------------------------------------------------------
# Sizing a whole model from its architecture


@dataclass(frozen=True)
class ShapeSpec:
    """The architecture numbers that fix every tensor's shape (a subset of estimate.Architecture)."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_expert: int = 0
    n_expert_shared: int = 0
    n_ff_shared: int = 0
    n_layer_dense_lead: int = 0
    tied_embeddings: bool = False
    attn_bias: bool = False
    qk_norm: bool = False
    arch: str = "llama"
    kv_lora_rank: int = 0       # multi-head latent attention (DeepSeek V2/V3): compressed KV width
    q_lora_rank: int = 0
    rope_dim: int = 0
    # The type the model's expert tensors keep whatever the file type (gpt-oss: MXFP4, the format it was
    # post-trained in; its GGUF files from Q2_K to F16 all keep the experts so). "": the file type's mix.
    expert_type: str = ""


@dataclass(frozen=True)
class ModelSizes:
    """Bytes of a quantized model: per block layer (dense part, expert part), token_embd, output."""

    layer_bytes: tuple[int, ...]
    layer_expert_bytes: tuple[int, ...]
    token_embd_bytes: int
    output_bytes: int           # 0 when the output shares token_embd (tied embeddings)
    other_bytes: int            # output_norm and similar global tensors
    layer_repack_bytes: tuple[int, ...] = ()  # of layer_bytes + layer_expert_bytes: types in REPACK_TYPES

    @property
    def total(self) -> int:
        return (sum(self.layer_bytes) + sum(self.layer_expert_bytes) + self.token_embd_bytes
                + self.output_bytes + self.other_bytes)


def _block_tensors(s: ShapeSpec, il: int):
    """(category, ncols, n_elements, quantizable) for every tensor of block il (llama.cpp layout)."""
    q_dim, k_dim, v_dim = s.n_head * s.head_dim_k, s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v
    e = s.n_embd
    yield "norm", e, e, False                      # attn_norm
    yield "norm", e, e, False                      # ffn_norm
    if s.kv_lora_rank:
        # DeepSeek's latent attention: attn_q_a/attn_q_b (or attn_q), attn_kv_a_mqa, attn_kv_b
        r, rope = s.kv_lora_rank, s.rope_dim
        if s.q_lora_rank:
            yield "attn_q_a", e, e * s.q_lora_rank, True
            yield "attn_q_b", s.q_lora_rank, s.q_lora_rank * q_dim, True
        else:
            yield "attn_q", e, e * q_dim, True
        yield "attn_kv_a_mqa", e, e * (r + rope), True
        yield "attn_kv_b", r, r * s.n_head * (s.head_dim_k - rope + s.head_dim_v), True
    else:
        yield "attn_q", e, e * q_dim, True
        yield "attn_k", e, e * k_dim, True
        yield "attn_v", e, e * v_dim, True
    yield "attn_output", s.n_head * s.head_dim_v, s.n_head * s.head_dim_v * e, True
    if s.attn_bias:
        for n in (q_dim, k_dim, v_dim):
            yield "bias", n, n, False
    if s.qk_norm:
        yield "norm", s.head_dim_k, s.head_dim_k, False
        yield "norm", s.head_dim_k, s.head_dim_k, False
    moe = s.n_expert > 0 and il >= s.n_layer_dense_lead
    if not moe:
        yield "ffn_gate", e, e * s.n_ff, True
        yield "ffn_up", e, e * s.n_ff, True
        yield "ffn_down", s.n_ff, s.n_ff * e, True
        return
    f = s.n_ff_expert or s.n_ff
    yield "gate_inp", e, e * s.n_expert, False
    yield "ffn_gate_exps", e, e * f * s.n_expert, True
    yield "ffn_up_exps", e, e * f * s.n_expert, True
    yield "ffn_down_exps", f, f * e * s.n_expert, True
    if s.n_expert_shared:
        fs = s.n_ff_shared or f * s.n_expert_shared
        yield "ffn_gate_shexp", e, e * fs, True
        yield "ffn_up_shexp", e, e * fs, True
        yield "ffn_down_shexp", fs, fs * e, True


@lru_cache(maxsize=4096)
def model_sizes(spec: ShapeSpec, ftype: str, imatrix: bool | None = None) -> ModelSizes:
    """Size a model quantized to ftype the way llama-quantize would write it (from F16/BF16 sources).

    1-D tensors (norms, biases) and the expert router stay F32, as converters write them.
    """
    ftype = normalize_name(ftype)
    if imatrix is None:
        imatrix = ftype in NEEDS_IMATRIX
    ctx = MixContext(ftype=ftype, n_layer=spec.n_layer, n_gqa=max(1, spec.n_head // max(1, spec.n_head_kv)),
                     n_expert=spec.n_expert, tied_embeddings=spec.tied_embeddings, arch=spec.arch,
                     imatrix=imatrix)
    dense, experts, repack = [], [], []
    for il in range(spec.n_layer):
        d = x = r = 0
        for cat, ncols, n, quantizable in _block_tensors(spec, il):
            if not quantizable:
                ggml_type = "F32"
            elif spec.expert_type and cat.endswith("_exps"):
                ggml_type = spec.expert_type
            else:
                ggml_type = tensor_type(ctx, cat, il, ncols)
            size = tensor_bytes(ggml_type, n)
            if ggml_type in REPACK_TYPES:
                r += size
            if cat.endswith("_exps"):
                x += size
            else:
                d += size
        dense.append(d)
        experts.append(x)
        repack.append(r)
    embd_n = spec.n_vocab * spec.n_embd
    token_embd = tensor_bytes(tensor_type(ctx, "token_embd", 0, spec.n_embd), embd_n)
    output = 0 if spec.tied_embeddings else tensor_bytes(tensor_type(ctx, "output", 0, spec.n_embd), embd_n)
    return ModelSizes(tuple(dense), tuple(experts), token_embd, output, 4 * spec.n_embd, tuple(repack))


# ---------------------------------------------------------------------------------------------
# Quality against F16 on Llama-3.1-8B (llama.cpp tools/perplexity/README.md, tools/quantize/README.md)


@dataclass(frozen=True)
class QuantQuality:
    name: str
    file_bpw: float | None        # whole-file bits per weight on Llama-3.1-8B
    llama31_8b_gib: float         # file size of Llama-3.1-8B in this type
    delta_ppl: float              # perplexity increase over F16 (no imatrix unless `imatrix`)
    kld: float                    # mean KL divergence against F16
    same_top_token: float | None  # share of tokens whose top choice matches F16
    imatrix: bool = False         # measured with an importance matrix


QUALITY: dict[str, QuantQuality] = {q.name: q for q in (
    QuantQuality("F16", 16.00, 14.97, 0.0015, 0.00055, None),
    QuantQuality("Q8_0", 8.50, 7.96, 0.0027, 0.00136, 0.977),
    QuantQuality("Q6_K", 6.56, 6.14, 0.022, 0.00545, 0.960),
    QuantQuality("Q5_K_M", 5.70, 5.33, 0.057, 0.0108, None),
    QuantQuality("Q5_K_S", 5.57, 5.21, 0.105, 0.0166, None),
    QuantQuality("Q4_K_M", 4.89, 4.58, 0.175, 0.0313, 0.919),
    QuantQuality("Q4_K_S", 4.67, 4.37, 0.269, 0.0431, None),
    QuantQuality("IQ4_XS", 4.46, 4.14, 0.228, 0.0363, None, imatrix=True),
    QuantQuality("Q4_0", None, 4.34, 0.469, 0.0719, None),
    QuantQuality("Q3_K_L", 4.30, 4.03, 0.556, 0.0872, None),
    QuantQuality("Q3_K_M", None, 3.74, 0.657, 0.1019, None),
    QuantQuality("Q3_K_S", 3.64, 3.41, 1.632, 0.228, None),
    QuantQuality("IQ3_XXS", 3.25, 3.05, 1.227, 0.184, None, imatrix=True),
    QuantQuality("Q2_K", 3.16, 2.96, 3.520, 0.445, 0.711),
    QuantQuality("IQ2_XXS", 2.38, 2.24, 7.86, 0.812, None, imatrix=True),
)}
# With an importance matrix (same scoreboard): Q4_K_M +0.151 / 0.0282, Q4_K_S +0.178 / 0.0320,
# Q2_K +2.42 / 0.332.
QUALITY_IMATRIX: dict[str, tuple[float, float]] = {
    "Q4_K_M": (0.151, 0.0282), "Q4_K_S": (0.178, 0.0320), "Q2_K": (2.42, 0.332),
}
