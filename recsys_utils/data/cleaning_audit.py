"""The audit of data cleaning: every row of a source is kept or dropped for one reason, and it balances.

:func:`validate_table` checks a raw table's columns and kinds before any rule runs (clear errors
naming the source and column); :func:`profile_table` is the first look at a new source. An
:class:`AuditTrail` applies drop rules in order, so each dropped row carries exactly one reason
(the first rule that caught it), records repairs, and checks that ``rows_in == rows_kept +
sum(dropped per reason)``; :func:`audit_table` puts the trails of several sources side by side.
:class:`CleaningResult` holds the clean tables with the audit. The marketplace's sources
(:mod:`recsys_utils.data.cleaning`) and UCI Online Retail (:mod:`recsys_utils.data.retail_cleaning`)
are cleaned with this machinery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class CleaningError(ValueError):
    """Cleaning cannot give a usable result (e.g. every row is dirty); carries the audit."""

    def __init__(self, message: str, audit: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.audit = audit



def _is_kind(series: pd.Series, kind: str) -> bool:
    dtype = series.dtype
    if kind == "integer":
        return pd.api.types.is_integer_dtype(dtype)
    if kind == "numeric":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(dtype)
    if kind == "string":
        return (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype))
    raise ValueError(f"unknown kind {kind!r}")


def validate_table(frame: pd.DataFrame, schema: Mapping[str, str], source: str) -> None:
    """Raise a clear error if ``frame`` is not a non-empty table with ``schema``'s columns and kinds.

    ``schema`` maps column names to ``"integer"``, ``"numeric"``, ``"datetime"`` or ``"string"``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{source}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise KeyError(f"{source}: missing required column(s) {missing}; columns are {list(frame.columns)}")
    if len(frame) == 0:
        raise ValueError(f"{source}: the table is empty (0 rows): nothing to clean")
    wrong = {c: str(frame[c].dtype) for c, kind in schema.items() if not _is_kind(frame[c], kind)}
    if wrong:
        expected = {c: schema[c] for c in wrong}
        raise TypeError(f"{source}: wrong dtype for column(s) {wrong}; expected {expected}")
    if not frame.index.is_unique:
        raise ValueError(f"{source}: the index has repeated labels; reset_index() first so rows can be audited")


def profile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column: dtype, missing values, distinct values, most frequent value, min and max.

    The first look a data team takes at a new source: which columns are sparse, which ids repeat,
    which strings have suspiciously many spellings, which numbers have impossible ranges.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"profile_table: expected a DataFrame, got {type(frame).__name__}")
    rows = {}
    for column in frame.columns:  # one entry per column, not per row
        values = frame[column]
        top = values.value_counts(dropna=True)
        ordered = (pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)) \
            or pd.api.types.is_datetime64_any_dtype(values.dtype)
        rows[column] = {"dtype": str(values.dtype), "missing": int(values.isna().sum()),
                        "missing_share": float(values.isna().mean()) if len(values) else 0.0,
                        "distinct": int(values.nunique(dropna=True)),
                        "most_frequent": top.index[0] if len(top) else None,
                        "min": values.min() if ordered else None, "max": values.max() if ordered else None}
    return pd.DataFrame.from_dict(rows, orient="index")



class AuditTrail:
    """Rows of one source, the reason each dropped row was dropped and the fixes applied.

    ``drop(mask, reason)`` drops rows still kept (a row is dropped once, by the first rule that
    catches it); ``fix(mask, reason)`` records repairs of kept rows.
    """

    def __init__(self, source: str, index: pd.Index) -> None:
        self.source = source
        self.index = index
        self.reason = np.full(len(index), None, dtype=object)
        self.fixes: list[tuple[str, np.ndarray]] = []
        self.order: list[str] = []

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of the rows not dropped so far."""
        return pd.isna(self.reason)

    def drop(self, mask, reason: str) -> int:
        """Drop the still-kept rows where ``mask`` is true; returns how many were newly dropped."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self.index),):
            raise ValueError(f"{self.source}/{reason}: mask of length {mask.shape} for {len(self.index)} rows")
        new = mask & self.kept
        self.reason[new] = reason
        if reason not in self.order:
            self.order.append(reason)
        return int(new.sum())

    def fix(self, mask, reason: str) -> int:
        """Record that the kept rows where ``mask`` is true were repaired by rule ``reason``."""
        mask = np.asarray(mask, dtype=bool) & self.kept
        self.fixes.append((reason, self.index.to_numpy()[mask]))
        return int(mask.sum())

    def dropped_rows(self) -> pd.DataFrame:
        """One row per dropped row: ``source, row, reason, action='drop'``."""
        drop = ~self.kept
        return pd.DataFrame({"source": self.source, "row": self.index.to_numpy()[drop],
                             "reason": self.reason[drop], "action": "drop"})

    def fixed_rows(self) -> pd.DataFrame:
        """One row per (kept row, fix reason): ``source, row, reason, action='fix'``."""
        frames = [pd.DataFrame({"source": self.source, "row": rows, "reason": reason, "action": "fix"})
                  for reason, rows in self.fixes]
        if not frames:
            return pd.DataFrame({"source": pd.Series(dtype=object), "row": pd.Series(dtype=np.int64),
                                 "reason": pd.Series(dtype=object), "action": pd.Series(dtype=object)})
        fixed = pd.concat(frames, ignore_index=True).drop_duplicates(["row", "reason"])
        still_kept = self.kept[self.index.get_indexer(fixed["row"].to_numpy())]  # a row fixed, then dropped: dropped
        return fixed[still_kept].reset_index(drop=True)

    def summary(self) -> dict:
        """``rows_in, rows_kept, dropped, dropped:<reason>..., fixed:<reason>...``; asserts the balance."""
        counts = pd.Series(self.reason[~self.kept]).value_counts()
        row = {"rows_in": len(self.index), "rows_kept": int(self.kept.sum()),
               "rows_dropped": int((~self.kept).sum())}
        for reason in self.order:
            row[f"dropped:{reason}"] = int(counts.get(reason, 0))
        fixed = self.fixed_rows()
        for reason, count in fixed.groupby("reason", sort=False).size().items():
            row[f"fixed:{reason}"] = int(count)  # distinct rows: a row fixed twice by one rule counts once
        dropped = sum(v for k, v in row.items() if k.startswith("dropped:"))
        if row["rows_in"] != row["rows_kept"] + dropped:
            raise RuntimeError(f"{self.source}: audit does not balance: {row['rows_in']} in != "
                               f"{row['rows_kept']} kept + {dropped} dropped")
        return row


def audit_table(trails: Iterable[AuditTrail]) -> pd.DataFrame:
    """One row per source; missing reason counts are 0. Asserts that every row balances."""
    table = pd.DataFrame({t.source: t.summary() for t in trails}).T.fillna(0).astype(np.int64)
    dropped = table[[c for c in table.columns if c.startswith("dropped:")]].sum(axis=1)
    if not ((table["rows_in"] == table["rows_kept"] + dropped).all() and (table["rows_dropped"] == dropped).all()):
        raise RuntimeError(f"audit does not balance:\n{table}")
    table.index.name = "source"
    return table


def check_not_all_dropped(trails: Iterable[AuditTrail], audit: pd.DataFrame) -> None:
    """Raise :class:`CleaningError` (naming the reasons) when a source has no row left."""
    empty = [t.source for t in trails if t.kept.sum() == 0]
    if empty:
        detail = "; ".join(
            f"{s}: " + ", ".join(f"{c.split(':', 1)[1]}={audit.loc[s, c]}" for c in audit.columns
                                 if c.startswith("dropped:") and audit.loc[s, c] > 0) for s in empty)
        raise CleaningError(f"every row of {empty} was dropped as dirty ({detail}); "
                            "check the input or loosen the rules (see .audit)", audit)


@dataclass
class CleaningResult:
    """Clean tables, the audit per source and every dropped / fixed row with its reason."""

    tables: dict[str, pd.DataFrame]
    audit: pd.DataFrame
    dropped: pd.DataFrame
    fixed: pd.DataFrame
    details: dict = field(default_factory=dict)

    def __getitem__(self, source: str) -> pd.DataFrame:
        return self.tables[source]

    def flagged(self) -> pd.DataFrame:
        """Dropped and fixed rows together (``source, row, reason, action``)."""
        return pd.concat([self.dropped, self.fixed], ignore_index=True)

    def audit_long(self) -> pd.DataFrame:
        """The audit as ``source, kind (kept/dropped/fixed), reason, rows``."""
        rows = []
        for source, row in self.audit.iterrows():
            rows.append((source, "kept", "", int(row["rows_kept"])))
            for col, value in row.items():
                if ":" in col and value:
                    kind, reason = col.split(":", 1)
                    rows.append((source, kind, reason, int(value)))
        return pd.DataFrame(rows, columns=["source", "kind", "reason", "rows"])


__all__ = ["AuditTrail", "CleaningError", "CleaningResult", "audit_table", "check_not_all_dropped", "profile_table",
           "validate_table"]
