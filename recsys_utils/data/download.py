"""Safe downloads: checksummed, atomic, with progress; archives extracted without path escapes.

* :func:`download` streams a URL (``https://``, ``http://`` or ``file://``) into a temporary file
  beside the destination, hashing as it goes, checks the size and the published checksums and
  only then renames the file into place (``os.replace`` is atomic on one file system). A broken
  or interrupted download therefore never appears under its final name, and a checksum mismatch
  leaves nothing behind.
* :func:`safe_extract` checks every member of a zip archive before writing anything (no absolute
  paths, no ``..``, no links, nothing resolving outside the target) and extracts into a temporary
  folder that is renamed into place when complete.
* :func:`trust_on_first_use` covers sources that publish no checksum (UCI Online Retail): the
  size and SHA-256 of the first download are written to a small JSON file, and every later use of
  the file is checked against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's size or hash differs from the expected value."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder (or is a link/device)."""


def file_hashes(path: str | os.PathLike) -> dict[str, str | int]:
    """``{"size": bytes, "md5": hex, "sha256": hex}`` of a file, read in chunks."""
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify_file(path: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
                size: int | None = None) -> dict[str, str | int]:
    """Check a file against the expected size/hashes (those given); raise :class:`ChecksumError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    found = file_hashes(path)
    _compare(path, found, md5=md5, sha256=sha256, size=size)
    return found


def _compare(path: Path, found: dict, **expected) -> None:
    for key, want in expected.items():
        if want is None:
            continue
        got = found[key]
        same = int(got) == int(want) if key == "size" else str(got).lower() == str(want).lower()
        if not same:
            raise ChecksumError(f"{path}: {key} is {got}, expected {want} (corrupt or altered download; "
                                "delete the file and try again)")


def download(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
             size: int | None = None, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, verified against the checksums given.

    If ``dest`` already exists and matches, nothing is fetched. The bytes go to a hidden
    temporary file in ``dest``'s folder; on any error (network, interruption, size or checksum
    mismatch) that file is deleted and the exception propagates, so ``dest`` only ever holds a
    complete, verified file. Shows a ``tqdm`` progress bar when ``progress``.
    """
    dest = Path(dest)
    if url.split(":", 1)[0].lower() not in ("http", "https", "file"):
        raise ValueError(f"download: unsupported URL scheme in {url!r} (use https://, http:// or file://)")
    if dest.is_file():
        verify_file(dest, md5=md5, sha256=sha256, size=size)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        md5_h, sha_h, n = hashlib.md5(), hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, contextlib.closing(
                urllib.request.urlopen(url, timeout=timeout)) as response:  # noqa: S310 (http/file only)
            total = response.headers.get("Content-Length") if response.headers else None
            bar = _progress(total=int(total) if total and total.isdigit() else size, desc=dest.name,
                            enabled=progress)
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    md5_h.update(chunk)
                    sha_h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
            out.flush()
            os.fsync(out.fileno())
        _compare(dest, {"size": n, "md5": md5_h.hexdigest(), "sha256": sha_h.hexdigest()},
                 md5=md5, sha256=sha256, size=size)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dest


def _progress(total: int | None, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"download {desc}", unit="B", unit_scale=True, unit_divisor=1024)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _check_member(info: zipfile.ZipInfo, target: Path, archive: Path) -> PurePosixPath | None:
    """The member's safe relative path, or ``None`` for a folder entry; raise if unsafe."""
    name = info.filename.replace("\\", "/")
    where = f"{archive}: member {info.filename!r}"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{where} has an absolute path")
    parts = PurePosixPath(name).parts
    if any(part == ".." for part in parts):
        raise UnsafeArchiveError(f"{where} climbs out of the target folder ('..')")
    mode = info.external_attr >> 16
    if mode and (stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        raise UnsafeArchiveError(f"{where} is a link or device file")
    relative = PurePosixPath(*[p for p in parts if p not in ("", ".")])
    if not relative.parts:
        return None
    resolved = (target / relative).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchiveError(f"{where} resolves outside {target}")
    return None if info.is_dir() else relative


def _bounded_copy(src, dst, budget: int, archive: Path, member: str) -> int:
    """Copy at most ``budget`` bytes; raise :class:`UnsafeArchiveError` if the member holds more.

    The declared sizes in a zip's directory can lie (zip bombs), so the bytes actually
    decompressed are counted as well.
    """
    n = 0
    for chunk in iter(lambda: src.read(CHUNK), b""):
        n += len(chunk)
        if n > budget:
            raise UnsafeArchiveError(f"{archive}: member {member!r} decompresses past the size limit")
        dst.write(chunk)
    return n


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, max_bytes: int = 4 << 30,
                 max_members: int = 100_000) -> Path:
    """Extract a zip archive into ``target`` (created), refusing members that escape it.

    Every member is checked before anything is written; the archive is extracted into a
    temporary sibling folder which is renamed to ``target`` only when complete. ``max_bytes``
    bounds the total uncompressed size, both as declared and as actually decompressed, and
    ``max_members`` the number of entries (guards against zip bombs). Returns ``target``.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"safe_extract: {target} exists already; remove it to extract again")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive}: not a valid zip archive ({exc})") from exc
    with handle:
        infos = handle.infolist()
        members = [(info, _check_member(info, target, archive)) for info in infos]
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive}: {total:,} bytes uncompressed exceeds the limit "
                                     f"{max_bytes:,}")
        if len(infos) > max_members:
            raise UnsafeArchiveError(f"{archive}: {len(infos):,} members exceeds the limit {max_members:,}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
        written_total = 0
        try:
            for info, relative in members:
                if relative is None:
                    continue
                out_path = tmp / relative
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with handle.open(info) as src, open(out_path, "wb") as dst:
                    written = _bounded_copy(src, dst, max_bytes - written_total, archive, info.filename)
                written_total += written
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def zip_members(archive: str | os.PathLike) -> list[str]:
    """Names of the files in a zip archive (folders left out)."""
    with zipfile.ZipFile(archive) as handle:
        return [info.filename for info in handle.infolist() if not info.is_dir()]


def trust_on_first_use(path: str | os.PathLike, record: str | os.PathLike, source: str = "") -> dict:
    """Check ``path`` against the size/SHA-256 stored in ``record``; store them if there is none.

    For sources that publish no checksum: the first file seen is trusted and remembered, and any
    later change (a truncated copy, a silently updated upstream file) raises :class:`ChecksumError`.
    """
    path, record = Path(path), Path(record)
    found = file_hashes(path)
    if record.is_file():
        try:
            stored = json.loads(record.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{record}: not valid JSON ({exc}); delete it to trust the file again") from exc
        _compare(path, found, size=stored.get("size"), sha256=stored.get("sha256"))
        return stored
    entry = {"file": path.name, "size": found["size"], "sha256": found["sha256"], "source": source,
             "first_seen": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "note": "no published checksum: recorded on first download (trust on first use)"}
    record.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", suffix=".tmp", dir=record.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(entry, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, record)
    return entry
