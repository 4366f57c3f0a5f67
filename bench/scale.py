"""Workers through Redis, side by side: 1, 2 and 4 concurrent chats with one LLM worker and with two.

    .venv/bin/python bench/scale.py [--max-tokens 64] [--rounds 3]

Starts Debian's redis-server on loopback, the site (`python -m llmsite.serve`) with REDIS_URL, and
`manage.py llmworker` processes with the default SmolLM2 model, each in a data folder of its own, as on
machines of their own. Each round sends N chats at once from N people over the real WebSocket; the client
measures time to first token (send -> first token frame) and aggregate decode tokens/s (the tokens of all
N replies, as the `done` frames count them, over the round's wall time). Medians of the rounds.

On one machine the workers share its cores. The single worker gets llama-cpp-python's default threads
(half the cores to decode, all of them for prompts); each of the two gets half the cores (`--threads`),
so neither setup has more cores than the machine: the comparison is one box against the same box split
in two, which is what two small GPU-less machines would give. Oversubscribed cores make llama.cpp's
spinning threads stall each other (seconds per token), so the split matters.
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


def measure(site, cookies: list[str], args) -> dict[int, tuple[float, float]]:
    asyncio.run(one_round(site.url, cookies[:1], 8))  # warm-up: every worker has run once
    asyncio.run(one_round(site.url, cookies[:2], 8))
    table = {}
    for concurrent in CONCURRENCY:
        rounds = [asyncio.run(one_round(site.url, cookies[:concurrent], args.max_tokens)) for _ in range(args.rounds)]
        table[concurrent] = (statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds))
        print(f"  {concurrent} concurrent: {table[concurrent][0]:.1f} tok/s, TTFT {table[concurrent][1]:.0f} ms",
              flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path(REDIS_SERVER).exists():
        sys.exit("bench/scale.py needs Debian's redis-server (apt-get install redis-server)")

    with tempfile.TemporaryDirectory(prefix="llmsite-scale-") as folder:
        folder = Path(folder)
        (folder / "redis").mkdir()
        (folder / "site").mkdir()
        redis = RedisServer(folder / "redis")
        site = RunningSite(folder / "site", [sys.executable, "-m", "llmsite.serve"],
                           env={"REDIS_URL": redis.url, "LLMSITE_REDIS_KEY": secrets.token_urlsafe(32),
                                "LLMSITE_WORKER_ANNOUNCE_MS": "500",
                                "LLMSITE_WORKER_TIMEOUT_MS": "5000", "LLMSITE_RATE_PER_MINUTE": "100000"})
        workers = []
        try:
            prepare_data_dir(site.data_dir, site.env)
            site.start()
            site.staff_cookie = session_cookies(site, "scalestaff", 1, staff=True)[0]
            cookies = session_cookies(site, "scale", max(CONCURRENCY))
            results = {}
            half = max(1, (os.cpu_count() or 2) // 2)
            for count, names, threads in ((1, ["one"], None), (2, ["half-a", "half-b"], half)):
                for worker in workers:
                    worker.stop()
                workers = []
                for name in names:
                    (folder / name).mkdir()
                    workers.append(WorkerProcess(name, folder / name, site.env, threads=threads))
                wait_for_workers(site, set(names))
                print(f"{count} worker(s), threads each: {threads or 'default'}", flush=True)
                results[count] = measure(site, cookies, args)
        finally:
            for worker in workers:
                worker.stop()
            site.stop()
            redis.stop()

    print(f"\nAggregate decode tokens/s and median time to first token, {args.max_tokens} tokens per reply, "
          f"median of {args.rounds} rounds (SmolLM2-135M Q4_1, CPU)")
    print(f"{'chats at once':>14} | {'1 worker tok/s':>14} {'TTFT ms':>8} | {'2 workers tok/s':>15} {'TTFT ms':>8} |"
          f" {'2 vs 1':>6}")
    for concurrent in CONCURRENCY:
        (one_tps, one_ttft), (two_tps, two_ttft) = results[1][concurrent], results[2][concurrent]
        print(f"{concurrent:>14} | {one_tps:>14.1f} {one_ttft:>8.0f} | {two_tps:>15.1f} {two_ttft:>8.0f} |"
              f" {two_tps / one_tps:>5.2f}x")


if __name__ == "__main__":
    main()
