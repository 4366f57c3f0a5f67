"""How fast the estimator ranks the catalog.

    python bench/advisor_speed.py [--repeat N]

Times (1) ranking every model x quantization of the catalog for one GPU, the advisor page's work per
request (target: under 10 ms), warm (per-model tables cached, as the web view keeps them) and cold
(first request after a catalog change), and (2) the whole GPU x VRAM variant x model x quantization grid.
The catalog is advisor/seed/*.json when present, else a synthetic one of 45 models.

Then what a person waits for (skip with --no-site): (3) recommend.answer() for a question not asked before
(the seed loaded into a throwaway SQLite database by the migrations; every choice, runners-up and
alternatives, not just the bare ranking), and (4) a real GET of the answer page from the site as `make run`
serves it (bench/http_load.py's Site: daphne on a free port, its own data folder), for new inputs and for
inputs asked before (the page cache), one request at a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advisor import estimate as est  # noqa: E402
from advisor import quant  # noqa: E402

SEED = Path(__file__).resolve().parent.parent / "advisor" / "seed"
GIB = est.GIB
TOP = 20          # rows the page shows in detail


def load_catalog() -> tuple[list[est.Architecture], list[str], list[est.Hardware], str]:
    models_file, gpus_file, quants_file = SEED / "models.json", SEED / "gpus.json", SEED / "quantizations.json"
    if models_file.exists():
        models = [_arch(m) for m in json.loads(models_file.read_text())]
        source = f"{models_file.relative_to(SEED.parent.parent)} ({len(models)} models)"
    else:
        models = _synthetic_models()
        source = f"synthetic catalog ({len(models)} models)"
    if quants_file.exists():
        quants = [q["name"] for q in json.loads(quants_file.read_text()) if q["name"] in quant.DEFAULT_TYPE]
    else:
        quants = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "IQ4_XS", "Q3_K_L",
                  "Q3_K_M", "Q3_K_S", "IQ3_XXS", "Q2_K", "IQ2_XXS"]
    gpus = []
    if gpus_file.exists():
        for g in json.loads(gpus_file.read_text()):
            for vram in g["vram_gib"]:
                gpus.append(est.Hardware(
                    backend=g["backend"], vram_total=int(vram * GIB), gpu_bandwidth=g["memory_bandwidth_gbs"] * 1e9,
                    gpu_fp16_flops=g["fp16_tflops"] * 1e12, unified_memory=g.get("unified_memory", False),
                    ram_total=int(vram * GIB) if g.get("unified_memory") else 32 * GIB,
                    name=f"{g['name']} {vram} GB"))
    else:
        gpus = [est.Hardware(backend="cuda", vram_total=v * GIB, gpu_bandwidth=b * 1e9, gpu_fp16_flops=f * 1e12,
                             name=f"GPU {v} GB") for v, b, f in [(8, 272, 60), (12, 504, 120), (16, 448, 90),
                                                                  (24, 1008, 165), (48, 960, 180)] * 20]
    return models, quants, gpus, source


def _arch(m: dict) -> est.Architecture:
    return est.Architecture(
        n_layer=m["n_layers"], n_embd=m["n_embd"], n_head=m["n_head"], n_head_kv=m["n_head_kv"],
        head_dim_k=m.get("head_dim") or 0, head_dim_v=m.get("head_dim_v") or 0, n_ff=m["n_ff"],
        n_vocab=m["n_vocab"], context_length=m["context_length"], sliding_window=m.get("sliding_window") or 0,
        swa_pattern=m.get("swa_pattern") or 0, n_expert=m.get("n_expert") or 0,
        n_expert_used=m.get("n_expert_used") or 0, n_ff_expert=m.get("n_ff_expert") or 0,
        n_expert_shared=m.get("n_shared_expert") or 0, n_layer_dense_lead=m.get("n_dense_layers") or 0,
        tied_embeddings=bool(m.get("tied_embeddings")), arch=m.get("arch", "llama"), name=m["name"])


def _synthetic_models() -> list[est.Architecture]:
    shapes = [(16, 2048, 32, 8, 8192, 128256), (28, 3072, 24, 8, 8192, 128256), (32, 4096, 32, 8, 14336, 128256),
              (40, 5120, 40, 8, 13824, 152064), (64, 5120, 40, 8, 27648, 152064), (80, 8192, 64, 8, 28672, 128256),
              (26, 2304, 8, 4, 9216, 256000), (48, 2048, 32, 4, 6144, 151936)]
    out = []
    for i in range(45):
        n, e, h, kv, ff, v = shapes[i % len(shapes)]
        moe = i % len(shapes) == 7
        out.append(est.Architecture(n_layer=n, n_embd=e, n_head=h, n_head_kv=kv, n_ff=ff, n_vocab=v,
                                    n_expert=128 if moe else 0, n_expert_used=8 if moe else 0,
                                    n_ff_expert=768 if moe else 0, name=f"model-{i}"))
    return out


def rank(models, quants, hw, runtime) -> list:
    """The advisor page's ranking: est.rank() over every pair, then full estimates for the top rows."""
    rows = est.rank([(arch, q) for arch in models for q in quants], runtime, hw)
    for row in rows[:TOP]:
        est.estimate(row.architecture, row.quant, runtime, hw)
    return rows


def estimate_all(models, quants, hw, runtime) -> list:
    """The same answer with a full est.estimate() (memory breakdown, prompt speed) for every pair."""
    rows = []
    for arch in models:
        for q in quants:
            e = est.estimate(arch, q, runtime, hw)
            if e.fits != "no":
                rows.append((e.decode_tokens_per_s, arch.name, q, e.fits))
    rows.sort(reverse=True)
    return rows


def _clear_caches():
    est._PROFILES.clear()
    quant.model_sizes.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--no-site", dest="site", action="store_false",
                        help="skip recommend.answer() and the GET of the answer page")
    args = parser.parse_args()
    models, quants, gpus, source = load_catalog()
    runtime = est.Runtime(n_ctx=8192, flash_attn=True)
    hw = next((g for g in gpus if "4070" in g.name and g.vram_total == 12 * GIB), gpus[len(gpus) // 2])
    n_pairs = len(models) * len(quants)
    print(f"catalog: {source}, {len(quants)} quantizations, {len(gpus)} GPU x VRAM variants")
    print(f"one GPU: {hw.name}, n_ctx {runtime.n_ctx}, {n_pairs} model x quantization pairs "
          f"(median of repeated runs)\n")

    def timed(fn, repeat):
        out = []
        for _ in range(repeat):
            t = time.perf_counter()
            result = fn()
            out.append(time.perf_counter() - t)
        timed.best = min(out)
        return statistics.median(out), result

    def cold_rank():
        _clear_caches()
        return rank(models, quants, hw, runtime)

    cold, _ = timed(cold_rank, 3)
    warm, rows = timed(lambda: rank(models, quants, hw, runtime), args.repeat)
    warm_best = timed.best
    full, _ = timed(lambda: estimate_all(models, quants, hw, runtime), max(3, args.repeat // 4))
    verdict = "OK" if warm < 0.010 else "MISSED"
    print(f"{'rank one GPU: est.rank() + top ' + str(TOP) + ' full estimates':<52} {warm * 1e3:8.2f} ms  "
          f"({warm / n_pairs * 1e6:.1f} us per pair; best run {warm_best * 1e3:.2f} ms)  "
          f"target < 10 ms: {verdict}")
    print(f"{'rank one GPU: est.estimate() for every pair':<52} {full * 1e3:8.2f} ms  "
          f"({full / n_pairs * 1e6:.1f} us per pair)")
    print(f"{'rank one GPU, cold (first request after a catalog change)':<52} {cold * 1e3:8.2f} ms")
    best = rows[0]
    print(f"  {len(rows)} combinations run; fastest: {best.architecture.name} {best.quant} "
          f"at {best.decode_tokens_per_s:.0f} tok/s ({best.fits})")

    t = time.perf_counter()
    n = 0
    for g in gpus:
        n += len(est.rank([(arch, q) for arch in models for q in quants], runtime, g))
    grid = time.perf_counter() - t
    total = len(gpus) * n_pairs
    print(f"{'whole grid (every GPU x model x quant, est.rank())':<52} {grid * 1e3:8.1f} ms  "
          f"({total} pairs, {grid / total * 1e6:.1f} us each; {n} runnable)")
    if args.site:
        print()
        what_a_person_waits_for(max(5, args.repeat // 4))


ANSWER_PAGE = "/advisor/?gpu=nvidia-geforce-rtx-4070&vram_gib={vram}&ram_gib=32&ctx=8192&use=chat"


def what_a_person_waits_for(repeat: int) -> None:
    """recommend.answer() and a GET of the answer page, median of `repeat` each (new inputs every time)."""
    import os
    import tempfile
    import urllib.request

    with tempfile.TemporaryDirectory(prefix="advisor-speed-") as db_dir:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
        os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/speed.sqlite3"
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from advisor import recommend
        from advisor.models import GPU

        gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4070")
        recommend.answer(recommend.Question(gpu=gpu.slug, vram_gib=12, ram_gib=32, ctx=8192), gpu=gpu)  # warm
        sizes = iter(range(10**6))

        def new_answer():
            vram = 8 + next(sizes) / 1000  # a memory size not asked before
            return recommend.answer(recommend.Question(gpu=gpu.slug, vram_gib=vram, ram_gib=32, ctx=8192), gpu=gpu)

        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            answer = new_answer()
            times.append(time.perf_counter() - t)
        print(f"{'recommend.answer(), new inputs (catalog warm)':<52} {statistics.median(times) * 1e3:8.1f} ms  "
              f"(median of {repeat}; {len(answer['results'])} results)")

    from bench.http_load import Site

    site = Site("advisor-speed", Path(__file__).resolve().parent.parent, limit_off=True)
    site.start()
    try:
        def get(path: str) -> float:
            t = time.perf_counter()
            with urllib.request.urlopen(site.url + path, timeout=120) as response:
                response.read()
            return time.perf_counter() - t

        get(ANSWER_PAGE.format(vram=12))  # the first request loads the catalog snapshot
        fresh = [get(ANSWER_PAGE.format(vram=f"{8 + i / 1000:.3f}")) for i in range(repeat)]
        again = [get(ANSWER_PAGE.format(vram=12)) for _ in range(repeat)]
        print(f"{'GET the answer page, new inputs (daphne, one at a time)':<52} "
              f"{statistics.median(fresh) * 1e3:8.1f} ms  (median of {repeat})")
        print(f"{'GET the answer page, inputs asked before (page cache)':<52} "
              f"{statistics.median(again) * 1e3:8.1f} ms  (median of {repeat})")
    finally:
        site.stop()


if __name__ == "__main__":
    main()
