"""Load a GGUF file with llama-cpp-python and report what llama.cpp itself says it allocated.

llama.cpp logs from native code, so every load runs in a child process (``python -m
advisor.tests.llama_probe``) whose stderr the parent parses: model buffers, KV buffers and compute
buffers per configuration, plus a measured decode rate when asked.  Used by test_accuracy.py and
bench/accuracy.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

MIB = 1024 * 1024
_MARK = "@@llmsite-probe "
_MODEL = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([0-9.]+) MiB")
_KV = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([0-9.]+) MiB")
_COMPUTE = re.compile(r"sched_reserve:\s+(\S+) compute buffer size =\s+([0-9.]+) MiB")
_CELLS = re.compile(r"creating\s+(non-SWA|SWA) KV cache, size = (\d+) cells")


def measure(path: str, configs: list[dict], timeout: float = 600) -> list[dict]:
    """One result per config: {'model': {buf: MiB}, 'kv': {...}, 'compute': {...}, 'decode_tps': ...}.

    A config holds Llama() keyword arguments plus optional 'decode_tokens' (tokens to time).
    """
    proc = subprocess.run([sys.executable, "-m", "advisor.tests.llama_probe", path, json.dumps(configs)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if proc.returncode != 0:
        raise RuntimeError(f"llama.cpp probe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    results = [json.loads(line[len(_MARK):]) for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    sections = proc.stderr.split(_MARK)[1:]
    for result, section in zip(results, sections, strict=True):
        result["model"] = _sum(_MODEL, section)
        result["kv"] = _sum(_KV, section)
        result["compute"] = _sum(_COMPUTE, section)
        result["cells"] = {k: int(v) for k, v in _CELLS.findall(section)}
    return results


def _sum(pattern: re.Pattern, text: str) -> dict:
    out: dict[str, float] = {}
    for buf, mib in pattern.findall(text):
        out[buf] = out.get(buf, 0.0) + float(mib)
    return out


def _per_cpu_second(tokens: int, cpu_s: float, threads: int) -> float:
    """Tokens per CPU-second of this process times the threads llama.cpp ran: the rate the run would reach
    with its threads to itself. Wall-clock rates on a shared 2-core host fall 2-10x while other jobs run;
    CPU time is charged only while the threads run, so this figure stays near the idle one (a little under it
    when busy threads spin-wait for each other, never over it for one thread)."""
    return tokens * max(1, threads) / cpu_s if cpu_s > 0 else 0.0


def _child(path: str, configs: list[dict]) -> None:
    import llama_cpp

    for i, cfg in enumerate(configs):
        cfg = dict(cfg)
        decode_tokens = cfg.pop("decode_tokens", 0)
        prompt_tokens = cfg.pop("prompt_tokens", 0)
        sys.stderr.write(f"\n{_MARK}{i}\n")
        sys.stderr.flush()
        llm = llama_cpp.Llama(model_path=path, verbose=True, **cfg)
        result: dict = {"config": cfg}
        if decode_tokens:
            tokens = llm.tokenize(b"The history of the city begins", add_bos=True)
            stamps, cpu = [], []
            for _ in llm.generate(tokens, temp=0.0, reset=True):
                stamps.append(time.perf_counter())
                cpu.append(time.process_time())
                if len(stamps) > decode_tokens:
                    break
            # the first token includes the prompt; rate over the following ones
            result["decode_tps"] = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            result["decode_cpu_tps"] = _per_cpu_second(len(stamps) - 1, cpu[-1] - cpu[0],
                                                       llm.context_params.n_threads)
        if prompt_tokens:
            words = (b"the quick brown fox jumps over a lazy dog and " * prompt_tokens)
            tokens = llm.tokenize(words, add_bos=True)[:prompt_tokens]
            llm.reset()
            start, cpu_start = time.perf_counter(), time.process_time()
            llm.eval(tokens)
            result["prompt_tps"] = len(tokens) / (time.perf_counter() - start)
            result["prompt_cpu_tps"] = _per_cpu_second(len(tokens), time.process_time() - cpu_start,
                                                       llm.context_params.n_threads_batch)
        llm.close()
        sys.stderr.flush()
        sys.stdout.write(_MARK + json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]))


# --------------------------------------------------------------------------------------------------
# The comparison shared by advisor/tests/test_accuracy.py and bench/accuracy.py

CONTEXTS = (512, 2048, 8192, 32768)


def configs_for(arch) -> list[dict]:
    """Llama() settings to compare: each context with and without flash attention; for sliding-window
    models also the window-sized cache (swa_full off).  The first config also times decoding."""
    out = []
    for n_ctx in CONTEXTS:
        for fa in (False, True):
            out.append({"n_ctx": n_ctx, "flash_attn": fa})
            if arch.sliding_window and n_ctx >= 2048:
                out.append({"n_ctx": n_ctx, "flash_attn": fa, "swa_full": False})
    # timed twice, far apart, so a busy moment on a shared machine does not decide the result
    out[1] = {**out[1], "decode_tokens": 48, "prompt_tokens": 256}
    out[-1] = {**out[-1], "decode_tokens": 48, "prompt_tokens": 256}
    return out


def runtime_for(config: dict):
    from advisor.estimate import Runtime

    return Runtime(n_ctx=config["n_ctx"], flash_attn=config.get("flash_attn", False),
                   swa_full=config.get("swa_full", True), n_gpu_layers=0,
                   decode_context=40)   # the probe times tokens ~10-60 of a short prompt


def compare(path) -> tuple[list[dict], list[dict]]:
    """(memory rows, speed rows): the estimate beside llama.cpp's own figures for one GGUF file."""
    from advisor.estimate import estimate
    from advisor.gguf_info import read_gguf
    from advisor.hardware import this_machine

    info = read_gguf(path)
    arch = info.architecture
    short = os.path.basename(str(path)).removesuffix(".gguf")
    configs = configs_for(arch)
    results = measure(str(path), configs)
    hw = this_machine()
    rows, speed, timed = [], [], []
    for cfg, res in zip(configs, results, strict=True):
        e = estimate(arch, None, runtime_for(cfg), hw)
        label = f"{short} ctx={cfg['n_ctx']} fa={'on' if cfg.get('flash_attn') else 'off'}" + (
            " swa_full=off" if cfg.get("swa_full") is False else "")
        pairs = [("weights", e.weights_bytes, res["model"].get("CPU_Mapped", 0.0)),
                 ("kv cache", e.kv_cache_bytes, sum(res["kv"].values())),
                 ("compute", e.compute_buffer_bytes, res["compute"].get("CPU", 0.0))]
        if "CPU_REPACK" in res["model"]:
            pairs.append(("repack", e.repack_bytes, res["model"]["CPU_REPACK"]))
        for what, ours, mib in pairs:
            theirs = mib * MIB
            rows.append({"case": label, "what": what, "estimate": ours, "llama_cpp": theirs,
                         "error": (ours - theirs) / theirs if theirs else 0.0, "arch": arch, "config": cfg,
                         "info": info})
        if "decode_tps" in res:
            timed.append((e, res))
    # Best of the timed runs, by wall clock or per CPU-second (see _per_cpu_second): contention only ever
    # slows a run down, and the CPU-second figure keeps a busy host's time-sharing out of the comparison.
    e, _ = timed[0]
    for what, estimate_tps, keys in (("decode tok/s", e.decode_tokens_per_s, ("decode_tps", "decode_cpu_tps")),
                                     ("prompt tok/s", e.prompt_tokens_per_s, ("prompt_tps", "prompt_cpu_tps"))):
        speed.append({"case": short, "what": what, "estimate": estimate_tps,
                      "llama_cpp": max(r[k] for _, r in timed for k in keys),
                      "wall": max(r[keys[0]] for _, r in timed)})
    return rows, speed
