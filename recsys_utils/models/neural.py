"""Neural recommenders on user and item ids, trained with :func:`recsys_utils.models.train.loop.fit_torch`.

* :class:`IdMLP` -- the source documents' model (多层感知机 MLP on ids): user and item
  embeddings, concatenated, ReLU hidden layers, a sigmoid output; binary cross-entropy on clicks
  versus sampled non-clicks, Adam.
* :class:`IdMLPRegressor` -- the same network with a linear output trained with MSE on explicit
  ratings (an :class:`Interactions` whose values are ratings).
* :class:`GMF`, :class:`NCFMLP`, :class:`NeuMF` -- neural collaborative filtering (He et al. 2017,
  "Neural Collaborative Filtering", WWW): generalised matrix factorisation
  ``σ(hᵀ(p_u ⊙ q_i))``, the MLP tower on ``[p_u, q_i]``, and their fusion NeuMF
  ``σ(hᵀ[p_u^G ⊙ q_i^G ; MLP(p_u^M, q_i^M)])``, optionally initialised from a trained GMF and
  MLP (the paper's pre-training, with the output weights mixed by ``alpha``).

All are pointwise: each clicked (user, item) cell is a positive, ``n_negatives`` sampled
items per positive are the negatives (He et al. use 4). Scoring the whole catalogue splits the
first hidden layer ``W[p; q] = W_u p + W_i q`` so that the user and item halves are computed
once, not once per (user, item) pair. Rendle et al. (2020, "Neural Collaborative Filtering vs.
Matrix Factorization Revisited", RecSys) show that a well-tuned dot product beats the learned
MLP similarity; the course's notebook 05 measures it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import InteractionBatches

__all__ = ["GMF", "NCFMLP", "IdMLP", "IdMLPRegressor", "NeuMF", "GMFNet", "MLPNet", "NeuMFNet"]


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


class Tower(nn.Module):
    """ReLU hidden layers (with dropout) on an input of width ``in_dim``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("Tower: give at least one hidden layer width")
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.dropout = dropout
        self.out_dim = dims[-1]

    def forward(self, x: torch.Tensor, skip_first: bool = False) -> torch.Tensor:
        """``skip_first``: ``x`` is already the first layer's pre-activation."""
        for index, layer in enumerate(self.layers):
            x = x if (index == 0 and skip_first) else layer(x)
            x = F.relu(x)
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return x


def _first_layer_all_items(tower: Tower, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Pre-activation of the first layer for every (user in ``p``, item in ``q``) pair, with the
    user and item halves of ``W`` applied once each: shape ``(n_users, n_items, hidden)``."""
    first = tower.layers[0]
    dim_u = p.shape[1]
    user_part = p @ first.weight[:, :dim_u].T + first.bias  # (B, h)
    item_part = q @ first.weight[:, dim_u:].T  # (n_items, h)
    return user_part[:, None, :] + item_part[None, :, :]


class MLPNet(nn.Module):
    """``f(u, i) = wᵀ MLP([p_u ; q_i]) + b`` (a logit, or a rating for the regressor)."""

    def __init__(self, n_users: int, n_items: int, dim: int, hidden: Sequence[int], dropout: float = 0.0
                 ) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)
        self.tower = Tower(2 * dim, hidden, dropout)
        self.out = nn.Linear(self.tower.out_dim, 1)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.tower(torch.cat([self.user(users), self.item(items)], dim=-1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(users, items)).squeeze(-1)

    def features_all(self, users: torch.Tensor) -> torch.Tensor:
        pre = _first_layer_all_items(self.tower, self.user(users), self.item.weight)
        return self.tower(pre, skip_first=True)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.out(self.features_all(users)).squeeze(-1)


class GMFNet(nn.Module):
    """``f(u, i) = hᵀ(p_u ⊙ q_i) + b``: matrix factorisation with a learned weight per factor."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.01)
        nn.init.normal_(self.item.weight, std=0.01)
        self.out = nn.Linear(dim, 1)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users) * self.item(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(users, items)).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        # hᵀ(p ⊙ q) = p · (h ⊙ q): one matrix product for the whole catalogue
        weighted = self.item.weight * self.out.weight  # (n_items, dim)
        return self.user(users) @ weighted.T + self.out.bias


class NeuMFNet(nn.Module):
    """``f(u, i) = hᵀ[p^G_u ⊙ q^G_i ; MLP(p^M_u, q^M_i)] + b`` (He et al. 2017, eq. 11-12)."""

    def __init__(self, n_users: int, n_items: int, gmf_dim: int, mlp_dim: int, hidden: Sequence[int],
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.gmf = GMFNet(n_users, n_items, gmf_dim)
        self.mlp = MLPNet(n_users, n_items, mlp_dim, hidden, dropout)
        self.out = nn.Linear(gmf_dim + self.mlp.tower.out_dim, 1)
        # the sub-networks' own output layers are unused in NeuMF (kept for pre-training copies)
        self.gmf.out.requires_grad_(False)
        self.mlp.out.requires_grad_(False)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([self.gmf.features(users, items), self.mlp.features(users, items)], dim=-1)
        return self.out(joint).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        gmf_dim = self.gmf.user.embedding_dim
        h_gmf, h_mlp = self.out.weight[0, :gmf_dim], self.out.weight[0, gmf_dim:]
        gmf_part = self.gmf.user(users) @ (self.gmf.item.weight * h_gmf).T
        mlp_part = self.mlp.features_all(users) @ h_mlp
        return gmf_part + mlp_part + self.out.bias

    def load_pretrained(self, gmf: GMFNet, mlp: MLPNet, alpha: float = 0.5) -> None:
        """He et al.'s pre-training: copy both networks, output ``h = [α h_GMF ; (1-α) h_MLP]``."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"NeuMFNet.load_pretrained: alpha must be in [0, 1], got {alpha}")
        with torch.no_grad():
            self.gmf.load_state_dict(gmf.state_dict())
            self.mlp.load_state_dict(mlp.state_dict())
            self.out.weight.copy_(torch.cat([alpha * gmf.out.weight, (1 - alpha) * mlp.out.weight], dim=1))
            self.out.bias.copy_(alpha * gmf.out.bias + (1 - alpha) * mlp.out.bias)


# --------------------------------------------------------------------------------------------
# recommenders
# --------------------------------------------------------------------------------------------


def _pair_budget_users(n_items: int, width: int) -> int:
    """Users per scoring pass so that ``users x items x width`` stays near 2**23 floats."""
    return max(1, min(1024, (1 << 23) // max(1, n_items * width)))


class _Pointwise(TorchRecommender):
    """Shared pieces: pointwise batches with sampled negatives and the log loss."""

    def __init__(self, n_negatives: int = 4, negative_strategy: str = "uniform", epochs: int = 20,
                 batch_size: int = 2048, lr: float = 1e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.n_negatives = n_negatives
        self.negative_strategy = negative_strategy

    def _batches(self, train: Interactions):
        # batch_size counts positives; each brings n_negatives sampled negatives
        return InteractionBatches(train.matrix, self.batch_size, kind="pointwise",
                                  n_negatives=self.n_negatives, strategy=self.negative_strategy,
                                  alpha=0.75, seed=self.seed)

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        users, items, labels = batch
        return F.binary_cross_entropy_with_logits(module(users, items), labels)

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        return module.score_all(users)

    def predict_proba(self, user_indices, item_indices) -> np.ndarray:
        """Click probability σ(f(u, i)) for aligned pairs of indices."""
        return expit(self.forward_pairs(user_indices, item_indices))

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """User and item embedding matrices (for NeuMF: the GMF ones) as numpy arrays."""
        module = self._check_module()
        source = module.gmf if isinstance(module, NeuMFNet) else module
        return source.user.weight.detach().cpu().numpy(), source.item.weight.detach().cpu().numpy()


class GMF(_Pointwise):
    """Generalised matrix factorisation (He et al. 2017, §3.2), log loss with sampled negatives."""

    name = "gmf"

    def __init__(self, dim: int = 32, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim = dim

    def _build(self, train: Interactions) -> nn.Module:
        return GMFNet(train.n_users, train.n_items, self.dim)


class IdMLP(_Pointwise):
    """The source documents' model: embeddings of user and item ids → ReLU layers → sigmoid,
    binary cross-entropy on clicks versus sampled non-clicks, Adam."""

    name = "id-mlp"

    def __init__(self, dim: int = 32, hidden: Sequence[int] = (64, 32, 16), dropout: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        self.hidden = tuple(hidden)
        self.dropout = dropout

    def _build(self, train: Interactions) -> nn.Module:
        return MLPNet(train.n_users, train.n_items, self.dim, self.hidden, self.dropout)

    def _score_batch_size(self) -> int:
        return _pair_budget_users(self.train_.n_items, max(self.hidden))


class NCFMLP(IdMLP):
    """NCF's MLP (He et al. 2017, §3.3): ``dim``-sized user and item embeddings, concatenated, feed
    a tower pyramid of ``n_layers`` ReLU layers of widths ``2·dim, dim, dim/2, …`` (each half the
    one before; the last is the paper's "predictive factors"). Same network family as
    :class:`IdMLP`; the default ``dim=32, n_layers=3`` is the tower ``(64, 32, 16)``."""

    name = "ncf-mlp"

    def __init__(self, dim: int = 32, n_layers: int = 3, **kwargs) -> None:
        if n_layers < 1 or dim < 1 or (2 * dim) >> (n_layers - 1) < 1:
            raise ValueError(f"NCFMLP: need n_layers >= 1 and 2*dim >= 2**(n_layers-1) so every layer is at "
                             f"least 1 wide (got dim={dim}, n_layers={n_layers})")
        if "hidden" in kwargs:
            raise TypeError("NCFMLP: the tower follows from dim and n_layers; use IdMLP for a free 'hidden'")
        hidden = tuple((2 * dim) >> k for k in range(n_layers))
        super().__init__(dim=dim, hidden=hidden, **kwargs)
        self.n_layers = n_layers


class NeuMF(_Pointwise):
    """Neural matrix factorisation (He et al. 2017, §3.4): GMF and MLP side by side.

    ``pretrained=(gmf, mlp)`` -- two fitted :class:`GMF` / :class:`NCFMLP` (or :class:`IdMLP`)
    models on the same data: their weights initialise NeuMF and the output layer mixes them with
    ``alpha`` (the paper then trains with plain SGD; here Adam with ``lr`` -- pass a smaller one).
    """

    name = "neumf"

    def __init__(self, gmf_dim: int = 32, mlp_dim: int = 16, hidden: Sequence[int] = (64, 32, 16),
                 dropout: float = 0.0, pretrained: tuple[GMF, IdMLP] | None = None, alpha: float = 0.5,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.gmf_dim = gmf_dim
        self.mlp_dim = mlp_dim
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.pretrained = pretrained
        self.alpha = alpha
        if pretrained is not None:
            gmf, mlp = pretrained
            if not isinstance(gmf, GMF) or not isinstance(mlp, IdMLP):
                raise TypeError("NeuMF: pretrained must be (fitted GMF, fitted IdMLP/NCFMLP)")
            self.gmf_dim, self.mlp_dim, self.hidden = gmf.dim, mlp.dim, mlp.hidden
            self.dropout = mlp.dropout

    def _build(self, train: Interactions) -> nn.Module:
        return NeuMFNet(train.n_users, train.n_items, self.gmf_dim, self.mlp_dim, self.hidden, self.dropout)

    def _init_module(self, module: nn.Module, train: Interactions) -> None:
        if self.pretrained is None:
            return
        gmf, mlp = self.pretrained
        for model in (gmf, mlp):
            fitted = model._check_module()
            if model.train_.matrix.shape != train.matrix.shape:
                raise ValueError(f"NeuMF: pre-trained {model.name} was fitted on a {model.train_.matrix.shape} "
                                 f"matrix, this one is {train.matrix.shape}")
            fitted.to("cpu")
        module.load_pretrained(gmf.module_, mlp.module_, self.alpha)
        for model in (gmf, mlp):
            model.module_.to(model.device_)

    def _score_batch_size(self) -> int:
        return _pair_budget_users(self.train_.n_items, max(self.hidden))


class IdMLPRegressor(TorchRecommender):
    """The MLP on ids as a rating regressor: ``r̂_ui = μ + MLP([p_u; q_i])``, MSE loss, Adam.

    Fit on an :class:`Interactions` whose stored values are ratings (e.g. built with
    ``Interactions.from_frame(ratings, weight="rating")``). With a validation matrix of ratings it
    stops early on validation RMSE (``history_.metric_name == "rmse"``, lower is better).
    ``score`` returns predicted ratings for every item (ranking by them is a weak recommender:
    rated items are not a random sample of the catalogue).
    """

    name = "id-mlp-regressor"
    val_metric_name = "rmse"
    val_mode = "min"

    def __init__(self, dim: int = 32, hidden: Sequence[int] = (64, 32), dropout: float = 0.0,
                 epochs: int = 30, batch_size: int = 1024, lr: float = 1e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.dim = dim
        self.hidden = tuple(hidden)
        self.dropout = dropout

    def _build(self, train: Interactions) -> nn.Module:
        self.global_mean_ = float(train.matrix.data.mean())
        return MLPNet(train.n_users, train.n_items, self.dim, self.hidden, self.dropout)

    def _batches(self, train: Interactions):
        return InteractionBatches(train.matrix, self.batch_size, kind="rating", seed=self.seed)

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        users, items, ratings = batch
        return F.mse_loss(module(users, items) + self.global_mean_, ratings)

    def _validate(self, train: Interactions, validation: Interactions) -> float:
        return self.rmse(validation)

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        return module.score_all(users) + self.global_mean_

    def _score_batch_size(self) -> int:
        return _pair_budget_users(self.train_.n_items, max(self.hidden))

    def predict(self, user_indices, item_indices) -> np.ndarray:
        """Predicted ratings for aligned pairs of indices."""
        return self.forward_pairs(user_indices, item_indices) + self.global_mean_

    def rmse(self, ratings: Interactions) -> float:
        """Root mean squared error on the stored cells of ``ratings`` (same index as train)."""
        coo = ratings.matrix.tocoo()
        if coo.nnz == 0:
            raise ValueError("IdMLPRegressor.rmse: no ratings to evaluate")
        predicted = self.predict(coo.row, coo.col)
        return float(np.sqrt(np.mean((predicted - coo.data) ** 2)))
