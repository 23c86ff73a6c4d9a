"""Real-data loaders on small fixture files written in the exact published formats (no network)."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data import movielens, online_retail, source_files
from recsys_utils.data.datasets import dataset_names, load_dataset
from recsys_utils.data.download import ChecksumError
from recsys_utils.data.movielens import ML_100K, load_movielens_1m, load_movielens_100k
from recsys_utils.data.online_retail import load_online_retail, read_online_retail
from recsys_utils.data.source_files import DataFormatError, parse_delimited, resolve_source

# ------------------------------------------------------------------ fixtures in the real formats

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881251000\n"
U_GENRE = "".join(f"{g}|{i}\n" for i, g in enumerate(movielens.ML_100K_GENRES)) + "\n"
_FLAGS = {242: (4, 5), 302: (6, 16), 377: (3, 5)}  # Children's+Comedy, Crime+Thriller, Animation+Comedy
_TITLES = {242: "Kolya (1996)", 302: "L.A. Confidential (1997)", 377: "Heavyweights (1994)"}
U_USER = "196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n"


def _u_item() -> bytes:
    lines = []
    for item, title in _TITLES.items():
        flags = ["0"] * 19
        for j in _FLAGS[item]:
            flags[j] = "1"
        lines.append(f"{item}|{title}|24-Jan-1997||http://us.imdb.com/M/title-exact?x|" + "|".join(flags))
    lines.append("1682|Scream of Stone (Schrei aus Stein) (1991)|08-M\u00e4r-1996||x|" + "|".join(["0"] * 18 + ["1"]))
    return ("\n".join(lines) + "\n").encode("latin-1")


def write_ml100k(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(_u_item())
    (folder / "u.user").write_text(U_USER)
    (folder / "u.genre").write_text(U_GENRE)
    return folder


RETAIL_CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/2010 8:34,1.69,13047,United Kingdom
536370,POST,POSTAGE,3,12/1/2010 8:45,18,12583,France
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,12/1/2010 9:49,4.65,15311,United Kingdom
536414,22139,,56,12/1/2010 11:52,0,,United Kingdom
536544,21773,"DECORATIVE ROSE BATHROOM BOTTLE, LARGE",1,12/1/2010 14:32,2.51,,United Kingdom
581587,22138,BAKING SET 9 PIECE RETROSPOT ,3,12/9/2011 12:50,4.95,12680,France
"""


def write_retail(path, text: str = RETAIL_CSV, gz: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_shared_copies(monkeypatch):
    """Tests never see ../shared/data or any real copy: the local-copy search finds nothing."""
    monkeypatch.setenv(source_files.SOURCE_ENV, "none")


# ------------------------------------------------------------------ registry


def test_loaders_are_registered():
    assert {"movielens-100k", "movielens-1m", "online-retail", "marketplace"} <= set(dataset_names())


# ------------------------------------------------------------------ MovieLens 100K


def test_movielens_100k_from_folder(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    data = load_dataset("movielens-100k", data_dir=tmp_path / "data", path=folder, download=False)
    inter = data.interactions
    assert list(inter.columns[:4]) == ["user_id", "item_id", "timestamp", "event"]
    assert len(inter) == 4 and inter["user_id"].dtype == np.int64
    assert inter["timestamp"].is_monotonic_increasing
    assert inter["timestamp"].iloc[0] == pd.Timestamp(878887116, unit="s")
    assert sorted(inter["rating"]) == [1, 3, 3, 5]
    items = data.items.set_index("item_id")
    assert items.loc[242, "genres"] == "Children's|Comedy" and items.loc[242, "category"] == "Children's"
    assert items.loc[1682, "title"].startswith("Scream of Stone") and items.loc[1682, "genres"] == "Western"
    assert items.loc[302, "year"] == 1997 and items.loc[302, "launch_time"] == pd.Timestamp("1997-01-24")
    assert pd.isna(items.loc[1682, "launch_time"])  # the published file has odd dates: kept missing
    users = data.users.set_index("user_id")
    assert users.loc[186, "zip_code"] == "00000" and users.loc[196, "age"] == 49
    assert data.ratings is not None and len(data.ratings) == 4


def test_movielens_100k_via_env_source_dir(tmp_path, monkeypatch):
    """The default data folder (none given, or the project's data/) also looks in the local copies."""
    copy = write_ml100k(tmp_path / "copies" / "ml-100k")
    monkeypatch.setenv(source_files.SOURCE_ENV, str(tmp_path / "copies"))
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "project"))
    data = load_movielens_100k(download=False)
    assert len(data.interactions) == 4 and data.extras["source"] == str(copy)
    assert len(load_movielens_100k(data_dir=tmp_path / "project" / "data", download=False).interactions) == 4
    assert not (tmp_path / "project" / "data").exists()  # read in place, not copied
    with pytest.raises(FileNotFoundError, match="given explicitly: no other folder is searched"):
        load_movielens_100k(data_dir=tmp_path / "data", download=False)


def test_movielens_not_found_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="movielens-100k: not found"):
        load_movielens_100k(data_dir=tmp_path, download=False)


def _ml_zip(tmp_path):
    write_ml100k(tmp_path / "src" / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for f in sorted((tmp_path / "src" / "ml-100k").iterdir()):
            handle.write(f, f"ml-100k/{f.name}")
    return archive


def test_archive_is_verified_and_extracted(tmp_path):
    archive = _ml_zip(tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = replace(ML_100K, md5=None, size=None, sha256=digest, url=archive.as_uri())
    data_dir = tmp_path / "data"
    folder = resolve_source(source, data_dir, download_missing=True, progress=False)  # "downloads" file://
    assert folder == data_dir / "ml-100k" and (folder / "u.data").read_text() == U_DATA
    assert (data_dir / "ml-100k.zip").is_file()
    # a cached archive that does not match the published checksum is refused
    bad = replace(ML_100K, sha256="0" * 64, md5=None, size=None)
    with pytest.raises(ChecksumError, match="sha256"):
        resolve_source(bad, tmp_path / "other", path=archive, download_missing=False)


def test_official_checksums_are_the_published_ones():
    assert ML_100K.md5 == "0e33842e24a9c977be4e0107933c0723" and ML_100K.size == 4_924_029
    assert movielens.ML_1M.md5 == "c4d9eecfca2ab87c1945afe126590906"
    assert ML_100K.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert online_retail.ONLINE_RETAIL.url == "https://archive.ics.uci.edu/static/public/352/online+retail.zip"


# ------------------------------------------------------------------ malformed MovieLens files


def test_wrong_delimiter_names_file_and_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_DATA.replace("\t", ","))
    with pytest.raises(DataFormatError, match=r"u\.data: wrong delimiter: expected tab.*line 1 is comma"):
        load_movielens_100k(path=folder, data_dir=tmp_path)


def test_wrong_field_count_names_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_DATA + "7\t8\t9\n")
    with pytest.raises(DataFormatError, match=r"u\.data: line 5 has 3 tab-separated fields, expected 4"):
        load_movielens_100k(path=folder, data_dir=tmp_path)


def test_non_numeric_id_names_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_DATA.replace("22\t377", "u22\t377"))
    with pytest.raises(DataFormatError, match=r"u\.data: non-numeric user_id 'u22' at line 3"):
        load_movielens_100k(path=folder, data_dir=tmp_path)


def test_rating_out_of_range(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_DATA.replace("\t1\t", "\t9\t"))
    with pytest.raises(DataFormatError, match=r"u\.data: rating 9 .*outside 1-5"):
        load_movielens_100k(path=folder, data_dir=tmp_path)


def test_bad_encoding(tmp_path):
    path = tmp_path / "u.user"
    path.write_bytes("1|24|M|t\u00e9chnician|85711\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"u\.user: bad encoding: byte 0xe9 at line 1"):
        parse_delimited(path, "|", ("a", "b", "c", "d", "e"), encoding="utf-8")
    utf16 = tmp_path / "u16.data"
    utf16.write_bytes(U_DATA.encode("utf-16"))
    with pytest.raises(DataFormatError, match="NUL bytes"):
        parse_delimited(utf16, "\t", ("a", "b", "c", "d"))


def test_empty_file(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("\n\n")
    with pytest.raises(DataFormatError, match="u.data: the file is empty"):
        parse_delimited(path, "\t", ("a", "b"))


# ------------------------------------------------------------------ MovieLens 1M


def write_ml1m(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::"
        "Animation|Children's|Musical\n3::Caf\u00e9 Society (1995)::Drama\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def test_movielens_1m(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    data = load_movielens_1m(data_dir=tmp_path, path=folder)
    assert len(data.interactions) == 3 and set(data.interactions["user_id"]) == {1, 2}
    items = data.items.set_index("item_id")
    assert items.loc[661, "category"] == "Animation" and items.loc[1193, "year"] == 1975
    assert items.loc[3, "title"] == "Caf\u00e9 Society (1995)"
    users = data.users.set_index("user_id")
    assert users.loc[1, "occupation"] == "K-12 student" and users.loc[2, "occupation"] == "self-employed"
    (folder / "users.dat").write_text("1::F::1::25::48067\n")
    with pytest.raises(DataFormatError, match=r"users\.dat: occupation code 25"):
        load_movielens_1m(data_dir=tmp_path, path=folder)
    (folder / "ratings.dat").write_text("1\t1193\t5\t978300760\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat: wrong delimiter: expected '::'"):
        load_movielens_1m(data_dir=tmp_path, path=folder)


# ------------------------------------------------------------------ Online Retail


def test_read_online_retail_keeps_every_row(tmp_path):
    raw = read_online_retail(write_retail(tmp_path / "online_retail.csv.gz"))
    assert len(raw) == 10 and list(raw.columns) == list(online_retail.RETAIL_COLUMNS)
    assert raw["CustomerID"].isna().sum() == 2 and raw["Description"].isna().sum() == 1
    assert raw["InvoiceDate"].iloc[0] == pd.Timestamp("2010-12-01 08:26")
    cancel = raw["InvoiceNo"].str.startswith("C")
    assert cancel.sum() == 2 and (raw.loc[cancel, "Quantity"] < 0).all()
    assert raw["Description"].iloc[8] == "DECORATIVE ROSE BATHROOM BOTTLE, LARGE"  # quoted comma


def test_online_retail_dataset(tmp_path):
    path = write_retail(tmp_path / "online_retail.csv", gz=False)
    data = load_online_retail(data_dir=tmp_path, path=path)
    inter = data.interactions
    # kept: 17850 x3, 13047 x1, 12680 x1 (POST is not a product, C... cancelled, no-customer rows dropped)
    assert sorted(inter["user_id"].unique()) == [12680, 13047, 17850] and len(inter) == 5
    assert set(inter["event"]) == {"purchase"} and (inter["quantity"] > 0).all()
    assert inter.groupby("order_id")["session_id"].nunique().eq(1).all()
    assert "POST" not in set(inter["item_id"])
    items = data.items.set_index("item_id")
    assert items.loc["85123A", "title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    # the audit accounts for every raw line, with the cleaner's reason names
    row = data.extras["audit"].loc["online_retail"]
    reasons = ["missing_customer", "cancellation", "not_a_product", "bad_quantity", "bad_price", "duplicate"]
    assert [c for c in row.index if c.startswith("dropped:")] == [f"dropped:{r}" for r in reasons]
    dropped = {r: int(row[f"dropped:{r}"]) for r in reasons}
    assert dropped == {"missing_customer": 2, "cancellation": 2, "not_a_product": 1, "bad_quantity": 0,
                       "bad_price": 0, "duplicate": 0}
    assert row["rows_in"] == 10 == row["rows_kept"] + sum(dropped.values()) and row["rows_kept"] == len(inter)
    assert row["fixed:inconsistent"] == 1  # "BAKING SET 9 PIECE RETROSPOT " loses its trailing space


def test_online_retail_missing_price_or_quantity_is_dropped(tmp_path):
    """Empty UnitPrice / Quantity cells are read as missing and dropped by the cleaner, never kept."""
    text = RETAIL_CSV.replace("536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,",
                              "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,,")
    text = text.replace("536366,22633,HAND WARMER UNION JACK,6,", "536366,22633,HAND WARMER UNION JACK,,")
    path = write_retail(tmp_path / "gaps.csv", text, gz=False)
    raw = read_online_retail(path)
    assert pd.isna(raw.loc[1, "UnitPrice"]) and pd.isna(raw.loc[2, "Quantity"])
    data = load_online_retail(data_dir=tmp_path, path=path)
    row = data.extras["audit"].loc["online_retail"]
    assert row["dropped:bad_price"] == 1 and row["dropped:bad_quantity"] == 1 and row["rows_kept"] == 3
    assert set(data.interactions["item_id"]) == {"85123A", "84879", "22138"}
    assert data.interactions["price"].notna().all() and (data.interactions["quantity"] > 0).all()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(",", ";"), r"wrong delimiter: expected comma-separated"),
    (lambda t: t.replace(",UnitPrice,", ",Price,"), r"missing column\(s\) \['UnitPrice'\]"),
    (lambda t: t.replace("536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32",
                         "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,lots"),
     r"non-numeric Quantity 'lots' on data row 4 \(line 5\)"),
    (lambda t: t.replace(",13047,", ",A13047,"), r"non-numeric CustomerID 'A13047' on data row 4 \(line 5\)"),
    (lambda t: t.replace("12/1/2010 8:28", "yesterday"), r"InvoiceDate 'yesterday' on data row 3 \(line 4\)"),
])
def test_online_retail_malformed(tmp_path, edit, message):
    path = write_retail(tmp_path / "bad.csv", edit(RETAIL_CSV), gz=False)
    with pytest.raises(DataFormatError, match=r"bad\.csv: " + message):
        read_online_retail(path)


def test_online_retail_bad_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(RETAIL_CSV.replace("France", "Fran\u00e7e").encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin\.csv: bad encoding"):
        read_online_retail(path)
    assert read_online_retail(path, encoding="latin-1")["Country"].iloc[4] == "Fran\u00e7e"


def test_online_retail_found_in_source_dir(tmp_path, monkeypatch):
    copy = write_retail(tmp_path / "copies" / "online-retail" / "online_retail.csv.gz")
    monkeypatch.setenv(source_files.SOURCE_ENV, str(tmp_path / "copies"))
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "project"))
    data = load_dataset("online-retail", download=False)  # the default data folder: local copies too
    assert len(data.interactions) == 5 and data.extras["source"] == str(copy) and str(copy) in data.description
    with pytest.raises(FileNotFoundError, match="online-retail: not found.*given explicitly"):
        load_dataset("online-retail", data_dir=tmp_path / "data", download=False)
    monkeypatch.setenv(source_files.SOURCE_ENV, "none")
    with pytest.raises(FileNotFoundError, match="online-retail: not found"):
        load_dataset("online-retail", download=False)


# ------------------------------------------------------------------ the cache and explicit archives


def test_an_explicit_archive_is_never_answered_by_the_cache_of_another(tmp_path):
    first = _ml_zip(tmp_path)
    data_dir = tmp_path / "data"
    assert len(load_movielens_100k(path=first, data_dir=data_dir, verify=False).interactions) == 4
    other = tmp_path / "other"
    write_ml100k(other / "ml-100k")
    (other / "ml-100k" / "u.data").write_text(U_DATA + "7\t242\t4\t881250999\n")
    second = tmp_path / "second.zip"
    with zipfile.ZipFile(second, "w") as handle:
        for f in sorted((other / "ml-100k").iterdir()):
            handle.write(f, f"ml-100k/{f.name}")
    data = load_movielens_100k(path=second, data_dir=data_dir, verify=False)
    assert len(data.interactions) == 5  # the files the project wrote were replaced by the second archive's
    assert len(load_movielens_100k(data_dir=data_dir, download=False).interactions) == 5


def test_movielens_1m_ids_are_checked(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    movies = (folder / "movies.dat").read_bytes()
    (folder / "movies.dat").write_bytes(movies + b"661::Again (1996)::Drama\n")
    with pytest.raises(DataFormatError, match=r"movies\.dat: line 4 repeats item_id 661 of line 2"):
        load_movielens_1m(data_dir=tmp_path, path=folder)
    (folder / "movies.dat").write_bytes(movies)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::1.5::3::978302109\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat: non-integer item_id 1\.5 at line 2"):
        load_movielens_1m(data_dir=tmp_path, path=folder)
    data = load_movielens_1m(data_dir=tmp_path, path=write_ml1m(tmp_path / "ml-1m"))
    assert data.extras["encoding"]["movies.dat"] == "latin-1" and data.extras["source"] == str(folder)
