"""How good was the cleaning: scores against the truth table, the cost of over-cleaning, the clean view.

:func:`score_against_truth` scores every rule (a source and reason) by precision and recall
against the simulated marketplace's truth table (:mod:`recsys_utils.data.raw_sources`);
:func:`over_cleaning` counts the real rows and people a too-eager rule removed;
:func:`compare_with_clean` says how close a cleaned event table is to the world's clean view.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, USER
from recsys_utils.data.cleaning_audit import CleaningResult


def score_against_truth(result: CleaningResult | pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision and recall of every rule against the truth table, plus an ``overall`` row.

    A rule is a (source, reason) pair; a flagged row counts as correct when the truth names the
    same row of the same source with the same reason and action. Rows per rule: ``flagged``,
    ``truth``, ``correct``, ``precision``, ``recall`` (1.0 when there is nothing to find or flag).
    """
    flagged = result.flagged() if isinstance(result, CleaningResult) else result
    cols = ["source", "row", "reason", "action"]
    for name, frame in (("result", flagged), ("truth", truth)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"score_against_truth: {name} lacks column(s) {missing}")
    f = flagged[cols].drop_duplicates().assign(_f=True)
    t = truth[cols].drop_duplicates().assign(_t=True)
    both = f.merge(t, on=cols, how="outer")
    both["_f"] = both["_f"].fillna(False).astype(bool)
    both["_t"] = both["_t"].fillna(False).astype(bool)
    both["rule"] = both["source"] + "/" + both["reason"]
    g = both.groupby(["rule", "source", "reason", "action"])
    table = pd.DataFrame({"flagged": g["_f"].sum(), "truth": g["_t"].sum(),
                          "correct": g.apply(lambda d: int((d["_f"] & d["_t"]).sum()), include_groups=False)})
    table = table.reset_index().set_index("rule")
    overall = table[["flagged", "truth", "correct"]].sum()
    table.loc["overall", ["flagged", "truth", "correct"]] = overall.to_numpy()
    table.loc["overall", ["source", "reason", "action"]] = ["all", "all", "all"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["precision"] = np.where(table["flagged"] > 0, table["correct"] / table["flagged"], 1.0)
        table["recall"] = np.where(table["truth"] > 0, table["correct"] / table["truth"], 1.0)
    for col in ("flagged", "truth", "correct"):
        table[col] = table[col].astype(np.int64)
    return table


#: the column that names the person behind a row of each source (the catalogue has none)
PERSON_COLUMN = {"members": "member_id", "behaviour_log": USER, "click_log": USER}


def over_cleaning(result: CleaningResult, raw) -> pd.DataFrame:
    """What over-cleaning cost: dropped rows the truth says were real, per source and reason.

    ``raw`` is the :class:`~recsys_utils.data.raw_sources.RawSources` that was cleaned (its
    ``truth`` table and tables). Columns: ``source, reason, real_rows_lost`` and
    ``real_users_hit`` (distinct people those rows belong to; 0 for the catalogue).
    """
    truth = raw.truth
    real_drop = truth.loc[truth["action"] == "drop", ["source", "row"]].assign(_dirty=True)
    lost = result.dropped.merge(real_drop, on=["source", "row"], how="left")
    lost = lost[lost["_dirty"].isna()].drop(columns="_dirty")
    rows = []
    for (source, reason), part in lost.groupby(["source", "reason"], sort=True):
        column = PERSON_COLUMN.get(source)
        people = 0
        if column is not None:
            people = int(getattr(raw, source).loc[part["row"].to_numpy(), column].nunique(dropna=True))
        rows.append({"source": source, "reason": reason, "real_rows_lost": len(part), "real_users_hit": people})
    return pd.DataFrame(rows, columns=["source", "reason", "real_rows_lost", "real_users_hit"])



def compare_with_clean(cleaned: pd.DataFrame, clean: pd.DataFrame,
                       keys: tuple[str, ...] = (USER, ITEM, EVENT, TIMESTAMP)) -> dict[str, float]:
    """How close a cleaned table is to the clean view: rows matched on ``keys`` both ways.

    Returns ``rows_cleaned``, ``rows_clean``, ``matched``, ``precision`` (share of cleaned rows
    that are real) and ``recall`` (share of real rows recovered), counting repeats (multisets).
    """
    keys = list(keys)
    a = cleaned[keys].copy()
    b = clean[keys].copy()
    a["_n"] = a.groupby(keys, sort=False).cumcount()
    b["_n"] = b.groupby(keys, sort=False).cumcount()
    matched = len(a.merge(b, on=keys + ["_n"], how="inner"))
    out = {"rows_cleaned": len(a), "rows_clean": len(b), "matched": matched,
           "precision": matched / max(len(a), 1), "recall": matched / max(len(b), 1)}
    if PRICE in cleaned.columns and PRICE in clean.columns:
        buy_a = cleaned[cleaned[EVENT] == PURCHASE]
        buy_b = clean[clean[EVENT] == PURCHASE]
        m = buy_a.merge(buy_b, on=keys, suffixes=("", "_clean"))
        out["purchase_price_match"] = float(np.isclose(m[PRICE], m[f"{PRICE}_clean"]).mean()) if len(m) else 1.0
    return out


def views_per_rule(result: CleaningResult) -> pd.Series:
    """Dropped click-log rows per reason (what each rule removed from the view stream)."""
    return result.dropped[result.dropped["source"] == "click_log"]["reason"].value_counts()


__all__ = ["PERSON_COLUMN", "compare_with_clean", "over_cleaning", "score_against_truth", "views_per_rule"]
