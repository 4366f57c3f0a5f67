"""A fresh machine: `make run` checks what it needs before pip starts (scripts/check-prerequisites).

Each test runs with a PATH of its own that lacks the tools in question, and without apt-get, so nothing
is installed on this machine whoever runs the tests.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MAKE = shutil.which("make") or "/usr/bin/make"


def bin_with(tmp_path: Path, *tools: str) -> Path:
    """A folder holding python3 (this interpreter) and the named system tools, nothing else."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python3").symlink_to(Path(sys.executable).resolve())
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to build this test's PATH"
        (folder / tool).symlink_to(found)
    return folder


def run(command: list[str], path: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(path), "HOME": os.environ.get("HOME", "/tmp"), **env})


def test_it_names_the_packages_a_machine_without_compiler_and_cmake_lacks(tmp_path):
    result = run(["/bin/sh", "scripts/check-prerequisites", "venv", "build"], bin_with(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == "g++ cmake"


def test_it_names_nothing_when_everything_is_there(tmp_path):
    result = run(["/bin/sh", "scripts/check-prerequisites", "venv", "build"], bin_with(tmp_path, "c++", "cmake"))
    assert result.returncode == 0 and result.stdout.strip() == ""


def test_make_run_stops_with_one_line_naming_the_packages_before_creating_anything(tmp_path):
    venv = tmp_path / "venv"
    result = run([MAKE, "--no-print-directory", f"VENV={venv}", "run"], bin_with(tmp_path, "grep", "c++"))
    assert result.returncode != 0
    assert "Please install: cmake" in result.stdout.splitlines()
    assert not venv.exists(), "nothing is built before the prerequisites are there"


def test_without_msgfmt_the_site_is_built_in_english_with_a_warning(tmp_path):
    result = run([MAKE, "--no-print-directory", "-o", "install", "messages"], bin_with(tmp_path, "grep"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning: msgfmt (Debian package gettext) is missing: the site starts in English only." in result.stdout
