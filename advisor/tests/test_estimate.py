"""The estimator on architectures alone: published llama.cpp sizes, KV rules, offload, MoE, speed."""
import dataclasses

import pytest

from advisor import estimate as est
from advisor import quant
from advisor.estimate import GIB, MIB, Architecture, Hardware, Runtime, estimate

LLAMA31_8B = Architecture(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, n_vocab=128256,
                          context_length=131072, arch="llama", name="Llama 3.1 8B")
# Qwen3-30B-A3B: 48 layers, 128 experts of which 8 active, expert FFN 768 (its config.json)
QWEN3_30B_A3B = Architecture(n_layer=48, n_embd=2048, n_head=32, n_head_kv=4, head_dim_k=128, n_ff=6144,
                             n_vocab=151936, n_expert=128, n_expert_used=8, n_ff_expert=768, qk_norm=True,
                             context_length=40960, arch="qwen3moe")
GEMMA3_LIKE = Architecture(n_layer=18, n_embd=640, n_head=4, n_head_kv=1, head_dim_k=256, n_ff=2048,
                           n_vocab=262144, sliding_window=512, swa_pattern=6, tied_embeddings=True,
                           qk_norm=True, arch="gemma3")
RTX_4060_8G = Hardware(backend="cuda", vram_total=8 * GIB, gpu_bandwidth=272e9, gpu_fp16_flops=60e12)
RTX_4090 = Hardware(backend="cuda", vram_total=24 * GIB, gpu_bandwidth=1008e9, gpu_fp16_flops=165e12)


def test_it_sizes_llama31_8b_q4_k_m_as_llama_cpp_publishes():
    assert LLAMA31_8B.sizes("Q4_K_M").total / GIB == pytest.approx(4.58, rel=0.02)


def test_it_sizes_llama31_8b_q8_0_as_llama_cpp_publishes():
    assert LLAMA31_8B.sizes("Q8_0").total / GIB == pytest.approx(7.95, rel=0.02)


@pytest.mark.parametrize("name", sorted(quant.QUALITY))
def test_it_sizes_every_scoreboard_quant_of_llama31_8b_within_2_percent(name):
    assert LLAMA31_8B.sizes(name).total / GIB == pytest.approx(quant.QUALITY[name].llama31_8b_gib, rel=0.02)


def test_it_counts_llama31_8b_kv_cache_at_8192_tokens_as_exactly_one_gib():
    assert est.kv_cache_bytes(LLAMA31_8B, Runtime(n_ctx=8192)) == GIB


def test_it_shrinks_the_kv_cache_with_quantized_types():
    f16 = est.kv_cache_bytes(LLAMA31_8B, Runtime(n_ctx=8192))
    assert est.kv_cache_bytes(LLAMA31_8B, Runtime(n_ctx=8192, kv_type="q8_0")) == f16 * 34 // 64
    assert est.kv_cache_bytes(LLAMA31_8B, Runtime(n_ctx=8192, kv_type="q4_0")) == f16 * 18 // 64


def test_it_pads_the_context_to_a_multiple_of_256_like_llama_cpp():
    assert est.kv_cells(LLAMA31_8B, Runtime(n_ctx=1000))[:2] == (1024, 1024)


def test_it_keeps_a_full_size_sliding_window_cache_by_default_as_llama_cpp_python_does():
    _, full, swa = est.kv_cells(GEMMA3_LIKE, Runtime(n_ctx=8192))
    assert full == swa == 8192


def test_it_sizes_the_sliding_window_cache_to_window_plus_ubatch_without_swa_full():
    rt = Runtime(n_ctx=8192, swa_full=False)
    assert est.kv_cells(GEMMA3_LIKE, rt) == (8192, 8192, 1024)
    # 3 global layers of 8192 cells, 15 window layers of 1024; 1 KV head of 256 dims, K and V in f16
    assert est.kv_cache_bytes(GEMMA3_LIKE, rt) == (3 * 8192 + 15 * 1024) * 2 * 256 * 2


def test_it_marks_every_sixth_gemma3_layer_global():
    assert [il for il in range(18) if not GEMMA3_LIKE.is_swa(il)] == [5, 11, 17]


def test_it_grows_the_compute_buffer_with_context_only_without_flash_attention():
    small = est.compute_buffer_bytes(LLAMA31_8B, Runtime(n_ctx=2048))
    big = est.compute_buffer_bytes(LLAMA31_8B, Runtime(n_ctx=32768))
    big_fa = est.compute_buffer_bytes(LLAMA31_8B, Runtime(n_ctx=32768, flash_attn=True))
    assert big > 4 * small
    assert big_fa < small * 1.2


def test_it_puts_everything_on_a_large_gpu():
    e = estimate(LLAMA31_8B, "Q4_K_M", Runtime(n_ctx=8192), RTX_4090)
    assert (e.fits, e.n_gpu_layers, e.n_layers, e.offload_ratio) == ("full", 33, 33, 1.0)
    assert e.gpu_bytes == e.weights_gpu_bytes + e.kv_cache_bytes + e.compute_buffer_bytes + e.overhead_bytes


def test_it_keeps_token_embeddings_in_ram_when_fully_offloaded():
    e = estimate(LLAMA31_8B, "Q4_K_M", Runtime(n_ctx=8192), RTX_4090)
    assert e.weights_cpu_bytes == LLAMA31_8B.sizes("Q4_K_M").token_embd_bytes


def test_it_offloads_the_largest_layer_count_that_fits_a_small_gpu():
    hw = Hardware(backend="cuda", vram_total=6 * GIB, gpu_bandwidth=360e9, gpu_fp16_flops=30e12)
    rt = Runtime(n_ctx=8192)
    e = estimate(LLAMA31_8B, "Q8_0", rt, hw)
    assert e.fits == "partial" and 0 < e.n_gpu_layers < 33
    assert e.gpu_bytes <= e.gpu_budget_bytes
    one_more = estimate(LLAMA31_8B, "Q8_0", dataclasses.replace(rt, n_gpu_layers=e.n_gpu_layers + 1), hw)
    assert one_more.gpu_bytes > e.gpu_budget_bytes  # the automatic choice keeps the margin free
    # a count someone sets is checked against what loading needs: the margin may go, nothing more
    too_many = next(estimate(LLAMA31_8B, "Q8_0", dataclasses.replace(rt, n_gpu_layers=k), hw)
                    for k in range(e.n_gpu_layers + 1, 34)
                    if estimate(LLAMA31_8B, "Q8_0", dataclasses.replace(rt, n_gpu_layers=k), hw).gpu_bytes
                    > e.gpu_budget_bytes + hw.safety_margin)
    assert too_many.fits == "no"


def test_it_gains_speed_from_each_offloaded_layer():
    hw = Hardware(backend="cuda", vram_total=6 * GIB, gpu_bandwidth=360e9, gpu_fp16_flops=30e12)
    rates = [estimate(LLAMA31_8B, "Q8_0", Runtime(n_ctx=4096, n_gpu_layers=k), hw).decode_tokens_per_s
             for k in (0, 8, 16)]
    assert rates == sorted(rates)


def test_it_runs_on_the_cpu_when_there_is_no_gpu():
    e = estimate(LLAMA31_8B, "Q4_K_M", Runtime(n_ctx=4096), Hardware())
    assert (e.fits, e.n_gpu_layers, e.gpu_bytes, e.speedup_vs_cpu) == ("cpu", 0, 0, 1.0)
    assert e.cpu_bytes > e.weights_bytes + e.kv_cache_bytes


def test_it_says_no_when_ram_is_too_small():
    e = estimate(LLAMA31_8B, "F16", Runtime(n_ctx=4096), Hardware(ram_total=8 * GIB))
    assert e.fits == "no"


def test_it_reports_a_requested_offload_that_does_not_fit_as_no():
    e = estimate(LLAMA31_8B, "Q8_0", Runtime(n_ctx=4096, n_gpu_layers=-1), RTX_4060_8G)
    assert e.n_gpu_layers == 33 and e.fits == "no"


def test_it_keeps_experts_in_ram_rather_than_dropping_layers_for_a_moe_model():
    e = estimate(QWEN3_30B_A3B, "Q4_K_M", Runtime(n_ctx=8192, flash_attn=True), RTX_4060_8G)
    assert e.fits == "partial" and e.n_gpu_layers == 49 and 0 < e.n_cpu_moe <= 48
    assert e.gpu_bytes <= e.gpu_budget_bytes
    layers_only = estimate(QWEN3_30B_A3B, "Q4_K_M", Runtime(n_ctx=8192, flash_attn=True, n_cpu_moe=0),
                           RTX_4060_8G)
    assert e.decode_tokens_per_s > layers_only.decode_tokens_per_s


def test_it_counts_all_experts_for_memory_and_active_ones_for_speed():
    total, active = QWEN3_30B_A3B.n_params()
    assert total / 1e9 == pytest.approx(30.5, rel=0.03)
    assert active / 1e9 == pytest.approx(3.3, rel=0.1)
    moe = estimate(QWEN3_30B_A3B, "Q4_K_M", Runtime(), Hardware())
    dense = estimate(LLAMA31_8B, "Q4_K_M", Runtime(), Hardware())
    assert moe.weights_bytes > 3 * dense.weights_bytes
    assert moe.decode_tokens_per_s > dense.decode_tokens_per_s


def test_it_gives_an_apple_gpu_two_thirds_of_a_small_unified_memory():
    mac = Hardware(backend="metal", ram_total=24 * GIB, unified_memory=True, gpu_bandwidth=120e9,
                   gpu_fp16_flops=7e12)
    assert mac.gpu_budget_total == 16 * GIB
    big_mac = dataclasses.replace(mac, ram_total=64 * GIB)
    assert big_mac.gpu_budget_total == 48 * GIB


def test_it_speeds_up_decoding_with_a_gpu():
    e = estimate(LLAMA31_8B, "Q4_K_M", Runtime(n_ctx=4096), RTX_4090)
    assert e.speedup_vs_cpu > 5
    assert 90 < e.decode_tokens_per_s < 200       # llama.cpp's RTX 4090 results: ~130-150 tok/s


def test_it_serialises_every_key_the_advise_command_promises():
    d = estimate(LLAMA31_8B, "Q4_K_M", Runtime(), RTX_4060_8G).to_dict()
    for key in ("weights_bytes", "kv_cache_bytes", "compute_buffer_bytes", "overhead_bytes", "gpu_bytes",
                "cpu_bytes", "n_layers", "n_gpu_layers", "offload_ratio", "fits", "decode_tokens_per_s",
                "prompt_tokens_per_s", "speedup_vs_cpu", "weights_gpu_bytes", "weights_cpu_bytes", "n_cpu_moe"):
        assert key in d
    assert 0 <= d["offload_ratio"] <= 1 and d["fits"] in ("full", "partial", "cpu", "no")


def test_it_explains_its_answer_in_plain_sentences():
    lines = estimate(GEMMA3_LIKE, "Q4_K_M", Runtime(n_ctx=4096, swa_full=False), RTX_4060_8G).explanation
    assert all(isinstance(line, str) and line.endswith(".") for line in lines)
    assert any("sliding-window" in line for line in lines)
    assert any("GPU" in line for line in lines)


def test_it_rejects_an_unknown_quantization():
    with pytest.raises(ValueError, match="unknown quantization"):
        LLAMA31_8B.sizes("Q7_X")


def test_it_keeps_its_block_table_equal_to_the_gguf_package():
    gguf = pytest.importorskip("gguf")
    for ggml_type, (per_block, block_bytes) in gguf.GGML_QUANT_SIZES.items():
        if ggml_type.name in quant.GGML_BLOCK:
            assert quant.GGML_BLOCK[ggml_type.name] == (per_block, block_bytes), ggml_type.name


def test_it_gives_q4_k_m_more_bits_in_a_sixteenth_of_attention_and_ffn_down_layers():
    ctx = quant.MixContext(ftype="Q4_K_M", n_layer=32, n_gqa=4)
    boosted = [il for il in range(32) if quant.tensor_type(ctx, "attn_v", il, 4096) == "Q6_K"]
    assert len(boosted) == 16 and boosted[:4] == [0, 1, 2, 3] and boosted[-4:] == [28, 29, 30, 31]
    assert quant.tensor_type(ctx, "output", 0, 4096) == "Q6_K"
    assert quant.tensor_type(ctx, "attn_q", 5, 4096) == "Q4_K"


def test_it_falls_back_when_a_row_does_not_divide_into_k_quant_blocks():
    ctx = quant.MixContext(ftype="Q4_K_M", n_layer=18, tied_embeddings=True)
    assert quant.tensor_type(ctx, "attn_q", 3, 640) == "Q5_0"
    assert quant.tensor_type(ctx, "token_embd", 0, 640) == "Q8_0"


def test_it_answers_a_ranking_query_in_well_under_a_millisecond_per_estimate():
    import time

    hw, rt = RTX_4060_8G, Runtime(n_ctx=8192)
    estimate(LLAMA31_8B, "Q4_K_M", rt, hw)          # warm the per-model cache
    start = time.perf_counter()
    for _ in range(200):
        estimate(LLAMA31_8B, "Q4_K_M", rt, hw)
    assert (time.perf_counter() - start) / 200 < 1e-3


def test_it_rounds_nothing_away_in_memory_totals():
    e = estimate(LLAMA31_8B, "Q4_K_M", Runtime(n_ctx=4096, n_gpu_layers=10), RTX_4060_8G)
    assert e.weights_gpu_bytes + e.weights_cpu_bytes == e.weights_bytes
    assert e.kv_gpu_bytes < e.kv_cache_bytes
    assert e.cpu_bytes >= e.weights_cpu_bytes + (e.kv_cache_bytes - e.kv_gpu_bytes)
    assert e.compute_buffer_bytes > 100 * MIB


def test_it_ranks_with_the_same_placement_and_speed_as_estimate():
    pairs = [(arch, q) for arch in (LLAMA31_8B, QWEN3_30B_A3B, GEMMA3_LIKE) for q in ("Q8_0", "Q4_K_M", "Q2_K")]
    rt = Runtime(n_ctx=8192, flash_attn=True)
    rows = est.rank(pairs, rt, RTX_4060_8G, include_no=True)
    assert len(rows) == len(pairs)
    assert [r.decode_tokens_per_s for r in rows] == sorted((r.decode_tokens_per_s for r in rows), reverse=True)
    for row in rows:
        e = estimate(row.architecture, row.quant, rt, RTX_4060_8G)
        assert (row.fits, row.n_gpu_layers, row.n_cpu_moe, row.gpu_bytes) == \
            (e.fits, e.n_gpu_layers, e.n_cpu_moe, e.gpu_bytes)
        assert row.decode_tokens_per_s == pytest.approx(e.decode_tokens_per_s)


def test_it_leaves_out_what_cannot_run_when_ranking():
    # 12 GiB of RAM, 4 GiB of it kept for the operating system (default_ram_reserve)
    rows = est.rank([(LLAMA31_8B, "F16"), (LLAMA31_8B, "Q4_K_M")], Runtime(), Hardware(ram_total=12 * GIB))
    assert [(r.quant, r.fits) for r in rows] == [("Q4_K_M", "cpu")]


def test_an_avx512_vnni_cpu_is_recognised_from_its_flags(tmp_path):
    from advisor.hardware import cpu_simd_factor

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    avx512 = tmp_path / "avx512"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl avx512_vnni\n")
    assert cpu_simd_factor(str(avx2)) == 1.0
    assert cpu_simd_factor(str(avx512)) == 2.0
    assert cpu_simd_factor(str(tmp_path / "missing")) == 1.0  # not Linux: AVX2 figures


def test_avx512_speeds_up_prompts_but_not_decoding():
    # llama.cpp's 512-bit / VNNI x86 kernels are its matrix-matrix products (prompt batches); the
    # matrix-vector products of a decode step run AVX2 code on these CPUs too
    avx2 = Hardware(cpu_threads=8)
    avx512 = Hardware(cpu_threads=8, cpu_prompt_factor=est.CPU_SIMD_FACTOR_AVX512_VNNI)
    for qname in ("Q4_0", "Q4_K_M", "Q8_0", "Q4_1"):
        a, b = estimate(LLAMA31_8B, qname, Runtime(), avx2), estimate(LLAMA31_8B, qname, Runtime(), avx512)
        assert b.decode_tokens_per_s == a.decode_tokens_per_s, qname
        assert b.prompt_tokens_per_s == pytest.approx(2.0 * a.prompt_tokens_per_s), qname
