"""Held-out relevance: which cells of a test split count, and which users are evaluated."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.data.interactions import Interactions


def relevant_matrix(train: Interactions, test: Interactions, exclude_seen: bool = True) -> sp.csr_matrix:
    """Binary held-out matrix; with ``exclude_seen`` cells already in train are removed."""
    if train.matrix.shape != test.matrix.shape:
        raise ValueError(
            f"train {train.matrix.shape} and test {test.matrix.shape} do not share an index: "
            "build them with DataSplit.to_interactions()"
        )
    relevant = test.binary()
    if exclude_seen:
        relevant = relevant - relevant.multiply(train.binary())
        relevant.eliminate_zeros()
    return sp.csr_matrix(relevant)


def evaluation_users(
    train: Interactions, relevant: sp.csr_matrix, users: str | np.ndarray = "warm"
) -> tuple[np.ndarray, dict[str, int]]:
    """User indices to evaluate and how many were left out, by reason."""
    has_relevant = np.diff(relevant.indptr) > 0
    has_history = train.user_counts() > 0
    if isinstance(users, str):
        if users not in ("warm", "all", "cold"):
            raise ValueError("users must be 'warm', 'all', 'cold' or an array of user indices")
        chosen = {
            "warm": has_relevant & has_history,
            "all": has_relevant,
            "cold": has_relevant & ~has_history,
        }[users]
        excluded = {"no_relevant_items": int((~has_relevant & (has_history | (users != "warm"))).sum())}
        if users == "warm":
            excluded["cold_users"] = int((has_relevant & ~has_history).sum())
        if users == "cold":
            excluded["warm_users"] = int((has_relevant & has_history).sum())
        return np.flatnonzero(chosen), excluded
    given = np.asarray(users, dtype=np.int64)
    outside = (given < 0) | (given >= relevant.shape[0])
    if outside.any():
        raise ValueError(f"users: index {int(given[outside][0])} is outside the {relevant.shape[0]} users of the "
                         "matrix (give user indices 0..n_users-1, or 'warm', 'all', 'cold')")
    keep = has_relevant[given]
    return given[keep], {"no_relevant_items": int((~keep).sum())}
