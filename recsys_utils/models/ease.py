"""EASE: an embarrassingly shallow autoencoder (Steck 2019, "Embarrassingly Shallow Autoencoders
for Sparse Data", WWW). A closed-form item-item model that is hard to beat on implicit data.

    B = argmin ||X - XB||² + λ||B||²  subject to  diag(B) = 0
    P = (XᵀX + λI)⁻¹,   B_ij = -P_ij / P_jj  (i ≠ j),   B_jj = 0

Scores are ``X_u · B``. Cost: one dense n_items x n_items inverse, fine up to ~20k items.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender


class EASE(Recommender):
    """Closed-form linear item-item autoencoder with an L2 penalty ``l2`` (λ)."""

    name = "ease"

    def __init__(self, l2: float = 200.0, binary: bool = True) -> None:
        super().__init__()
        if l2 <= 0:
            raise ValueError("EASE: l2 must be positive")
        self.l2 = l2
        self.binary = binary

    def _input(self, train: Interactions):
        return train.binary() if self.binary else train.matrix

    def _fit(self, train: Interactions) -> None:
        x = self._input(train)
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = precision / (-np.diag(precision))
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights_ = weights.astype(np.float32)
        self._x = x.astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self._x[np.asarray(user_indices)] @ self.weights_)

    def explain(self, user_index: int, item_indices) -> np.ndarray:
        """Contribution of each of the user's training items to the scores of ``item_indices``.

        EASE's score is a sum over the user's history, ``s_ui = sum_j x_uj B_ji``, so each
        recommendation decomposes exactly into "because you interacted with j" terms. Returns an
        array (n_history_items, len(item_indices)) aligned with :meth:`history`.
        """
        self._check_fitted()
        row = self._x[int(user_index)]
        history = row.indices
        return row.data[:, None] * self.weights_[np.ix_(history, np.asarray(item_indices))]

    def history(self, user_index: int) -> np.ndarray:
        """Item indices of the user's training interactions (rows of :meth:`explain`)."""
        self._check_fitted()
        return self._x[int(user_index)].indices
