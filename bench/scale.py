"""Workers through Redis, side by side: 1, 2 and 4 concurrent chats with one LLM worker and with two.

    .venv/bin/python bench/scale.py [--max-tokens 64] [--rounds 3] [--parallel 1] [--threads N]

Starts three stacks at once, one per setup, each with its own Debian redis-server on loopback, its own site
(`python -m llmsite.serve` with REDIS_URL) and its own `manage.py llmworker` processes with the default
SmolLM2 model, each in a data folder of its own, as on machines of their own: one worker (with two thread
counts), and two workers. Each round sends N chats at once from N people over the real WebSocket; the
client measures time to first token (send -> first token frame) and aggregate decode tokens/s (the tokens
of all N replies, as the `done` frames count them, over the round's wall time). Medians of the rounds.

Threads are given, never left to llama-cpp-python's default (`llmworker --threads`, which sets decode and
prompt threads alike), and both splits are reported: one worker with all `--threads` (default: every core)
against two with half each, the same total threads, so "2 vs 1" compares worker counts, not thread counts;
and one worker with half of them, the same threads per worker. Oversubscribed cores make llama.cpp's
spinning threads stall each other (seconds per token), which is why no setup gets more than the machine has;
on a machine others are using, the all-threads worker is the one that suffers. The setups are interleaved:
every round runs each width on every stack back to back, the order rotating from round to round, so a change
in the machine's load (it may be shared) falls on all alike; an idle stack's workers only wait on Redis.
`--parallel` is each worker's slots (default 1: one reply at a time per worker, so the comparison is about
workers; the batching engine has its own benchmark, bench/concurrency.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import REDIS_SERVER, RedisServer, RunningSite, prepare_data_dir  # noqa: E402
from tests.test_redis_workers import WorkerProcess, wait_for_workers  # noqa: E402
from tests.wsclient import Socket, session_cookies  # noqa: E402

CONCURRENCY = (1, 2, 4)
PROMPT = "Write a short story about a lighthouse keeper, person {n}."


async def one_chat(socket: Socket, n: int, max_tokens: int) -> tuple[float, int]:
    sent = time.perf_counter()
    await socket.ws.send({"type": "send", "conversation": None, "content": PROMPT.format(n=n),
                          "options": {"max_tokens": max_tokens, "seed": n, "temperature": 0.7}})
    accepted = await socket.until("accepted", "error")
    if accepted["type"] == "error":
        raise RuntimeError(f"refused: {accepted}")
    first = None
    while True:
        frame = await socket.until("token", "done", "error")
        if frame["type"] == "token" and first is None:
            first = time.perf_counter()
        elif frame["type"] == "done":
            return ((first or time.perf_counter()) - sent) * 1000, frame["stats"]["tokens"]
        elif frame["type"] == "error":
            raise RuntimeError(f"reply failed: {frame}")


async def one_round(url: str, cookies: list[str], max_tokens: int) -> tuple[float, float]:
    """(aggregate decode tokens/s, median TTFT ms) for len(cookies) chats sent at once."""
    sockets = [await Socket.open(url, cookie) for cookie in cookies]
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(one_chat(s, n, max_tokens) for n, s in enumerate(sockets)))
        wall = time.perf_counter() - started
    finally:
        for socket in sockets:
            socket.close()
    return sum(tokens for _ttft, tokens in results) / wall, statistics.median(ttft for ttft, _ in results)


class Stack:
    """One setup: a Redis, a site and its workers, all running; rounds are asked of it one at a time."""

    def __init__(self, folder: Path, label: str, names: list[str], threads: int, parallel: int):
        self.label, self.names, self.threads = label, names, threads
        folder.mkdir()
        (folder / "redis").mkdir()
        (folder / "site").mkdir()
        self.redis = RedisServer(folder / "redis")
        self.site = RunningSite(folder / "site", [sys.executable, "-m", "llmsite.serve"],
                                env={"REDIS_URL": self.redis.url, "LLMSITE_REDIS_KEY": secrets.token_urlsafe(32),
                                     "LLMSITE_WORKER_ANNOUNCE_MS": "500", "LLMSITE_WORKER_TIMEOUT_MS": "5000",
                                     "LLMSITE_RATE_PER_MINUTE": "100000"})
        self.workers = []
        prepare_data_dir(self.site.data_dir, self.site.env)
        self.site.start()
        self.site.staff_cookie = session_cookies(self.site, "scalestaff", 1, staff=True)[0]
        self.cookies = session_cookies(self.site, "scale", max(CONCURRENCY))
        for name in names:
            (folder / name).mkdir()
            self.workers.append(WorkerProcess(name, folder / name, self.site.env, threads=threads,
                                              args=("--parallel", str(parallel))))
        wait_for_workers(self.site, set(names))
        asyncio.run(one_round(self.site.url, self.cookies[:1], 8))  # warm-up: every worker has run once
        asyncio.run(one_round(self.site.url, self.cookies[:len(names)], 8))

    def round(self, concurrent: int, max_tokens: int) -> tuple[float, float]:
        return asyncio.run(one_round(self.site.url, self.cookies[:concurrent], max_tokens))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.site.stop()
        self.redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1, help="slots per worker (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="CPU threads per setup, split evenly between its workers (default: all cores)")
    args = parser.parse_args()
    if not Path(REDIS_SERVER).exists():
        sys.exit("bench/scale.py needs Debian's redis-server (apt-get install redis-server)")
    half = max(1, args.threads // 2)

    with tempfile.TemporaryDirectory(prefix="llmsite-scale-") as folder:
        folder = Path(folder)
        stacks = []
        try:
            stacks.append(Stack(folder / "one", "1 worker", ["one"], args.threads, args.parallel))
            stacks.append(Stack(folder / "one-half", "1 worker, half", ["one-half"], half, args.parallel))
            stacks.append(Stack(folder / "two", "2 workers", ["half-a", "half-b"], half, args.parallel))
            for stack in stacks:
                print(f"{stack.label}: {len(stack.names)} x {stack.threads} threads, {args.parallel} slot(s) each",
                      flush=True)
            samples = {(stack.label, n): [] for stack in stacks for n in CONCURRENCY}
            for number in range(args.rounds):
                shift = number % len(stacks)
                order = stacks[shift:] + stacks[:shift]  # who goes first rotates
                for concurrent in CONCURRENCY:
                    for stack in order:
                        result = stack.round(concurrent, args.max_tokens)
                        samples[(stack.label, concurrent)].append(result)
                        print(f"  round {number + 1}, {stack.label}, {concurrent} at once: {result[0]:.1f} tok/s, "
                              f"TTFT {result[1]:.0f} ms", flush=True)
        finally:
            for stack in stacks:
                stack.stop()

    def median(label, concurrent):
        rounds = samples[(label, concurrent)]
        return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)

    print(f"\nAggregate decode tokens/s and median time to first token, {args.max_tokens} tokens per reply, "
          f"median of {args.rounds} interleaved rounds (SmolLM2-135M Q4_1, CPU), {args.parallel} slot(s) per "
          f"worker. 2 vs 1 at the same total threads ({args.threads}: 1 worker x {args.threads} against "
          f"2 x {half}) and at the same threads per worker (1 x {half} against 2 x {half})")
    print(f"{'chats':>5} | {f'1x{args.threads} tok/s':>11} {'TTFT ms':>8} | {f'1x{half} tok/s':>11} {'TTFT ms':>8} | "
          f"{f'2x{half} tok/s':>11} {'TTFT ms':>8} | {'same total':>10} {'same each':>10}")
    for concurrent in CONCURRENCY:
        (one, one_ttft), (low, low_ttft), (two, two_ttft) = (
            median(label, concurrent) for label in ("1 worker", "1 worker, half", "2 workers"))
        print(f"{concurrent:>5} | {one:>11.1f} {one_ttft:>8.0f} | {low:>11.1f} {low_ttft:>8.0f} | "
              f"{two:>11.1f} {two_ttft:>8.0f} | {two / one:>9.2f}x {two / low:>9.2f}x")

if __name__ == "__main__":
    main()
