"""The purchase funnel as multi-task learning: ESMM, MMoE and the single-task / naive CVR baselines.

Impression → click → (add to cart →) purchase. A conversion-rate (CVR) model estimates
pCVR = P(purchase | click, x). Trained the usual way, on clicked impressions only, it meets two problems
(Ma et al. 2018): **sample-selection bias** -- it is trained on clicks but used on every impression, whose
distribution differs -- and **data sparsity** -- clicks are a small share of impressions.

* **ESMM** (Ma, Zhao, Huang, Wang, Hu, Zhu & Gai 2018, "Entire Space Multi-Task Model: An Effective
  Approach for Estimating Post-Click Conversion Rate", SIGIR): a CTR tower and a CVR tower on shared
  embeddings; pCTCVR = pCTR × pCVR, and both losses are over the *entire* impression space,

      L = Σ_impressions BCE(click, pCTR) + BCE(click ∧ purchase, pCTR · pCVR),

  so pCVR is never fitted on clicked rows alone, and its embeddings learn from every impression
  (:class:`ESMMNet`, :func:`esmm_loss`).
* **MMoE** (Ma, Zhao, Yi, Chen, Hong & Chi 2018, "Modeling Task Relationships in Multi-task Learning with
  Multi-gate Mixture-of-Experts", KDD): ``n_experts`` expert networks on shared embeddings, and per task
  ``k`` a softmax gate g_k(x) that mixes them, f_k(x) = Σ_e g_k(x)_e · expert_e(x), then a task tower
  (:class:`MMoENet`, :func:`multitask_loss`). One task and one expert is a plain single-task network.

All train through the one loop (:func:`~recsys_utils.models.din.fit_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.models.din import mlp

__all__ = ["ESMMNet", "FieldEmbedding", "MMoENet", "esmm_loss", "log_loss_terms", "multitask_loss"]

EPS = 1e-7


class FieldEmbedding(nn.Module):
    """One shared embedding table for ``len(sizes)`` categorical fields; ``forward(codes (N, F))``
    returns the concatenated field embeddings ``(N, F·dim)``."""

    def __init__(self, sizes: Sequence[int], dim: int = 8) -> None:
        super().__init__()
        if len(sizes) == 0 or min(sizes) < 1:
            raise ValueError(f"FieldEmbedding: sizes must be a non-empty list of positive sizes, got {list(sizes)}")
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long))
        self.n_fields, self.dim = len(sizes), dim
        self.embedding = nn.Embedding(int(sum(sizes)), dim)
        nn.init.normal_(self.embedding.weight, std=0.05)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.ndim != 2 or codes.shape[1] != self.n_fields:
            raise ValueError(f"FieldEmbedding: codes must have shape (N, {self.n_fields}), got {tuple(codes.shape)}")
        return self.embedding(codes + self.offsets).flatten(1)


def _tower(width: int, hidden: Sequence[int]) -> nn.Sequential:
    return nn.Sequential(mlp([width, *hidden]), nn.Linear(([width, *hidden])[-1], 1))


class ESMMNet(nn.Module):
    """ESMM: a CTR tower and a CVR tower on shared field embeddings.

    ``forward(codes) -> (ctr_logit, cvr_logit)``; :meth:`probabilities` gives ``pctr``, ``pcvr`` and
    ``pctcvr = pctr * pcvr`` (the product is the model: no tower ever predicts pCTCVR on its own).
    """

    def __init__(self, sizes: Sequence[int], dim: int = 8, hidden: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        self.embed = FieldEmbedding(sizes, dim)
        width = len(sizes) * dim
        self.ctr = _tower(width, hidden)
        self.cvr = _tower(width, hidden)

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(codes)
        return self.ctr(h).squeeze(-1), self.cvr(h).squeeze(-1)

    def probabilities(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        ctr_logit, cvr_logit = self(codes)
        pctr, pcvr = torch.sigmoid(ctr_logit), torch.sigmoid(cvr_logit)
        return {"pctr": pctr, "pcvr": pcvr, "pctcvr": pctr * pcvr}


def log_loss_terms(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row binary cross-entropy ``-[y log p + (1 - y) log(1 - p)]`` of probabilities (clipped to
    ``[1e-7, 1 - 1e-7]``)."""
    p = p.clamp(EPS, 1.0 - EPS)
    y = y.to(p.dtype)
    return -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p))


def esmm_loss(net: ESMMNet, batch: tuple) -> torch.Tensor:
    """ESMM's entire-space loss on a batch ``(codes, clicked, purchased)`` of *all* impressions:
    mean BCE(click, pCTR) + mean BCE(click·purchase, pCTR·pCVR)."""
    codes, clicked, purchased = batch
    ctr_logit, cvr_logit = net(codes)
    clicked = clicked.float()
    ctr = F.binary_cross_entropy_with_logits(ctr_logit, clicked)
    pctcvr = torch.sigmoid(ctr_logit) * torch.sigmoid(cvr_logit)
    return ctr + log_loss_terms(pctcvr, clicked * purchased.float()).mean()


class MMoENet(nn.Module):
    """MMoE: ``n_experts`` expert MLPs and one softmax gate plus tower per task, on shared embeddings.

    ``forward(codes) -> (N, n_tasks)`` logits in the order of ``tasks``; :meth:`gate_weights` returns the
    gates' weights ``(N, n_tasks, n_experts)``.
    """

    def __init__(self, sizes: Sequence[int], tasks: Sequence[str] = ("click", "cart", "purchase"),
                 n_experts: int = 4, dim: int = 8, expert_hidden: Sequence[int] = (64, 32),
                 tower_hidden: Sequence[int] = (16,)) -> None:
        super().__init__()
        if len(tasks) == 0 or n_experts < 1:
            raise ValueError(f"MMoENet: needs at least one task and one expert, got {list(tasks)} and {n_experts}")
        self.tasks = tuple(tasks)
        self.embed = FieldEmbedding(sizes, dim)
        width = len(sizes) * dim
        self.experts = nn.ModuleList(mlp([width, *expert_hidden]) for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(width, n_experts) for _ in self.tasks)
        out = ([width, *expert_hidden])[-1]
        self.towers = nn.ModuleList(_tower(out, tower_hidden) for _ in self.tasks)

    def gate_weights(self, h: torch.Tensor) -> torch.Tensor:
        """Softmax gate weights ``(N, n_tasks, n_experts)`` of embedded rows ``h``."""
        return torch.stack([torch.softmax(gate(h), dim=-1) for gate in self.gates], dim=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        h = self.embed(codes)
        experts = torch.stack([expert(h) for expert in self.experts], dim=1)  # (N, E, d)
        mixed = torch.einsum("nte,ned->ntd", self.gate_weights(h), experts)
        return torch.cat([tower(mixed[:, k]) for k, tower in enumerate(self.towers)], dim=-1)


def multitask_loss(net: MMoENet, batch: tuple) -> torch.Tensor:
    """Sum over tasks of the mean BCE; batch ``(codes, labels (N, n_tasks))``."""
    codes, labels = batch
    logits = net(codes)
    if labels.shape != logits.shape:
        raise ValueError(f"multitask_loss: labels of shape {tuple(labels.shape)}, logits {tuple(logits.shape)}")
    return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(0).sum()
