"""Fixtures for tests that meet the site the way a person does: a real server, a real browser."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = ROOT / "test-output"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def own_database_url(port: int) -> str | None:
    """On PostgreSQL, a fresh database for one server (on SQLite its data folder already gives it one)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    name = f"{config['NAME']}_site_{port}"
    with psycopg.connect(host=config["HOST"], port=config["PORT"], user=config["USER"],
                         password=config["PASSWORD"], dbname=config["NAME"], autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


class RunningSite:
    """A daphne server in its own process group, on a free port, with its own data folder and database."""

    def __init__(self, data_dir: Path, command: list[str], env: dict | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # One reply at a time unless a test asks for more: the browser tests watch replies wait in line (batching
        # several replies is tested in chat/tests/test_batching.py, tests/test_parallel_auto_browser.py and
        # measured by bench/concurrency.py).
        self.env = {**os.environ, "LLMSITE_DATA_DIR": str(data_dir), "PORT": str(self.port),
                    "LLMSITE_PARALLEL": os.environ.get("LLMSITE_PARALLEL", "1"), **(env or {})}
        database_url = own_database_url(self.port)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.log_path = data_dir / "server.log"
        self.command = command
        self.process = None

    def start(self, timeout: float = 300.0) -> "RunningSite":
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_http(self.url + "/healthz", self.process, timeout)
        except Exception:
            self.stop()
            raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-4000:]}") from None
        return self

    def manage(self, *args: str, input_text: str | None = None) -> str:
        """Run a management command against this site's database."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, input=input_text,
            capture_output=True, text=True, check=True,
        )
        return result.stdout

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()


def prepare_data_dir(data_dir: Path, env: dict) -> None:
    """What `make run` does before serving: migrate and collect static files."""
    for args in (["migrate", "--noinput"], ["collectstatic", "--noinput", "--verbosity", "0"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site served by daphne exactly as `make run` serves it, for browser and end-to-end tests."""
    data_dir = tmp_path_factory.mktemp("site-data")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"])
    prepare_data_dir(data_dir, running.env)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


def missing(message: str) -> None:
    """A system program a test needs is not there: in CI that fails the test, elsewhere it skips it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium through Playwright. Outside CI a missing browser skips; in CI it fails."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        missing(f"chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            missing(f"chromium did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    yield page
    context.close()


class RedisServer:
    """Debian's redis-server on a free loopback port, nothing written to disk."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = folder / "redis.log"
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--logfile", str(self.log_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real Redis server. Outside CI a missing redis-server skips; in CI it fails."""
    if not Path(REDIS_SERVER).exists():
        missing(f"redis-server not found at {REDIS_SERVER}: `make test` installs Debian's redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def pytest_collection_modifyitems(items):
    """Every test that uses the browser is marked `browser`, whether or not its file says so: `make
    test-postgres` leaves them out (pages touch the database only through views other tests cover)."""
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
