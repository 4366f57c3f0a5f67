"""Tiny but valid GGUF model files, written with the `gguf` package's GGUFWriter, for tests.

Two block layers of a llama-shaped model with float32 tensors: a few hundred kilobytes that read_gguf
accepts, with any metadata a test wants to put in (hostile names, wrong types, absurd sizes).
"""

from pathlib import Path

import numpy as np
from gguf import GGUFValueType, GGUFWriter

N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_VOCAB = 2, 32, 4, 2, 64, 64
HEAD = N_EMBD // N_HEAD


def default_metadata(name: str = "Tiny Test Model") -> dict:
    """key -> (GGUFValueType, value), as written by llama.cpp's converter for a llama model."""
    u32 = GGUFValueType.UINT32
    return {
        "general.name": (GGUFValueType.STRING, name),
        "general.file_type": (u32, 0),  # ALL_F32
        "llama.block_count": (u32, N_LAYER),
        "llama.embedding_length": (u32, N_EMBD),
        "llama.attention.head_count": (u32, N_HEAD),
        "llama.attention.head_count_kv": (u32, N_HEAD_KV),
        "llama.feed_forward_length": (u32, N_FF),
        "llama.context_length": (u32, 2048),
        "llama.vocab_size": (u32, N_VOCAB),
    }


def tensors() -> dict:
    shapes = {"token_embd.weight": (N_VOCAB, N_EMBD), "output_norm.weight": (N_EMBD,)}
    for il in range(N_LAYER):
        shapes.update({
            f"blk.{il}.attn_norm.weight": (N_EMBD,), f"blk.{il}.attn_q.weight": (N_EMBD, N_EMBD),
            f"blk.{il}.attn_k.weight": (N_HEAD_KV * HEAD, N_EMBD),
            f"blk.{il}.attn_v.weight": (N_HEAD_KV * HEAD, N_EMBD),
            f"blk.{il}.attn_output.weight": (N_EMBD, N_EMBD), f"blk.{il}.ffn_norm.weight": (N_EMBD,),
            f"blk.{il}.ffn_gate.weight": (N_FF, N_EMBD), f"blk.{il}.ffn_up.weight": (N_FF, N_EMBD),
            f"blk.{il}.ffn_down.weight": (N_EMBD, N_FF),
        })
    return {name: np.zeros(shape, dtype=np.float32) for name, shape in shapes.items()}


def write_tiny_gguf(path: Path, metadata: dict | None = None, arch: str = "llama",
                    extra_tensors: dict | None = None) -> Path:
    """Write the tiny model; `metadata` (key -> (type, value), value None drops the key) changes keys, and
    `extra_tensors` (name -> shape) adds float32 tensors of any name (hostile ones included)."""
    fields = {**default_metadata(), **(metadata or {})}
    writer = GGUFWriter(str(path), arch)
    for key, (vtype, value) in fields.items():
        if value is None:
            continue
        if vtype == GGUFValueType.ARRAY:
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, vtype)
    extra = {name: np.zeros(shape, dtype=np.float32) for name, shape in (extra_tensors or {}).items()}
    for name, data in {**tensors(), **extra}.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def tiny_gguf_bytes(tmp_dir: Path, metadata: dict | None = None) -> bytes:
    return write_tiny_gguf(Path(tmp_dir) / "tiny.gguf", metadata).read_bytes()
