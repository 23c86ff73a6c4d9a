"""Reader of the plain sequential format of the public next-item benchmarks, validated line by line.

The repositories of SASRec (Kang & McAuley 2018), BERT4Rec (Sun et al. 2019), gSASRec (Petrov &
Macdonald 2023) and others ship their data as one text file with one ``user item`` pair per line:
two non-negative integer ids separated by white space, the lines of one user in time order (the
users' blocks may be interleaved; only the order of a user's own lines matters). For example::

    1 1
    1 2
    1 3
    2 7
    2 1

:func:`read_sequence_file` returns the pairs as an interactions frame in the course vocabulary
(``user_id``, ``item_id`` and a ``timestamp`` that is the line number, so that sorting by time keeps
the file's order) and reports what it found. Any malformed line stops the read with a
``ValueError`` naming the file and line. Consecutive repeats of an item are kept: the file is
taken as it is, as the papers' own code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER


class SequenceFileError(ValueError):
    """A malformed sequence file; the message names the file and the line."""


@dataclass
class SequenceFile:
    """The pairs of a sequence file as a frame (time = line order) and what the reader noticed."""

    frame: pd.DataFrame
    path: Path
    notes: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.frame[USER].nunique())

    @property
    def n_items(self) -> int:
        return int(self.frame[ITEM].nunique())

    def short_users(self, min_length: int = 3) -> np.ndarray:
        """Ids of the users with fewer than ``min_length`` lines (no validation and test item)."""
        counts = self.frame[USER].value_counts()
        return np.sort(counts.index[counts.to_numpy() < min_length].to_numpy())


def _parse_line(path: Path, number: int, line: str) -> tuple[int, int]:
    fields = line.split()
    if len(fields) != 2:
        raise SequenceFileError(f"{path}:{number}: expected 2 fields 'user item' separated by white space, "
                                f"got {len(fields)}: {line[:80]!r}")
    try:
        user, item = int(fields[0]), int(fields[1])
    except ValueError:
        raise SequenceFileError(f"{path}:{number}: user and item must be integers: {line[:80]!r}") from None
    if user < 0 or item < 0:
        raise SequenceFileError(f"{path}:{number}: ids must be non-negative: {line[:80]!r}")
    return user, item


def read_sequence_file(path: str | Path, min_length: int = 3) -> SequenceFile:
    """Read a ``user item`` file (see the module docstring); blank lines are skipped.

    ``notes`` counts the lines, users and items, and the users with fewer than ``min_length``
    items: under leave-one-out they have no validation and test item, so the benchmark keeps them
    for training only (as SASRec's ``data_partition`` does) and reports how many there were.
    """
    path = Path(path)
    if path.is_dir():
        raise SequenceFileError(f"{path}: is a folder; give the sequence file (one 'user item' pair per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SequenceFileError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SequenceFileError(f"{path}: cannot read ({error})") from None
    users: list[int] = []
    items: list[int] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        user, item = _parse_line(path, number, line)
        users.append(user)
        items.append(item)
        numbers.append(number)
    if not users:
        raise SequenceFileError(f"{path}: no 'user item' line")
    frame = pd.DataFrame({USER: np.asarray(users, dtype=np.int64), ITEM: np.asarray(items, dtype=np.int64),
                          TIMESTAMP: pd.to_datetime(np.asarray(numbers, dtype=np.int64), unit="s")})
    result = SequenceFile(frame, path)
    short = result.short_users(min_length)
    result.notes = {"lines": len(frame), "users": result.n_users, "items": result.n_items,
                    f"users_with_fewer_than_{min_length}_items": len(short)}
    return result


def write_sequence_file(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write an interactions frame as ``user item`` lines, each user's lines in time order.

    The ids must already be non-negative integers (the public files number users and items from 1).
    """
    path = Path(path)
    for column in (USER, ITEM):
        values = frame[column].to_numpy()
        if not np.issubdtype(values.dtype, np.integer) or (len(values) and values.min() < 0):
            raise ValueError(f"write_sequence_file: column {column!r} must hold non-negative integers")
    order = frame.sort_values([USER, TIMESTAMP], kind="stable") if TIMESTAMP in frame else frame
    lines = (order[USER].astype(str) + " " + order[ITEM].astype(str)).tolist()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


__all__ = ["SequenceFile", "SequenceFileError", "read_sequence_file", "write_sequence_file"]
