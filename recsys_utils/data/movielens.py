"""MovieLens 100K and 1M (GroupLens) in the course vocabulary: ratings, movies and users, parsed with checks.

Every rating is an interaction (``event="rating"``; the ``rating`` column keeps the value). The
loaders register with :func:`~recsys_utils.data.registry.register_dataset` as ``movielens-100k``
and ``movielens-1m``; files are found, verified and extracted by
:func:`~recsys_utils.data.source_files.resolve_source`.

The files are checked line by line (:func:`~recsys_utils.data.source_files.parse_delimited`): an
id must be a whole number of at least 0, and a (user, item) pair rated on two lines is refused
with both line numbers (the published files rate each pair once; a repeat means an edited or
concatenated file, and no policy -- first, last, mean -- would be right for every use). Each
file's encoding is detected (UTF-8, else the published Latin-1) and recorded in
``Dataset.extras["encoding"]`` and the description, with the folder read.

Reference: F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context",
ACM TiiS 5(4), 2015.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, EVENT, ITEM, RATING, TIMESTAMP, TITLE, USER
from recsys_utils.data.registry import Dataset, register_dataset
from recsys_utils.data.source_files import DataFormatError, Source, parse_delimited, resolve_source

ML_100K = Source("movielens-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                 "ml-100k.zip", "ml-100k", "u.data", md5="0e33842e24a9c977be4e0107933c0723",
                 sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", size=4_924_029)
ML_1M = Source("movielens-1m", "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
               "ml-1m.zip", "ml-1m", "ratings.dat", md5="c4d9eecfca2ab87c1945afe126590906")
#: no checksum is published for this archive: the first download is recorded (trust on first use)
ML_100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western")
ML_1M_OCCUPATIONS = ("other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                     "customer service", "doctor/health care", "executive/managerial", "farmer",
                     "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
                     "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
                     "unemployed", "writer")


def read_movielens_100k(folder: str | os.PathLike, encoding: str | None = None) -> dict[str, Any]:
    """Parse ``u.data``, ``u.item`` and ``u.user`` of MovieLens 100K (the raw files, checked).

    Returns ``{"ratings", "items", "users"}`` in the course vocabulary and ``"encodings"`` (file
    name -> the encoding used); ``items`` has ``title``, ``genres`` (``"Action|Comedy"``),
    ``category`` (the first genre), ``launch_time`` (release date) and ``year``; ``users`` has
    ``age, gender, occupation, zip_code``. ``encoding=None`` detects each file's encoding (UTF-8,
    else Latin-1, the published one). Ids must be whole numbers of at least 0, a (user, item)
    pair may be rated once, and an item or user id may appear once in its file (errors name the
    lines).
    """
    folder = Path(folder)
    ratings = parse_delimited(folder / "u.data", "\t", (USER, ITEM, RATING, TIMESTAMP), numeric=(RATING, TIMESTAMP),
                              encoding=encoding, ids=(USER, ITEM), unique=(USER, ITEM))
    genre_file = folder / "u.genre"
    genres = ML_100K_GENRES
    if genre_file.is_file():
        table = parse_delimited(genre_file, "|", ("genre", "code"), numeric=("code",), encoding=encoding)
        genres = tuple(table.sort_values("code")["genre"])
    item_names = ((ITEM, TITLE, "release_date", "video_release_date", "imdb_url")
                  + tuple(f"g_{g}" for g in genres))
    raw_items = parse_delimited(folder / "u.item", "|", item_names, numeric=item_names[5:], encoding=encoding,
                                ids=(ITEM,), unique=(ITEM,))
    flags = raw_items[list(item_names[5:])].to_numpy(dtype=bool)
    items = pd.DataFrame({ITEM: raw_items[ITEM], TITLE: raw_items[TITLE].str.strip()})
    items["genres"] = _join_flags(flags, genres)
    items[CATEGORY] = items["genres"].str.split("|").str[0]
    items["launch_time"] = pd.to_datetime(raw_items["release_date"].replace("", None), format="%d-%b-%Y",
                                          errors="coerce")
    items["year"] = _year_from_title(items[TITLE]).fillna(items["launch_time"].dt.year).astype("Int64")
    users = parse_delimited(folder / "u.user", "|", (USER, "age", "gender", "occupation", "zip_code"),
                            numeric=("age",), encoding=encoding, ids=(USER,), unique=(USER,))
    encodings = {"u.data": ratings.attrs["encoding"], "u.item": raw_items.attrs["encoding"],
                 "u.user": users.attrs["encoding"]}
    return {"ratings": _ratings_frame(ratings, folder / "u.data"), "items": items, "users": users,
            "encodings": encodings}


def read_movielens_1m(folder: str | os.PathLike, encoding: str | None = None) -> dict[str, Any]:
    """Parse ``ratings.dat``, ``movies.dat`` and ``users.dat`` of MovieLens 1M (``::``-separated).

    ``users.age`` is the lower bound of the published age group (1 = under 18, 18, 25, 35, 45, 50,
    56); ``occupation`` is decoded from its 0-20 code. Encodings and checks as in
    :func:`read_movielens_100k`.
    """
    folder = Path(folder)
    ratings = parse_delimited(folder / "ratings.dat", "::", (USER, ITEM, RATING, TIMESTAMP),
                              numeric=(RATING, TIMESTAMP), encoding=encoding, ids=(USER, ITEM), unique=(USER, ITEM))
    movies = parse_delimited(folder / "movies.dat", "::", (ITEM, TITLE, "genres"), encoding=encoding,
                             ids=(ITEM,), unique=(ITEM,))
    items = movies.assign(**{TITLE: movies[TITLE].str.strip()})
    items[CATEGORY] = items["genres"].str.split("|").str[0]
    items["year"] = _year_from_title(items[TITLE]).astype("Int64")
    items["launch_time"] = pd.to_datetime(items["year"].astype("float").astype("Int64").astype(str),
                                          format="%Y", errors="coerce")
    users = parse_delimited(folder / "users.dat", "::", (USER, "gender", "age", "occupation", "zip_code"),
                            numeric=("age", "occupation"), encoding=encoding, ids=(USER,), unique=(USER,))
    codes = users["occupation"].to_numpy()
    if ((codes < 0) | (codes >= len(ML_1M_OCCUPATIONS))).any():
        bad = int(codes[(codes < 0) | (codes >= len(ML_1M_OCCUPATIONS))][0])
        raise DataFormatError(f"{folder / 'users.dat'}: occupation code {bad} is outside 0-20")
    encodings = {"ratings.dat": ratings.attrs["encoding"], "movies.dat": movies.attrs["encoding"],
                 "users.dat": users.attrs["encoding"]}
    users["occupation"] = np.asarray(ML_1M_OCCUPATIONS, dtype=object)[codes]
    users = users[[USER, "age", "gender", "occupation", "zip_code"]]
    return {"ratings": _ratings_frame(ratings, folder / "ratings.dat"), "items": items, "users": users,
            "encodings": encodings}


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


def _movielens_dataset(name: str, parts: dict[str, Any], folder: Path, test_days: float,
                       validation_days: float) -> Dataset:
    """The :class:`Dataset`; its description and extras name the folder read and each file's encoding."""
    ratings = parts["ratings"]
    interactions = ratings[[USER, ITEM, TIMESTAMP, EVENT, RATING]]
    encodings = parts["encodings"]
    title = {"movielens-100k": "MovieLens 100K", "movielens-1m": "MovieLens 1M"}[name]
    description = (f"{title} (GroupLens) from {folder} (encodings: "
                   + ", ".join(f"{file}: {used}" for file, used in encodings.items()) + ")")
    return Dataset(name=name, interactions=interactions, items=parts["items"], users=parts["users"],
                   description=description, ratings=ratings[[USER, ITEM, TIMESTAMP, RATING]],
                   test_days=test_days, validation_days=validation_days,
                   extras={"source": str(folder), "encoding": encodings})


@register_dataset("movielens-100k")
def load_movielens_100k(seed: int = 42, data_dir: str | os.PathLike | None = None,
                        path: str | os.PathLike | None = None,
                        download: bool = True, verify: bool = True, progress: bool = True, **_) -> Dataset:
    """MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies, 1997-09 to 1998-04.

    Every rating is an interaction (``event="rating"``, the ``rating`` column keeps the value).
    The split holds out the last 30 days (validation: the 15 before). ``seed`` is unused (the
    data are fixed); it is accepted so every loader has the same signature. ``data_dir`` (default:
    the project's ``data/``) and ``path`` are searched as
    :func:`~recsys_utils.data.source_files.resolve_source` says: a folder given explicitly is the
    only place looked at.
    """
    folder = resolve_source(ML_100K, data_dir, path, download_missing=download, verify=verify,
                            progress=progress)
    return _movielens_dataset("movielens-100k", read_movielens_100k(folder), folder, test_days=30.0,
                              validation_days=15.0)


@register_dataset("movielens-1m")
def load_movielens_1m(seed: int = 42, data_dir: str | os.PathLike | None = None,
                      path: str | os.PathLike | None = None,
                      download: bool = True, verify: bool = True, progress: bool = True, **_) -> Dataset:
    """MovieLens 1M: 1,000,209 ratings by 6,040 users on 3,706 rated movies, 2000-04 to 2003-02.

    Most ratings fall in 2000; the split holds out the last 180 days (validation: the 90 before).
    """
    folder = resolve_source(ML_1M, data_dir, path, download_missing=download, verify=verify,
                            progress=progress)
    return _movielens_dataset("movielens-1m", read_movielens_1m(folder), folder, test_days=180.0,
                              validation_days=90.0)


__all__ = ["ML_100K", "ML_100K_GENRES", "ML_1M", "ML_1M_OCCUPATIONS", "load_movielens_100k", "load_movielens_1m",
           "read_movielens_100k", "read_movielens_1m"]
