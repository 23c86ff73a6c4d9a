"""UCI Online Retail (2010-12 to 2011-12) in the course vocabulary: invoice lines read with checks, then cleaned.

:func:`read_online_retail` reads the raw table (CSV, CSV.GZ, the official XLSX or ZIP) and checks
its format without dropping or changing rows; :func:`online_retail_dataset` cleans it with
:func:`~recsys_utils.data.retail_cleaning.clean_online_retail` (an audited step) and builds the
purchases, items and users. The loader registers as ``online-retail``; UCI publishes no checksum,
so the size and SHA-256 of the first download are recorded once it was read and validated, and
checked on every later use (trust on first use, :mod:`recsys_utils.data.download`). The official
archive is extracted with the same limits as every archive (size, compression ratio), never read
whole into memory.

Reference: D. Chen, S. L. Sain and K. Guo, "Data mining for the online retail industry",
J. Database Marketing & Customer Strategy Management 19(3), 2012 (UCI ML Repository id 352,
DOI 10.24432/C5BW33).
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.core.io import atomic_write
from recsys_utils.core.vocabulary import CATEGORY, EVENT, ITEM, PRICE, PURCHASE, SESSION, TIMESTAMP, TITLE, USER
from recsys_utils.data.download import (
    BadArchiveError,
    DownloadError,
    check_trusted,
    download,
    open_zip,
    record_trust,
    safe_extract,
)
from recsys_utils.data.registry import Dataset, register_dataset
from recsys_utils.data.retail_cleaning import RETAIL_SCHEMA, clean_online_retail
from recsys_utils.data.source_files import (
    DataFormatError,
    DataNotFoundError,
    Source,
    default_data_dir,
    searched_places,
    searches_local_copies,
    sniff_delimiter,
    source_dirs,
)

#: the raw columns, in the published order
RETAIL_COLUMNS = tuple(RETAIL_SCHEMA)
ONLINE_RETAIL = Source("online-retail", "https://archive.ics.uci.edu/static/public/352/online+retail.zip",
                       "online+retail.zip", "online-retail", "Online Retail.xlsx")

RETAIL_DATE_FORMAT = "%m/%d/%Y %H:%M"


def read_online_retail(path: str | os.PathLike, encoding: str = "utf-8",
                       date_format: str = RETAIL_DATE_FORMAT) -> pd.DataFrame:
    """Read the raw UCI Online Retail table from ``.csv``, ``.csv.gz``, ``.xlsx`` or the official ``.zip``.

    Returns the eight raw columns, typed and checked: ``InvoiceNo, StockCode, Description,
    Country`` as strings, ``Quantity`` nullable Int64, ``InvoiceDate`` datetime, ``UnitPrice``
    float64, ``CustomerID`` nullable Int64. Missing values are kept missing, and rows are neither
    dropped nor changed: cleaning is a separate, audited step (a line with no ``Quantity`` or
    ``UnitPrice`` is dropped there as ``bad_quantity`` / ``bad_price``). A value that is present
    but not a number is a format error. The ``.xlsx`` sheet needs ``openpyxl`` (not a course
    dependency): install it, or pass a CSV export with the same columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".zip"):
        return _read_zip(path, encoding, date_format)
    if name.endswith((".xlsx", ".xls")):
        return _retail_from_excel(path, str(path))
    if not name.endswith((".csv", ".csv.gz", ".txt", ".gz")):
        raise DataFormatError(f"{path}: unknown file type; expected .csv, .csv.gz, .xlsx or .zip")
    return _read_csv(path, encoding, date_format)


def _read_zip(path: Path, encoding: str, date_format: str) -> pd.DataFrame:
    """The first ``.xlsx`` or ``.csv`` inside the official archive, extracted with the archive limits.

    The member goes through :func:`~recsys_utils.data.download.safe_extract` (size and compression
    ratio capped, streamed in chunks to a temporary folder) and is read from there: a "zip bomb"
    is refused before it is decompressed, and a truncated or corrupt archive is a
    :class:`DataFormatError` naming the file.
    """
    try:
        with open_zip(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith((".xlsx", ".csv"))]
        if not members:
            raise DataFormatError(f"{path}: no .xlsx or .csv inside the archive")
        with tempfile.TemporaryDirectory(prefix="recsys-retail-") as tmp:
            folder = safe_extract(path, Path(tmp) / "member", members=[members[0]])
            member = folder / members[0]
            where = f"{path}:{members[0]}"
            if members[0].lower().endswith(".xlsx"):
                return _retail_from_excel(member, where)
            return _read_csv(member, encoding, date_format, where=where)
    except BadArchiveError as exc:
        raise DataFormatError(str(exc)) from exc


def _read_csv(path: Path, encoding: str, date_format: str, where: str | None = None) -> pd.DataFrame:
    """A CSV or CSV.GZ export: the header is checked first, so a wrong delimiter or encoding is named."""
    name = path.name.lower()
    where = where or str(path)
    try:
        with (gzip.open(path, "rt", encoding=encoding, newline="") if name.endswith(".gz")
              else open(path, encoding=encoding, newline="")) as handle:
            header = handle.readline()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{where}: bad encoding: the header is not valid {encoding} "
                              f"({exc.reason})") from exc
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{where}: cannot read the file ({exc})") from exc
    if header.count(",") == 0 and len(RETAIL_COLUMNS) > 1:
        raise DataFormatError(f"{where}: wrong delimiter: expected comma-separated columns "
                              f"{', '.join(RETAIL_COLUMNS)}; the header line is {sniff_delimiter(header)}: "
                              f"{header[:80]!r}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding=encoding,
                          compression="gzip" if name.endswith(".gz") else None, quoting=csv.QUOTE_MINIMAL)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{where}: bad encoding: not valid {encoding} text ({exc.reason} at byte "
                              f"{exc.start}); pass encoding=... for this file") from exc
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{where}: not a well-formed CSV ({exc})") from exc
    return _validate_retail(raw, where, date_format)


def _retail_from_excel(source, where: str) -> pd.DataFrame:
    """The official sheet, turned into the same text cells as a CSV export, then validated."""
    try:
        raw = pd.read_excel(source, engine="openpyxl", dtype=object)
    except ImportError as exc:  # pandas names the missing optional dependency
        raise ImportError(f"{where}: reading the Online Retail .xlsx sheet needs openpyxl, which the "
                          "course does not install; run `pip install openpyxl`, or export the sheet to CSV "
                          "and pass path='online_retail.csv.gz'") from exc
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
    """Check and type the text cells of the raw table; errors name the data row and the file line."""
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
    # a missing number stays missing (the cleaner drops it with a reason); text that is no number is an error
    for column, kind in (("Quantity", "an integer"), ("UnitPrice", "a number"), ("CustomerID", "an integer id")):
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() & raw[column].notna()
        if column != "UnitPrice":
            bad |= values.notna() & (values % 1 != 0)
        if bad.any():
            i = _first_bad(bad)
            raise DataFormatError(f"{where}: non-numeric {column} {raw[column].iloc[i]!r} on data row "
                                  f"{i + 1} (line {i + 2}); expected {kind}")
        out[column] = values.astype(np.float64) if column == "UnitPrice" else values.astype("Int64")
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


def _trust_record(data_dir: Path) -> Path:
    return data_dir / f"{ONLINE_RETAIL.archive}.sha256.json"


def find_online_retail(data_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                       download_missing: bool = True, progress: bool = True) -> Path:
    """The Online Retail file to read: ``path``, the cache under ``data_dir``, a local copy (only for the
    default data folder, see :func:`~recsys_utils.data.source_files.searches_local_copies`), else the
    official archive downloaded into ``data_dir``.

    An archive whose size and SHA-256 were recorded is checked against them here; a new one is
    recorded by :func:`load_online_retail` only after it was read and validated (a corrupt first
    download must never become the trusted copy).
    """
    explicit = data_dir
    data_dir = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (expected .csv, .csv.gz, .xlsx or the UCI .zip)")
        return path
    candidates = ("online_retail.csv.gz", "online_retail.csv", "Online Retail.xlsx")
    copies = source_dirs() if searches_local_copies(explicit) else []
    for folder in [data_dir / ONLINE_RETAIL.folder] + [s / ONLINE_RETAIL.folder for s in copies]:
        for name in candidates:
            if (folder / name).is_file():
                return folder / name
    archive = data_dir / ONLINE_RETAIL.archive
    if not archive.is_file():
        where = f"online-retail: not found in {searched_places(explicit)}"
        if not download_missing:
            raise DataNotFoundError(f"{where}; download {ONLINE_RETAIL.url} into {data_dir} or pass path=...")
        try:
            download(ONLINE_RETAIL.url, archive, progress=progress)
        except DownloadError as exc:
            raise DataNotFoundError(f"{where}, and the download failed: {exc}. Download {ONLINE_RETAIL.url} "
                                    f"by hand into {data_dir}, or pass path=...") from exc
    check_trusted(archive, _trust_record(data_dir))
    return archive


@register_dataset("online-retail")
def load_online_retail(seed: int = 42, data_dir: str | os.PathLike | None = None,
                       path: str | os.PathLike | None = None,
                       download: bool = True, progress: bool = True, cache_csv: bool = True, **_) -> Dataset:
    """UCI Online Retail (2010-12-01 to 2011-12-09) as purchases; the split holds out the last 28 days.

    When the source is the official ``.xlsx`` (slow to parse, needs openpyxl), a CSV.GZ copy with
    the same columns is written atomically to ``data_dir/online-retail/online_retail.csv.gz`` and
    used from then on. The file read is named in the description and ``extras["source"]``.
    """
    source = find_online_retail(data_dir, path, download_missing=download, progress=progress)
    raw = read_online_retail(source)
    folder = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    if path is None and source == folder / ONLINE_RETAIL.archive and not _trust_record(folder).is_file():
        record_trust(source, _trust_record(folder), source=ONLINE_RETAIL.url)  # read and valid: now trusted
    if cache_csv and path is None and source.name.lower().endswith((".zip", ".xlsx")):
        target = folder / ONLINE_RETAIL.folder / "online_retail.csv.gz"
        dates = raw["InvoiceDate"]
        text = (dates.dt.month.astype(str) + "/" + dates.dt.day.astype(str) + "/" + dates.dt.year.astype(str)
                + " " + dates.dt.hour.astype(str) + ":" + dates.dt.strftime("%M"))
        with atomic_write(target, "wb") as handle, \
                gzip.open(handle, "wt", encoding="utf-8", newline="") as out:
            raw.assign(InvoiceDate=text).to_csv(out, index=False)
    data = online_retail_dataset(raw, f"UCI Online Retail from {source}")
    data.extras["source"] = str(source)
    return data


__all__ = ["ONLINE_RETAIL", "RETAIL_COLUMNS", "find_online_retail", "load_online_retail", "online_retail_dataset",
           "read_online_retail"]
