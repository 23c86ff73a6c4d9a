"""Association rules mined from logs: support, confidence and lift over baskets and over time windows.

Agrawal & Srikant (1994), *Fast algorithms for mining association rules*: for a rule
:math:`A \\Rightarrow B` over :math:`N` transactions,

* support :math:`s(A \\Rightarrow B) = |A \\cap B| / N` (how often both happen),
* confidence :math:`c(A \\Rightarrow B) = |A \\cap B| / |A|` (how often B follows A),
* lift :math:`\\ell(A \\Rightarrow B) = c(A \\Rightarrow B) / (|B| / N)` (how much A raises B's
  chance; 1 = no relation).

Everything is a sparse product: with an antecedent matrix :math:`X_A` (transactions x items) and
a consequent matrix :math:`X_B`, the pair counts are :math:`X_A^\\top X_B`. Two kinds of
transaction are built here:

* :func:`basket_matrix` -- the items of one order (or session): "bought in the same basket";
* :func:`sequential_matrices` -- one purchase as antecedent and what the same user bought within
  the next ``window`` as consequents: "bought after", the signal of complementary follow-ups that
  come days later in another order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex

RULE_COLUMNS = ["antecedent", "consequent", "count", "support", "confidence", "lift"]


def _check_columns(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing} (columns are {list(frame.columns)})")


def basket_matrix(frame: pd.DataFrame, basket: str = "order_id", key: str = ITEM,
                  index: IdIndex | None = None) -> tuple[sp.csr_matrix, IdIndex]:
    """Binary baskets x keys (items by default): 1 where the basket holds the key. Returns (matrix, key index)."""
    _check_columns(frame, [basket, key], "basket_matrix")
    index = index if index is not None else IdIndex(frame[key].to_numpy(), key)
    rows = pd.factorize(frame[basket].to_numpy())[0]
    cols = index.to_index(frame[key].to_numpy())
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)),
                           shape=(int(rows.max(initial=-1)) + 1, len(index)))
    matrix.data[:] = 1.0  # duplicates within a basket count once
    return matrix, index


def sequential_matrices(frame: pd.DataFrame, window: str | pd.Timedelta = "7D", key: str = ITEM,
                        index: IdIndex | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix, IdIndex]:
    """Antecedent and consequent matrices of "bought within ``window`` after": one row per event of ``frame``.

    Row ``e`` of the antecedent matrix marks the key of event ``e``; the same row of the consequent
    matrix marks every key the same user has in ``(t_e, t_e + window]`` (each at most once).
    Vectorised: events sorted by (user, time), window ends found with ``searchsorted``.
    """
    _check_columns(frame, [USER, TIMESTAMP, key], "sequential_matrices")
    window = pd.Timedelta(window)
    if window <= pd.Timedelta(0):
        raise ValueError(f"sequential_matrices: window must be positive, got {window}")
    index = index if index is not None else IdIndex(frame[key].to_numpy(), key)
    frame = frame.sort_values([USER, TIMESTAMP], kind="stable")
    user = pd.factorize(frame[USER].to_numpy())[0].astype(np.float64)
    seconds = (frame[TIMESTAMP] - frame[TIMESTAMP].min()).dt.total_seconds().to_numpy()
    span = seconds.max(initial=0.0) + window.total_seconds() + 1.0
    position = user * span + seconds  # sorted: users apart by more than any window
    start = np.searchsorted(position, position, side="right")
    end = np.searchsorted(position, position + window.total_seconds(), side="right")
    counts = end - start
    rows = np.repeat(np.arange(len(frame)), counts)
    firsts = np.repeat(start - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    later = firsts + np.arange(counts.sum())
    cols = index.to_index(frame[key].to_numpy())
    shape = (len(frame), len(index))
    antecedent = sp.csr_matrix((np.ones(len(frame)), (np.arange(len(frame)), cols)), shape=shape)
    consequent = sp.csr_matrix((np.ones(len(rows)), (rows, cols[later])), shape=shape)
    consequent.data[:] = 1.0
    return antecedent, consequent, index


def rule_matrices(antecedent: sp.spmatrix, consequent: sp.spmatrix | None = None,
                  exclude_self: bool = True) -> dict[str, sp.csr_matrix | np.ndarray]:
    """Pair counts and the three measures as sparse (keys x keys) matrices, plus the key counts.

    ``consequent=None`` means baskets (the antecedent matrix on both sides); ``exclude_self``
    drops the rules ``A => A``. Returns ``count``, ``support``, ``confidence``, ``lift`` (sparse,
    only pairs seen together) and ``antecedent_count``, ``consequent_rate`` (dense).
    """
    a = sp.csr_matrix(antecedent, dtype=np.float64)
    b = a if consequent is None else sp.csr_matrix(consequent, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rule_matrices: antecedent {a.shape} and consequent {b.shape} differ in shape")
    n = a.shape[0]
    if n == 0:
        raise ValueError("rule_matrices: no transactions")
    count = (a.T @ b).tocsr()
    if exclude_self:
        count.setdiag(0)
        count.eliminate_zeros()
    n_a = np.asarray(a.sum(axis=0)).ravel()
    rate_b = np.asarray(b.sum(axis=0)).ravel() / n
    coo = count.tocoo()
    confidence = coo.data / n_a[coo.row]
    lift = confidence / rate_b[coo.col]

    def like(values: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((values, (coo.row, coo.col)), shape=count.shape)

    return {"count": count, "support": like(coo.data / n), "confidence": like(confidence), "lift": like(lift),
            "antecedent_count": n_a, "consequent_rate": rate_b}


def association_rules(antecedent: sp.spmatrix, consequent: sp.spmatrix | None = None, index: IdIndex | None = None,
                      min_count: int = 1, exclude_self: bool = True) -> pd.DataFrame:
    """One row per rule ``antecedent => consequent`` seen at least ``min_count`` times, by lift then count.

    Columns :data:`RULE_COLUMNS`; keys are raw ids when ``index`` is given, else positions.
    """
    if min_count < 1:
        raise ValueError(f"association_rules: min_count must be at least 1, got {min_count}")
    m = rule_matrices(antecedent, consequent, exclude_self)
    coo = m["count"].tocoo()
    keep = coo.data >= min_count
    row, col = coo.row[keep], coo.col[keep]

    def at(name: str) -> np.ndarray:
        return np.asarray(m[name][row, col]).ravel()

    names = index.to_ids if index is not None else (lambda x: x)
    rules = pd.DataFrame({"antecedent": names(row), "consequent": names(col), "count": coo.data[keep].astype(np.int64),
                          "support": at("support"), "confidence": at("confidence"), "lift": at("lift")})
    return rules.sort_values(["lift", "count"], ascending=False, kind="stable").reset_index(drop=True)


def bought_together_scores(item_count: sp.spmatrix, category_lift: np.ndarray, item_category: np.ndarray,
                           popularity: np.ndarray, query_items: np.ndarray, min_lift: float = 1.0,
                           alpha: float = 1.0) -> np.ndarray:
    """Follow-up scores (len(query_items), n_items) from sequential rules, backed off to categories.

    ``score(i, j) = lift_cat(c_i -> c_j) * (count(i -> j) + alpha * p(j | c_j))``: the category rule
    decides which kinds of product follow (lift above ``min_lift``, never the item's own category:
    that is a substitute, not a follow-up), the item pair counts and the item's share of its
    category's purchases (``popularity``) decide which products. Zero where no rule applies.
    """
    item_category = np.asarray(item_category)
    popularity = np.asarray(popularity, dtype=np.float64)
    query_items = np.asarray(query_items)
    totals = np.bincount(item_category, weights=popularity, minlength=category_lift.shape[0])
    share = popularity / np.maximum(totals[item_category], 1e-12)
    lift = np.asarray(category_lift, dtype=np.float64)
    lift = np.where(lift > min_lift, lift, 0.0)
    np.fill_diagonal(lift, 0.0)
    counts = sp.csr_matrix(item_count)[query_items].toarray()
    return lift[item_category[query_items]][:, item_category] * (counts + alpha * share[None, :])


__all__ = ["RULE_COLUMNS", "association_rules", "basket_matrix", "bought_together_scores", "rule_matrices",
           "sequential_matrices"]
