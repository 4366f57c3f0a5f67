"""Settings come from the environment; a bad value stops start-up with the variable's name."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CHECK = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def start_django(tmp_path, **env):
    full_env = {**os.environ, "LLMSITE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmsite.settings", **env}
    return subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=full_env, capture_output=True, text=True)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEBUG", "maybe"),
        ("LLMSITE_N_CTX", "lots"),
        ("LLMSITE_N_GPU_LAYERS", "half"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("REDIS_URL", "localhost:6379"),
        ("CSRF_TRUSTED_ORIGINS", "example.org"),
        ("LOG_LEVEL", "LOUD"),
        ("LLMSITE_RATE_PER_MINUTE", "many"),
        ("LLMSITE_MAX_CONNECTIONS_PER_USER", "-1"),
        ("LLMSITE_MAX_TOKENS", "0"),
        ("LLMSITE_PARALLEL", "several"),
        ("LLMSITE_PARALLEL", "65"),
    ],
)
def test_it_refuses_to_start_with_a_bad_value_naming_the_variable(tmp_path, name, value):
    result = start_django(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]


def test_debug_is_off_unless_asked_for(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True,
        env={**env, "LLMSITE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmsite.settings"},
    )
    assert result.stdout.strip() == "False"
    assert start_django(tmp_path, DEBUG="1").stdout.strip() == "True"


def test_the_secret_key_is_generated_once_and_kept(tmp_path):
    read_key = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    env = {**os.environ, "LLMSITE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmsite.settings"}
    env.pop("DJANGO_SECRET_KEY", None)
    first = subprocess.run([sys.executable, "-c", read_key], cwd=ROOT, env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", read_key], cwd=ROOT, env=env, capture_output=True, text=True)
    assert len(first.stdout.strip()) >= 50
    assert first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0, "only the owner may read the key"


def test_sqlite_runs_in_wal_mode(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("write-ahead logging is a SQLite setting; this run uses " + connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0].lower() == "wal"
