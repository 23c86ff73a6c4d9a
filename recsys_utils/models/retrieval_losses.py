"""Losses of retrieval models: in-batch sampled softmax with log-Q correction and mixed negatives.

A retrieval model scores a user against the whole catalogue, so its natural loss is the softmax
over all items (retrieval as extreme classification). The in-batch approximation uses the other
positives of the mini-batch as the negatives of each row: ``logits = U Vᵀ / τ`` (``B x B``) and
the target of row ``i`` is column ``i``. Items enter a batch in proportion to their frequency
``q_j``, so popular items are over-sampled as negatives and get pushed down; subtracting
``log q_j`` from column ``j``'s logit corrects the sampled softmax towards the full one (Yi et al.
2019, "Sampling-bias-corrected neural modeling for large corpus item recommendations", RecSys).
Mixed negative sampling adds ``M`` items drawn uniformly from the catalogue as extra columns, so
the long tail also appears as negatives (Yang et al. 2020, "Mixed negative sampling for learning
two-tower neural networks in recommendations", WWW companion); every column is then corrected by
the log of its expected count in the candidate set, ``log(B q_j + M / N)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def item_log_q(item_counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """``log q_j``: log of each item's share of the training positives (add-``smoothing`` counts).

    The probability that a positive drawn from the training stream is item ``j``; the streaming
    estimate of Yi et al. (2019) converges to it when every epoch visits every positive once.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f"item_log_q: item_counts must be a non-empty 1-d array, got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("item_log_q: item_counts must be finite and >= 0")
    if smoothing < 0:
        raise ValueError(f"item_log_q: smoothing must be >= 0, got {smoothing}")
    counts = counts + smoothing
    if counts.sum() <= 0:
        raise ValueError("item_log_q: all item counts are zero; give smoothing > 0")
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def mixed_log_q(log_q: torch.Tensor, batch_size: int, n_uniform: int, n_items: int) -> torch.Tensor:
    """Log expected count of each candidate column: ``log(B q_j + M / N)`` (``M = n_uniform``)."""
    return torch.log(batch_size * torch.exp(log_q) + n_uniform / n_items)


def in_batch_softmax_loss(user_vecs: torch.Tensor, item_vecs: torch.Tensor, log_q: torch.Tensor | None = None,
                          temperature: float = 1.0, item_ids: torch.Tensor | None = None,
                          extra_vecs: torch.Tensor | None = None, extra_log_q: torch.Tensor | None = None,
                          extra_ids: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                          ) -> torch.Tensor:
    """Mean cross-entropy of the in-batch softmax: row ``i``'s positive is column ``i``.

    ``logits[i, j] = u_i · v_j / temperature - log_q[j]`` over the batch's ``B`` items, followed by
    the ``M`` columns of ``extra_vecs`` (uniform negatives, corrected by ``extra_log_q``).
    ``log_q`` is per column (``None``: no correction). With ``item_ids`` (and ``extra_ids``),
    columns holding row ``i``'s own positive item other than the diagonal are masked out (an
    accidental hit is not a negative). ``weights`` (``B``) weight the rows.
    """
    if user_vecs.dim() != 2 or item_vecs.shape != user_vecs.shape:
        raise ValueError(f"in_batch_softmax_loss: user_vecs {tuple(user_vecs.shape)} and item_vecs "
                         f"{tuple(item_vecs.shape)} must both be (B, d)")
    if temperature <= 0:
        raise ValueError(f"in_batch_softmax_loss: temperature must be > 0, got {temperature}")
    columns, corrections, ids = [item_vecs], [log_q], [item_ids]
    if extra_vecs is not None:
        columns.append(extra_vecs)
        corrections.append(extra_log_q)
        ids.append(extra_ids)
    logits = (user_vecs / temperature) @ torch.cat(columns).T  # scale the (B, d) side, not the (B, B + M) one
    if log_q is not None:
        if extra_vecs is not None and extra_log_q is None:
            raise ValueError("in_batch_softmax_loss: give extra_log_q with extra_vecs when log_q is given")
        logits = logits - torch.cat(corrections)[None, :]
    rows = torch.arange(len(user_vecs), device=user_vecs.device)
    if item_ids is not None:
        all_ids = torch.cat(ids) if extra_vecs is None or extra_ids is not None else None
        if all_ids is not None:
            hit = item_ids[:, None] == all_ids[None, :]
            hit[rows, rows] = False
            logits = logits.masked_fill(hit, float("-inf"))
    losses = F.cross_entropy(logits, rows, reduction="none")
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum().clamp_min(1e-12)
