"""The README's first command, run the way a newcomer runs it."""

import json
import re
import urllib.request

from tests.conftest import RunningSite


def fetch(url: str) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_make_run_serves_home_healthz_and_static_files(tmp_path):
    site = RunningSite(tmp_path, ["make", "--no-print-directory", "run"]).start(timeout=600)
    try:
        status, _, body = fetch(site.url + "/")
        assert status == 200
        html = body.decode()
        assert "What can my GPU run?" in html

        status, _, body = fetch(site.url + "/healthz")
        health = json.loads(body)
        assert status == 200
        assert health["database"] is True
        assert isinstance(health["gpus"], list)

        # Static files carry hashed names (whitenoise's manifest storage) and are served by the site itself.
        stylesheet = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', html)
        assert stylesheet, "the home page links a hashed stylesheet"
        status, headers, body = fetch(site.url + stylesheet.group(1))
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        assert b"prefers-color-scheme: dark" in body
        assert "max-age" in headers.get("Cache-Control", "")
    finally:
        site.stop()
    output = site.output()
    assert f"http://127.0.0.1:{site.port}/" in output, "make run prints the address to open"
    assert (tmp_path / "secret_key").exists(), "the secret key is generated into the data folder"
