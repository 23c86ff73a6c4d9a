"""Real-data loaders: MovieLens 100K / 1M and UCI Online Retail, in the course vocabulary.

Each loader registers itself with :func:`~recsys_utils.data.registry.register_dataset`, so a
notebook switches with ``RECSYS_DATASET=movielens-100k`` (or ``movielens-1m``, ``online-retail``)
and gets a :class:`~recsys_utils.data.registry.Dataset` with the same column names as the
simulated marketplace (``user_id, item_id, timestamp, event, ...``).

Where the files come from, first match wins:

1. ``path=`` given to the loader: a folder, an archive or (Online Retail) a CSV / CSV.GZ / XLSX;
2. the cache under ``data_dir`` (``data/ml-100k/``, ``data/ml-100k.zip``, ``data/online-retail/``);
3. a local copy: ``$RECSYS_DATA_SOURCE_DIR`` (folders separated by ``os.pathsep``; ``none`` turns
   the search off), else ``../shared/data`` beside the project root when it exists. Such a folder
   holds ``ml-100k/``, ``ml-1m/``, ``online-retail/online_retail.csv.gz`` or the official archives;
4. a download from the official URL (``download=False`` turns this off) with a progress bar,
   verified against the published checksum (MovieLens) or recorded on first use (UCI publishes
   none), written atomically and extracted safely (:mod:`recsys_utils.data.download`).

Parsing validates the format and names the file and the problem: wrong delimiter, wrong number
of fields on a line, missing column, bad encoding, non-numeric id.

References: F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context",
ACM TiiS 5(4), 2015. D. Chen, S. L. Sain and K. Guo, "Data mining for the online retail
industry", J. Database Marketing & Customer Strategy Management 19(3), 2012 (UCI ML Repository
id 352, DOI 10.24432/C5BW33).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import (
    CATEGORY,
    EVENT,
    ITEM,
    PRICE,
    PURCHASE,
    RATING,
    SESSION,
    TIMESTAMP,
    TITLE,
    USER,
)
from recsys_utils.data.download import download, safe_extract, trust_on_first_use, verify_file
from recsys_utils.data.retail_cleaning import clean_online_retail
from recsys_utils.data.registry import Dataset, register_dataset

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


ML_100K = Source("movielens-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                 "ml-100k.zip", "ml-100k", "u.data", md5="0e33842e24a9c977be4e0107933c0723",
                 sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", size=4_924_029)
ML_1M = Source("movielens-1m", "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
               "ml-1m.zip", "ml-1m", "ratings.dat", md5="c4d9eecfca2ab87c1945afe126590906")
#: no checksum is published for this archive: the first download is recorded (trust on first use)
ONLINE_RETAIL = Source("online-retail", "https://archive.ics.uci.edu/static/public/352/online+retail.zip",
                       "online+retail.zip", "online-retail", "Online Retail.xlsx")

ML_100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western")
ML_1M_OCCUPATIONS = ("other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                     "customer service", "doctor/health care", "executive/managerial", "farmer",
                     "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
                     "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
                     "unemployed", "writer")
RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                  "CustomerID", "Country")
RETAIL_DATE_FORMAT = "%m/%d/%Y %H:%M"
_DELIMITERS = {"\t": "tab", "::": "'::'", "|": "'|'", ",": "comma", ";": "semicolon"}


class DataFormatError(ValueError):
    """A data file does not have the expected format (the message names the file and the problem)."""


# =========================================================================== text parsing


def _read_text(path: Path, encoding: str) -> str:
    """Decode a (possibly gzipped) text file, with a clear error for a wrong encoding."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except OSError as exc:
            raise DataFormatError(f"{path}: not a valid gzip file ({exc})") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise DataFormatError(f"{path}: bad encoding: the file contains NUL bytes (UTF-16 or binary?); "
                              f"expected {encoding} text")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}: bad encoding: byte 0x{raw[exc.start]:02x} at line {line} is not "
                              f"valid {encoding} (pass encoding=... for this file)") from exc


def _sniff(line: str) -> str:
    found = [name for sep, name in _DELIMITERS.items() if sep in line]
    return found[0] if found else "not delimited"


def parse_delimited(path: str | os.PathLike, sep: str, names: tuple[str, ...], numeric: tuple[str, ...] = (),
                    encoding: str = "utf-8") -> pd.DataFrame:
    """Parse a header-less delimited file (the MovieLens ``.data``/``.dat`` formats) with checks.

    Every non-blank line must have exactly ``len(names)`` fields separated by ``sep``; the
    ``numeric`` columns must hold numbers on every line. Errors name the file, the line and the
    problem. Returns strings for the other columns and float64/int64 for ``numeric``.
    """
    path = Path(path)
    text = _read_text(path, encoding)
    lines = pd.Series(text.splitlines(), dtype=object)
    nonblank = lines.str.strip().str.len() > 0
    if not nonblank.any():
        raise DataFormatError(f"{path}: the file is empty")
    line_numbers = np.flatnonzero(nonblank.to_numpy()) + 1
    lines = lines[nonblank.to_numpy()].reset_index(drop=True)
    n_fields = lines.str.count(re.escape(sep)).to_numpy() + 1
    sep_name = _DELIMITERS.get(sep, repr(sep))
    if n_fields[0] == 1 and len(names) > 1:
        raise DataFormatError(f"{path}: wrong delimiter: expected {sep_name}-separated fields, but line "
                              f"{line_numbers[0]} is {_sniff(lines[0])}: {lines[0][:80]!r}")
    wrong = np.flatnonzero(n_fields != len(names))
    if len(wrong):
        i = wrong[0]
        raise DataFormatError(f"{path}: line {line_numbers[i]} has {n_fields[i]} {sep_name}-separated "
                              f"fields, expected {len(names)} ({', '.join(names)}); {len(wrong)} such lines")
    parts = lines.str.split(sep, regex=False)
    frame = pd.DataFrame(parts.tolist(), columns=list(names))
    for column in numeric:
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            i = bad[0]
            raise DataFormatError(f"{path}: non-numeric {column} {frame[column].iloc[i]!r} at line "
                                  f"{line_numbers[i]} ({len(bad)} such lines)")
        if (values % 1 == 0).all():
            values = values.astype(np.int64)
        frame[column] = values
    return frame


# =========================================================================== resolving files


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
    from recsys_utils.core.paths import project_root

    root = project_root()
    return [(root / d).resolve() for d in DEFAULT_SOURCE_DIRS if (root / d).is_dir()]


def _where() -> str:
    dirs = source_dirs()
    return ", ".join(map(str, dirs)) if dirs else f"${SOURCE_ENV}, which is not set"


def _extract_folder(archive: Path, source: Source, data_dir: Path) -> Path:
    """Safely extract ``archive`` and move the folder holding ``source.marker`` to ``data_dir/folder``."""
    target = data_dir / source.folder
    if (target / source.marker).is_file():
        return target
    staging = data_dir / f".{source.folder}.unzip"
    if staging.exists():
        shutil.rmtree(staging)
    safe_extract(archive, staging)
    try:
        found = sorted(staging.rglob(source.marker), key=lambda p: len(p.parts))
        if not found:
            raise DataFormatError(f"{archive}: no {source.marker} inside (is this the {source.name} "
                                  "archive?)")
        if target.exists():
            shutil.rmtree(target)
        os.replace(found[0].parent, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _verify_archive(archive: Path, source: Source, data_dir: Path, verify: bool) -> None:
    if not verify:
        return
    if source.md5 or source.sha256 or source.size:
        verify_file(archive, md5=source.md5, sha256=source.sha256, size=source.size)
    else:
        trust_on_first_use(archive, data_dir / f"{source.archive}.sha256.json", source=source.url)


def resolve_source(source: Source, data_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                   download_missing: bool = True, verify: bool = True, progress: bool = True) -> Path:
    """The local folder of ``source`` (see the module docstring for the order of places tried)."""
    data_dir = Path(data_dir)
    if path is not None:
        path = Path(path).expanduser()
        if path.is_dir():
            if not (path / source.marker).is_file():
                raise FileNotFoundError(f"{path}: no {source.marker} in this folder (expected the unpacked "
                                        f"{source.name} archive)")
            return path
        if path.is_file() and zipfile.is_zipfile(path):
            _verify_archive(path, source, data_dir, verify)
            return _extract_folder(path, source, data_dir)
        raise FileNotFoundError(f"{path}: no such folder or zip archive for {source.name}")
    if (data_dir / source.folder / source.marker).is_file():
        return data_dir / source.folder
    archive = data_dir / source.archive
    if archive.is_file():
        _verify_archive(archive, source, data_dir, verify)
        return _extract_folder(archive, source, data_dir)
    for shared in source_dirs():
        if (shared / source.folder / source.marker).is_file():
            return shared / source.folder
        if (shared / source.archive).is_file():
            _verify_archive(shared / source.archive, source, data_dir, verify)
            return _extract_folder(shared / source.archive, source, data_dir)
    if not download_missing:
        raise FileNotFoundError(f"{source.name}: not found in {data_dir} (nor in {_where()}); download "
                                f"{source.url} into {data_dir} or pass path=...")
    download(source.url, archive, md5=source.md5, sha256=source.sha256, size=source.size, progress=progress)
    if not (source.md5 or source.sha256 or source.size):
        trust_on_first_use(archive, data_dir / f"{source.archive}.sha256.json", source=source.url)
    return _extract_folder(archive, source, data_dir)


# =========================================================================== MovieLens


def read_movielens_100k(folder: str | os.PathLike, encoding: str = "latin-1") -> dict[str, pd.DataFrame]:
    """Parse ``u.data``, ``u.item`` and ``u.user`` of MovieLens 100K (the raw files, checked).

    Returns ``{"ratings", "items", "users"}`` in the course vocabulary; ``items`` has ``title``,
    ``genres`` (``"Action|Comedy"``), ``category`` (the first genre), ``launch_time`` (release date)
    and ``year``; ``users`` has ``age, gender, occupation, zip_code``.
    """
    folder = Path(folder)
    ratings = parse_delimited(folder / "u.data", "\t", (USER, ITEM, RATING, TIMESTAMP),
                              numeric=(USER, ITEM, RATING, TIMESTAMP), encoding=encoding)
    genre_file = folder / "u.genre"
    genres = ML_100K_GENRES
    if genre_file.is_file():
        table = parse_delimited(genre_file, "|", ("genre", "code"), numeric=("code",), encoding=encoding)
        genres = tuple(table.sort_values("code")["genre"])
    item_names = ((ITEM, TITLE, "release_date", "video_release_date", "imdb_url")
                  + tuple(f"g_{g}" for g in genres))
    raw_items = parse_delimited(folder / "u.item", "|", item_names, numeric=(ITEM,) + item_names[5:],
                                encoding=encoding)
    flags = raw_items[list(item_names[5:])].to_numpy(dtype=bool)
    items = pd.DataFrame({ITEM: raw_items[ITEM], TITLE: raw_items[TITLE].str.strip()})
    items["genres"] = _join_flags(flags, genres)
    items[CATEGORY] = items["genres"].str.split("|").str[0]
    items["launch_time"] = pd.to_datetime(raw_items["release_date"].replace("", None), format="%d-%b-%Y",
                                          errors="coerce")
    items["year"] = _year_from_title(items[TITLE]).fillna(items["launch_time"].dt.year).astype("Int64")
    users = parse_delimited(folder / "u.user", "|", (USER, "age", "gender", "occupation", "zip_code"),
                            numeric=(USER, "age"), encoding=encoding)
    return {"ratings": _ratings_frame(ratings, folder / "u.data"), "items": items, "users": users}


def read_movielens_1m(folder: str | os.PathLike, encoding: str = "latin-1") -> dict[str, pd.DataFrame]:
    """Parse ``ratings.dat``, ``movies.dat`` and ``users.dat`` of MovieLens 1M (``::``-separated).

    ``users.age`` is the lower bound of the published age group (1 = under 18, 18, 25, 35, 45, 50,
    56); ``occupation`` is decoded from its 0-20 code.
    """
    folder = Path(folder)
    ratings = parse_delimited(folder / "ratings.dat", "::", (USER, ITEM, RATING, TIMESTAMP),
                              numeric=(USER, ITEM, RATING, TIMESTAMP), encoding=encoding)
    movies = parse_delimited(folder / "movies.dat", "::", (ITEM, TITLE, "genres"), numeric=(ITEM,),
                             encoding=encoding)
    items = movies.assign(**{TITLE: movies[TITLE].str.strip()})
    items[CATEGORY] = items["genres"].str.split("|").str[0]
    items["year"] = _year_from_title(items[TITLE]).astype("Int64")
    items["launch_time"] = pd.to_datetime(items["year"].astype("float").astype("Int64").astype(str),
                                          format="%Y", errors="coerce")
    users = parse_delimited(folder / "users.dat", "::", (USER, "gender", "age", "occupation", "zip_code"),
                            numeric=(USER, "age", "occupation"), encoding=encoding)
    codes = users["occupation"].to_numpy()
    if ((codes < 0) | (codes >= len(ML_1M_OCCUPATIONS))).any():
        bad = int(codes[(codes < 0) | (codes >= len(ML_1M_OCCUPATIONS))][0])
        raise DataFormatError(f"{folder / 'users.dat'}: occupation code {bad} is outside 0-20")
    users["occupation"] = np.asarray(ML_1M_OCCUPATIONS, dtype=object)[codes]
    users = users[[USER, "age", "gender", "occupation", "zip_code"]]
    return {"ratings": _ratings_frame(ratings, folder / "ratings.dat"), "items": items, "users": users}


def _join_flags(flags: np.ndarray, names: tuple[str, ...]) -> pd.Series:
    """``"A|B"`` strings from a boolean (n, len(names)) matrix (vectorised over rows)."""
    out = pd.Series([""] * len(flags), dtype=object)
    for j, name in enumerate(names):  # one pass per genre (19), not per row
        add = flags[:, j]
        out[add] = out[add] + np.where(out[add] == "", name, "|" + name)
    out[out == ""] = "unknown"
    return out


def _year_from_title(titles: pd.Series) -> pd.Series:
    return pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")


def _ratings_frame(ratings: pd.DataFrame, path: Path) -> pd.DataFrame:
    bad = ~ratings[RATING].between(1, 5)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(f"{path}: rating {ratings[RATING].iloc[i]} on row {i + 1} is outside 1-5")
    out = ratings.assign(**{TIMESTAMP: pd.to_datetime(ratings[TIMESTAMP], unit="s"), EVENT: "rating"})
    return out.sort_values([TIMESTAMP, USER], kind="stable").reset_index(drop=True)


def _movielens_dataset(name: str, parts: dict[str, pd.DataFrame], description: str,
                       test_days: float, validation_days: float) -> Dataset:
    ratings = parts["ratings"]
    interactions = ratings[[USER, ITEM, TIMESTAMP, EVENT, RATING]]
    return Dataset(name=name, interactions=interactions, items=parts["items"], users=parts["users"],
                   description=description, ratings=ratings[[USER, ITEM, TIMESTAMP, RATING]],
                   test_days=test_days, validation_days=validation_days)


@register_dataset("movielens-100k")
def load_movielens_100k(seed: int = 42, data_dir: str | os.PathLike = "data",
                        path: str | os.PathLike | None = None,
                        download: bool = True, verify: bool = True, progress: bool = True, **_) -> Dataset:
    """MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies, 1997-09 to 1998-04.

    Every rating is an interaction (``event="rating"``, the ``rating`` column keeps the value).
    The split holds out the last 30 days (validation: the 15 before). ``seed`` is unused (the
    data are fixed); it is accepted so every loader has the same signature.
    """
    folder = resolve_source(ML_100K, data_dir, path, download_missing=download, verify=verify,
                            progress=progress)
    return _movielens_dataset("movielens-100k", read_movielens_100k(folder),
                              f"MovieLens 100K (GroupLens) from {folder}", test_days=30.0,
                              validation_days=15.0)


@register_dataset("movielens-1m")
def load_movielens_1m(seed: int = 42, data_dir: str | os.PathLike = "data",
                      path: str | os.PathLike | None = None,
                      download: bool = True, verify: bool = True, progress: bool = True, **_) -> Dataset:
    """MovieLens 1M: 1,000,209 ratings by 6,040 users on 3,706 rated movies, 2000-04 to 2003-02.

    Most ratings fall in 2000; the split holds out the last 180 days (validation: the 90 before).
    """
    folder = resolve_source(ML_1M, data_dir, path, download_missing=download, verify=verify,
                            progress=progress)
    return _movielens_dataset("movielens-1m", read_movielens_1m(folder),
                              f"MovieLens 1M (GroupLens) from {folder}", test_days=180.0,
                              validation_days=90.0)


# =========================================================================== Online Retail


def read_online_retail(path: str | os.PathLike, encoding: str = "utf-8",
                       date_format: str = RETAIL_DATE_FORMAT) -> pd.DataFrame:
    """Read the raw UCI Online Retail table from ``.csv``, ``.csv.gz``, ``.xlsx`` or the official ``.zip``.

    Returns the eight raw columns, typed and checked: ``InvoiceNo, StockCode, Description,
    Country`` as strings (missing Description kept missing), ``Quantity`` int64, ``InvoiceDate``
    datetime, ``UnitPrice`` float64, ``CustomerID`` nullable Int64 (missing kept missing). Rows are
    neither dropped nor changed: cleaning is a separate, audited step. The ``.xlsx`` sheet needs
    ``openpyxl`` (not a course dependency): install it, or pass a CSV export with the same columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".zip"):
        members = [m for m in zipfile.ZipFile(path).namelist() if m.lower().endswith((".xlsx", ".csv"))]
        if not members:
            raise DataFormatError(f"{path}: no .xlsx or .csv inside the archive")
        _require_openpyxl(path) if members[0].lower().endswith(".xlsx") else None
        with zipfile.ZipFile(path) as archive, archive.open(members[0]) as handle:
            data = io.BytesIO(handle.read())
        if members[0].lower().endswith(".xlsx"):
            return _retail_from_excel(data, f"{path}:{members[0]}")
        raw = pd.read_csv(data, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding)
        return _validate_retail(raw, f"{path}:{members[0]}", date_format)
    if name.endswith((".xlsx", ".xls")):
        _require_openpyxl(path)
        return _retail_from_excel(path, str(path))
    if not name.endswith((".csv", ".csv.gz", ".txt", ".gz")):
        raise DataFormatError(f"{path}: unknown file type; expected .csv, .csv.gz, .xlsx or .zip")
    try:
        with (gzip.open(path, "rt", encoding=encoding, newline="") if name.endswith(".gz")
              else open(path, encoding=encoding, newline="")) as handle:
            header = handle.readline()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: bad encoding: the header is not valid {encoding} "
                              f"({exc.reason})") from exc
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: cannot read the file ({exc})") from exc
    if header.count(",") == 0 and len(RETAIL_COLUMNS) > 1:
        raise DataFormatError(f"{path}: wrong delimiter: expected comma-separated columns "
                              f"{', '.join(RETAIL_COLUMNS)}; the header line is {_sniff(header)}: "
                              f"{header[:80]!r}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                          compression="gzip" if name.endswith(".gz") else None, quoting=csv.QUOTE_MINIMAL)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: bad encoding: not valid {encoding} text ({exc.reason} at byte "
                              f"{exc.start}); pass encoding=... for this file") from exc
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{path}: not a well-formed CSV ({exc})") from exc
    return _validate_retail(raw, str(path), date_format)


def _require_openpyxl(path: Path) -> None:
    if importlib.util.find_spec("openpyxl") is None:
        raise ImportError(f"{path}: reading the Online Retail .xlsx sheet needs openpyxl, which the "
                          "course does not install; run `pip install openpyxl`, or export the sheet to CSV "
                          "and pass path='online_retail.csv.gz'")


def _retail_from_excel(source, where: str) -> pd.DataFrame:
    raw = pd.read_excel(source, engine="openpyxl", dtype=object)
    raw = raw.rename(columns=lambda c: str(c).strip())
    out = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        values = raw[column]
        if column == "InvoiceDate":
            out[column] = pd.to_datetime(values, errors="coerce").dt.strftime(RETAIL_DATE_FORMAT)
        elif column == "CustomerID":
            numbers = pd.to_numeric(values, errors="coerce").astype("Int64")
            out[column] = numbers.astype(str).where(numbers.notna(), None)
        elif column in ("Quantity", "UnitPrice"):
            out[column] = values.map(_cell_text)
        else:  # ids such as InvoiceNo 536365 come back as numbers: write them without '.0'
            out[column] = values.map(_id_text)
    return _validate_retail(out, where, RETAIL_DATE_FORMAT)


def _cell_text(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _id_text(value) -> str | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _cell_text(value)


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _validate_retail(raw: pd.DataFrame, where: str, date_format: str) -> pd.DataFrame:
    raw = raw.rename(columns=lambda c: str(c).strip())
    missing = [c for c in RETAIL_COLUMNS if c not in raw.columns]
    if missing:
        raise DataFormatError(f"{where}: missing column(s) {missing}; the columns are {list(raw.columns)}")
    out = pd.DataFrame({c: raw[c] for c in ("InvoiceNo", "StockCode", "Description")})
    for column in ("InvoiceNo", "StockCode"):
        empty = out[column].isna() | (out[column].astype(str).str.strip() == "")
        if empty.any():
            i = _first_bad(empty)
            raise DataFormatError(f"{where}: empty {column} on data row {i + 1} (line {i + 2})")
        out[column] = out[column].astype(str).str.strip()
    for column, kind in (("Quantity", "integer"), ("UnitPrice", "number"), ("CustomerID", "integer id")):
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() & raw[column].notna()
        if kind != "number":
            bad |= values.notna() & (values % 1 != 0)
        if column != "CustomerID":
            bad |= raw[column].isna()
        if bad.any():
            i = _first_bad(bad)
            raise DataFormatError(f"{where}: non-numeric {column} {raw[column].iloc[i]!r} on data row "
                                  f"{i + 1} (line {i + 2}); expected an {kind}")
        out[column] = values.astype("Int64") if column == "CustomerID" else (
            values.astype(np.int64) if column == "Quantity" else values.astype(np.float64))
    dates = pd.to_datetime(raw["InvoiceDate"], format=date_format, errors="coerce")
    if dates.isna().any():
        iso = pd.to_datetime(raw["InvoiceDate"], format="ISO8601", errors="coerce")
        if iso.notna().sum() > dates.notna().sum():
            dates = iso
    if dates.isna().any():
        i = _first_bad(dates.isna())
        raise DataFormatError(f"{where}: InvoiceDate {raw['InvoiceDate'].iloc[i]!r} on data row {i + 1} "
                              f"(line {i + 2}) is not a date like '12/1/2010 8:26'")
    out["InvoiceDate"] = dates
    out["Country"] = raw["Country"].astype(str).str.strip()
    return out[list(RETAIL_COLUMNS)].reset_index(drop=True)


def online_retail_dataset(raw: pd.DataFrame, description: str = "UCI Online Retail") -> Dataset:
    """Turn raw Online Retail rows into a :class:`Dataset` of purchases in the course vocabulary.

    ``interactions``: ``user_id`` (CustomerID), ``item_id`` (StockCode), ``timestamp``,
    ``event="purchase"``, ``session_id`` (one per invoice), ``quantity``, ``price`` (unit price),
    ``order_id`` (InvoiceNo), ``country``. ``items``: ``title`` (the most frequent description),
    ``category`` (the description's last word, a crude product type: the data have no category),
    ``price`` (median unit price), ``launch_time`` (first sale: a proxy). ``users``: ``country``.
    """
    cleaned = clean_online_retail(raw)
    kept, audit, how = cleaned.frame, cleaned.audit, "clean_online_retail"
    kept = kept.sort_values(["InvoiceDate", "CustomerID"], kind="stable").reset_index(drop=True)
    interactions = pd.DataFrame({
        USER: kept["CustomerID"].astype(np.int64).to_numpy(),
        ITEM: kept["StockCode"].astype(str).to_numpy(),
        TIMESTAMP: kept["InvoiceDate"].to_numpy(),
        EVENT: PURCHASE,
        SESSION: pd.factorize(kept["InvoiceNo"])[0] + 1,
        "quantity": kept["Quantity"].astype(np.int64).to_numpy(),
        PRICE: kept["UnitPrice"].astype(np.float64).to_numpy(),
        "order_id": kept["InvoiceNo"].astype(str).to_numpy(),
        "country": kept["Country"].astype(str).to_numpy(),
    })
    described = raw.assign(StockCode=raw["StockCode"].str.upper()).dropna(subset=["Description"])
    titles = (described.groupby(["StockCode", "Description"]).size().rename("n").reset_index()
              .sort_values(["StockCode", "n"], ascending=[True, False], kind="stable")
              .drop_duplicates("StockCode").set_index("StockCode")["Description"])
    grouped = interactions.groupby(ITEM)
    items = pd.DataFrame({PRICE: grouped[PRICE].median(), "launch_time": grouped[TIMESTAMP].min()})
    items.index.name = ITEM
    items = items.reset_index()
    items[TITLE] = items[ITEM].map(titles).fillna("").str.strip()
    items[CATEGORY] = items[TITLE].str.split().str[-1].fillna("UNKNOWN").str.upper()
    items = items[[ITEM, TITLE, CATEGORY, PRICE, "launch_time"]]
    users = (interactions.groupby(USER)["country"].agg(lambda s: s.mode().iloc[0]).reset_index())
    extras = {"cleaning": how, "audit": audit}
    return Dataset(name="online-retail", interactions=interactions, items=items, users=users,
                   description=f"{description} ({how}: {len(raw):,} raw rows -> {len(kept):,} purchases)",
                   test_days=28.0, validation_days=14.0, extras=extras)


def find_online_retail(data_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                       download_missing: bool = True, progress: bool = True) -> Path:
    """The Online Retail file to read: ``path``, the cache under ``data_dir``, ``$RECSYS_DATA_SOURCE_DIR``,
    else the official archive downloaded into ``data_dir`` (size and SHA-256 recorded on first use)."""
    data_dir = Path(data_dir)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (expected .csv, .csv.gz, .xlsx or the UCI .zip)")
        return path
    candidates = ("online_retail.csv.gz", "online_retail.csv", "Online Retail.xlsx")
    folders = [data_dir / ONLINE_RETAIL.folder] + [s / ONLINE_RETAIL.folder for s in source_dirs()]
    for folder in folders:
        for name in candidates:
            if (folder / name).is_file():
                return folder / name
    archive = data_dir / ONLINE_RETAIL.archive
    if not archive.is_file():
        if not download_missing:
            raise FileNotFoundError(f"online-retail: not found in {data_dir} (nor in {_where()}); download "
                                    f"{ONLINE_RETAIL.url} into {data_dir} or pass path=...")
        download(ONLINE_RETAIL.url, archive, progress=progress)
    trust_on_first_use(archive, data_dir / f"{ONLINE_RETAIL.archive}.sha256.json", source=ONLINE_RETAIL.url)
    return archive


@register_dataset("online-retail")
def load_online_retail(seed: int = 42, data_dir: str | os.PathLike = "data",
                       path: str | os.PathLike | None = None,
                       download: bool = True, progress: bool = True, cache_csv: bool = True, **_) -> Dataset:
    """UCI Online Retail (2010-12-01 to 2011-12-09) as purchases; the split holds out the last 28 days.

    When the source is the official ``.xlsx`` (slow to parse, needs openpyxl), a CSV.GZ copy with
    the same columns is written atomically to ``data_dir/online-retail/online_retail.csv.gz`` and
    used from then on.
    """
    source = find_online_retail(data_dir, path, download_missing=download, progress=progress)
    raw = read_online_retail(source)
    if cache_csv and path is None and source.name.lower().endswith((".zip", ".xlsx")):
        from recsys_utils.core.io import atomic_write

        target = Path(data_dir) / ONLINE_RETAIL.folder / "online_retail.csv.gz"
        dates = raw["InvoiceDate"]
        text = (dates.dt.month.astype(str) + "/" + dates.dt.day.astype(str) + "/" + dates.dt.year.astype(str)
                + " " + dates.dt.hour.astype(str) + ":" + dates.dt.strftime("%M"))
        with atomic_write(target, "wb") as handle, \
                gzip.open(handle, "wt", encoding="utf-8", newline="") as out:
            raw.assign(InvoiceDate=text).to_csv(out, index=False)
    return online_retail_dataset(raw, f"UCI Online Retail from {source}")
