"""Safe downloads: checksummed, atomic, with progress; archives extracted without path escapes.

* :func:`download` streams a URL (``https://``, ``http://`` or ``file://``) into a temporary file
  beside the destination (:func:`~recsys_utils.core.io.atomic_write`), hashing as it goes, checks
  the size and the published checksums and only then renames the file into place (``os.replace``
  is atomic on one file system). A broken
  or interrupted download therefore never appears under its final name, and a checksum mismatch
  leaves nothing behind.
* :func:`safe_extract` checks every member of a zip archive before writing anything (no absolute
  paths, no ``..``, no links, nothing resolving outside the target, no member whose declared size
  is too large or too many times its compressed size: a "zip bomb"), streams each member in
  bounded chunks that stop at the declared size, and extracts into a temporary folder that is
  renamed into place when complete. A truncated or corrupt archive is a :class:`BadArchiveError`
  naming the file, never a raw ``BadZipFile``.
* :func:`trust_on_first_use` covers sources that publish no checksum (UCI Online Retail): the
  size and SHA-256 of the first download are written to a small JSON file, and every later use of
  the file is checked against it. A caller that must first read the file to know it is good
  (a corrupt first download must never become the trusted copy) uses :func:`check_trusted`
  before reading and :func:`record_trust` only after the file was read and validated.
* A download that fails (no network, missing file, timeout) is a :class:`DownloadError` naming the
  URL and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from recsys_utils.core.io import atomic_write, atomic_write_json

CHUNK = 1 << 20
#: the largest uncompressed/compressed size ratio accepted for a member above :data:`RATIO_FLOOR` bytes
#: (text compresses 3-20x; deflate's maximum is about 1030x: only a crafted "zip bomb" reaches it)
MAX_RATIO = 200.0
#: members smaller than this are never refused for their ratio (a small file of zeros compresses 1000x)
RATIO_FLOOR = 1 << 20


class ChecksumError(ValueError):
    """A file's size or hash differs from the expected value."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder (or is a link/device, or a zip bomb)."""


class BadArchiveError(ValueError):
    """A file is not a readable zip archive (truncated, corrupt, or not a zip at all)."""


class DownloadError(OSError):
    """A download failed (network, missing remote file, timeout); the message names the URL."""


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
    try:
        with atomic_write(dest, "wb") as out:
            found = _fetch(url, out, size, dest.name, progress, timeout)
            # a size or checksum mismatch raises inside the block: the temporary file is deleted
            _compare(dest, found, md5=md5, sha256=sha256, size=size)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot download {url}: {reason}") from exc
    return dest


def _fetch(url: str, out, size: int | None, name: str, progress: bool, timeout: float) -> dict[str, str | int]:
    """Stream ``url`` into the open file ``out``; its size, MD5 and SHA-256."""
    md5_h, sha_h, n = hashlib.md5(), hashlib.sha256(), 0
    with contextlib.closing(urllib.request.urlopen(url, timeout=timeout)) as response:  # noqa: S310 (http/file)
        total = response.headers.get("Content-Length") if response.headers else None
        bar = _progress(total=int(total) if total and total.isdigit() else size, desc=name, enabled=progress)
        try:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                md5_h.update(chunk)
                sha_h.update(chunk)
                n += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
    return {"size": n, "md5": md5_h.hexdigest(), "sha256": sha_h.hexdigest()}


def _progress(total: int | None, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
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


def _bounded_copy(src, dst, budget: int, archive: Path, info: zipfile.ZipInfo) -> int:
    """Copy at most ``budget`` bytes, and no more than the member's declared size.

    The declared sizes in a zip's directory can lie (zip bombs), so the bytes actually
    decompressed are counted as well; raise :class:`UnsafeArchiveError` past either limit.
    """
    n = 0
    for chunk in iter(lambda: src.read(CHUNK), b""):
        n += len(chunk)
        if n > budget:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} decompresses past the size limit")
        if n > info.file_size:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} decompresses past its declared "
                                     f"size {info.file_size:,} (a crafted archive)")
        dst.write(chunk)
    return n


def _check_sizes(infos: list[zipfile.ZipInfo], archive: Path, max_bytes: int, max_members: int,
                 max_ratio: float) -> None:
    """Refuse an archive whose declared sizes exceed the limits or whose compression ratio is a bomb's."""
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{archive}: {total:,} bytes uncompressed exceeds the limit {max_bytes:,}")
    if len(infos) > max_members:
        raise UnsafeArchiveError(f"{archive}: {len(infos):,} members exceeds the limit {max_members:,}")
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > max_ratio:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} would decompress {ratio:,.0f} times "
                                     f"its compressed size ({info.file_size:,} bytes; the limit is "
                                     f"{max_ratio:,.0f}x): refused as a zip bomb")


def open_zip(archive: str | os.PathLike) -> zipfile.ZipFile:
    """Open a zip archive; a truncated or corrupt file is a :class:`BadArchiveError` naming it."""
    archive = Path(archive)
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise BadArchiveError(f"{archive}: not a valid zip archive ({exc}); the file is truncated or corrupt: "
                              "delete it and download it again") from exc


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, max_bytes: int = 4 << 30,
                 max_members: int = 100_000, max_ratio: float = MAX_RATIO,
                 members: Collection[str] | None = None) -> Path:
    """Extract a zip archive (or only the named ``members``) into ``target`` (created), safely.

    Every member is checked before anything is written; the archive is extracted into a
    temporary sibling folder which is renamed to ``target`` only when complete. ``max_bytes``
    bounds the total uncompressed size, both as declared and as actually decompressed (each
    member also stops at its declared size), ``max_members`` the number of entries, and
    ``max_ratio`` the uncompressed/compressed ratio of any member over :data:`RATIO_FLOOR` bytes
    (guards against zip bombs). Returns ``target``.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"safe_extract: {target} exists already; remove it to extract again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_zip(archive) as handle:
        infos = handle.infolist()
        if members is not None:
            missing = set(members) - {info.filename for info in infos}
            if missing:
                raise KeyError(f"{archive}: no member(s) {sorted(missing)} in the archive")
            infos = [info for info in infos if info.filename in set(members)]
        checked = [(info, _check_member(info, target, archive)) for info in infos]
        _check_sizes(infos, archive, max_bytes, max_members, max_ratio)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
        try:
            _extract_members(handle, checked, tmp, archive, max_bytes)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _extract_members(handle: zipfile.ZipFile, checked: list, tmp: Path, archive: Path, max_bytes: int) -> None:
    """Write the checked members under ``tmp``, streaming; a corrupt member names the archive."""
    written_total = 0
    for info, relative in checked:
        if relative is None:
            continue
        out_path = tmp / relative
        out_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with handle.open(info) as src, open(out_path, "wb") as dst:
                written_total += _bounded_copy(src, dst, max_bytes - written_total, archive, info)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise BadArchiveError(f"{archive}: not a valid zip archive: member {info.filename!r} is corrupt "
                                  f"({exc}); delete the file and download it again") from exc


def zip_members(archive: str | os.PathLike) -> list[str]:
    """Names of the files in a zip archive (folders left out)."""
    with open_zip(archive) as handle:
        return [info.filename for info in handle.infolist() if not info.is_dir()]


def check_trusted(path: str | os.PathLike, record: str | os.PathLike) -> dict | None:
    """The stored size/SHA-256 of ``path`` if ``record`` exists (raise :class:`ChecksumError` if the
    file differs from it); ``None`` when nothing was recorded yet."""
    path, record = Path(path), Path(record)
    if not record.is_file():
        return None
    try:
        stored = json.loads(record.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{record}: not valid JSON ({exc}); delete it to trust the file again") from exc
    _compare(path, file_hashes(path), size=stored.get("size"), sha256=stored.get("sha256"))
    return stored


def record_trust(path: str | os.PathLike, record: str | os.PathLike, source: str = "") -> dict:
    """Store the size and SHA-256 of ``path`` in ``record`` (call it once the file was read and found good)."""
    path = Path(path)
    found = file_hashes(path)
    entry = {"file": path.name, "size": found["size"], "sha256": found["sha256"], "source": source,
             "first_seen": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "note": "no published checksum: recorded on first successful use (trust on first use)"}
    atomic_write_json(record, entry)
    return entry


def trust_on_first_use(path: str | os.PathLike, record: str | os.PathLike, source: str = "") -> dict:
    """Check ``path`` against the size/SHA-256 stored in ``record``; store them if there is none.

    For sources that publish no checksum: the first file seen is trusted and remembered, and any
    later change (a truncated copy, a silently updated upstream file) raises :class:`ChecksumError`.
    Only for a file already known to be good: otherwise use :func:`check_trusted`, read the file,
    then :func:`record_trust`.
    """
    stored = check_trusted(path, record)
    return stored if stored is not None else record_trust(path, record, source)
