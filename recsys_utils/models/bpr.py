"""BPR matrix factorisation with hand-written mini-batch SGD (Rendle, Freudenthaler, Gantner &
Schmidt-Thieme 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI).

For a user ``u``, an item ``i`` the user interacted with and a sampled item ``j`` they did not,

    x̂_uij = p_u · (q_i - q_j) + b_i - b_j,      maximise  Σ ln σ(x̂_uij) - λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖² + b²)

by stochastic gradient ascent. With ``g = σ(-x̂_uij)`` the gradients are

    ∂/∂p_u = g (q_i - q_j) - λ p_u,   ∂/∂q_i = g p_u - λ q_i,   ∂/∂q_j = -g p_u - λ q_j,

so no autograd is needed. Two engines apply these updates (``backend``):

- ``"numba"`` (the CPU default): one triple at a time, compiled with numba and spread over
  ``num_threads`` lock-free workers like ``implicit``'s BPR (:mod:`recsys_utils.models.bpr_kernels`);
  with one thread, the same seed gives the same numbers;
- ``"torch"`` (the default on a GPU): a mini-batch of triples is gathered, the updates are computed
  as dense tensor expressions and scattered back with ``index_add_`` (repeated rows add up, as in
  Hogwild-style parallel SGD); :meth:`BPR._step` is that update.

One epoch draws as many triples as there are stored interactions, like ``implicit``'s BPR.
:class:`recsys_utils.models.bpr_torch.TorchBPR` is the autograd + Adam
version on the course's training loop.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from recsys_utils.core.device import resolve_device
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.bpr_kernels import bpr_epoch
from recsys_utils.models.factors import nearest_items
from recsys_utils.models.train.batches import InteractionBatches


class BPR(Recommender):
    """BPR-MF: ``dim`` dimensions, SGD with learning rate ``lr`` and L2 penalty ``l2`` (λ).

    ``epochs`` passes over the interactions; ``batch_size`` triples per update step of the torch
    engine (the numba engine updates after every triple; ``backend="auto"`` picks numba on the CPU
    and torch on a GPU).
    ``item_factors_`` and ``user_factors_`` are numpy arrays after ``fit``; ``item_bias_`` the
    item biases. Scores are ``p_u · q_i + b_i``. ``num_threads`` caps torch's threads during
    training (default 1: a mini-batch is too small for intra-op threads to pay off, and on a busy
    machine they spin and slow each step down many times over; ``None`` keeps torch's setting) and
    is the numba engine's number of workers (``None``: numba's thread count).
    """

    BACKENDS = ("auto", "numba", "torch")

    name = "bpr"

    def __init__(self, dim: int = 64, lr: float = 0.05, l2: float = 0.001,
                 epochs: int = 20, batch_size: int = 2048, seed: int = 42, device: str | None = None,
                 num_threads: int | None = 1, backend: str = "auto") -> None:
        super().__init__()
        if dim < 1 or epochs < 0 or batch_size < 1:
            raise ValueError(f"BPR: dim and batch_size must be >= 1, epochs >= 0 (got dim={dim}, "
                             f"batch_size={batch_size}, epochs={epochs})")
        if lr <= 0 or l2 < 0:
            raise ValueError(f"BPR: lr must be > 0 and l2 >= 0 (got lr={lr}, l2={l2})")
        if backend not in self.BACKENDS:
            raise ValueError(f"BPR: backend must be one of {self.BACKENDS}, got {backend!r}")
        self.backend = backend
        self.dim = dim
        self.lr = lr
        self.l2 = l2
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.num_threads = num_threads

    def _fit(self, train: Interactions) -> None:
        if train.nnz == 0:
            raise ValueError("BPR: the training matrix has no interactions")
        device = resolve_device(self.device)
        if self.backend == "numba" or (self.backend == "auto" and device.type == "cpu"):
            self._fit_numba(train)
            return
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            generator = torch.Generator().manual_seed(self.seed)
            scale = 1.0 / np.sqrt(self.dim)
            p = (torch.rand(train.n_users, self.dim, generator=generator) - 0.5).mul_(scale).to(device)
            q = (torch.rand(train.n_items, self.dim, generator=generator) - 0.5).mul_(scale).to(device)
            b = torch.zeros(train.n_items, device=device)
            batches = InteractionBatches(train.binary(), self.batch_size, kind="pairwise", seed=self.seed)
            lr, reg = self.lr, self.l2
            self.loss_history_: list[float] = []
            for epoch in range(self.epochs):
                total = 0.0
                for users, pos, neg in batches(epoch):
                    users, pos, neg = users.to(device), pos.to(device), neg.to(device)
                    total += self._step(p, q, b, users, pos, neg, lr, reg)
                self.loss_history_.append(total / train.nnz)
        finally:
            torch.set_num_threads(threads)
        self.user_factors_ = p.cpu().numpy()
        self.item_factors_ = q.cpu().numpy()
        self.item_bias_ = b.cpu().numpy()

    def _fit_numba(self, train: Interactions) -> None:
        """The compiled per-triple engine (see the module docstring)."""
        generator = torch.Generator().manual_seed(self.seed)
        scale = 1.0 / np.sqrt(self.dim)
        p = np.ones((train.n_users, self.dim + 1), dtype=np.float32)  # last column: 1 (bias weight)
        q = np.zeros((train.n_items, self.dim + 1), dtype=np.float32)  # last column: the item bias
        p[:, :-1] = ((torch.rand(train.n_users, self.dim, generator=generator) - 0.5) * scale).numpy()
        q[:, :-1] = ((torch.rand(train.n_items, self.dim, generator=generator) - 0.5) * scale).numpy()
        matrix = train.binary().tocsr()
        matrix.sort_indices()
        index_type = np.int32 if matrix.nnz < 2 ** 31 else np.int64  # smaller arrays, fewer cache misses
        indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(index_type)
        user_of = np.repeat(np.arange(train.n_users, dtype=index_type), np.diff(indptr))
        workers = int(self.num_threads or numba.get_num_threads())
        previous = numba.get_num_threads()
        numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
        self.loss_history_ = []
        try:
            for epoch in range(self.epochs):
                total = bpr_epoch(indptr, indices, user_of, p, q, np.float32(self.lr), np.float32(self.l2),
                                  int(self.seed) * 1_000_003 + epoch, workers, 5)
                self.loss_history_.append(float(total) / max(1, len(indices)))
        finally:
            numba.set_num_threads(previous)
        self.user_factors_ = np.ascontiguousarray(p[:, :-1])
        self.item_factors_ = np.ascontiguousarray(q[:, :-1])
        self.item_bias_ = q[:, -1].copy()

    @staticmethod
    def _step(p: torch.Tensor, q: torch.Tensor, b: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
              neg: torch.Tensor, lr: float, reg: float) -> float:
        """One SGD ascent step on a batch of triples; returns the batch's summed -ln σ(x̂_uij)."""
        pu, qi, qj, bi, bj = p[users], q[pos], q[neg], b[pos], b[neg]
        diff = qi - qj
        x = torch.linalg.vecdot(pu, diff) + bi - bj
        g = torch.sigmoid(-x)
        gp = g[:, None] * pu
        p.index_add_(0, users, lr * (g[:, None] * diff - reg * pu))
        q.index_add_(0, pos, lr * (gp - reg * qi))
        q.index_add_(0, neg, -lr * (gp + reg * qj))
        b.index_add_(0, pos, lr * (g - reg * bi))
        b.index_add_(0, neg, -lr * (g + reg * bj))
        return float(torch.nn.functional.softplus(-x).sum())

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(user_indices)] @ self.item_factors_.T + self.item_bias_[None, :]

    def similar_items(self, item_indices, k: int = 10) -> np.ndarray:
        """The ``k`` nearest items (cosine of item factors) of each item index, itself excluded."""
        self._check_fitted()
        return nearest_items(self.item_factors_, item_indices, k)
