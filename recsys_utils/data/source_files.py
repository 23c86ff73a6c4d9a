"""Finding, verifying and parsing a dataset's files: what every real-data loader shares.

Where the files come from, first match wins (:func:`resolve_source`):

1. ``path=`` given to the loader: a folder or an archive, and nothing else (a corrupt archive or
   a folder without the expected file is an error saying so);
2. the cache under ``data_dir`` (``data/ml-100k/``, ``data/ml-100k.zip``, ``data/online-retail/``);
3. only when ``data_dir`` is the default (not given, or the project's own ``data/`` folder that
   the notebooks use, :func:`searches_local_copies`): a local copy in ``$RECSYS_DATA_SOURCE_DIR``
   (folders separated by ``os.pathsep``; ``none`` turns the search off), else ``../shared/data``
   beside the project root when it exists. Such a folder holds ``ml-100k/``, ``ml-1m/``,
   ``online-retail/online_retail.csv.gz`` or the official archives. A folder the caller chose
   (``bench --data-dir D``) is that folder only;
4. a download from the official URL (``download=False`` turns this off) with a progress bar,
   verified against the published checksum or recorded once the file was read successfully
   (UCI publishes none), written atomically and extracted safely
   (:mod:`recsys_utils.data.download`) into the cache without touching a user's files
   (:mod:`recsys_utils.data.cache_files`). A failed download is a :class:`DataNotFoundError`
   naming the URL and the folders searched.

Every loader records the folder or file it actually read in ``Dataset.description`` and
``Dataset.extras["source"]``.

:func:`parse_delimited` reads the header-less delimited formats and names the file, the line and
the problem: wrong delimiter, wrong number of fields, bad encoding, non-numeric value, negative id,
repeated key. The dataset families live in :mod:`recsys_utils.data.movielens` and
:mod:`recsys_utils.data.online_retail`.
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.core.paths import project_root
from recsys_utils.data.cache_files import extract_into_cache
from recsys_utils.data.download import (
    BadArchiveError,
    DownloadError,
    check_trusted,
    download,
    open_zip,
    record_trust,
    verify_file,
)

SOURCE_ENV = "RECSYS_DATA_SOURCE_DIR"
#: folders (relative to the project root) searched when ``$RECSYS_DATA_SOURCE_DIR`` is not set
DEFAULT_SOURCE_DIRS = ("../shared/data",)


@dataclass(frozen=True)
class Source:
    """An official archive: where it lives, its checksums, and the folder it unpacks to."""

    name: str
    url: str
    archive: str
    folder: str
    marker: str  # a file that must be in the extracted folder
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None



DELIMITERS = {"\t": "tab", "::": "'::'", "|": "'|'", ",": "comma", ";": "semicolon"}


class DataFormatError(ValueError):
    """A data file does not have the expected format (the message names the file and the problem)."""


def decode_text(path: str | os.PathLike, encoding: str | None = None) -> tuple[str, str]:
    """Decode a (possibly gzipped) text file; the text and the encoding used.

    ``encoding=None`` detects it: UTF-8, read strictly, else Latin-1 (every byte is a Latin-1
    character, so this never fails; MovieLens ships Latin-1, a re-saved copy is often UTF-8). A
    named encoding that does not fit is an error naming the byte and the line.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFormatError(f"{path}: not a valid gzip file ({exc})") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise DataFormatError(f"{path}: bad encoding: the file contains NUL bytes (UTF-16 or binary?); "
                              f"expected {encoding or 'UTF-8 or Latin-1'} text")
    if encoding is None:
        try:
            return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return raw.decode("latin-1"), "latin-1"
    try:
        return raw.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: bad encoding: byte 0x{raw[exc.start]:02x} at line {line} is not "
                              f"valid {encoding} (pass encoding=... for this file)") from exc


def read_text(path: str | os.PathLike, encoding: str | None) -> str:
    """Decode a (possibly gzipped) text file (see :func:`decode_text`)."""
    return decode_text(path, encoding)[0]


def sniff_delimiter(line: str) -> str:
    """The name of the first known delimiter in ``line`` (for error messages)."""
    found = [name for sep, name in DELIMITERS.items() if sep in line]
    return found[0] if found else "not delimited"


def parse_delimited(path: str | os.PathLike, sep: str, names: tuple[str, ...], numeric: tuple[str, ...] = (),
                    encoding: str | None = "utf-8", ids: tuple[str, ...] = (),
                    unique: tuple[str, ...] = ()) -> pd.DataFrame:
    """Parse a header-less delimited file (the MovieLens ``.data``/``.dat`` formats) with checks.

    Every non-blank line must have exactly ``len(names)`` fields separated by ``sep``; the
    ``numeric`` columns must hold numbers on every line, the ``ids`` columns (also numeric)
    whole numbers of at least 0, and no two lines may share the values of the ``unique`` columns.
    Errors name the file, the line(s) and the problem. Returns strings for the other columns and
    float64/int64 for ``numeric``; ``frame.attrs["encoding"]`` is the encoding used
    (``encoding=None`` detects it, see :func:`decode_text`).
    """
    path = Path(path)
    text, used = decode_text(path, encoding)
    lines = pd.Series(text.splitlines(), dtype=object)
    nonblank = lines.str.strip().str.len() > 0
    if not nonblank.any():
        raise DataFormatError(f"{path}: the file is empty")
    line_numbers = np.flatnonzero(nonblank.to_numpy()) + 1
    lines = lines[nonblank.to_numpy()].reset_index(drop=True)
    n_fields = lines.str.count(re.escape(sep)).to_numpy() + 1
    sep_name = DELIMITERS.get(sep, repr(sep))
    if n_fields[0] == 1 and len(names) > 1:
        raise DataFormatError(f"{path}: wrong delimiter: expected {sep_name}-separated fields, but line "
                              f"{line_numbers[0]} is {sniff_delimiter(lines[0])}: {lines[0][:80]!r}")
    wrong = np.flatnonzero(n_fields != len(names))
    if len(wrong):
        i = wrong[0]
        raise DataFormatError(f"{path}: line {line_numbers[i]} has {n_fields[i]} {sep_name}-separated "
                              f"fields, expected {len(names)} ({', '.join(names)}); {len(wrong)} such lines")
    parts = lines.str.split(sep, regex=False)
    frame = pd.DataFrame(parts.tolist(), columns=list(names))
    for column in dict.fromkeys(numeric + ids):
        frame[column] = _numbers(frame[column], column, path, line_numbers, is_id=column in ids)
    if unique:
        _check_unique(frame, unique, path, line_numbers)
    frame.attrs["encoding"] = used
    return frame


def _numbers(text: pd.Series, column: str, path: Path, line_numbers: np.ndarray, is_id: bool) -> pd.Series:
    """A column's numbers (int64 when all whole); an id must be a whole number of at least 0."""
    values = pd.to_numeric(text.str.strip(), errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        i = bad[0]
        raise DataFormatError(f"{path}: non-numeric {column} {text.iloc[i]!r} at line {line_numbers[i]} "
                              f"({len(bad)} such lines)")
    if is_id:
        bad = np.flatnonzero(((values < 0) | (values % 1 != 0)).to_numpy())
        if len(bad):
            i = bad[0]
            what = "negative" if values.iloc[i] < 0 else "non-integer"
            raise DataFormatError(f"{path}: {what} {column} {text.iloc[i].strip()} at line {line_numbers[i]} "
                                  f"(an id is a whole number of at least 0; {len(bad)} such lines)")
    return values.astype(np.int64) if (values % 1 == 0).all() else values


def _check_unique(frame: pd.DataFrame, columns: tuple[str, ...], path: Path, line_numbers: np.ndarray) -> None:
    """Refuse two lines with the same values in ``columns``, naming both lines."""
    repeated = np.flatnonzero(frame.duplicated(list(columns)).to_numpy())
    if not len(repeated):
        return
    j = repeated[0]
    same = np.logical_and.reduce([(frame[c] == frame[c].iloc[j]).to_numpy() for c in columns])
    first = np.flatnonzero(same)[0]
    key = ", ".join(f"{c} {frame[c].iloc[j]}" for c in columns)
    raise DataFormatError(f"{path}: line {line_numbers[j]} repeats {key} of line {line_numbers[first]} "
                          f"({len(repeated)} repeated lines); each pair must appear once")


def source_dirs() -> list[Path]:
    """Folders searched for an already-downloaded copy, in order.

    ``$RECSYS_DATA_SOURCE_DIR`` when set (``os.pathsep``-separated for several; set it to ``none`` to
    search nothing), else :data:`DEFAULT_SOURCE_DIRS` relative to the project root: ``../shared/data``,
    where CI and the course's development machines keep read-only copies beside the checkout.
    """
    env = os.environ.get(SOURCE_ENV, "").strip()
    if env.lower() == "none":
        return []
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    root = project_root()
    return [(root / d).resolve() for d in DEFAULT_SOURCE_DIRS if (root / d).is_dir()]


def default_data_dir() -> Path:
    """The project's own cache folder, ``data/`` in the project root (what the notebooks use)."""
    return project_root() / "data"


def searches_local_copies(data_dir: str | os.PathLike | None) -> bool:
    """Whether a loader given ``data_dir`` may also look in :func:`source_dirs`.

    Only for the default: no ``data_dir`` at all, or the project's own cache folder (the one the
    notebooks pass). A folder the caller chose (``bench --data-dir D``) means that folder only.
    """
    return data_dir is None or Path(data_dir).expanduser().resolve() == default_data_dir().resolve()


def searched_places(data_dir: str | os.PathLike | None = None) -> str:
    """The folders searched for ``data_dir`` (itself, then the local copies when allowed), for messages."""
    here = str(default_data_dir() if data_dir is None else Path(data_dir))
    if not searches_local_copies(data_dir):
        return f"{here} (a data folder given explicitly: no other folder is searched)"
    dirs = source_dirs()
    return f"{here}, nor in " + (", ".join(map(str, dirs)) if dirs else f"${SOURCE_ENV}, which is not set")


class DataNotFoundError(FileNotFoundError):
    """A dataset is in none of the folders searched and could not be downloaded (the message says where)."""


def _verify_archive(archive: Path, source: Source, verify: bool) -> None:
    """Check an archive against the published checksums; a source without one is recorded after use."""
    if verify and (source.md5 or source.sha256 or source.size):
        verify_file(archive, md5=source.md5, sha256=source.sha256, size=source.size)


def _from_archive(archive: Path, source: Source, data_dir: Path, verify: bool, reuse: bool = True) -> Path:
    """Verify (or check against the trust record), extract, and only then trust an unpublished archive."""
    _verify_archive(archive, source, verify)
    record = data_dir / f"{source.archive}.sha256.json"
    unpublished = verify and not (source.md5 or source.sha256 or source.size)
    known = check_trusted(archive, record) if unpublished else None
    folder = extract_into_cache(archive, data_dir / source.folder, source.marker, source.name, reuse=reuse)
    if unpublished and known is None:
        record_trust(archive, record, source=source.url)
    return folder


def _given_path(path: Path, source: Source, data_dir: Path, verify: bool) -> Path:
    """The folder of an explicit ``path=``: an unpacked folder or a zip archive, with what is wrong named."""
    if path.is_dir():
        if not (path / source.marker).is_file():
            present = sorted(p.name for p in path.iterdir())[:8]
            raise FileNotFoundError(f"{path}: no {source.marker} in this folder (expected the unpacked "
                                    f"{source.name} archive; the folder holds {present or 'nothing'})")
        return path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected the {source.name} folder or "
                                f"{source.archive})")
    if not zipfile.is_zipfile(path):
        try:
            open_zip(path).close()
        except BadArchiveError as exc:
            raise DataFormatError(str(exc)) from exc
        raise DataFormatError(f"{path}: not a valid zip archive; expected the {source.name} folder or "
                              f"{source.archive}")
    return _from_archive(path, source, data_dir, verify, reuse=False)


def resolve_source(source: Source, data_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                   download_missing: bool = True, verify: bool = True, progress: bool = True) -> Path:
    """The local folder of ``source`` (see the module docstring for the order of places tried).

    An explicit ``path`` or ``data_dir`` means that place only; the local copies are searched only
    for the default data folder (:func:`searches_local_copies`). A failed download is a
    :class:`DataNotFoundError` naming the URL and the folders searched.
    """
    explicit = data_dir
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    try:
        if path is not None:
            return _given_path(Path(path).expanduser(), source, data_dir, verify)
        if (data_dir / source.folder / source.marker).is_file():
            return data_dir / source.folder
        archive = data_dir / source.archive
        if archive.is_file():
            return _from_archive(archive, source, data_dir, verify)
        for shared in source_dirs() if searches_local_copies(explicit) else []:
            if (shared / source.folder / source.marker).is_file():
                return shared / source.folder
            if (shared / source.archive).is_file():
                return _from_archive(shared / source.archive, source, data_dir, verify)
        where = f"{source.name}: not found in {searched_places(explicit)}"
        if not download_missing:
            raise DataNotFoundError(f"{where}; download {source.url} into {data_dir} or pass path=...")
        try:
            download(source.url, archive, md5=source.md5, sha256=source.sha256, size=source.size,
                     progress=progress)
        except DownloadError as exc:
            raise DataNotFoundError(f"{where}, and the download failed: {exc}. Download {source.url} by hand "
                                    f"into {data_dir}, or pass path=...") from exc
        return _from_archive(archive, source, data_dir, verify)
    except BadArchiveError as exc:
        raise DataFormatError(str(exc)) from exc


__all__ = ["DEFAULT_SOURCE_DIRS", "DataFormatError", "DataNotFoundError", "SOURCE_ENV", "Source", "decode_text",
           "default_data_dir", "parse_delimited", "read_text", "resolve_source", "searched_places",
           "searches_local_copies", "sniff_delimiter", "source_dirs"]
