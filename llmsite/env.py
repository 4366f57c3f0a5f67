"""Typed reads of environment variables for settings.py.

A bad value stops start-up with ImproperlyConfigured naming the variable, so a typo in a deployment
is found at once rather than as odd behaviour later.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}.") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}; got {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_dir(name: str, default: Path, mode: int = 0o777) -> Path:
    """A directory that is created if missing (with `mode`, less the umask); a path that exists as a file
    is an error."""
    raw = os.environ.get(name)
    path = Path(raw).expanduser() if raw else default
    if path.exists() and not path.is_dir():
        raise ImproperlyConfigured(f"{name} must be a directory; {str(path)!r} is a file.")
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}: cannot create directory {str(path)!r}: {exc.strerror}.") from None
    return path.resolve()


def secret_key(data_dir: Path) -> str:
    """DJANGO_SECRET_KEY if given; otherwise a key generated on first start and kept in the data dir."""
    given = os.environ.get("DJANGO_SECRET_KEY")
    if given:
        return given
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    from django.core.management.utils import get_random_secret_key

    key = get_random_secret_key()
    # Created with 0600 so other local users cannot read it; O_EXCL avoids two processes racing.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
