"""Reading GGUF headers: real files, agreement with gguf.GGUFReader, and every way a file can be bad."""
import dataclasses
import struct

import pytest

from advisor.estimate import MIB
from advisor.gguf_info import GGUFError, read_gguf


def test_it_reads_smollm2_architecture(smollm2_path):
    info = read_gguf(smollm2_path)
    a = info.architecture
    assert (a.arch, a.n_layer, a.n_embd, a.n_head, a.n_head_kv, a.n_ff, a.n_vocab) == \
        ("llama", 30, 576, 9, 3, 1536, 49152)
    assert (info.quant, info.context_length, a.tied_embeddings, a.sliding_window) == ("Q4_1", 8192, True, 0)


def test_it_sums_smollm2_tensors_to_llama_cpp_model_buffer(smollm2_path):
    info = read_gguf(smollm2_path)
    assert round(info.tensor_bytes / MIB, 2) == 92.10         # llama.cpp: CPU_Mapped model buffer 92.10 MiB
    assert info.architecture.sizes().total == info.tensor_bytes


def test_it_keeps_per_layer_sizes_apart_from_embeddings(smollm2_path):
    a = read_gguf(smollm2_path).architecture
    assert len(a.layer_bytes) == 30 and len(set(a.layer_bytes)) == 1
    assert a.token_embd_bytes == 49152 * 576 // 32 * 34       # Q8_0
    assert a.output_bytes == 0 and sum(a.layer_expert_bytes) == 0


def test_it_reads_the_chat_template(smollm2_path):
    assert "im_start" in read_gguf(smollm2_path).chat_template


def test_it_reads_gemma3_sliding_window_layout(gemma3_path):
    info = read_gguf(gemma3_path)
    a = info.architecture
    assert (a.arch, a.n_layer, a.head_k, a.n_head_kv, a.sliding_window) == ("gemma3", 18, 256, 1, 512)
    assert [il for il in range(a.n_layer) if not a.is_swa(il)] == [5, 11, 17]
    assert info.quant == "Q4_K_M" and info.context_length == 32768


def test_it_finds_the_tensors_llama_cpp_repacks(gemma3_path):
    a = read_gguf(gemma3_path).architecture
    assert round(sum(a.layer_repack_bytes) / MIB, 2) == 12.66  # llama.cpp: CPU_REPACK buffer 12.66 MiB


def test_it_computes_gemma3_q4_k_m_from_its_shape_within_half_a_percent(gemma3_path):
    a = read_gguf(gemma3_path).architecture
    from_shape = dataclasses.replace(a, layer_bytes=None).sizes("Q4_K_M").total
    assert from_shape == pytest.approx(a.sizes().total, rel=0.005)


def test_it_agrees_with_gguf_reader(smollm2_path):
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(smollm2_path)
    info = read_gguf(smollm2_path)
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in reader.tensors)
    assert info.n_params == sum(int(t.n_elements) for t in reader.tensors)
    assert info.architecture.n_ff == reader.fields["llama.feed_forward_length"].contents()
    assert info.chat_template == reader.fields["tokenizer.chat_template"].contents()


def _header(*kvs: bytes, n_kv: int | None = None, n_tensors: int = 0) -> bytes:
    n = len(kvs) if n_kv is None else n_kv
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n) + b"".join(kvs)


def _kv_str(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


def test_it_rejects_a_missing_file(tmp_path):
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path / "nothing.gguf")


def test_it_rejects_an_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(GGUFError, match="empty"):
        read_gguf(path)


def test_it_rejects_a_file_that_is_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not a model</html>")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf(path)


def test_it_rejects_a_header_cut_short(smollm2_path, tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(smollm2_path.read_bytes()[:5000])
    with pytest.raises(GGUFError, match="truncated or malformed"):
        read_gguf(path)


def test_it_rejects_a_file_whose_tensor_data_is_cut_short(smollm2_path, tmp_path):
    path = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as src:
        path.write_bytes(src.read(20 * MIB))
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf(path)


def test_it_rejects_impossible_counts(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(_header(n_kv=2**60))
    with pytest.raises(GGUFError, match="malformed"):
        read_gguf(path)


def test_it_rejects_an_unknown_value_type(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(_header(struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99)))
    with pytest.raises(GGUFError, match="malformed"):
        read_gguf(path)


def test_it_rejects_a_file_without_an_architecture(tmp_path):
    path = tmp_path / "vocab.gguf"
    path.write_bytes(_header(_kv_str("general.name", "just a vocabulary")))
    with pytest.raises(GGUFError, match="no general.architecture"):
        read_gguf(path)


def test_it_names_a_missing_architecture_key(tmp_path):
    path = tmp_path / "partial.gguf"
    path.write_bytes(_header(_kv_str("general.architecture", "llama")))
    with pytest.raises(GGUFError, match="llama.block_count"):
        read_gguf(path)
