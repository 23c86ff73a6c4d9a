"""Restricted Boltzmann machines (受限玻尔兹曼机) for collaborative filtering, trained with contrastive divergence.

Salakhutdinov, Mnih & Hinton (2007), "Restricted Boltzmann Machines for Collaborative Filtering",
ICML; Hinton (2002), "Training Products of Experts by Minimizing Contrastive Divergence"; Hinton
(2010), "A Practical Guide to Training RBMs". A user is a binary visible vector ``v ∈ {0,1}^{n_items}``
(their clicks); ``h ∈ {0,1}^{n_hidden}`` are hidden units. The energy and the free energy are

    E(v, h) = -b·v - c·h - vᵀ W h,         F(v) = -b·v - Σ_j softplus(c_j + (vᵀW)_j),

with ``p(v) ∝ exp(-F(v))``, ``p(h_j = 1 | v) = σ(c_j + (vᵀW)_j)`` and ``p(v_i = 1 | h) = σ(b_i + (W h)_i)``.
The log-likelihood gradient is ``⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model``; CD-k replaces the model expectation
by ``k`` steps of a Gibbs chain started at the data. Those updates are not the gradient of a loss,
but the surrogate ``F(v_0) - F(v_k)`` (``v_k`` held fixed) has exactly the CD gradient, so autograd
and any torch optimizer apply them (:func:`cd_surrogate`), inside the one training loop through its
``step_fn`` hook. Scores are reconstruction probabilities ``p(v_i = 1 | E[h | v_u])``.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import UserBatches
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch

__all__ = ["RBM", "RBMNet", "cd_statistics", "cd_surrogate", "exact_gradient", "fit_rbm", "rbm_step"]


class RBMNet(nn.Module):
    """A binary RBM: weights ``W`` (``n_visible x n_hidden``), visible bias ``b``, hidden bias ``c``."""

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01) -> None:
        super().__init__()
        if n_visible < 1 or n_hidden < 1:
            raise ValueError(f"RBMNet: n_visible and n_hidden must be >= 1, got {n_visible}, {n_hidden}")
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden) * init_std)
        self.b = nn.Parameter(torch.zeros(n_visible))
        self.c = nn.Parameter(torch.zeros(n_hidden))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = -b·v - Σ_j softplus(c_j + (vᵀW)_j)`` per row."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(dim=-1)

    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v)``."""
        return torch.sigmoid(v @ self.W + self.c)

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        """``p(v = 1 | h)``."""
        return torch.sigmoid(h @ self.W.T + self.b)

    def gibbs(self, v: torch.Tensor, k: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` steps of block Gibbs sampling ``v → h → v`` (binary samples), without gradients."""
        with torch.no_grad():
            for _ in range(k):
                h = torch.bernoulli(self.p_h(v), generator=generator)
                v = torch.bernoulli(self.p_v(h), generator=generator)
        return v

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction ``p(v = 1 | p(h | v))``: the recommender's scores."""
        return self.p_v(self.p_h(v))

    def sample(self, n: int, steps: int = 200, seed: int = 0) -> torch.Tensor:
        """``n`` visible vectors from Gibbs chains of ``steps`` steps started at ``p(v | h=0)`` samples."""
        generator = torch.Generator(device=self.W.device).manual_seed(seed)
        with torch.no_grad():
            v = torch.bernoulli(torch.sigmoid(self.b).expand(n, -1).contiguous(), generator=generator)
            return self.gibbs(v, steps, generator)


def cd_statistics(net: RBMNet, v0: torch.Tensor, vk: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """CD's update directions ``(ΔW, Δb, Δc)`` for a batch: positive minus negative statistics, batch means.

    ``ΔW = ⟨v_0 p(h|v_0)ᵀ⟩ - ⟨v_k p(h|v_k)ᵀ⟩``, ``Δb = ⟨v_0 - v_k⟩``, ``Δc = ⟨p(h|v_0) - p(h|v_k)⟩``.
    """
    with torch.no_grad():
        h0, hk = net.p_h(v0), net.p_h(vk)
        n = v0.shape[0]
        return (v0.T @ h0 - vk.T @ hk) / n, (v0 - vk).mean(0), (h0 - hk).mean(0)


def cd_surrogate(net: RBMNet, v0: torch.Tensor, vk: torch.Tensor) -> torch.Tensor:
    """``mean F(v_0) - mean F(v_k)`` with ``v_k`` fixed: its gradient is minus :func:`cd_statistics`."""
    return net.free_energy(v0).mean() - net.free_energy(vk.detach()).mean()


def exact_gradient(net: RBMNet, data: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The exact log-likelihood gradient ``(∂W, ∂b, ∂c)`` of the batch mean, by enumerating all ``2^n_visible``
    visible states for the model expectation (tiny models only: ``n_visible <= 16``)."""
    n_visible = net.W.shape[0]
    if n_visible > 16:
        raise ValueError(f"exact_gradient: enumerating 2^{n_visible} states is too many (n_visible <= 16)")
    with torch.no_grad():
        states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=n_visible)), dtype=net.W.dtype,
                              device=net.W.device)
        p = torch.softmax(-net.free_energy(states), dim=0)
        h_model = net.p_h(states)
        h_data = net.p_h(data)
        grad_w = data.T @ h_data / len(data) - (states * p[:, None]).T @ h_model
        grad_b = data.mean(0) - p @ states
        grad_c = h_data.mean(0) - p @ h_model
    return grad_w, grad_b, grad_c


def rbm_step(net: RBMNet, v0: torch.Tensor, optimizer: torch.optim.Optimizer, k: int = 1) -> dict[str, torch.Tensor]:
    """One CD-k update through the free-energy surrogate; returns the numbers the history keeps."""
    vk = net.gibbs(v0, k)
    loss = cd_surrogate(net, v0, vk)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        recon = ((net.reconstruct(v0) - v0) ** 2).sum(1).mean()
        free = net.free_energy(v0).mean()
    return {"loss": loss.detach(), "recon_error": recon, "free_energy": free}


def fit_rbm(net: RBMNet, batches, epochs: int, lr: float = 1e-2, k: int = 1, validate=None,
            patience: int | None = None, device=None, progress: bool = False, desc: str = "rbm") -> History:
    """Train ``net`` by CD-k with Adam through :func:`fit_torch`'s ``step_fn`` (``batches(epoch)`` yields
    ``(ids, rows)`` or row tensors). ``history.logs`` holds ``recon_error`` and ``free_energy`` per epoch."""
    if k < 1:
        raise ValueError(f"fit_rbm: k (Gibbs steps) must be >= 1, got {k}")
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def step(model: nn.Module, batch) -> dict[str, torch.Tensor]:
        rows = batch[1] if isinstance(batch, (tuple, list)) else batch
        return rbm_step(model, rows, optimizer, k)

    return fit_torch(net, batches, optimizer=optimizer, epochs=epochs, validate=validate, patience=patience,
                     device=device, progress=progress, desc=desc, step_fn=step)


def visible_bias_init(x) -> torch.Tensor:
    """``log p_i / (1 - p_i)`` of each item's click rate (Hinton 2010, §8): the RBM starts at popularity."""
    rate = np.clip(np.asarray(x.mean(axis=0)).ravel(), 1e-4, 1 - 1e-4)
    return torch.from_numpy(np.log(rate / (1 - rate)).astype(np.float32))


class RBM(TorchRecommender):
    """A binary RBM recommender (Salakhutdinov et al. 2007, binary units on clicks) trained by CD-``k``.

    ``hidden`` units, ``k`` Gibbs steps per update, ``lr`` of Adam on the CD surrogate.
    ``history_.logs`` has ``recon_error`` and ``free_energy`` per epoch.
    """

    name = "rbm"

    def __init__(self, hidden: int = 100, k: int = 1, epochs: int = 20, batch_size: int = 256, lr: float = 1e-2,
                 **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        if hidden < 1 or k < 1:
            raise ValueError(f"RBM: hidden and k must be >= 1, got hidden={hidden}, k={k}")
        self.hidden = hidden
        self.k = k

    def _build(self, train: Interactions) -> nn.Module:
        self._x = train.binary().astype("float32")
        net = RBMNet(train.n_items, self.hidden)
        with torch.no_grad():
            net.b.copy_(visible_bias_init(self._x))
        return net

    def _batches(self, train: Interactions):
        return UserBatches(train.matrix, self.batch_size, seed=self.seed)

    def _fit(self, train: Interactions) -> None:
        validation = self.validation
        if validation is not None and validation.matrix.shape != train.matrix.shape:
            raise ValueError(f"RBM: validation {validation.matrix.shape} and train {train.matrix.shape} "
                             "do not share an index (use MatrixSplit)")
        seed_everything(self.seed)
        self.device_ = resolve_device(self.device)
        self.module_ = self._build(train).to(self.device_)
        validate = None if validation is None else (lambda: self._validate(train, validation))
        started = time.perf_counter()
        self.history_ = fit_rbm(self.module_, self._batches(train), self.epochs, self.lr, self.k, validate,
                                self.patience, self.device_, self.progress, self.name)
        self.fit_seconds_ = time.perf_counter() - started

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(self._x[users.cpu().numpy()].toarray()).to(users.device)
        return module.reconstruct(rows)

    def _score_batch_size(self) -> int:
        return 512
