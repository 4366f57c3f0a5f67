"""A local HTTP server in the Hugging Face hub's URL layout, for the download tests (run as its own process,
so a test can kill it mid-file).

    python tests/hfhub.py PORT CONFIG.json

CONFIG: {"files": {"owner/repo/file.gguf": "/path/on/disk"}, "corrupt": ["owner/repo/file.gguf"],
         "plain": {"name.gguf": "/path"}, "bytes_per_s": 0, "log": "/path/requests.log"}

Like the hub: HEAD or GET `/{repo}/resolve/{revision}/{file}` answers 302 to the file's content address with
`X-Repo-Commit`, `ETag`, and for the LFS file `X-Linked-Etag` (its SHA-256) and `X-Linked-Size`;
`/lfs/{sha256}` serves the bytes with `Content-Length`, `ETag`, `Accept-Ranges` and `Range` (206).
A "corrupt" file publishes the real hash but sends one byte changed. `/files/{name}` serves a plain URL.
Every request, whatever its method, is logged (method, host, path, Range, Authorization, User-Agent) so tests
can see where a resume started, where the token went and that nothing else was asked. The content address is
on the other loopback name (localhost / 127.0.0.1), as the hub's CDN is on another host.
"""

import hashlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Hub:
    def __init__(self, config: dict):
        self.files = {}  # "owner/repo/file" -> (path, sha256, corrupt)
        self.by_hash = {}
        for key, path in config.get("files", {}).items():
            digest = sha256_of(path)
            self.files[key] = (path, digest, key in config.get("corrupt", []))
            self.by_hash[digest] = path
        self.plain = config.get("plain", {})
        self.rate = config.get("bytes_per_s", 0)
        self.log = config.get("log")


class Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def do_POST(self):  # the hub's API (telemetry and the like): logged, then answered as unknown
        self.record()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.empty(404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})

    do_PUT = do_PATCH = do_DELETE = do_POST

    def record(self):
        if self.hub.log:
            with open(self.hub.log, "a") as log:
                log.write(json.dumps({"method": self.command, "path": self.path.split("?", 1)[0],
                                      "host": self.headers.get("Host"), "range": self.headers.get("Range"),
                                      "auth": self.headers.get("Authorization"),
                                      "user_agent": self.headers.get("User-Agent")}) + "\n")

    def route(self, head: bool):
        path = self.path.split("?", 1)[0]
        self.record()
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            key = "/".join([parts[0], parts[1], *parts[4:]])
            found = self.hub.files.get(key)
            if found is None:
                return self.empty(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
            file_path, digest, corrupt = found
            size = Path(file_path).stat().st_size
            # Like the hub's CDN, the content address is on another host (here: the other loopback name), so
            # clients do not follow it on a HEAD and keep the hub's headers, and send the token only to the hub.
            host = self.headers.get("Host", "")
            cdn = host.replace("127.0.0.1", "localhost") if "127.0.0.1" in host else host.replace("localhost",
                                                                                                   "127.0.0.1")
            where = "lfs-corrupt" if corrupt else "lfs"
            return self.empty(302, {"Location": f"http://{cdn}/{where}/{digest}", "X-Repo-Commit": COMMIT,
                                    "ETag": f'"{digest[:40]}"', "X-Linked-Etag": f'"{digest}"',
                                    "X-Linked-Size": str(size)})
        if len(parts) == 2 and parts[0] in ("lfs", "lfs-corrupt") and parts[1] in self.hub.by_hash:
            return self.send_file(self.hub.by_hash[parts[1]], head, parts[0] == "lfs-corrupt", etag=parts[1])
        if len(parts) == 2 and parts[0] == "files" and parts[1] in self.hub.plain:
            return self.send_file(self.hub.plain[parts[1]], head, False, etag=None)
        return self.empty(404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})

    def empty(self, status: int, headers: dict):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_file(self, file_path: str, head: bool, corrupt: bool, etag: str | None):
        size = Path(file_path).stat().st_size
        start = 0
        requested = self.headers.get("Range")
        if requested and requested.startswith("bytes=") and requested.endswith("-"):
            start = int(requested[6:-1])
            if start >= size:
                return self.empty(416, {"Content-Range": f"bytes */{size}"})
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if etag:
            self.send_header("ETag", f'"{etag}"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        if head:
            return
        block_size = 64 * 1024
        with open(file_path, "rb") as f:
            f.seek(start)
            offset = start
            began = time.monotonic()
            sent = 0
            while block := f.read(block_size):
                if corrupt and offset <= size // 2 < offset + len(block):
                    block = bytearray(block)
                    block[size // 2 - offset] ^= 0xFF
                    block = bytes(block)
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    return
                offset += len(block)
                sent += len(block)
                if self.hub.rate:
                    ahead = sent / self.hub.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)


def main():
    port, config_path = int(sys.argv[1]), sys.argv[2]
    Handler.hub = Hub(json.loads(Path(config_path).read_text()))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()


class HubServer:
    """Runs this file as a process on a free port; `kill()` ends it at once (mid-transfer), `start()` again
    serves the same files on the same port."""

    def __init__(self, folder: Path, config: dict, port: int | None = None):
        import socket

        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = folder / f"hub-{port}-requests.log"
        self.config_path = folder / f"hub-{port}.json"
        self.config_path.write_text(json.dumps({**config, "log": str(self.log_path)}))
        self.process = None

    def start(self) -> "HubServer":
        import subprocess

        self.process = subprocess.Popen([sys.executable, __file__, str(self.port), str(self.config_path)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the hub server did not start: {self.process.stdout.read()}")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def requests(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]
