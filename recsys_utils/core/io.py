"""Atomic file writes: a temporary file beside the target, renamed into place only on success.

``os.replace`` is atomic on one file system (POSIX ``rename(2)``), so a reader sees either the
old file or the complete new one, never a half-written file; an error inside the block deletes
the temporary file and leaves the old one untouched. The package's one writer of this kind:
downloads, dataset caches, the course's results file and checksum records all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: permissions of a written file (``mkstemp`` creates 0600; a result or cache file is world-readable)
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` only if the block succeeds.

    ``mode`` is ``"wb"`` or ``"w"`` (text; ``encoding`` defaults to UTF-8). The data are flushed
    and synced to disk before the rename, and the file gets :data:`FILE_MODE` permissions.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as UTF-8 JSON (strict: NaN and infinity refused) with a final newline, atomically."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


__all__ = ["FILE_MODE", "atomic_write", "atomic_write_json", "atomic_write_text"]
