"""The data folder holds the database (sessions included) and the secret key: only this account reads it.

A new data folder is created 0700 (settings.py) and the SQLite database file 0600 before SQLite opens it;
SQLite gives the -wal, -shm and journal files it creates the database file's mode. A folder or database
that already exists with looser modes is left alone (someone may have chosen them) but warned about at
start-up, with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def create_private_file(name: str | os.PathLike) -> None:
    """Create an empty file readable by this account only, unless it exists (or is SQLite's :memory:)."""
    path = Path(name)
    if str(name) in ("", ":memory:") or str(name).startswith("file:") or not path.parent.is_dir():
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def loose_modes(data_dir: Path, database: str | os.PathLike | None) -> list[str]:
    """Warnings, one per path other local accounts can read (or enter), with how to fix it."""
    found = []
    paths = [data_dir]
    if database:
        paths += [Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS]
    paths.append(data_dir / "secret_key")
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            wanted = 0o700 if path.is_dir() else 0o600
            found.append(f"{path} has mode {mode:04o}: other accounts on this machine can "
                         f"{'enter it' if path.is_dir() else 'read it'} (sessions, password hashes, the secret key). "
                         f"Fix: chmod {wanted:o} {path}")
    return found
