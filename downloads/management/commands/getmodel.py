"""`manage.py getmodel REPO FILE` or `manage.py getmodel URL [--sha256 HEX]`: a GGUF into the models folder.

The same checks as the site's queue (free disk space, the hub's SHA-256, the GGUF header), with progress on
the terminal. Interrupted (Ctrl-C, a broken connection), it keeps the bytes it has; run it again to resume.
It works in the foreground, without the site's queue, so it needs no running site.
"""

from django.core.management.base import BaseCommand, CommandError

from downloads import runner, services
from downloads.models import Download, State


class Command(BaseCommand):
    help = "Download a GGUF model from a Hugging Face repository (REPO FILE) or an HTTPS URL into the models folder."

    def add_arguments(self, parser):
        parser.add_argument("source", help="owner/name of a Hugging Face repository, or an https:// URL")
        parser.add_argument("file", nargs="?", default="", help="file name in the repository (.gguf)")
        parser.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
        parser.add_argument("--sha256", default="", help="with a URL: the file's SHA-256, checked at the end")

    def handle(self, source, file, revision, sha256, **options):
        is_url = source.startswith(("https://", "http://"))
        if not is_url and not file:
            raise CommandError("Give the file name after the repository: getmodel owner/name file.gguf")
        try:
            name, parts = services.resolve(repo="" if is_url else source, file_name=file, revision=revision,
                                           url=source if is_url else "", sha256=sha256)
            # A failed earlier try of the same file kept its bytes under its id: this run resumes from them.
            previous = Download.objects.filter(file_name=name, state=State.FAILED).order_by("-created_at").first()
            resumable = Download.objects.active().filter(file_name=name).first()
            if resumable is not None:
                raise CommandError(f"{name} is already being downloaded by the site; see its Models page.")
            services.check_room(parts)
        except services.Refused as exc:
            raise CommandError(str(exc)) from None
        # A record like the site's, run here in the foreground: the same code path, the same checks.
        download = previous or Download(file_name=name)
        download.repo, download.revision = ("", "") if is_url else (source, revision)
        download.url, download.expected_sha256 = (source if is_url else ""), sha256.lower()
        download.parts = [p.as_dict() for p in parts]
        download.total_bytes = sum(p.size or 0 for p in parts)
        download.state, download.error = State.RUNNING, ""
        download.save()
        total = download.total_bytes
        self.stdout.write(f"Downloading {name} ({total / 1e6:.1f} MB) into the models folder…")
        reporter = _Reporter(download, total, self.stdout)
        reporter.start()
        try:
            runner.run(download)
        except KeyboardInterrupt:
            Download.objects.filter(pk=download.pk).update(state=State.FAILED, error="Interrupted on the terminal.")
            raise CommandError("Interrupted: run the same command again to resume.") from None
        finally:
            reporter.stop()
        download.refresh_from_db()
        if download.state != State.DONE:
            raise CommandError(download.error or f"The download ended {download.state}.")
        self.stdout.write(self.style.SUCCESS(f"{name} is in the models folder; load it on the Models page."))


class _Reporter:
    """One line of progress on the terminal, redrawn every half second from the record the runner saves."""

    def __init__(self, download, total, out):
        import threading

        self.download, self.total, self.out = download, total, out
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join(2)
        self.out.write("")

    def loop(self):
        from django.db import close_old_connections

        while not self.done.wait(0.5):
            row = Download.objects.filter(pk=self.download.pk).values("done_bytes", "bytes_per_s", "state").first()
            if not row:
                break
            done, speed = row["done_bytes"], row["bytes_per_s"]
            left = f", {int((self.total - done) / speed)} s left" if speed > 0 and self.total else ""
            percent = 100 * done / self.total if self.total else 0
            line = (f"\r  {percent:5.1f}%  {done / 1e6:8.1f} / {self.total / 1e6:.1f} MB  "
                    f"{speed / 1e6:6.2f} MB/s{left}   ")
            if row["state"] == State.VERIFYING:
                line = "\r  checking the SHA-256 and the GGUF header…                          "
            self.out.write(line, ending="")
            self.out.flush()
        close_old_connections()
