"""AutoRec (自编码器推荐): the item-based autoencoder I-AutoRec, on ratings or on implicit clicks.

Sedhain, Menon, Sanner & Xie (2015), "AutoRec: Autoencoders Meet Collaborative Filtering", WWW.
An item ``i`` is its column ``r_i ∈ R^{n_users}`` of the user x item matrix. One hidden layer
encodes it and a linear layer reconstructs it:

    h(r_i) = σ(V r_i + μ),        r̂_i = W h(r_i) + b,

and the loss sums the squared error over the *observed* entries only, plus an L2 penalty
(the optimizer's ``weight_decay``):

    L = Σ_i Σ_u w_ui (r_ui - r̂_ui)²,     w_ui = 1 if (u, i) was rated, else 0.

The prediction of user ``u`` for item ``i`` is ``r̂_ui = W_u · h(r_i) + b_u``, so one pass over the
item columns scores every user.

Implicit data. With clicks only (every observed entry is 1) the masked loss is minimised by
predicting 1 everywhere. The implicit variant used here follows the confidence weighting of Hu,
Koren & Volinsky (2008): every entry counts, a click as target 1 with weight ``1 + alpha``, an
unobserved entry as target 0 with weight 1 (``implicit=True``, the default). ``implicit=False``
fits the values stored in the matrix (e.g. 1-5 ratings) with the paper's mask.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import UserBatches

__all__ = ["AutoRec", "AutoRecNet", "autorec_loss", "autorec_weights"]


class AutoRecNet(nn.Module):
    """I-AutoRec's network: ``encoder`` (``n_users → hidden``, sigmoid) and ``decoder`` (``hidden → n_users``)."""

    def __init__(self, n_users: int, hidden: int = 100) -> None:
        super().__init__()
        if hidden < 1 or n_users < 1:
            raise ValueError(f"AutoRecNet: n_users and hidden must be >= 1, got {n_users}, {hidden}")
        self.encoder = nn.Linear(n_users, hidden)
        self.decoder = nn.Linear(hidden, n_users)

    def encode(self, columns: torch.Tensor) -> torch.Tensor:
        """``h(r_i) = σ(V r_i + μ)`` for item columns of shape ``(B, n_users)``."""
        return torch.sigmoid(self.encoder(columns))

    def forward(self, columns: torch.Tensor) -> torch.Tensor:
        """Reconstructed columns ``r̂_i = W h(r_i) + b``, shape ``(B, n_users)``."""
        return self.decoder(self.encode(columns))


def autorec_weights(columns: torch.Tensor, implicit: bool = True, alpha: float = 1.0) -> torch.Tensor:
    """Per-entry weights ``w_ui``: the observed mask (ratings) or confidence ``1 + alpha·x`` (implicit)."""
    observed = (columns != 0).to(columns.dtype)
    if implicit:
        return 1.0 + alpha * observed
    return observed


def autorec_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted squared error ``Σ w_ui (r_ui - r̂_ui)²`` summed over users, averaged over the item columns.

    A zero weight removes an entry entirely: its target and prediction change nothing (Sedhain et
    al. 2015, eq. 2, "only observed ratings contribute").
    """
    if pred.shape != target.shape or weight.shape != target.shape:
        raise ValueError(f"autorec_loss: shapes differ: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
                         f"weight {tuple(weight.shape)}")
    mask = weight != 0  # where() instead of a product: an unobserved inf or nan cannot leak in
    sq = torch.where(mask, weight * (target - pred) ** 2, torch.zeros_like(pred))
    return sq.sum(dim=1).mean()


class AutoRec(TorchRecommender):
    """I-AutoRec (Sedhain et al. 2015) trained by :func:`fit_torch` on item columns.

    ``hidden`` units of the one hidden layer, ``implicit`` (confidence-weighted, all entries) or
    the paper's masked loss on stored values, ``alpha`` the extra weight of a click, ``l2`` the
    weight decay λ. ``batch_size`` counts items.
    """

    name = "autorec"

    def __init__(self, hidden: int = 100, implicit: bool = True, alpha: float = 1.0, l2: float = 0.0,
                 epochs: int = 30, batch_size: int = 128, lr: float = 1e-2, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=l2, **kwargs)
        if hidden < 1:
            raise ValueError(f"AutoRec: hidden must be >= 1, got {hidden}")
        if alpha < 0:
            raise ValueError(f"AutoRec: alpha must be >= 0, got {alpha}")
        self.hidden = hidden
        self.implicit = implicit
        self.alpha = alpha
        self.l2 = l2

    def _columns(self, train: Interactions) -> sp.csr_matrix:
        items = sp.csr_matrix(train.matrix.T, dtype=np.float32)
        if self.implicit:
            items.data[:] = 1.0
        return items

    def _build(self, train: Interactions) -> nn.Module:
        self._items = self._columns(train)
        return AutoRecNet(train.n_users, self.hidden)

    def _batches(self, train: Interactions):
        return UserBatches(self._items, self.batch_size, seed=self.seed, binary=self.implicit)

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        _, columns = batch
        weight = autorec_weights(columns, self.implicit, self.alpha)
        return autorec_loss(module(columns), columns, weight)

    def score(self, user_indices: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """``r̂_ui = W_u · h(r_i) + b_u``: the item codes ``h(r_i)`` are computed once per call."""
        module = self._check_module()
        was_training = module.training
        module.eval()
        codes = []
        with torch.no_grad():
            for start in range(0, self._items.shape[0], 1024):
                chunk = torch.from_numpy(self._items[start:start + 1024].toarray()).to(self.device_)
                codes.append(module.encode(chunk))
        module.train(was_training)
        self._codes = torch.cat(codes)
        return super().score(user_indices, batch_size)

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        return module.decoder.weight[users] @ self._codes.T + module.decoder.bias[users, None]
