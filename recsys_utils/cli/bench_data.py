"""The benchmark command's data: a registered dataset, the NCF paper's own files, or a plain ``user item``
sequence file (SASRec's format), each validated line by line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.datasets import load_dataset
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.sequence_files import read_sequence_file

DATASETS = ("movielens-100k", "movielens-1m", "online-retail", "marketplace", "ncf", "sequences")


class BenchInputError(ValueError):
    """Bad benchmark input; the message names the file and line (or the option) at fault."""


@dataclass
class BenchData:
    """Interactions of a benchmark dataset, or a given train/test split with negatives (ncf)."""

    name: str
    frame: pd.DataFrame | None = None
    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    negatives: np.ndarray | None = None  # (n_test_rows, n_negatives) raw item ids, ncf only; -1 = dropped
    source: str = ""  # where the data came from, logged by every run
    notes: dict = field(default_factory=dict)  # what reading the files changed (e.g. collapsed duplicates)


def _parse_int_fields(path: Path, min_fields: int) -> list[list[str]]:
    lines = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchInputError(f"{path}: cannot read ({error})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) < min_fields:
            raise BenchInputError(f"{path}:{number}: expected at least {min_fields} tab-separated fields, "
                                  f"got {len(fields)}: {line[:80]!r}")
        lines.append((number, fields))
    if not lines:
        raise BenchInputError(f"{path}: empty file")
    return lines


def _ratings_file(path: Path) -> pd.DataFrame:
    rows = _parse_int_fields(path, 2)
    users, items, times = [], [], []
    for number, fields in rows:
        try:
            users.append(int(fields[0]))
            items.append(int(fields[1]))
            times.append(int(fields[3]) if len(fields) > 3 else 0)
        except ValueError:
            raise BenchInputError(f"{path}:{number}: user, item and timestamp must be integers: "
                                  f"{chr(9).join(fields)[:80]!r}") from None
        if users[-1] < 0 or items[-1] < 0:
            raise BenchInputError(f"{path}:{number}: negative id")
    frame = pd.DataFrame({USER: users, ITEM: items, TIMESTAMP: pd.to_datetime(times, unit="s")})
    repeated = frame.duplicated([USER, ITEM], keep="first").to_numpy()
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(((frame[USER] == users[at]) & (frame[ITEM] == items[at])).to_numpy())[0])
        raise BenchInputError(f"{path}:{rows[at][0]}: user {users[at]} and item {items[at]} repeat line "
                              f"{rows[first][0]} (each pair must appear once)")
    return frame


def read_ncf(folder: str | Path, name: str) -> BenchData:
    """The NCF benchmark files (He et al. 2017), validated line by line."""
    folder = Path(folder)
    train = _ratings_file(folder / f"{name}.train.rating")
    test = _ratings_file(folder / f"{name}.test.rating")
    negative_path = folder / f"{name}.test.negative"
    rows = _parse_int_fields(negative_path, 2)
    n_users, n_items = int(train[USER].max()) + 1, int(train[ITEM].max()) + 1
    for path, frame in ((folder / f"{name}.test.rating", test),):
        bad = (frame[USER] >= n_users) | (frame[ITEM] >= n_items)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise BenchInputError(f"{path}:{line}: user or item id out of the training range "
                                  f"(users < {n_users}, items < {n_items})")
    if len(rows) != len(test):
        raise BenchInputError(f"{negative_path}: {len(rows)} lines but {len(test)} test ratings")
    width = len(rows[0][1]) - 1
    negatives = np.empty((len(rows), width), dtype=np.int64)
    seen = Interactions.from_frame(train, IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items)),
                                   weight=None, binary=True).matrix
    for position, (number, fields) in enumerate(rows):
        head = fields[0].strip("()").split(",")
        try:
            user, item = int(head[0]), int(head[1])
            values = [int(v) for v in fields[1:]]
        except (ValueError, IndexError):
            raise BenchInputError(f"{negative_path}:{number}: expected '(user,item)' then integer item ids") from None
        if len(values) != width:
            raise BenchInputError(f"{negative_path}:{number}: {len(values)} negatives, the first line has {width}")
        if (user, item) != (test[USER].iat[position], test[ITEM].iat[position]):
            raise BenchInputError(f"{negative_path}:{number}: ({user},{item}) does not match line {position + 1} "
                                  f"of {name}.test.rating")
        negatives[position] = values
    out_of_range = (negatives < 0) | (negatives >= n_items)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range.any(axis=1))[0])
        raise BenchInputError(f"{negative_path}:{rows[row][0]}: negative item id out of range (items < {n_items})")
    in_train = np.asarray(seen[np.repeat(test[USER].to_numpy(), width), negatives.ravel()]).reshape(negatives.shape) > 0
    if in_train.any():
        row = int(np.flatnonzero(in_train.any(axis=1))[0])
        raise BenchInputError(f"{negative_path}:{rows[row][0]}: a negative is one of the user's training items")
    negatives, notes = _collapse_duplicates(negatives, test[ITEM].to_numpy())
    return BenchData(name=f"ncf/{name}", train=train, test=test, negatives=negatives,
                     source=f"NCF files {folder / name}.*", notes=notes)


def _collapse_duplicates(negatives: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, dict]:
    """Drop (mark ``-1``) negatives equal to the line's test item and repeats within a line.

    The NCF reference evaluation scores ``negatives + [test item]`` through a dict item -> score, so
    a repeated item counts once: 156 lines of the paper's own ``ml-1m.test.negative`` list the test
    item among the 99 negatives, and those users are ranked against 98. We do the same and report it.
    """
    out = negatives.copy()
    is_positive = out == positives[:, None]
    ordered = np.sort(out, axis=1)
    order = np.argsort(out, axis=1, kind="stable")
    repeat_sorted = np.zeros_like(out, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.zeros_like(repeat_sorted)
    np.put_along_axis(repeated, order, repeat_sorted, axis=1)
    drop = is_positive | repeated
    out[drop] = -1
    notes = {"lines_with_test_item_among_negatives": int(is_positive.any(axis=1).sum()),
             "lines_with_repeated_negatives": int(repeated.any(axis=1).sum()),
             "negatives_dropped": int(drop.sum())}
    return out, notes


def sequence_path(data_dir: str | Path | None, name: str | None = None) -> Path:
    """The sequence file: ``--data-dir`` itself, ``DIR/NAME`` or ``DIR/NAME.txt``, or a folder's only ``.txt``."""
    if data_dir is None:
        raise BenchInputError("--dataset sequences needs --data-dir (the 'user item' file or its folder)")
    path = Path(data_dir)
    if path.is_file():
        return path
    if not path.is_dir():
        raise BenchInputError(f"--data-dir {path}: no such file or folder")
    if name:
        for candidate in (path / name, path / f"{name}.txt"):
            if candidate.is_file():
                return candidate
        raise BenchInputError(f"--name {name}: neither {path / name} nor {path / name}.txt exists")
    found = sorted(path.glob("*.txt"))
    if len(found) != 1:
        raise BenchInputError(f"--data-dir {path}: {len(found)} .txt files; give the file or --name NAME")
    return found[0]


def read_sequences(data_dir: str | Path | None, name: str | None = None) -> BenchData:
    """A plain ``user item`` file (:mod:`recsys_utils.data.sequence_files`) as benchmark data."""
    path = sequence_path(data_dir, name)
    try:
        read = read_sequence_file(path)
    except ValueError as error:
        raise BenchInputError(str(error)) from None
    return BenchData(name=f"sequences/{path.stem}", frame=read.frame, source=f"sequence file {path}",
                     notes=read.notes)


def load_bench_data(dataset: str, data_dir: str | Path | None = None, name: str | None = None,
                    seed: int = 42) -> BenchData:
    """The interactions of ``dataset`` in the course vocabulary (see the module docstring)."""
    if dataset not in DATASETS:
        raise BenchInputError(f"--dataset: unknown {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "sequences":
        return read_sequences(data_dir, name)
    if dataset == "ncf":
        if not name or data_dir is None:
            raise BenchInputError("--dataset ncf needs --data-dir DIR and --name NAME (e.g. ml-1m)")
        return read_ncf(data_dir, name)
    kwargs: dict = {}
    if dataset != "marketplace":
        if data_dir is None:
            raise BenchInputError(f"--dataset {dataset} needs --data-dir (the unpacked folder or a cache folder)")
        folder = Path(data_dir)
        if not folder.exists():
            raise BenchInputError(f"--data-dir {folder}: no such folder")
        marker = {"movielens-100k": "u.data", "movielens-1m": "ratings.dat"}.get(dataset)
        kwargs = {"path": folder} if marker and (folder / marker).is_file() else {"data_dir": folder}
    data = load_dataset(dataset, seed=seed, **kwargs)
    frame = data.interactions[[USER, ITEM, TIMESTAMP]].reset_index(drop=True)
    return BenchData(name=dataset, frame=frame, source=data.description)
