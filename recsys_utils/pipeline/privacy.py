"""Privacy tools: pseudonymous ids, k-anonymity, differentially private counts, federated MF.

References: L. Sweeney (2002). *k-anonymity: a model for protecting privacy.* IJUFKS.
C. Dwork, F. McSherry, K. Nissim, A. Smith (2006). *Calibrating noise to sensitivity in private data
analysis.* TCC (the Laplace mechanism). B. McMahan et al. (2017). *Communication-efficient learning
of deep networks from decentralized data.* AISTATS (federated averaging).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender


def pseudonymise(ids, key: bytes, length: int = 16) -> np.ndarray:
    """Keyed hash (HMAC-SHA256) of each id, hex, ``length`` characters.

    Stable for one key (joins still work), not reversible without it, and unlike a plain hash it
    cannot be undone by hashing every possible id (the key is secret). Rotate the key to unlink.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise ValueError("pseudonymise: key must be at least 16 random bytes (e.g. secrets.token_bytes(32))")
    values = pd.Series(ids).astype(str).to_numpy()
    unique, inverse = np.unique(values, return_inverse=True)
    hashed = np.array([hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:length] for v in unique])
    return hashed[inverse]


def k_anonymity(frame: pd.DataFrame, quasi_identifiers: list[str]) -> tuple[int, pd.DataFrame]:
    """The k of a released table (size of its smallest group of equal quasi-identifiers) and the
    groups smaller than 5 (those that need generalising or suppressing)."""
    missing = [c for c in quasi_identifiers if c not in frame.columns]
    if missing:
        raise KeyError(f"k_anonymity: missing column(s) {missing}")
    sizes = frame.groupby(quasi_identifiers, observed=True, dropna=False).size().rename("size")
    return int(sizes.min()), sizes[sizes < 5].reset_index()


def generalise(values: pd.Series, width: float) -> pd.Series:
    """Replace numbers by the band of ``width`` they fall in (e.g. ages 30–39)."""
    low = (np.floor(values.astype(float) / width) * width).astype(int)
    return low.astype(str) + "-" + (low + width - 1).astype(int).astype(str)


def laplace_counts(counts: np.ndarray, epsilon: float, sensitivity: float = 1.0, seed: int = 0) -> np.ndarray:
    """ε-differentially private release of counts: add Laplace(sensitivity/ε) noise, clip at 0.

    ``sensitivity`` is the most one user can change any count by (1 if each user counts once per
    item; more if a user's events are not capped). Post-processing (clipping) keeps the guarantee.
    """
    if epsilon <= 0:
        raise ValueError(f"laplace_counts: epsilon must be > 0, got {epsilon}")
    rng = np.random.default_rng(seed)
    noisy = np.asarray(counts, dtype=np.float64) + rng.laplace(0.0, sensitivity / epsilon, np.shape(counts))
    return np.clip(noisy, 0, None)


class FederatedMF(Recommender):
    """Matrix factorisation trained by federated averaging across client groups of users.

    Each client keeps its users' rows and user factors at home. Per round, every client solves its
    user factors in closed form (ridge, confidence-weighted as in implicit ALS with all unobserved
    entries as zeros), takes ``local_steps`` gradient steps on its copy of the item factors, and
    sends back only the item factors; the server averages them weighted by the client's number of
    interactions. With one client this is ordinary centralised training of the same model.
    ``dim`` factors per user and item, ``l2`` the ridge penalty, ``lr`` the clients' step size on
    the item factors, ``rounds`` averaging rounds.
    """

    def __init__(self, clients: int | np.ndarray = 1, dim: int = 32, l2: float = 0.1,
                 alpha: float = 5.0, lr: float = 0.05, local_steps: int = 3, rounds: int = 20, seed: int = 0) -> None:
        super().__init__()
        self.clients, self.dim, self.l2, self.alpha = clients, dim, l2, alpha
        self.lr, self.local_steps, self.rounds, self.seed = lr, local_steps, rounds, seed
        self.name = "federated_mf" if not np.isscalar(clients) or clients > 1 else "central_mf"

    def _fit(self, train: Interactions) -> None:
        matrix = sp.csr_matrix(train.matrix, dtype=np.float64)
        matrix.data[:] = 1.0
        n_users, n_items = matrix.shape
        rng = np.random.default_rng(self.seed)
        client_of_user = (rng.integers(0, self.clients, n_users) if np.isscalar(self.clients)
                          else np.asarray(self.clients))
        if len(client_of_user) != n_users:
            raise ValueError(f"FederatedMF: clients has {len(client_of_user)} entries for {n_users} users")
        self.item_factors = rng.normal(0, 0.1, (n_items, self.dim))
        self.user_factors = np.zeros((n_users, self.dim))
        clients = [np.flatnonzero(client_of_user == c) for c in np.unique(client_of_user)]
        self.history = []
        for _ in range(self.rounds):
            updates, weights = [], []
            for users in clients:  # a handful of clients, each vectorised
                local = matrix[users]
                items = self.item_factors.copy()
                for _step in range(self.local_steps):
                    x = self._solve_users(local, items)
                    items -= self.lr * self._item_gradient(local, x, items) / max(len(users), 1)
                self.user_factors[users] = self._solve_users(local, items)
                updates.append(items)
                weights.append(local.nnz)
            weights = np.asarray(weights, dtype=np.float64)
            self.item_factors = np.tensordot(weights / weights.sum(), np.stack(updates), axes=1)
            self.history.append(self.loss(matrix))
        self.user_factors = self._solve_users(matrix, self.item_factors)

    def _solve_users(self, local: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
        """Ridge solution of every user's factors with confidence 1 + α on observed items."""
        gram = items.T @ items + self.l2 * np.eye(self.dim)
        out = np.zeros((local.shape[0], self.dim))
        # confidence-weighted normal equations, batched: A_u = G + α Σ_{i∈u} y_i y_iᵀ
        outer = np.einsum("if,ig->ifg", items, items)
        a = gram[None] + self.alpha * np.asarray(local @ outer.reshape(len(items), -1)).reshape(-1, self.dim, self.dim)
        b = (1 + self.alpha) * (local @ items)
        out[:] = np.linalg.solve(a, b[..., None])[..., 0]
        return out

    def _item_gradient(self, local: sp.csr_matrix, x: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Gradient of the confidence-weighted squared loss plus ridge with respect to the item factors."""
        predictions = x @ items.T  # (users, items)
        target = local.toarray()
        confidence = 1 + self.alpha * target
        residual = confidence * (predictions - target)
        return 2 * residual.T @ x + 2 * self.l2 * items

    def loss(self, matrix: sp.csr_matrix) -> float:
        predictions = self._solve_users(matrix, self.item_factors) @ self.item_factors.T
        target = matrix.toarray()
        return float(((1 + self.alpha * target) * (predictions - target) ** 2).mean())

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return (self.user_factors[np.asarray(user_indices)] @ self.item_factors.T).astype(np.float32)
