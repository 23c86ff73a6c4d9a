"""Building a raw table together with the truth table of the defects injected into it.

A generator of dirty data must say exactly which rows it spoiled: :class:`TruthBuilder` collects
the parts of one raw table (clean rows, copies with a defect), sorts them the way the source
system writes them and returns the table with its truth rows (``source, row, reason, action``),
where ``row`` is the final row label. :func:`assign_ids` gives log rows their ids in time order,
an exact retry repeating the id of the row it copies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DROP, FIX = "drop", "fix"


class TruthBuilder:
    """Collects the rows of one raw table with the truth entries that belong to them."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self.fixes: list[tuple[np.ndarray, str]] = []  # (uids, reason)
        self.n = 0

    def add(self, frame: pd.DataFrame, reason: str | None = None) -> np.ndarray:
        """Append rows (``reason``: the defect that makes them rows to drop); returns their uids."""
        uid = np.arange(self.n, self.n + len(frame))
        self.n += len(frame)
        frame = frame.reset_index(drop=True).assign(_uid=uid, _reason=reason)
        self.parts.append(frame)
        return uid

    def fix(self, uids: np.ndarray, reason: str) -> None:
        """Record that the rows ``uids`` carry a defect ``reason`` to repair."""
        self.fixes.append((np.asarray(uids), reason))

    def build(self, source: str, sort_by: list[str], keep_uid: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The table sorted by ``sort_by`` (row labels 0..n-1) and its truth rows (``source, row, reason, action``)."""
        frame = pd.concat(self.parts, ignore_index=True)
        frame = frame.sort_values(sort_by + ["_uid"], kind="stable").reset_index(drop=True)
        label_of_uid = np.empty(self.n, dtype=np.int64)
        label_of_uid[frame["_uid"].to_numpy()] = np.arange(len(frame))
        dropped = frame["_reason"].notna().to_numpy()
        truth = [pd.DataFrame({"source": source, "row": np.flatnonzero(dropped),
                               "reason": frame["_reason"].to_numpy()[dropped], "action": DROP})]
        for uids, reason in self.fixes:
            labels = np.sort(label_of_uid[uids])
            labels = labels[~dropped[labels]]
            truth.append(pd.DataFrame({"source": source, "row": labels, "reason": reason, "action": FIX}))
        frame = frame.drop(columns=["_reason"] if keep_uid else ["_uid", "_reason"])
        truth = pd.concat(truth, ignore_index=True).drop_duplicates(["row", "reason", "action"])
        return frame, truth.reset_index(drop=True)


def pick_rows(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Sorted positions of about ``share * n`` rows drawn without replacement."""
    k = int(round(share * n))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def epoch_ms(times: pd.Series | np.ndarray) -> np.ndarray:
    """Epoch milliseconds of timestamps."""
    values = pd.to_datetime(pd.Series(times)).to_numpy().astype("datetime64[ms]")
    return values.astype(np.int64)


def assign_ids(frame: pd.DataFrame, column: str, first: int) -> pd.DataFrame:
    """Insert ``column`` first: ids ``first, first + 1, ...`` in row order; copies repeat their source's id.

    ``frame`` comes from :meth:`TruthBuilder.build` with ``keep_uid=True``; an ``_src`` column holds
    the uid of the row a copy repeats (missing for other rows). Both helper columns are removed.
    """
    ids = pd.Series(first + np.arange(len(frame), dtype=np.int64), index=frame.pop("_uid").to_numpy())
    src = frame.pop("_src").to_numpy()
    copy = ~pd.isna(src)
    values = ids.to_numpy().copy()
    values[copy] = ids.reindex(src[copy].astype(np.int64)).to_numpy()
    frame.insert(0, column, values)
    return frame


__all__ = ["DROP", "FIX", "TruthBuilder", "assign_ids", "epoch_ms", "pick_rows"]
