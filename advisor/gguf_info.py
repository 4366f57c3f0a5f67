"""Read a local GGUF file's header into the estimator's Architecture, with exact per-tensor sizes.

The header is scanned through a memory map with the `gguf` package's own definitions (value types,
ggml types, block sizes); tensor data is never touched.  We do not call gguf.GGUFReader here because it
builds a numpy view per vocabulary entry: 19 s for Gemma 3's 262,144 tokens on the 2-core test machine,
against well under a second for this scan.  ``tests/test_gguf_info.py`` checks that both agree.

Anything wrong with the file (missing, empty, not GGUF, truncated, malformed, missing keys) raises
GGUFError with a message a person can act on, never a traceback from inside the parser: read_gguf turns
every other exception into a GGUFError too, so a hostile file in the models folder is that file's error
state on every page that reads headers, never a 500.
"""
from __future__ import annotations

import mmap
import os
import re
import stat
import struct
from dataclasses import dataclass

from advisor import quant
from advisor.estimate import Architecture

# Architectures whose sliding-window layout llama.cpp hard-codes (llama-model.cpp load_hparams,
# hparams.set_swa_pattern(N): every N-th layer global, the others use the window).
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "openai-moe": 2,
                "exaone4": 4, "smallthinker": 4, "gemma-embedding": 6}

MAX_LAYERS = 4096
# ASCII digits only (\d also matches other scripts' digits, which int() accepts), and no more than a layer
# number can have: int() of a 5000-digit name raises ValueError past Python's integer-string limit.
_BLOCK = re.compile(r"^blk\.([0-9]+)\.", re.ASCII)
_MAX_LAYER_DIGITS = len(str(MAX_LAYERS))


class GGUFError(Exception):
    """The file cannot be used as a GGUF model; str(error) says why."""


@dataclass(frozen=True)
class GGUFInfo:
    path: str
    architecture: Architecture
    quant: str                      # general.file_type as a name, e.g. "Q4_K_M"
    chat_template: str | None
    context_length: int
    name: str
    file_size: int
    tensor_bytes: int               # sum of every tensor's bytes: llama.cpp's model buffer on one device
    n_params: int


def _short_name(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[:limit] + "…"


def _scalar(value):
    if isinstance(value, list | tuple):
        return max(value) if value else 0
    return value


def read_gguf(path: str | os.PathLike) -> GGUFInfo:
    """The header of the GGUF file at `path`; GGUFError, and only GGUFError, for anything wrong with it."""
    path = os.fspath(path)
    try:
        return _read(path)
    except GGUFError:
        raise
    except Exception as exc:  # a parser bug on a hostile file is that file's error, not the page's
        raise GGUFError(f"{path} is malformed ({type(exc).__name__}: {_short(exc)})") from None


def _short(exc: Exception, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"


def _read(path: str) -> GGUFInfo:
    try:
        # O_NONBLOCK: a FIFO named *.gguf must not hang the page that reads it (it is refused just below).
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            file_stat = os.fstat(f.fileno())
            if not stat.S_ISREG(file_stat.st_mode):
                raise GGUFError(f"{path} is not a regular file")
            size = file_stat.st_size
            magic = f.read(4)
            if size == 0:
                raise GGUFError(f"{path} is empty, not a GGUF model")
            if magic != b"GGUF":
                raise GGUFError(f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                fields, tensors = _scan(data, size)
    except GGUFError:
        raise
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (struct.error, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError, OverflowError) as exc:
        raise GGUFError(f"{path} is truncated or malformed ({type(exc).__name__}: {_short(exc)})") from None
    end = max((off + nb for _, _, nb, off, _, _ in tensors), default=0)
    if end > size:
        raise GGUFError(f"{path} is truncated: its tensor data needs {end} bytes, the file has {size}")
    return _build(path, size, fields, tensors)


class _Cursor:
    __slots__ = ("buf", "pos", "end", "e")

    def __init__(self, buf, end: int, endian: str):
        self.buf, self.pos, self.end, self.e = buf, 0, end, endian

    def take(self, fmt: str):
        st = struct.calcsize(fmt)
        if self.pos + st > self.end:
            raise ValueError(f"header ends early at byte {self.pos}")
        (value,) = struct.unpack_from(self.e + fmt, self.buf, self.pos)
        self.pos += st
        return value

    def string(self) -> str:
        n = self.take("Q")
        if self.pos + n > self.end:
            raise ValueError(f"a string runs past the end of the file at byte {self.pos}")
        value = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return value

    def skip_strings(self, count: int) -> None:
        unpack, buf, e = struct.unpack_from, self.buf, self.e + "Q"
        pos = self.pos
        for _ in range(count):
            (n,) = unpack(e, buf, pos)
            pos += 8 + n
        if pos > self.end:
            raise ValueError("a string array runs past the end of the file")
        self.pos = pos


def _scan(data, size: int) -> tuple[dict, list]:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

    scalar = {GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H",
              GGUFValueType.INT16: "h", GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
              GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "Q",
              GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d"}
    (version,) = struct.unpack_from("<I", data, 4)
    endian = "<"
    if version & 0xFFFF == 0:        # a big-endian file reads as a huge little-endian version
        endian = ">"
        (version,) = struct.unpack_from(">I", data, 4)
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version} (llama.cpp reads versions 2 and 3)")
    cur = _Cursor(data, size, endian)
    cur.pos = 8
    n_tensors, n_kv = cur.take("Q"), cur.take("Q")
    if n_tensors > size or n_kv > size:
        raise ValueError(f"impossible counts: {n_tensors} tensors, {n_kv} keys")
    fields: dict = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = GGUFValueType(cur.take("I"))
        if vtype == GGUFValueType.STRING:
            fields[key] = cur.string()
        elif vtype == GGUFValueType.ARRAY:
            etype = GGUFValueType(cur.take("I"))
            count = cur.take("Q")
            if count > size:
                raise ValueError(f"impossible array length {count} for {key}")
            if etype == GGUFValueType.STRING:
                if count > 64:
                    cur.skip_strings(count)      # vocabularies: only their length is needed
                    fields[key] = count
                else:
                    fields[key] = [cur.string() for _ in range(count)]
            elif etype in scalar:
                fmt = scalar[etype]
                width = struct.calcsize(fmt)
                if count > 4096:
                    cur.pos += width * count      # token scores / types: skipped
                    if cur.pos > size:
                        raise ValueError(f"array {key} runs past the end of the file")
                    fields[key] = count
                else:
                    fields[key] = list(struct.unpack_from(f"{endian}{count}{fmt}", data, cur.pos))
                    cur.pos += width * count
            else:
                raise ValueError(f"nested arrays are not supported ({key})")
        else:
            fields[key] = cur.take(scalar[vtype])
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.take("I")
        if n_dims > 8:
            raise ValueError(f"tensor {name} has {n_dims} dimensions")
        dims = [cur.take("Q") for _ in range(n_dims)]
        ttype = GGMLQuantizationType(cur.take("I"))
        offset = cur.take("Q")
        infos.append((name, dims, ttype, offset))
    alignment = fields.get("general.alignment", 32)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):  # as llama.cpp checks it
        raise ValueError(f"general.alignment must be a power of two, not {alignment!r}")
    data_start = (cur.pos + alignment - 1) // alignment * alignment
    tensors = []
    for name, dims, ttype, offset in infos:
        n_el = 1
        for d in dims:
            n_el *= d
        per_block, block_bytes = GGML_QUANT_SIZES[ttype]
        if n_el % per_block:
            raise ValueError(f"tensor {name} has {n_el} elements, not whole {ttype.name} blocks")
        tensors.append((name, ttype.name, n_el // per_block * block_bytes, data_start + offset, len(dims), n_el))
    return fields, tensors


def _build(path: str, size: int, fields: dict, tensors: list) -> GGUFInfo:
    arch_name = fields.get("general.architecture")
    if not isinstance(arch_name, str):
        raise GGUFError(f"{path} has no general.architecture: not a model file")

    def key(name, default=None, required=False):
        value = fields.get(f"{arch_name}.{name}", default)
        if value is None and required:
            raise GGUFError(f"{path} lacks {arch_name}.{name}")
        return value

    try:
        n_layer = int(key("block_count", required=True))
        n_embd = int(key("embedding_length", required=True))
        n_head = int(_scalar(key("attention.head_count", required=True)))
        n_head_kv = int(_scalar(key("attention.head_count_kv", n_head)))
        n_ff = int(_scalar(key("feed_forward_length", 0)))
        head_k = int(key("attention.key_length", 0) or 0) or (n_embd // max(1, n_head))
        head_v = int(key("attention.value_length", 0) or 0) or head_k
        n_vocab = int(key("vocab_size", 0) or fields.get("tokenizer.ggml.tokens", 0) or 0)
        ctx_len = int(key("context_length", 0) or 0)
        window = int(key("attention.sliding_window", 0) or 0)
        pattern_value = key("attention.sliding_window_pattern")
        n_expert = int(key("expert_count", 0) or 0)
        n_expert_used = int(key("expert_used_count", 0) or 0)
        n_ff_exp = int(key("expert_feed_forward_length", 0) or 0)
        n_shared = int(key("expert_shared_count", 0) or 0)
        n_ff_shared = int(key("expert_shared_feed_forward_length", 0) or 0)
        dense_lead = int(key("leading_dense_block_count", 0) or 0)
        kv_lora = int(key("attention.kv_lora_rank", 0) or 0)
        q_lora = int(key("attention.q_lora_rank", 0) or 0)
        rope_dim = int(key("rope.dimension_count", 0) or 0) if kv_lora else 0
        file_type = fields.get("general.file_type")
        file_type = int(file_type) if file_type is not None else None
    except (TypeError, ValueError, OverflowError) as exc:
        raise GGUFError(f"{path} has a malformed architecture key: {exc}") from None
    # Real models have tens to a few hundred layers; a corrupt count must not allocate per-layer lists.
    if not 0 < n_layer <= MAX_LAYERS:
        raise GGUFError(f"{path} has an impossible {arch_name}.block_count of {n_layer}")
    # The estimator divides by these: a head's size is embedding_length / head_count, and a token's work
    # grows with the embedding, the head size and the experts it uses. The embedding and the head count
    # first: the key length is derived from them when the file does not give it.
    if n_embd < 1:
        raise GGUFError(f"{path} has an impossible {arch_name}.embedding_length of {n_embd}")
    if n_head < 1:
        raise GGUFError(f"{path} has an impossible {arch_name}.attention.head_count of {n_head}")
    counts = {"attention.head_count_kv": n_head_kv, "feed_forward_length": n_ff, "attention.key_length": head_k,
              "attention.value_length": head_v, "vocab_size": n_vocab, "context_length": ctx_len,
              "attention.sliding_window": window, "expert_count": n_expert, "expert_used_count": n_expert_used,
              "expert_feed_forward_length": n_ff_exp, "expert_shared_count": n_shared,
              "expert_shared_feed_forward_length": n_ff_shared, "leading_dense_block_count": dense_lead,
              "attention.kv_lora_rank": kv_lora, "attention.q_lora_rank": q_lora, "rope.dimension_count": rope_dim}
    for name, value in counts.items():
        if value < 0:
            raise GGUFError(f"{path} has a negative {arch_name}.{name} ({value})")
    if head_k < 1:
        raise GGUFError(f"{path} has {n_head} attention heads for an embedding of {n_embd}: a head of size 0")
    # llama.cpp asserts the same when it loads the file (llama-model.cpp, load_hparams).
    if n_expert_used > n_expert or (n_expert > 0) != (n_expert_used > 0):
        raise GGUFError(f"{path} uses {n_expert_used} of {n_expert} experts per token: impossible")

    dense = [0] * n_layer
    experts = [0] * n_layer
    repack = [0] * n_layer
    token_embd = output = other = 0
    names = set()
    for name, ttype, nbytes, _off, ndim, _n in tensors:
        names.add(name)
        m = _BLOCK.match(name)
        if m:
            digits = m.group(1)
            il = int(digits) if len(digits) <= _MAX_LAYER_DIGITS else MAX_LAYERS
            if il >= n_layer:
                raise GGUFError(f"{path}: tensor {_short_name(name)} is beyond block_count {n_layer}")
            if "_exps" in name:
                experts[il] += nbytes
            else:
                dense[il] += nbytes
            if ndim >= 2 and ttype in quant.REPACK_TYPES:
                repack[il] += nbytes
        elif name == "token_embd.weight":
            token_embd = nbytes
        elif name == "output.weight":
            output = nbytes
        else:
            other += nbytes

    swa_layers = None
    pattern = 0
    if isinstance(pattern_value, list | tuple) and len(pattern_value) == n_layer:
        swa_layers = tuple(bool(v) for v in pattern_value)
    elif isinstance(pattern_value, int) and pattern_value > 0:
        pattern = pattern_value
    elif window:
        pattern = SWA_PATTERNS.get(arch_name, 0)

    quant_name = quant.FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else ""
    arch = Architecture(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv, n_ff=n_ff, n_vocab=n_vocab,
        head_dim_k=head_k, head_dim_v=head_v, context_length=ctx_len, sliding_window=window,
        swa_pattern=pattern, swa_layers=swa_layers, n_expert=n_expert, n_expert_used=n_expert_used,
        n_ff_expert=n_ff_exp, n_expert_shared=n_shared, n_ff_shared=n_ff_shared,
        n_layer_dense_lead=dense_lead, tied_embeddings="output.weight" not in names,
        kv_lora_rank=kv_lora, q_lora_rank=q_lora, rope_dim=rope_dim,
        attn_bias="blk.0.attn_q.bias" in names, qk_norm="blk.0.attn_q_norm.weight" in names,
        arch=arch_name, name=str(fields.get("general.name") or os.path.basename(path)),
        quant=quant_name if quant_name in quant.DEFAULT_TYPE else "",
        layer_bytes=tuple(dense), layer_expert_bytes=tuple(experts), layer_repack_bytes=tuple(repack),
        token_embd_bytes=token_embd, output_bytes=output, other_bytes=other)
    template = fields.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path, architecture=arch, quant=quant_name, chat_template=template if isinstance(template, str) else None,
        context_length=ctx_len, name=arch.name, file_size=size,
        tensor_bytes=sum(t[2] for t in tensors), n_params=sum(t[5] for t in tensors))
