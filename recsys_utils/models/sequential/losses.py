"""Training losses of the neural next-item models: full softmax, sampled softmax, gBCE and one-negative BCE.

Every loss reads a ``(B, T)`` batch of ids (0 = padding), encodes the inputs ``batch[:, :-1]`` and
scores the next item ``batch[:, 1:]`` at every real position (``N`` positions in all). With ``h``
a position's vector and ``s_j = h . e_j + b_j`` item ``j``'s logit:

``"ce"`` -- full softmax cross-entropy over the catalogue,
    ``-log softmax(s)_{target}``. The strongest choice when the catalogue fits one matrix product
    (Klenitskiy & Vasilev 2023: SASRec with it reaches NDCG@10 0.1821 on MovieLens-1M).
``"sampled-ce"`` -- sampled softmax: the target against ``n_negatives`` items drawn uniformly
    (shared by the batch's positions; a draw equal to the target is masked out).
``"gbce"`` -- generalised BCE (Petrov & Macdonald 2023, gSASRec): ``n_negatives`` uniform
    negatives, and the positive's probability raised to ``beta``:
    ``-(beta log sigma(s_+) + sum_j log sigma(-s_j)) / (1 + k)`` with ``alpha = k / (n_items - 1)``
    and ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``; ``t = 0`` is plain BCE with ``k`` negatives,
    ``t = 1`` makes sigma(s) calibrated to the full softmax. It corrects the overconfidence that
    negative sampling induces (gSASRec: NDCG@10 0.1726 on MovieLens-1M).
``"bce"`` -- SASRec's original loss (Kang & McAuley 2018): one uniformly drawn negative per
    position, ``-log sigma(s_+) - log sigma(-s_-)``.

The sampled losses share their negatives across a batch's positions (one ``(N, dim) x (dim, k)``
product instead of a ``(N, k, dim)`` gather); the papers draw them per position. That keeps the
expectation but not the training behaviour: on the marketplace, gBCE with one negative shared by
the batch learns almost nothing where ``"bce"`` (one negative per position) learns well, and with
128-512 negatives gBCE stays near popularity whether they are shared, per sequence or per position
(validation runs of issue 17); ``"ce"`` is the loss to use here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("ce", "sampled-ce", "gbce", "bce")


def _positions(module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden vectors ``(N, dim)`` of the real positions and their 0-based target items ``(N,)``."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = module.encode(inputs)
    mask = (targets > 0) & (inputs > 0)
    return hidden[mask], targets[mask] - 1


def _item_logits(module, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Row-wise logits ``hidden[n] . e_{items[n]} + b_{items[n]}`` for ``hidden (N, dim)``, ``items (N,)``."""
    return (hidden * module.item_embedding.weight[items + 1]).sum(-1) + module.output_bias[items]


def full_softmax_loss(module, batch: torch.Tensor) -> torch.Tensor:
    """Full softmax cross-entropy of the next item at every real position."""
    hidden, targets = _positions(module, batch)
    return F.cross_entropy(module.logits(hidden), targets)


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's exponent ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = k / (n_items - 1)``."""
    alpha = n_negatives / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def make_loss(loss: str = "ce", n_negatives: int = 256, gbce_t: float = 0.75) -> Callable:
    """The loss function ``(module, batch) -> scalar`` named ``loss`` (see the module docstring)."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown {loss!r}; choose one of {', '.join(LOSSES)}")
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1, got {n_negatives}")
    if not 0.0 <= gbce_t <= 1.0:
        raise ValueError(f"gbce_t must lie in [0, 1], got {gbce_t}")
    if loss == "ce":
        return full_softmax_loss

    def sampled(module, batch: torch.Tensor) -> torch.Tensor:
        hidden, targets = _positions(module, batch)
        n_items = module.n_items
        device = hidden.device
        positive = _item_logits(module, hidden, targets)  # (N,)
        if loss == "bce":  # one negative per position, never the target itself
            draw = torch.randint(0, n_items - 1, targets.shape, device=device)
            negative = _item_logits(module, hidden, draw + (draw >= targets).long())
            return (F.softplus(-positive) + F.softplus(negative)).mean()
        k = min(n_negatives, n_items - 1)
        draw = torch.randint(0, n_items, (k,), device=device)
        negative = hidden @ module.item_embedding.weight[draw + 1].T + module.output_bias[draw]  # (N, k)
        same = draw.unsqueeze(0) == targets.unsqueeze(1)
        if loss == "sampled-ce":
            logits = torch.cat([positive.unsqueeze(1), negative.masked_fill(same, float("-inf"))], dim=1)
            return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=device))
        beta = gbce_beta(k, n_items, gbce_t)
        negative_term = (F.softplus(negative) * (~same)).sum(dim=1)
        return ((beta * F.softplus(-positive) + negative_term) / (1 + k)).mean()

    sampled.__name__ = f"{loss.replace('-', '_')}_loss"
    return sampled


__all__ = ["LOSSES", "full_softmax_loss", "gbce_beta", "make_loss"]
