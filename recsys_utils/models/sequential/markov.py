"""Count-based next-item baselines: the most popular items and a (windowed) Markov chain."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.data.sequences import PAD, NextItemTask, Sequences
from recsys_utils.models.sequential.base import SequentialRecommender, _check_histories


class MostPopularNext(SequentialRecommender):
    """Scores every item by how often it occurs in the training sequences (the same list for all)."""

    name = "popularity"

    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        counts = sequences.item_counts().astype(np.float32)
        self.item_scores_ = counts / max(1.0, float(counts.sum()))

    def score_next(self, histories: np.ndarray) -> np.ndarray:
        n_items = self._n_items()
        histories = _check_histories(histories, n_items, "MostPopularNext.score_next")
        return np.broadcast_to(self.item_scores_, (histories.shape[0], n_items)).copy()


class MarkovChain(SequentialRecommender):
    """First-order Markov chain: ``P(next = j | last = i)`` estimated by counting transitions.

    ``score(j) = sum_{m < window} decay^m P(j | x_{t-m}) + popularity_weight * P(j)``: with
    ``window=1`` this is the classic first-order chain (the "MC" part of FPMC, Rendle et al. 2010);
    a larger window adds the transitions out of earlier items with geometric decay (an item-to-item
    co-occurrence model over the recent history). The small popularity term breaks ties and
    backs off for items never seen as a predecessor.
    """

    name = "markov"

    def __init__(self, window: int = 1, decay: float = 0.5, popularity_weight: float = 1e-3) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"MarkovChain: window must be >= 1, got {window}")
        if not 0 < decay <= 1:
            raise ValueError(f"MarkovChain: decay must be in (0, 1], got {decay}")
        self.window = int(window)
        self.decay = float(decay)
        self.popularity_weight = float(popularity_weight)

    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        n = sequences.n_items
        prev, nxt = sequences.transitions()
        counts = sp.csr_matrix((np.ones(len(prev), dtype=np.float32), (prev, nxt)), shape=(n, n))
        counts.sum_duplicates()
        out_degree = np.asarray(counts.sum(axis=1)).ravel()
        scale = np.divide(1.0, out_degree, out=np.zeros_like(out_degree), where=out_degree > 0)
        self.transition_ = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts)
        popularity = sequences.item_counts().astype(np.float32)
        self.popularity_ = popularity / max(1.0, float(popularity.sum()))

    def score_next(self, histories: np.ndarray) -> np.ndarray:
        n_items = self._n_items()
        histories = _check_histories(histories, n_items, "MarkovChain.score_next")
        recent = histories[:, -self.window:]
        weights = self.decay ** np.arange(recent.shape[1] - 1, -1, -1, dtype=np.float64)
        rows, cols = np.nonzero(recent != PAD)
        mix = sp.csr_matrix((weights[cols].astype(np.float32), (rows, recent[rows, cols])),
                            shape=(histories.shape[0], n_items))
        scores = np.asarray((mix @ self.transition_).todense(), dtype=np.float32)
        scores += self.popularity_weight * self.popularity_[None, :]
        return scores

    def __repr__(self) -> str:
        return f"MarkovChain(window={self.window}, decay={self.decay})"
