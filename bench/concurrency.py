"""Several chats at once on one worker: the site with continuous batching, against its ceiling and against
one reply at a time.

    .venv/bin/python bench/concurrency.py [--max-tokens 64] [--rounds 2] [--n-ctx 1024]

For 1, 2, 4 and 8 chats sent at once it prints aggregate decode tokens/s (the tokens of all replies, as
their stats count them, over the round's wall time) and time to first token p50/p95 (send -> first text),
for three setups with the default SmolLM2 model on the CPU, each with llama-cpp-python's default threads:

  ceiling    chat/worker/engine.py in this process, no site: the same batched decode, nothing around it;
  site       `python -m llmsite.serve` with LLMSITE_PARALLEL=8, chats over the real WebSocket
             (tests/wsclient.py), one person per chat;
  site, P=1  the same site with LLMSITE_PARALLEL=1: replies one after the other, later ones queued.

Each setup runs alone (the others are stopped), so they do not share the cores. Medians over the rounds.

    .venv/bin/python bench/concurrency.py --long [--long-tokens 3000] [--turns 10]

The long-conversation case instead: one person's conversation that opens with a document of about 3,000
prompt tokens, then asks short follow-ups, while a second person chats between every two of its turns. It
prints the time to first token of each follow-up with the KV cache per conversation (LLMSITE_PARALLEL=4:
the other person gets a slot of their own, the conversation's cache stays) and without it (LLMSITE_PARALLEL=1:
the other person's turn takes the one slot, so every follow-up evaluates the whole prompt again).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import RunningSite, prepare_data_dir  # noqa: E402
from tests.wsclient import Socket, session_cookies  # noqa: E402

WIDTHS = (1, 2, 4, 8)
PROMPT = "Write a short story about a lighthouse keeper, person {n}."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(rounds: list[tuple[float, list[float]]]) -> tuple[float, float, float]:
    """(median tok/s, median p50 TTFT, median p95 TTFT) over rounds of (tok/s, [ttft ms])."""
    return (statistics.median(r[0] for r in rounds),
            statistics.median(percentile(r[1], 0.5) for r in rounds),
            statistics.median(percentile(r[1], 0.95) for r in rounds))


# --- the ceiling: the engine, no site ----------------------------------------------------------------------
def ceiling(args, round_id: list) -> dict[int, tuple]:
    import llama_cpp

    from advisor.modelfiles import default_model_file
    from chat.worker.engine import Engine
    from chat.worker.process import cpu_extra_buffers

    default_params = llama_cpp.llama_model_default_params
    if not cpu_extra_buffers():  # as the worker loads it (chat/worker/process.py: AMX)
        def without_extra_buffers():
            params = default_params()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama_cpp.llama_model_default_params = without_extra_buffers
    try:
        llama = llama_cpp.Llama(model_path=str(default_model_file()), n_ctx=256, verbose=False)
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = default_params
    events: list[dict] = []
    engine = Engine(llama, max(WIDTHS), args.n_ctx, emit=events.append)

    def one_round(width: int) -> tuple[float, list[float]]:
        events.clear()
        started = time.perf_counter()
        jobs = []
        for n in range(width):
            round_id[0] += 1
            job = round_id[0]
            jobs.append(job)
            engine.submit(job, [{"role": "user", "content": PROMPT.format(n=job)}],
                          {"max_tokens": args.max_tokens, "seed": n, "temperature": 0.7})
        submitted = {job: started for job in jobs}
        first: dict[int, float] = {}
        while engine.step():
            now = time.perf_counter()
            for event in events:
                if event["ev"] == "token" and event["job"] not in first:
                    first[event["job"]] = now
        wall = time.perf_counter() - started
        tokens = sum(e["stats"]["tokens"] for e in events if e["ev"] == "done")
        return tokens / wall, [(first[j] - submitted[j]) * 1000 for j in jobs if j in first]

    try:
        one_round(2)  # warm-up
        return {w: summary([one_round(w) for _ in range(args.rounds)]) for w in WIDTHS}
    finally:
        engine.close()
        llama.close()


# --- the site ------------------------------------------------------------------------------------------------
async def one_chat(socket: Socket, n: int, max_tokens: int) -> tuple[float, int]:
    sent = time.perf_counter()
    await socket.ws.send({"type": "send", "conversation": None, "content": PROMPT.format(n=n),
                          "options": {"max_tokens": max_tokens, "seed": n, "temperature": 0.7}})
    first = None
    while True:
        frame = await socket.until("token", "done", "error")
        if frame["type"] == "token" and first is None:
            first = time.perf_counter()
        elif frame["type"] == "done":
            return ((first or time.perf_counter()) - sent) * 1000, frame["stats"]["tokens"]
        elif frame["type"] == "error":
            raise RuntimeError(f"reply failed: {frame}")


async def site_round(url: str, cookies: list[str], max_tokens: int, round_id: list) -> tuple[float, list[float]]:
    sockets = [await Socket.open(url, cookie) for cookie in cookies]
    try:
        numbers = []
        for _ in sockets:
            round_id[0] += 1
            numbers.append(round_id[0])
        started = time.perf_counter()
        results = await asyncio.gather(*(one_chat(s, n, max_tokens) for n, s in zip(numbers, sockets, strict=True)))
        wall = time.perf_counter() - started
    finally:
        for socket in sockets:
            socket.close()
    return sum(tokens for _ttft, tokens in results) / wall, [ttft for ttft, _ in results]


def through_site(folder: Path, parallel: int, args, round_id: list) -> dict[int, tuple]:
    (folder / f"site-{parallel}").mkdir()
    site = RunningSite(folder / f"site-{parallel}", [sys.executable, "-m", "llmsite.serve"],
                       env={"LLMSITE_PARALLEL": str(parallel), "LLMSITE_N_CTX": str(args.n_ctx),
                            "LLMSITE_RATE_PER_MINUTE": "100000"})
    try:
        prepare_data_dir(site.data_dir, site.env)
        site.start()
        cookies = session_cookies(site, "bench", max(WIDTHS))
        asyncio.run(site_round(site.url, cookies[:2], 8, round_id))  # warm-up: the model is loaded
        table = {}
        for width in WIDTHS:
            rounds = [asyncio.run(site_round(site.url, cookies[:width], args.max_tokens, round_id))
                      for _ in range(args.rounds)]
            table[width] = summary(rounds)
            print(f"  site P={parallel}, {width} at once: {table[width][0]:.1f} tok/s", flush=True)
        return table
    finally:
        site.stop()


# --- the long conversation ----------------------------------------------------------------------------------
def long_document(target_tokens: int) -> str:
    """Numbered paragraphs, about `target_tokens` tokens of SmolLM2's tokenizer (its vocabulary alone is read)."""
    import llama_cpp

    from advisor.modelfiles import default_model_file

    vocab = llama_cpp.Llama(model_path=str(default_model_file()), vocab_only=True, verbose=False)
    paragraphs: list[str] = []
    text = ""
    while len(vocab.tokenize(text.encode(), add_bos=False)) < target_tokens:
        n = len(paragraphs) + 1
        paragraphs.append(f"Paragraph {n}. The keeper of lighthouse number {n} wrote in the log that the sea was "
                          f"{['calm', 'rough', 'grey', 'bright'][n % 4]} and that {n * 3} ships passed before dawn, "
                          f"{n % 5} of them fishing boats and the rest cargo ships bound for the northern ports.")
        text = "Read this log.\n\n" + "\n".join(paragraphs)
    vocab.close()
    return text


async def one_turn(socket: Socket, conversation, content: str, max_tokens: int) -> tuple[float, int]:
    """(time to first text in ms, the conversation) for one message."""
    sent = time.perf_counter()
    await socket.ws.send({"type": "send", "conversation": conversation, "content": content,
                          "options": {"max_tokens": max_tokens, "temperature": 0}})
    first = None
    while True:
        frame = await socket.until("accepted", "token", "done", "error")
        if frame["type"] == "accepted":
            conversation = frame["conversation"]
        elif frame["type"] == "token" and first is None:
            first = time.perf_counter()
        elif frame["type"] == "done":
            return ((first or time.perf_counter()) - sent) * 1000, conversation
        elif frame["type"] == "error":
            raise RuntimeError(f"reply failed: {frame}")


async def long_conversation(url: str, cookies: list[str], document: str, turns: int) -> list[float]:
    """Time to first token of every turn of the long conversation; another person chats between turns."""
    main, other = await Socket.open(url, cookies[0]), await Socket.open(url, cookies[1])
    try:
        conversation, other_conversation, ttfts = None, None, []
        for turn in range(turns):
            content = document + "\n\nWhat did the keeper of lighthouse 1 see?" if turn == 0 else \
                f"And the keeper of lighthouse {turn + 1}?"
            ttft, conversation = await one_turn(main, conversation, content, 16)
            ttfts.append(ttft)
            print(f"    turn {turn + 1}: first token after {ttft:.0f} ms", flush=True)
            _ttft, other_conversation = await one_turn(other, other_conversation, "Say hello in one word.", 4)
        return ttfts
    finally:
        main.close()
        other.close()


def long_through_site(folder: Path, parallel: int, document: str, args) -> list[float]:
    (folder / f"long-{parallel}").mkdir()
    site = RunningSite(folder / f"long-{parallel}", [sys.executable, "-m", "llmsite.serve"],
                       env={"LLMSITE_PARALLEL": str(parallel), "LLMSITE_N_CTX": str(args.long_n_ctx),
                            "LLMSITE_RATE_PER_MINUTE": "100000"})
    try:
        prepare_data_dir(site.data_dir, site.env)
        site.start()
        cookies = session_cookies(site, "long", 2)
        asyncio.run(site_round(site.url, cookies[:1], 2, [10_000]))  # warm-up: the model is loaded
        print(f"  LLMSITE_PARALLEL={parallel}:", flush=True)
        return asyncio.run(long_conversation(site.url, cookies, document, args.turns))
    finally:
        site.stop()


def long_case(args) -> None:
    document = long_document(args.long_tokens)
    with tempfile.TemporaryDirectory(prefix="llmsite-long-") as folder:
        cached = long_through_site(Path(folder), 4, document, args)
        uncached = long_through_site(Path(folder), 1, document, args)
    print(f"\nLong conversation: a {args.long_tokens}-token document, then {args.turns - 1} follow-ups, another "
          f"person chatting between turns (SmolLM2-135M Q4_1, CPU, n_ctx {args.long_n_ctx} per slot).")
    print(f"{'turn':>4} | {'with cache ms':>13} | {'without ms':>10} | {'ratio':>5}")
    for turn, (a, b) in enumerate(zip(cached, uncached, strict=True), start=1):
        print(f"{turn:>4} | {a:>13.0f} | {b:>10.0f} | {a / b:>5.2f}")
    follow_cached, follow_uncached = statistics.median(cached[1:]), statistics.median(uncached[1:])
    print(f"follow-ups, median: {follow_cached:.0f} ms with the cache, {follow_uncached:.0f} ms without: "
          f"{follow_cached / follow_uncached:.3f} (target: at most 0.25)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=1024, help="context per slot (%(default)s)")
    parser.add_argument("--long", action="store_true", help="the long-conversation case only")
    parser.add_argument("--long-tokens", type=int, default=3000, help="the long conversation's first prompt")
    parser.add_argument("--turns", type=int, default=10, help="turns of the long conversation")
    parser.add_argument("--long-n-ctx", type=int, default=4096, help="context per slot in the long case")
    args = parser.parse_args()
    if args.long:
        long_case(args)
        return
    round_id = [0]
    results = {"ceiling": ceiling(args, round_id)}
    print("  ceiling done", flush=True)
    with tempfile.TemporaryDirectory(prefix="llmsite-concurrency-") as folder:
        results["site"] = through_site(Path(folder), max(WIDTHS), args, round_id)
        results["site P=1"] = through_site(Path(folder), 1, args, round_id)

    print(f"\nAggregate decode tok/s and time to first token p50/p95 (ms), {args.max_tokens} tokens per reply, "
          f"median of {args.rounds} rounds (SmolLM2-135M Q4_1, CPU, n_ctx {args.n_ctx} per slot)")
    header = f"{'chats':>5}"
    for name in results:
        header += f" | {name + ' tok/s':>15} {'p50':>6} {'p95':>6}"
    print(header + f" | {'site/ceiling':>12}")
    for width in WIDTHS:
        line = f"{width:>5}"
        for name in results:
            tps, p50, p95 = results[name][width]
            line += f" | {tps:>15.1f} {p50:>6.0f} {p95:>6.0f}"
        print(line + f" | {results['site'][width][0] / results['ceiling'][width][0]:>12.2f}")


if __name__ == "__main__":
    main()
