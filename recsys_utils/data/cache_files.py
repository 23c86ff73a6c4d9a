"""Putting an archive's files into the data cache without ever touching a file the project did not write.

:func:`extract_into_cache` extracts an archive (safely, :func:`~recsys_utils.data.download.safe_extract`)
into a fresh hidden staging folder beside the cache, then moves the extracted files one by one into
the cache folder (``data/ml-100k/``). The cache folder itself is never deleted: a user's own
files in it (notes, an edited copy) stay. A file already there is replaced only when the project
wrote it and it is unchanged since (its SHA-256 is in the folder's manifest,
:data:`MANIFEST`) or when it already holds the same bytes; anything else is refused with a
message naming the file, before anything is moved. The marker file (``u.data``) is moved last, so
an interrupted install never looks complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from recsys_utils.core.io import atomic_write_json
from recsys_utils.data.download import BadArchiveError, file_hashes, safe_extract

#: the list of the files the project wrote into a cache folder, with their SHA-256
MANIFEST = ".recsys-extracted.json"


def read_manifest(folder: Path) -> dict:
    """``{"archive_sha256": ..., "files": {relative path: sha256}}`` of a cache folder (empty if none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return {"files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"files": {}}  # an unreadable manifest vouches for nothing: every file counts as the user's
    return data if isinstance(data.get("files"), dict) else {"files": {}}


def extract_into_cache(archive: Path, target: Path, marker: str, name: str, reuse: bool = True) -> Path:
    """Install the folder of ``archive`` that holds ``marker`` as ``target``; return ``target``.

    With ``reuse``, a ``target`` that already holds ``marker`` is returned as it is; without, it
    is reused only when it was installed from an archive with the same SHA-256 (an explicit
    ``path=`` archive must never be answered by a cache of another one).
    """
    archive, target = Path(archive), Path(target)
    if (target / marker).is_file():
        if reuse or read_manifest(target).get("archive_sha256") == file_hashes(archive)["sha256"]:
            return target
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; move it away to extract {archive}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".unzip", dir=target.parent))
    try:  # the staging folder is new and holds only what was extracted: removing it loses nothing
        files = safe_extract(archive, staging / "files")
        found = sorted(files.rglob(marker), key=lambda p: len(p.parts))
        if not found:
            raise BadArchiveError(f"{archive}: no {marker} inside (is this the {name} archive?)")
        _install(found[0].parent, target, marker, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _install(source: Path, target: Path, marker: str, archive: Path) -> None:
    """Move the files under ``source`` into ``target`` (see the module docstring for the rules)."""
    files = sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: p.name == marker)
    relative = [p.relative_to(source).as_posix() for p in files]
    hashes = {rel: file_hashes(p)["sha256"] for rel, p in zip(relative, files, strict=True)}
    owned = read_manifest(target)["files"]
    refused = [target / rel for rel in relative if not _replaceable(target / rel, hashes[rel], owned.get(rel))]
    if refused:
        raise FileExistsError(f"{refused[0]} exists and was not written by this project (it differs from the copy "
                              f"in {archive}); it is left as it is: move it away or delete it, then load again "
                              f"({len(refused)} such file(s): {', '.join(p.name for p in refused[:5])})")
    target.mkdir(parents=True, exist_ok=True)
    manifest = {"archive": archive.name, "archive_sha256": file_hashes(archive)["sha256"],
                "files": {**owned, **hashes}}
    for rel, path in zip(relative, files, strict=True):
        if rel == marker:  # the marker last, after the manifest: an interrupted install never looks complete
            atomic_write_json(target / MANIFEST, manifest)
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target / rel)  # a rename on one file system (atomic), else copy and delete


def _replaceable(dest: Path, new_hash: str, owned_hash: str | None) -> bool:
    """Whether ``dest`` may be overwritten: absent, already identical, or the project's own unchanged file."""
    if dest.is_symlink() or (dest.exists() and not dest.is_file()):
        return False
    if not dest.exists():
        return True
    current = file_hashes(dest)["sha256"]
    return current == new_hash or current == owned_hash


__all__ = ["MANIFEST", "extract_into_cache", "read_manifest"]
