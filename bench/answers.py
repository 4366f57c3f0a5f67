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


def advisor_row(setup: dict) -> dict | None:
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
    hw = recommend.hardware_for(gpu, setup.get("vram_gib"), setup.get("ram_gib") or 32)
    runtime = setup.get("runtime") or "llama-server"
    rt = recommend.runtime_for(model, hw, setup.get("ctx") or 4096, runtime)
    if setup.get("n_gpu_layers") is not None or setup.get("n_cpu_moe"):
        ngl = setup.get("n_gpu_layers")
        rt = replace(rt, n_gpu_layers=-1 if ngl is None else ngl, n_cpu_moe=setup.get("n_cpu_moe"))
    e = est.estimate(model.archs[quant.name], quant.name, rt, hw)
    return {"tok_s": e.decode_tokens_per_s, "fits": e.fits, "gpu_gib": e.gpu_bytes / est.GIB,
            "cpu_gib": e.cpu_bytes / est.GIB}


def llmfit_row(setup: dict) -> dict | None:
    vram = setup.get("vram_gib")
    args = ["--memory", f"{vram:g}G"] if vram else []
    args += ["--ram", f"{setup.get('ram_gib') or 32:g}G", "--max-context", str(setup.get("ctx") or 4096)]
    data = llmfit(*args, "info", setup.get("llmfit_name") or setup["model"])
    if not data or not data.get("models"):
        return None
    m = data["models"][0]
    return {"tok_s": m.get("estimated_tps"), "fit": m.get("fit_level"), "name": m.get("name")}


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
        row["n_gpu_layers"] = None  # all layers
    return row


def _num(x, fmt="{:.1f}"):
    return fmt.format(x) if isinstance(x, int | float) else "-"


def table(setups: list[dict], use_llmfit: bool):
    print(f"{'model':<28} {'quant':<8} {'where':<26} {'meas':>6} {'adv':>6} {'ratio':>5} {'fits':<8} "
          f"{'llmfit':>6} {'ratio':>5} {'llmfit fit':<11} link")
    within = fits_ok = n = llm_within = llm_n = 0
    for s in setups:
        missing = [k for k in SETUP_KEYS if k not in s]
        if missing:
            print(f"skipped (missing {', '.join(missing)}): {s}")
            continue
        adv = advisor_row(s)
        if adv is None:
            print(f"skipped (not in the catalog): {s['model']} {s['quant']} {s.get('gpu') or ''}")
            continue
        lf = llmfit_row(s) if use_llmfit else None
        where = f"{s.get('gpu') or ''}{' ' + format(s['vram_gib'], 'g') + 'G' if s.get('vram_gib') else ''}"
        if s.get("n_cpu_moe"):
            where += f" ncmoe={s['n_cpu_moe']}"
        elif s.get("n_gpu_layers") is not None:
            where += f" ngl={s['n_gpu_layers']}"
        measured = s["measured_tok_s"]
        ratio = adv["tok_s"] / measured if measured else None
        lratio = lf["tok_s"] / measured if lf and lf.get("tok_s") and measured else None
        n += 1
        within += ratio is not None and 0.75 <= ratio <= 1.25
        fits_ok += not (s.get("works", True) and adv["fits"] == "no")
        if lratio is not None:
            llm_n += 1
            llm_within += 0.75 <= lratio <= 1.25
        print(f"{s['model'][:28]:<28} {s['quant']:<8} {where[-26:]:<26} {_num(measured):>6} {_num(adv['tok_s']):>6} "
              f"{_num(ratio, '{:.2f}'):>5} {adv['fits']:<8} {_num(lf and lf.get('tok_s')):>6} "
              f"{_num(lratio, '{:.2f}'):>5} {str(lf and lf.get('fit') or '-'):<11} {s['link']}")
    if n:
        print(f"\nadvisor: decode within +-25% on {within}/{n} rows; reported-working setups not called "
              f"'doesn't fit': {fits_ok}/{n}")
        if llm_n:
            print(f"llmfit: decode within +-25% on {llm_within}/{llm_n} rows it knows")
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
