"""Graders of notebook 08 (deep ranking): DIN's masked attention pooling, ESMM's entire-space loss,
an MMoE gate and AUC by the rank-sum formula."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from recsys_utils.course.graders.answers import close_to
from recsys_utils.course.graders.registry import grader
from recsys_utils.models.din import AttentionPooling
from recsys_utils.models.multitask import ESMMNet, MMoENet, esmm_loss


@grader("08.1")
def attention_pooling(learner) -> str:
    """``learner(keys, query, mask, unit)`` equals the package's ``AttentionPooling`` with the same unit."""
    torch.manual_seed(0)
    pool = AttentionPooling(4, (6,))
    keys, query = torch.randn(5, 7, 4), torch.randn(5, 4)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 3, 1, 0, 5])[:, None]
    expected_pooled, expected_weights = pool(keys, query, mask)
    got = learner(keys, query, mask, pool.unit)
    assert isinstance(got, tuple) and len(got) == 2, "return (pooled, weights)"
    close_to(got[1], expected_weights, "weights",
           "the unit reads [k; q; k - q; k * q] per position; padded positions must get weight exactly 0")
    close_to(got[0], expected_pooled, "pooled", "the weighted sum over the positions, Σ_l a_l · k_l")
    noisy = keys.clone()
    noisy[~mask] = 100.0
    close_to(learner(noisy, query, mask, pool.unit)[0], expected_pooled, "pooled with other values in the padding",
           "what the padding stores must not matter")
    return "weights and pooled interest equal AttentionPooling's; padding is ignored"


@grader("08.2")
def esmm_entire_space_loss(learner) -> str:
    """``learner(ctr_logit, cvr_logit, clicked, purchased)`` equals ``esmm_loss`` in value and gradient."""
    torch.manual_seed(1)
    net = ESMMNet([5, 4, 3], dim=3, hidden=(6,))
    g = torch.Generator().manual_seed(2)
    codes = torch.stack([torch.randint(0, s, (40,), generator=g) for s in (5, 4, 3)], dim=1)
    clicked = (torch.rand(40, generator=g) < 0.4).float()
    purchased = clicked * (torch.rand(40, generator=g) < 0.5).float()
    expected = esmm_loss(net, (codes, clicked, purchased))
    grads = torch.autograd.grad(expected, list(net.cvr.parameters()))
    ctr_logit, cvr_logit = net(codes)
    got = learner(ctr_logit, cvr_logit, clicked, purchased)
    close_to(got, expected, "the ESMM loss",
           "BCE(click, pCTR) + BCE(click·purchase, pCTR·pCVR), both averaged over ALL impressions")
    mine = torch.autograd.grad(got, list(net.cvr.parameters()))
    for a, b in zip(mine, grads, strict=True):
        close_to(a, b, "the gradient reaching the CVR tower", "the loss must be built from the logits with torch ops")
    return "value and CVR-tower gradient equal esmm_loss on 40 impressions"


@grader("08.3")
def mmoe_gate(learner) -> str:
    """``learner(h, experts, gate)`` mixes the experts as the package's ``MMoENet`` does for one task."""
    torch.manual_seed(3)
    net = MMoENet([5, 4, 3], tasks=("click", "purchase"), n_experts=3, dim=3, expert_hidden=(6,), tower_hidden=(4,))
    g = torch.Generator().manual_seed(4)
    codes = torch.stack([torch.randint(0, s, (20,), generator=g) for s in (5, 4, 3)], dim=1)
    h = net.embed(codes)
    logits = net(codes)
    for task in range(2):
        mixed = learner(h, list(net.experts), net.gates[task])
        assert mixed is not None, "mmoe_mix returned None"
        close_to(net.towers[task](mixed).squeeze(-1), logits[:, task], f"task {task}'s logits from your mixture",
               "the gate's weights are a softmax over the experts, Σ_e g_e(h) · expert_e(h)")
    return "the mixtures give MMoENet's logits for both tasks"


@grader("08.4")
def auc_rank_sum(learner) -> str:
    """``learner(labels, scores)`` equals ``sklearn.metrics.roc_auc_score`` (ties included)."""
    rng = np.random.default_rng(5)
    for n, levels in ((50, None), (200, 4)):
        labels = (rng.random(n) < 0.3).astype(int)
        scores = rng.random(n) if levels is None else rng.integers(0, levels, n).astype(float)
        got = learner(labels.copy(), scores.copy())
        assert got is not None, "auc returned None"
        expected = roc_auc_score(labels, scores)
        assert abs(float(got) - expected) < 1e-9, (
            f"AUC {float(got):.6f}, expected {expected:.6f}"
            + (" (with tied scores: give tied rows their AVERAGE rank)" if levels else ""))
    return "equals roc_auc_score on continuous and on tied scores"
