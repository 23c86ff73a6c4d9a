"""Personalised search: re-rank BM25's top-N results with what the shop knows about the user.

Lexical retrieval (:class:`~recsys_utils.features.text_search.BM25`) finds the items whose titles
match the query; it ranks every user alike. :func:`search_features` adds, for each (search,
candidate), the user's collaborative score (a user x item factor product, e.g. ALS), their
affinity to the candidate's category and the item's popularity; :class:`BlendReranker` adds them
to the normalised BM25 score with weights chosen on validation searches' clicks (a grid search,
the simplest learning to rank). Personalised web search re-ranks this way with the user's
long-term profile (Teevan et al. 2005; Bennett et al. 2012).

:func:`graded_ndcg` is NDCG@k with graded relevance and gain ``2^rel - 1`` (Järvelin & Kekäläinen
2002), used against clicks here and against the world's true relevance in the lesson.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

#: the blend's features, in the order of :class:`BlendReranker`'s weights
FEATURES = ("collaborative", "category_affinity", "popularity")


def graded_ndcg(relevance: np.ndarray, ranked: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-row NDCG@k of ``ranked`` item indices (``-1`` pads) against graded ``relevance`` rows.

    ``relevance`` is (n_rows, n_items) with non-negative grades; DCG sums ``(2^rel - 1) /
    log2(rank + 1)`` over the first ``k`` entries, IDCG is the DCG of the best possible order.
    Rows with no relevant item get NaN.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    ranked = np.asarray(ranked)
    if relevance.ndim != 2 or ranked.ndim != 2 or len(relevance) != len(ranked):
        raise ValueError(f"graded_ndcg: relevance {relevance.shape} and ranked {ranked.shape} must be 2-D "
                         "with the same number of rows")
    if k < 1:
        raise ValueError(f"graded_ndcg: k must be >= 1, got {k}")
    if (relevance < 0).any():
        raise ValueError("graded_ndcg: relevance grades must be non-negative")
    top = ranked[:, :k]
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    gains = np.where(top >= 0, np.take_along_axis(relevance, np.maximum(top, 0), axis=1), 0.0)
    dcg = ((2.0 ** gains - 1.0) * discount).sum(axis=1)
    best = -np.sort(-relevance, axis=1)[:, :k]
    idcg = ((2.0 ** best - 1.0) * (1.0 / np.log2(np.arange(2, best.shape[1] + 2)))).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / idcg, np.nan)


def _row_standardise(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = np.where(valid, x, 0.0).sum(axis=1, keepdims=True) / count
    std = np.sqrt(np.where(valid, (x - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count)
    return np.where(valid, (x - mean) / np.where(std > 1e-9, std, 1.0), 0.0)


def search_features(candidates: np.ndarray, bm25_scores: np.ndarray, user_rows: np.ndarray,
                    user_factors: np.ndarray, item_factors: np.ndarray, user_category: np.ndarray,
                    item_category: np.ndarray, item_popularity: np.ndarray) -> dict[str, np.ndarray]:
    """Features of each (search, candidate): normalised BM25 and the :data:`FEATURES`.

    ``candidates`` (n_searches, N) item indices (``-1`` pads) with their ``bm25_scores``;
    ``user_rows`` the searching user's row in ``user_factors`` / ``user_category`` (``-1`` for a
    user the shop does not know: personal features are 0); ``user_category`` (n_users,
    n_categories) the share of each user's past events per category; ``item_category`` the
    category index of every item; ``item_popularity`` a count per item. ``bm25`` is divided by the
    row's best score; the collaborative score and popularity are standardised within the row.
    """
    candidates = np.asarray(candidates)
    if candidates.shape != np.shape(bm25_scores) or len(candidates) != len(user_rows):
        raise ValueError(f"search_features: candidates {candidates.shape}, bm25_scores {np.shape(bm25_scores)} "
                         f"and user_rows ({len(user_rows)},) do not align")
    valid = candidates >= 0
    items = np.maximum(candidates, 0)
    rows = np.asarray(user_rows)
    known = rows >= 0
    safe_rows = np.maximum(rows, 0)
    best = np.max(np.where(valid, bm25_scores, 0.0), axis=1, keepdims=True)
    bm25 = np.where(valid, bm25_scores / np.where(best > 0, best, 1.0), 0.0)
    collab = np.einsum("sd,snd->sn", user_factors[safe_rows], item_factors[items])
    collab = _row_standardise(collab, valid & known[:, None])
    affinity = user_category[safe_rows[:, None], item_category[items]] * known[:, None] * valid
    popularity = _row_standardise(np.log1p(np.asarray(item_popularity, dtype=np.float64)[items]), valid)
    return {"bm25": bm25, "collaborative": collab, "category_affinity": affinity, "popularity": popularity}


class BlendReranker:
    """``score = bm25 + sum_f w_f * feature_f``, weights picked by grid search on clicked searches.

    ``features`` chooses which of :data:`FEATURES` take part (``("popularity",)`` alone is a
    re-ranker that is not personal, a fair baseline for the personal part).
    """

    def __init__(self, features: Sequence[str] = FEATURES,
                 grid: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0), k: int = 10) -> None:
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not len(grid):
            raise ValueError(f"BlendReranker: features must be among {FEATURES} (got {list(features)}) and the "
                             "grid must not be empty")
        self.features = tuple(features)
        self.grid = tuple(float(g) for g in grid)
        self.k = k
        self.weights_ = dict.fromkeys(self.features, 0.0)

    def score(self, features: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        """Blended score of every candidate; padded candidates get ``-inf``."""
        weights = self.weights_ if weights is None else weights
        missing = [f for f in ("bm25", *weights) if f not in features]
        if missing:
            raise ValueError(f"BlendReranker: features lack {missing} (use search_features)")
        total = features["bm25"].copy()
        for name in weights:
            total += weights[name] * features[name]
        return total

    @staticmethod
    def order(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Candidates sorted by score (stable: ties keep BM25's order); pads stay last."""
        scores = np.where(candidates >= 0, scores, -np.inf)
        return np.take_along_axis(candidates, np.argsort(-scores, axis=1, kind="stable"), axis=1)

    def fit(self, features: dict[str, np.ndarray], candidates: np.ndarray, clicked: np.ndarray) -> BlendReranker:
        """Pick the weights that maximise NDCG@k of the clicked item (``clicked`` item index per search)."""
        clicked = np.asarray(clicked)
        relevance_cols = np.flatnonzero(clicked >= 0)
        if relevance_cols.size == 0:
            raise ValueError("BlendReranker.fit: no search has a clicked item")
        cands = candidates[relevance_cols]
        feats = {name: value[relevance_cols] for name, value in features.items()}
        hit = (cands == clicked[relevance_cols, None]).astype(np.float64)  # relevance on the candidate axis
        positions = np.broadcast_to(np.arange(cands.shape[1]), cands.shape)
        best, best_value = None, -np.inf
        for combo in itertools.product(self.grid, repeat=len(self.features)):
            weights = dict(zip(self.features, combo, strict=True))
            ranked = self.order(self.score(feats, weights), np.where(cands >= 0, positions, -1))
            value = float(np.nanmean(np.nan_to_num(graded_ndcg(hit, ranked, self.k))))
            if value > best_value + 1e-12:
                best, best_value = weights, value
        self.weights_ = best
        self.validation_ndcg_ = best_value
        return self

    def rerank(self, features: dict[str, np.ndarray], candidates: np.ndarray) -> np.ndarray:
        """The candidates in the blend's order."""
        return self.order(self.score(features), candidates)


__all__ = ["FEATURES", "BlendReranker", "graded_ndcg", "search_features"]
