"""Atomic file writes: write beside the target, then rename over it.

An interrupted run (Ctrl-C, crash, full disk) never leaves a half-written file
where a complete one is expected; the temporary file is removed on failure and
the result gets ordinary permissions (``0666 & ~umask``), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neurorack.errors import NeurorackError


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is deleted.

    ``suffix`` lets writers that pick the format from the extension (matplotlib, libsndfile) see it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (strict: no NaN) to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@contextmanager
def exclusive_lock(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively while a job writes into ``folder``.

    Raises:
        NeurorackError: another process (``what``, e.g. "`neurorack notes render`") holds it.
    """
    with (Path(folder) / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise NeurorackError(f"{folder}: another {what} is writing to this folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
