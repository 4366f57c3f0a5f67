"""The advisor's answers against setups people reported in public, and beside llmfit's.

    python bench/answers.py [--setups bench/answers_setups.json] [--no-llmfit]

For each reported setup (bench/answers_setups.json: one object per setup, see SETUP_KEYS) prints the
measured decode speed, the advisor's estimate for the same placement, their ratio, whether the advisor would
call that setup "fits", and llmfit's estimate and fit level for the same machine (llmfit is on PyPI; the
`bench` extra installs it). Then both tools' top 10 for a few everyday machines, side by side.

The catalog is the seed (advisor/seed/*.json) loaded into a throwaway SQLite database by the migrations.
Takes whatever rows the setups file has; a row naming a model or GPU the catalog lacks is listed as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Each setup: model (catalog slug), quant, gpu (catalog slug) and/or vram_gib, ram_gib, ctx, runtime,
# n_gpu_layers (null: the runtime chose / all), n_cpu_moe (null or N), measured_tok_s, measured_memory_gib
# (null if not reported), works (true: reported running), link; llmfit_name (optional: llmfit's model name).
SETUP_KEYS = ("model", "quant", "measured_tok_s", "link")
MACHINES = [  # everyday machines for the top-10 comparison: (label, gpu slug, vram GiB, ram GiB)
    ("RTX 3060 12 GB, 32 GB RAM", "nvidia-geforce-rtx-3060", 12, 32),
    ("RTX 4060 8 GB, 16 GB RAM", "nvidia-geforce-rtx-4060", 8, 16),
    ("RTX 4090 24 GB, 64 GB RAM", "nvidia-geforce-rtx-4090", 24, 64),
]


def setup_django(db_dir: str):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    os.environ["DATABASE_URL"] = f"sqlite:///{db_dir}/answers.sqlite3"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def llmfit(*args: str) -> dict | None:
    exe = shutil.which("llmfit") or str(Path(sys.executable).parent / "llmfit")
    if not Path(exe).exists():
        return None
    try:
        out = subprocess.run([exe, "--json", *args], capture_output=True, text=True, timeout=120, check=True).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, json.JSONDecodeError):
        return None


# Memory sizes tried, smallest first, when a report does not give the machine's RAM (or a unified-memory
# device's size): the setup ran, so the machine had at least the smallest common size that holds it.
COMMON_RAM_GIB = (16, 32, 48, 64, 96, 128, 192, 256)


def advisor_row(setup: dict) -> dict | None:
    """The advisor's estimate for the placement the report gives.

    placement 'gpu' (or n_gpu_layers >= 99): every layer on the GPU, as given; 'layers' without a count: the
    most whole layers that fit (no --n-cpu-moe); 'moe_cpu': every layer on the GPU with the experts of the
    first n_cpu_moe layers in RAM; none of these: the runtime's own best choice. A report's depth (tokens
    already in the cache when decode was timed) is the context the decode speed is estimated at.
    A RAM size (or a unified device's memory size) not reported is the smallest common size that holds the
    setup, shown as "~N" in the table.
    """
    from advisor import estimate as est
    from advisor import recommend
    from advisor.models import GPU

    catalog = recommend.snapshot()
    model = catalog.by_slug.get(setup["model"])
    quant = next((q for q in catalog.quants if q.name == setup["quant"]), None)
    gpu = GPU.objects.filter(slug=setup.get("gpu")).first() if setup.get("gpu") else None
    if model is None or quant is None or (setup.get("gpu") and gpu is None):
        return None
    if (setup.get("runtime") or "llama-server") not in est.RUNTIMES:
        return None  # not llama.cpp (MLX): nothing of ours to compare
    runtime = setup.get("runtime") or "llama-server"
    unified = gpu is not None and gpu.unified_memory
    if unified and not setup.get("vram_gib"):
        sizes, assumed = [v for v in sorted(gpu.vram_gib)], "vram"
    elif not unified and not setup.get("ram_gib"):
        sizes, assumed = list(COMMON_RAM_GIB), "ram"
    else:
        sizes, assumed = [None], None
    for size in sizes:
        vram = size if assumed == "vram" else setup.get("vram_gib")
        ram = size if assumed == "ram" else (setup.get("ram_gib") or 32)
        hw = recommend.hardware_for(gpu, vram, ram)
        rt = recommend.runtime_for(model, hw, setup.get("ctx") or 4096, runtime)
        ngl, ncmoe = setup.get("n_gpu_layers"), setup.get("n_cpu_moe")
        if ncmoe:
            rt = replace(rt, n_gpu_layers=-1 if ngl is None else ngl, n_cpu_moe=ncmoe)
        elif ngl is not None:
            rt = replace(rt, n_gpu_layers=ngl)
        elif setup.get("placement") == "layers":
            rt = replace(rt, n_cpu_moe=0)
        if setup.get("depth") is not None:
            rt = replace(rt, decode_context=setup["depth"])
        e = est.estimate(model.archs[quant.name], quant.name, rt, hw)
        if e.fits != "no":
            break
    return {"tok_s": e.decode_tokens_per_s, "fits": e.fits, "gpu_gib": e.gpu_bytes / est.GIB,
            "cpu_gib": e.cpu_bytes / est.GIB, "assumed": f"~{size:g}" if assumed else "", "assumed_what": assumed,
            "size": size,
            "placement": e.placement, "n_gpu_layers": e.n_gpu_layers, "n_cpu_moe": e.n_cpu_moe}


def llmfit_row(setup: dict, adv: dict) -> dict | None:
    """llmfit's plan for the same model, quantization, context and memory sizes (`llmfit plan --quant`).

    llmfit is told the GPU's memory (--memory) and the RAM (--ram), not which GPU it is: given a memory size,
    it knows no bandwidth for the card (its `--profile` sets bandwidth but no VRAM, and the two cannot be
    combined), so its speed comes from its own default for a "user-specified GPU".
    """
    name = setup.get("llmfit_name")
    if not name:
        return None
    # the memory sizes the advisor's row took (a size the report left out: the same assumed size)
    vram = setup.get("vram_gib") or (adv["size"] if adv["assumed_what"] == "vram" else None)
    ram = setup.get("ram_gib") or (adv["size"] if adv["assumed_what"] == "ram" else 32)
    args = ["--memory", f"{vram:g}G"] if vram else []
    args += ["--ram", f"{ram:g}G"]
    data = llmfit(*args, "plan", name, "--context", str(setup.get("ctx") or 4096), "--quant", setup["quant"])
    if not data or "current" not in data:
        return None
    current = data["current"]
    return {"tok_s": current.get("estimated_tps"), "fit": current.get("fit_level"), "name": data.get("model_name")}


RUNTIMES = {"llama-bench": "llama-server", "llama.cpp": "llama-server", "llama-server": "llama-server",
            "lm-studio": "lmstudio", "lmstudio": "lmstudio", "ollama": "ollama", "llmsite": "llmsite"}


def normalise(setup: dict) -> dict:
    """A row of the catalog's setups file (decode_tok_s, source, context, placement) in this script's keys.

    Rows already in this script's keys pass through; a runtime that is not llama.cpp (MLX) keeps its name and
    is skipped by advisor_row.
    """
    row = dict(setup)
    if "decode_tok_s" in row:
        row.setdefault("measured_tok_s", row["decode_tok_s"])
    if "source" in row:
        row.setdefault("link", row["source"])
    if "context" in row:
        row.setdefault("ctx", row["context"])
    if row.get("runtime"):
        row["runtime"] = RUNTIMES.get(row["runtime"], row["runtime"])
    if row.get("placement") == "gpu" or (row.get("n_gpu_layers") or 0) >= 99:
        row["n_gpu_layers"] = -1  # all layers, as given (llama.cpp: 99 or 999 = every layer and the output)
    return row


def _num(x, fmt="{:.1f}"):
    return fmt.format(x) if isinstance(x, int | float) else "-"


def table(setups: list[dict], use_llmfit: bool):
    print(f"{'id':>2} {'model':<28} {'quant':<8} {'where':<30} {'meas':>6} {'adv':>6} {'ratio':>5} {'fits':<8} "
          f"{'llmfit':>6} {'ratio':>5} {'llmfit fit':<11} link")
    counts = {"all": [0, 0], "held out": [0, 0]}
    fits_ok = n = llm_within = llm_n = 0
    excluded = []
    for s in setups:
        missing = [k for k in SETUP_KEYS if k not in s]
        if missing:
            print(f"skipped (missing {', '.join(missing)}): {s}")
            continue
        if s.get("excluded"):
            excluded.append(s)
            continue
        adv = advisor_row(s)
        if adv is None:
            print(f"   skipped (not in the catalog or not llama.cpp): {s['model']} {s['quant']} {s.get('gpu') or ''} "
                  f"{s.get('runtime') or ''}")
            continue
        lf = llmfit_row(s, adv) if use_llmfit else None
        size = s.get("vram_gib") or (adv["assumed"] if adv["assumed_what"] == "vram" else "")
        where = f"{(s.get('gpu') or '').replace('nvidia-geforce-', '').replace('amd-radeon-', '')} {size}"
        if adv["assumed_what"] == "ram":
            where += f" RAM{adv['assumed']}"
        if s.get("n_cpu_moe"):
            where += f" ncmoe={s['n_cpu_moe']}"
        elif adv["placement"] == "split":
            where += f" ngl={adv['n_gpu_layers']}"
        measured = s["measured_tok_s"]
        ratio = adv["tok_s"] / measured if measured else None
        lratio = lf["tok_s"] / measured if lf and lf.get("tok_s") and measured else None
        n += 1
        ok = ratio is not None and 0.75 <= ratio <= 1.25
        for key in ("all", "held out") if not s.get("calibration") else ("all",):
            counts[key][0] += ok
            counts[key][1] += 1
        fits_ok += not (s.get("works", True) and adv["fits"] == "no")
        if lratio is not None:
            llm_n += 1
            llm_within += 0.75 <= lratio <= 1.25
        mark = "c" if s.get("calibration") else " "
        print(f"{s.get('id', ''):>2}{mark}{s['model'][:28]:<28} {s['quant']:<8} {where[:30]:<30} {_num(measured):>6} "
              f"{_num(adv['tok_s']):>6} {_num(ratio, '{:.2f}'):>5} {adv['fits']:<8} {_num(lf and lf.get('tok_s')):>6} "
              f"{_num(lratio, '{:.2f}'):>5} {str(lf and lf.get('fit') or '-'):<11} {s['link']}")
    for s in excluded:
        print(f"{s.get('id', ''):>2}x{s['model'][:28]:<28} {s['quant']:<8} excluded: {s['excluded']}")
    if n:
        (w_all, n_all), (w_out, n_out) = counts["all"], counts["held out"]
        print(f"\nc: a calibration row (a constant of advisor/estimate.py was set from it); x: excluded, with why"
              f"\nadvisor: decode within +-25% on {w_all}/{n_all} rows ({100 * w_all / n_all:.0f}%), "
              f"{w_out}/{n_out} held-out rows ({100 * w_out / max(1, n_out):.0f}%); "
              f"reported-working setups not called 'doesn't fit': {fits_ok}/{n}")
        if llm_n:
            print(f"llmfit: decode within +-25% on {llm_within}/{llm_n} rows it could place")
        elif use_llmfit:
            print("llmfit: not run (not installed: pip install '.[bench]', or no llmfit_name in the rows)")
    else:
        print("(no setups yet)")


def top10(use_llmfit: bool):
    from advisor import recommend
    from advisor.models import GPU

    for label, slug, vram, ram in MACHINES:
        gpu = GPU.objects.filter(slug=slug).first()
        answer = recommend.answer(recommend.Question(gpu=slug, vram_gib=vram, ram_gib=ram, ctx=8192), gpu=gpu)
        ours = [f"{r['model_name']} {r['quant']} {r['decode_tokens_per_s']:.0f}t/s" for r in answer["results"][:10]]
        theirs = []
        if use_llmfit:
            data = llmfit("--memory", f"{vram}G", "--ram", f"{ram}G", "--max-context", "8192", "recommend", "-n", "10")
            theirs = [f"{m['name'][-40:]} {m.get('estimated_tps') or 0:.0f}t/s" for m in (data or {}).get("models", [])]
        print(f"\n{label}, 8k context, chat\n{'advisor':<52} llmfit")
        for i in range(max(len(ours), len(theirs))):
            print(f"{(ours[i] if i < len(ours) else ''):<52} {theirs[i] if i < len(theirs) else ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default=str(ROOT / "bench" / "answers_setups.json"))
    parser.add_argument("--no-llmfit", action="store_true")
    args = parser.parse_args()
    path = Path(args.setups)
    data = json.loads(path.read_text()) if path.exists() else []
    setups = [normalise(row) for row in (data["setups"] if isinstance(data, dict) else data)]
    if not path.exists():
        print(f"{path} not found: no setups to compare")
    with tempfile.TemporaryDirectory() as db_dir:
        setup_django(db_dir)
        table(setups, not args.no_llmfit)
        top10(not args.no_llmfit)


if __name__ == "__main__":
    main()
