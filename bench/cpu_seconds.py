"""CPU decode and prompt speed per CPU-second of the process, beside the estimate: a view of this CPU's speed
that time-sharing on a loaded machine does not distort (wall-clock rates on a shared 2-core host fall 2-10x
while other jobs run; bench/accuracy.py and advisor/tests/test_accuracy.py time wall clock).

    python bench/cpu_seconds.py        # llama-cpp-python defaults: 1 decode thread, 2 prompt threads here
    python bench/cpu_seconds.py 1      # prompts on 1 thread: no OpenMP spin-waiting in the CPU time

Prompt rate per CPU-second x prompt threads is the rate an idle machine would reach if the threads scaled
perfectly; with 2 threads on a busy host it includes spin-waiting, so the 1-thread run is the cleaner figure.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.accuracy import model_paths  # noqa: E402


def main() -> None:
    import llama_cpp

    from advisor.estimate import Runtime, estimate
    from advisor.gguf_info import read_gguf
    from advisor.hardware import this_machine

    extra = {"n_threads_batch": int(sys.argv[1])} if len(sys.argv) > 1 else {}
    print(f"{'model':<30} {'threads':>8} {'decode/CPU-s':>13} {'est':>7} {'ratio':>6} "
          f"{'prompt/CPU-s x thr':>19} {'est':>7} {'ratio':>6}")
    for path in model_paths():
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, verbose=False, **extra)
        threads, batch_threads = llm.context_params.n_threads, llm.context_params.n_threads_batch
        tokens = llm.tokenize(b"The history of the city begins", add_bos=True)
        n, c0 = 0, 0.0
        for _ in llm.generate(tokens, temp=0.0, reset=True):
            if n == 0:
                c0 = time.process_time()   # the first token includes the prompt
            n += 1
            if n > 48:
                break
        decode = (n - 1) / (time.process_time() - c0)
        prompt = llm.tokenize(b"the quick brown fox jumps over a lazy dog and " * 256, add_bos=True)[:256]
        llm.reset()
        c0 = time.process_time()
        llm.eval(prompt)
        pp = len(prompt) / (time.process_time() - c0) * batch_threads
        llm.close()
        hw = this_machine(cpu_threads=2 * threads)   # decode threads = cpu_threads // 2, as llama-cpp-python
        e = estimate(read_gguf(path).architecture, None,
                     Runtime(n_ctx=512, n_gpu_layers=0, n_threads_batch=batch_threads, decode_context=40), hw)
        print(f"{path.name[:30]:<30} {threads:>3}/{batch_threads:<4} {decode:13.1f} {e.decode_tokens_per_s:7.1f} "
              f"{e.decode_tokens_per_s / decode:6.2f} {pp:19.1f} {e.prompt_tokens_per_s:7.1f} "
              f"{e.prompt_tokens_per_s / pp:6.2f}", flush=True)


if __name__ == "__main__":
    main()
