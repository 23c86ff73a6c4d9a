"""Interaction histories as padded integer arrays, for sequential (next-item) recommenders.

A sequential model reads what a user (or a session) did, in time order, and predicts what comes
next. This module turns an interactions frame into that shape without a Python loop per user:
rows are sorted once by (key, time, original order) with ``np.lexsort``, consecutive repeats of
the same item are collapsed, each row's position counted from the end of its key gives its
column, and one fancy-indexed assignment fills the padded array.

Conventions (shared by :mod:`recsys_utils.models.sequential`):

- ``items`` is an ``(n, max_len)`` int64 array of item *indices* (``0..n_items-1``), one row per
  user or session, **right-aligned** (the most recent item in the last column) and padded on the
  left with :data:`PAD` (``-1``). Models that need a non-negative padding id add 1 internally.
- Histories longer than ``max_len`` keep their most recent ``max_len`` items.

The next-item protocol (:func:`leave_last_out_sequences`): for every key with at least
``min_length`` items after collapsing repeats, the last item is the **test** target (its history
is everything before it), the one before is the **validation** target (history: everything before
that), and the rest is the **training** sequence. This is the protocol of SASRec (Kang & McAuley
2018) and of most sequential-recommendation papers, with full-catalogue ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT, ITEM, SESSION, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex

#: the padding value in history arrays (no item)
PAD = -1


@dataclass(frozen=True)
class Sequences:
    """Histories as a right-aligned, left-padded ``(n, max_len)`` array of item indices.

    ``keys`` holds the raw user (or session) id of each row; ``item_index`` maps item indices to
    raw item ids. ``lengths[r]`` is the number of real items in row ``r`` (at most ``max_len``).
    """

    items: np.ndarray
    keys: np.ndarray
    item_index: IdIndex

    def __post_init__(self) -> None:
        items = np.asarray(self.items)
        if items.ndim != 2:
            raise ValueError(f"Sequences: items must be 2-D (rows x positions), got shape {items.shape}")
        if items.size and (items.min() < PAD or items.max() >= len(self.item_index)):
            raise ValueError(f"Sequences: item indices must lie in [0, {len(self.item_index)}) "
                             f"with {PAD} as padding; found {items.min()}..{items.max()}")
        if items.size and (np.diff((items != PAD).astype(np.int8), axis=1) < 0).any():
            row = int(np.flatnonzero((np.diff((items != PAD).astype(np.int8), axis=1) < 0).any(axis=1))[0])
            raise ValueError(f"Sequences: row {row} has padding after an item; histories are "
                             "right-aligned with padding on the left")
        if len(self.keys) != items.shape[0]:
            raise ValueError(f"Sequences: {len(self.keys)} keys for {items.shape[0]} rows")

    @classmethod
    def from_array(cls, items: np.ndarray, n_items: int, keys: np.ndarray | None = None) -> Sequences:
        """Wrap an array of item indices (``-1`` = padding) with a trivial item index ``0..n_items-1``."""
        items = np.asarray(items, dtype=np.int64)
        keys = np.arange(items.shape[0]) if keys is None else np.asarray(keys)
        return cls(items, keys, IdIndex(np.arange(n_items), ITEM))

    @property
    def n_items(self) -> int:
        return len(self.item_index)

    @property
    def max_len(self) -> int:
        return self.items.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return (self.items != PAD).sum(axis=1)

    def __len__(self) -> int:
        return self.items.shape[0]

    def __repr__(self) -> str:
        lengths = self.lengths
        return (f"Sequences(rows={len(self)}, max_len={self.max_len}, items={self.n_items}, "
                f"mean length={lengths.mean() if len(lengths) else 0:.1f})")

    def last(self) -> np.ndarray:
        """The most recent item of each row (``-1`` for an empty row)."""
        return self.items[:, -1].copy()

    def drop_last(self, n: int = 1) -> Sequences:
        """The same rows without their last ``n`` items (shifted right, padded on the left)."""
        return Sequences(drop_last(self.items, n), self.keys, self.item_index)

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """All consecutive ``(previous, next)`` item pairs inside the rows."""
        prev, nxt = self.items[:, :-1].ravel(), self.items[:, 1:].ravel()
        keep = (prev != PAD) & (nxt != PAD)
        return prev[keep], nxt[keep]

    def item_counts(self) -> np.ndarray:
        """How often each item occurs in the rows."""
        flat = self.items[self.items != PAD]
        return np.bincount(flat, minlength=self.n_items)


@dataclass(frozen=True)
class NextItemTask:
    """Histories and the item that came next: ``histories`` ``(n, max_len)``, ``targets`` ``(n,)``.

    ``full_lengths`` is each history's length before truncation to ``max_len`` (default: the
    truncated length), for accuracy-by-history-length plots.
    """

    histories: np.ndarray
    targets: np.ndarray
    keys: np.ndarray
    full_lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.histories.ndim != 2 or self.histories.shape[0] != len(self.targets):
            raise ValueError(f"NextItemTask: histories {self.histories.shape} do not match "
                             f"{len(self.targets)} targets")
        if len(self.targets) and self.targets.min() < 0:
            raise ValueError(f"NextItemTask: target {int(self.targets.min())} is not an item index")
        if self.full_lengths is None:
            object.__setattr__(self, "full_lengths", self.lengths)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def lengths(self) -> np.ndarray:
        return (self.histories != PAD).sum(axis=1)


@dataclass(frozen=True)
class SequenceSplit:
    """Leave-last-out split of histories: training sequences, a validation and a test task."""

    train: Sequences
    validation: NextItemTask
    test: NextItemTask
    #: length of every key's full history after collapsing repeats (before truncation)
    full_lengths: np.ndarray

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def sizes(self) -> dict[str, int]:
        return {"sequences": len(self.train), "train_items": int(self.train.lengths.sum()),
                "validation": len(self.validation), "test": len(self.test), "items": self.n_items}


def drop_last(items: np.ndarray, n: int = 1) -> np.ndarray:
    """Remove the last ``n`` items of every right-aligned row, padding on the left."""
    if n < 0:
        raise ValueError(f"drop_last: n must be >= 0, got {n}")
    if n == 0:
        return items.copy()
    out = np.full_like(items, PAD)
    out[:, n:] = items[:, :-n]
    return out


def _check_frame(frame: pd.DataFrame, by: str, where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in (by, ITEM, TIMESTAMP) if c not in frame.columns]
    if missing:
        hint = " (sessions need a 'session_id' column)" if by == SESSION else ""
        raise KeyError(f"{where}: missing column(s) {missing}{hint}; columns are {list(frame.columns)}")
    if frame[by].isna().any():
        raise ValueError(f"{where}: column '{by}' has missing values (first at row "
                         f"{int(np.flatnonzero(frame[by].isna().to_numpy())[0])})")


def _ordered_events(frame: pd.DataFrame, by: str, events, dedupe: bool, items: IdIndex | None,
                    where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, IdIndex]:
    """Key codes, raw keys and item indices of the rows sorted by (key, time, row order)."""
    _check_frame(frame, by, where)
    if events is not None:
        if EVENT not in frame.columns:
            raise KeyError(f"{where}: events={events!r} given but the frame has no '{EVENT}' column")
        wanted = [events] if isinstance(events, str) else list(events)
        frame = frame[frame[EVENT].isin(wanted).to_numpy()]
        if len(frame) == 0:
            raise ValueError(f"{where}: no rows with {EVENT} in {wanted}")
    if len(frame) == 0:
        raise ValueError(f"{where}: the frame is empty")
    item_index = items if items is not None else IdIndex(frame[ITEM].to_numpy(), ITEM)
    item = item_index.to_index(frame[ITEM].to_numpy(), missing="ignore")
    if (item < 0).any():
        bad = int(np.flatnonzero(item < 0)[0])
        raise KeyError(f"{where}: item_id {frame[ITEM].iloc[bad]!r} (row {bad}) is not in the item index")
    codes, uniques = pd.factorize(frame[by], sort=False)
    time = pd.to_datetime(frame[TIMESTAMP]).to_numpy()
    order = np.lexsort((np.arange(len(frame)), time, codes))
    codes, item = codes[order], item[order]
    if dedupe and len(item) > 1:
        repeat = np.zeros(len(item), dtype=bool)
        repeat[1:] = (codes[1:] == codes[:-1]) & (item[1:] == item[:-1])
        codes, item = codes[~repeat], item[~repeat]
    return codes, np.asarray(uniques), item, item_index


def _rank_from_end(codes: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by key: position counted from the key's last row (0 = latest), and counts."""
    counts = np.bincount(codes, minlength=n_keys)
    ends = np.cumsum(counts)
    return ends[codes] - 1 - np.arange(len(codes)), counts


def _pad(codes: np.ndarray, item: np.ndarray, rank: np.ndarray, rows: np.ndarray, width: int,
         skip: int = 0) -> np.ndarray:
    """Fill an ``(len(rows), width)`` array with items whose rank-from-end is in ``[skip, skip + width)``.

    ``rows`` maps key codes to output rows (``-1``: key not kept).
    """
    out = np.full((int((rows >= 0).sum()), width), PAD, dtype=np.int64)
    keep = (rank >= skip) & (rank < skip + width) & (rows[codes] >= 0)
    out[rows[codes[keep]], width - 1 - (rank[keep] - skip)] = item[keep]
    return out


def build_sequences(frame: pd.DataFrame, max_len: int = 50, by: str = USER, events=None,
                    dedupe: bool = True, items: IdIndex | None = None, min_length: int = 1) -> Sequences:
    """One right-aligned history per ``by`` value (user or ``session_id``), most recent last.

    ``events`` keeps only rows whose ``event`` is one of those given (e.g. ``"view"``);
    ``dedupe`` collapses consecutive repeats of the same item; ``items`` fixes the item index
    (default: every item in the kept rows); keys with fewer than ``min_length`` items are dropped.
    Ties in time keep the frame's row order.
    """
    if max_len < 1:
        raise ValueError(f"build_sequences: max_len must be >= 1, got {max_len}")
    codes, keys, item, item_index = _ordered_events(frame, by, events, dedupe, items, "build_sequences")
    rank, counts = _rank_from_end(codes, len(keys))
    kept = counts >= min_length
    rows = np.where(kept, np.cumsum(kept) - 1, -1)
    return Sequences(_pad(codes, item, rank, rows, max_len), keys[kept], item_index)


def leave_last_out_sequences(frame: pd.DataFrame, max_len: int = 50, by: str = USER, events=None,
                             dedupe: bool = True, items: IdIndex | None = None,
                             min_length: int = 3) -> SequenceSplit:
    """Next-item split: each key's last item is the test target, the one before the validation target.

    Training sequences are the histories without those two items (the most recent ``max_len``);
    the validation history is the same items; the test history adds the validation item. Keys
    with fewer than ``min_length`` (at least 3) items after collapsing repeats are dropped.
    Models are trained on ``train``, tuned and early-stopped on ``validation`` and reported once
    on ``test`` (whose history includes the validation item, as in SASRec's protocol).
    """
    if min_length < 3:
        raise ValueError("leave_last_out_sequences: min_length must be >= 3 (one training item, "
                         "a validation and a test target)")
    if max_len < 1:
        raise ValueError(f"leave_last_out_sequences: max_len must be >= 1, got {max_len}")
    codes, keys, item, item_index = _ordered_events(frame, by, events, dedupe, items,
                                                    "leave_last_out_sequences")
    rank, counts = _rank_from_end(codes, len(keys))
    kept = counts >= min_length
    if not kept.any():
        raise ValueError(f"leave_last_out_sequences: no '{by}' has {min_length} or more items")
    rows = np.where(kept, np.cumsum(kept) - 1, -1)
    # one array holding the latest max_len + 2 items of every kept key
    full = _pad(codes, item, rank, rows, max_len + 2)
    train_items = full[:, :max_len]
    lengths = counts[kept]
    validation = NextItemTask(train_items.copy(), full[:, max_len], keys[kept], lengths - 2)
    test = NextItemTask(full[:, 1:max_len + 1].copy(), full[:, max_len + 1], keys[kept], lengths - 1)
    return SequenceSplit(Sequences(train_items, keys[kept], item_index), validation, test, lengths)


def length_buckets(lengths: np.ndarray, edges=(1, 5, 10, 20, 50)) -> pd.Categorical:
    """Bucket history lengths as ``"1-4"``, ``"5-9"``, ... , ``"50+"`` (for accuracy-by-length plots)."""
    edges = list(edges)
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]}+"]
    bins = edges + [np.inf]
    return pd.cut(np.asarray(lengths), bins=bins, right=False, labels=labels)


__all__ = [
    "PAD",
    "NextItemTask",
    "SequenceSplit",
    "Sequences",
    "build_sequences",
    "drop_last",
    "leave_last_out_sequences",
    "length_buckets",
]
