"""Explicit-feedback rating prediction: global mean, user/item biases, and biased matrix factorisation.

The models are fitted on an :class:`Interactions` whose stored values are ratings (build it with
``Interactions.from_frame(ratings, weight="rating")`` or ``split.to_interactions(weight="rating")``)
and predict a rating for any (user, item) pair; ``rmse(ratings)`` scores them on held-out cells.

* :class:`GlobalMean` -- ``r̂_ui = μ``.
* :class:`BiasBaseline` -- ``r̂_ui = μ + b_u + b_i`` with regularised biases fitted by alternating
  closed-form updates (Koren 2010, "Factor in the neighbors", TKDD, §2.1).
* :class:`ExplicitMF` -- ``r̂_ui = μ + b_u + b_i + p_uᵀ q_i`` (R ≈ PᵀQ plus biases; Koren, Bell &
  Volinsky 2009, "Matrix factorization techniques for recommender systems", IEEE Computer),
  trained by Adam (or SGD) on the mean squared error plus an L2 penalty, early-stopped on the
  validation RMSE.

Users or items without a training rating keep zero biases and factors, so their prediction falls
back to the global mean (plus the known side's bias).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import InteractionBatches


def _ratings(matrix: Interactions, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coo = matrix.matrix.tocoo()
    if coo.nnz == 0:
        raise ValueError(f"{where}: the ratings matrix has no stored cell")
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)


class _RatingModel(Recommender):
    """``predict(users, items)`` for aligned index pairs, ``rmse(ratings)`` on stored cells."""

    def predict(self, user_indices, item_indices) -> np.ndarray:
        raise NotImplementedError

    def rmse(self, ratings: Interactions) -> float:
        """Root mean squared error on the stored cells of ``ratings`` (same index as train)."""
        self._check_fitted()
        users, items, values = _ratings(ratings, f"{type(self).__name__}.rmse")
        return float(np.sqrt(np.mean((self.predict(users, items) - values) ** 2)))


class GlobalMean(_RatingModel):
    """Predicts the mean training rating for every pair: the floor of rating prediction."""

    name = "global-mean"

    def _fit(self, train: Interactions) -> None:
        self.global_mean_ = float(_ratings(train, "GlobalMean.fit")[2].mean())

    def predict(self, user_indices, item_indices) -> np.ndarray:
        self._check_fitted()
        return np.full(len(np.asarray(user_indices)), self.global_mean_)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return np.full((len(user_indices), self._check_fitted().n_items), self.global_mean_, dtype=np.float32)


class BiasBaseline(_RatingModel):
    """``r̂_ui = μ + b_u + b_i`` with ridge-shrunk biases (Koren 2010).

    ``b_i = Σ_u (r_ui - μ - b_u) / (λ_i + n_i)`` and ``b_u = Σ_i (r_ui - μ - b_i) / (λ_u + n_u)``
    with ``λ_u = user_l2`` and ``λ_i = item_l2``, alternated ``epochs`` times (each update is one
    ``bincount``).
    """

    name = "bias"

    def __init__(self, user_l2: float = 5.0, item_l2: float = 5.0, epochs: int = 10) -> None:
        super().__init__()
        if user_l2 < 0 or item_l2 < 0 or epochs < 1:
            raise ValueError(f"BiasBaseline: user_l2 and item_l2 must be >= 0 and epochs >= 1 (got "
                             f"user_l2={user_l2}, item_l2={item_l2}, epochs={epochs})")
        self.user_l2 = user_l2
        self.item_l2 = item_l2
        self.epochs = epochs

    def _fit(self, train: Interactions) -> None:
        users, items, values = _ratings(train, "BiasBaseline.fit")
        self.global_mean_ = float(values.mean())
        n_u = np.bincount(users, minlength=train.n_users)
        n_i = np.bincount(items, minlength=train.n_items)
        b_u = np.zeros(train.n_users)
        b_i = np.zeros(train.n_items)
        residual = values - self.global_mean_
        for _ in range(self.epochs):
            b_i = np.bincount(items, residual - b_u[users], train.n_items) / (self.item_l2 + n_i)
            b_u = np.bincount(users, residual - b_i[items], train.n_users) / (self.user_l2 + n_u)
        self.user_bias_, self.item_bias_ = b_u, b_i

    def predict(self, user_indices, item_indices) -> np.ndarray:
        self._check_fitted()
        return self.global_mean_ + self.user_bias_[np.asarray(user_indices)] + self.item_bias_[np.asarray(item_indices)]

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_indices)
        return (self.global_mean_ + self.user_bias_[users, None] + self.item_bias_[None, :]).astype(np.float32)


class BiasedMFNet(nn.Module):
    """``r̂_ui - μ = b_u + b_i + p_u · q_i`` as embeddings."""

    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user(users) * self.item(items)).sum(-1)
        return dot + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T + self.user_bias(users) + self.item_bias.weight.T


class ExplicitMF(TorchRecommender):
    """Biased MF for ratings, ``r̂_ui = μ + b_u + b_i + p_uᵀ q_i``, trained on MSE + L2.

    ``dim`` factors per user and item, ``epochs`` passes with learning rate ``lr``.
    ``l2`` penalises the rows used in a batch: ``λ (‖p_u‖² + ‖q_i‖² + b_u² + b_i²)`` averaged over
    the batch. ``optimizer="adam"`` or ``"sgd"``. With a validation ratings matrix (same index) it
    stops early on validation RMSE (the history's metric is ``"rmse"``, lower is better) and keeps
    the best epoch.
    """

    name = "explicit-mf"
    val_metric_name = "rmse"
    val_mode = "min"

    def __init__(self, dim: int = 16, l2: float = 0.05, epochs: int = 60, batch_size: int = 512,
                 lr: float = 1e-2, optimizer: str = "adam", init_std: float = 0.01, patience: int | None = 5,
                 **kwargs) -> None:
        kwargs.setdefault("clip_norm", None)
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, **kwargs)
        if dim < 1 or l2 < 0:
            raise ValueError(f"ExplicitMF: dim must be >= 1 and l2 >= 0 (got dim={dim}, l2={l2})")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"ExplicitMF: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.dim = dim
        self.l2 = l2
        self.optimizer = optimizer
        self.init_std = init_std

    def _build(self, train: Interactions) -> nn.Module:
        self.global_mean_ = float(_ratings(train, "ExplicitMF.fit")[2].mean())
        return BiasedMFNet(train.n_users, train.n_items, self.dim, self.init_std)

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(module.parameters(), lr=self.lr, momentum=0.9)
        return torch.optim.Adam(module.parameters(), lr=self.lr)

    def _batches(self, train: Interactions):
        return InteractionBatches(train.matrix, self.batch_size, kind="rating", seed=self.seed)

    def _loss(self, module: BiasedMFNet, batch) -> torch.Tensor:
        users, items, ratings = batch
        predicted = module(users, items) + self.global_mean_
        penalty = (module.user(users).pow(2).sum(-1) + module.item(items).pow(2).sum(-1)
                   + module.user_bias(users).squeeze(-1).pow(2) + module.item_bias(items).squeeze(-1).pow(2))
        return F.mse_loss(predicted, ratings) + self.l2 * penalty.mean()

    def _validate(self, train: Interactions, validation: Interactions) -> float:
        return self.rmse(validation)

    def _score_users(self, module: BiasedMFNet, users: torch.Tensor) -> torch.Tensor:
        return module.score_all(users) + self.global_mean_

    def predict(self, user_indices, item_indices) -> np.ndarray:
        """Predicted ratings for aligned pairs of indices."""
        module = self._check_module()
        users = torch.as_tensor(np.asarray(user_indices, dtype=np.int64), device=self.device_)
        items = torch.as_tensor(np.asarray(item_indices, dtype=np.int64), device=self.device_)
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = (module(users, items) + self.global_mean_).double().cpu().numpy()
        module.train(was_training)
        return out

    def rmse(self, ratings: Interactions) -> float:
        """Root mean squared error on the stored cells of ``ratings`` (same index as train)."""
        users, items, values = _ratings(ratings, "ExplicitMF.rmse")
        return float(np.sqrt(np.mean((self.predict(users, items) - values) ** 2)))

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """User and item factor matrices ``(P, Q)`` as numpy arrays."""
        module = self._check_module()
        return module.user.weight.detach().cpu().numpy(), module.item.weight.detach().cpu().numpy()
