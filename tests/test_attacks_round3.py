"""Attacks, round three: the surfaces added after issue 11 (the OpenAI-compatible API, model downloads, reply
versions over the socket), each made as a hostile person on the LAN would make it, against a real daphne
started as `make run` starts it (tests/conftest.py's RunningSite) with the real SmolLM2 model.

Everything is on loopback and bounded in bytes and in time. The hostile download server is a thread here.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RunningSite, prepare_data_dir
from tests.openai_people import api_people

BODY_LIMIT_MB = 4  # LLMSITE_MAX_REQUEST_BODY_MB of the site below: small, so a test sends little to pass it


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("round3-site")
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"],
                          env={"LLMSITE_MAX_REQUEST_BODY_MB": str(BODY_LIMIT_MB)})
    prepare_data_dir(data_dir, running.env)
    running.start()
    running.people = api_people(running, ["mallory"])
    running.staff = api_people(running, ["root"], staff=True)["root"]
    yield running
    running.stop()


def request(site, path: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
            timeout: float = 60):
    """(status, headers, body bytes) of one plain HTTP request."""
    req = urllib.request.Request(site.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def bearer(site, person: str = "mallory") -> dict:
    return {"Authorization": f"Bearer {site.people[person]['key']}", "Content-Type": "application/json"}


# --- the API's JSON -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("nesting", ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_deeper_than_the_stack_is_a_400_in_openais_shape_not_a_500(hostile_site, nesting):
    status, _headers, body = request(hostile_site, "/v1/chat/completions", method="POST",
                                     body=nesting.encode(), headers=bearer(hostile_site))
    assert status == 400, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "invalid_json"
