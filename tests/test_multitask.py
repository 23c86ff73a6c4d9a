"""ESMM's product structure and entire-space gradients, MMoE's gates, the losses against hand computation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys_utils.models.din import fit_rows, predict_rows
from recsys_utils.models.multitask import ESMMNet, MMoENet, esmm_loss, log_loss_terms, multitask_loss

SIZES = [6, 5, 4]


def _codes(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, s, (n,), generator=g) for s in SIZES], dim=1)


def test_esmm_pctcvr_is_the_product_and_the_loss_matches_by_hand():
    torch.manual_seed(0)
    net = ESMMNet(SIZES, dim=4, hidden=(8,))
    codes = _codes()
    p = net.probabilities(codes)
    assert torch.allclose(p["pctcvr"], p["pctr"] * p["pcvr"])
    assert ((p["pctcvr"] <= p["pctr"]) & (p["pctcvr"] <= p["pcvr"])).all()
    clicked = (torch.arange(32) % 3 == 0).float()
    bought = (torch.arange(32) % 2 == 0).float()
    loss = esmm_loss(net, (codes, clicked, bought))
    y = clicked * bought
    by_hand = F.binary_cross_entropy(p["pctr"], clicked) + F.binary_cross_entropy(p["pctcvr"], y)
    assert torch.allclose(loss, by_hand, atol=1e-5)


def test_esmm_gradients_reach_both_towers_from_unclicked_impressions():
    torch.manual_seed(0)
    net = ESMMNet(SIZES, dim=4, hidden=(8,))
    codes = _codes()
    zeros = torch.zeros(32)
    esmm_loss(net, (codes, zeros, torch.ones(32))).backward()  # no click at all: the entire space
    for tower in (net.ctr, net.cvr):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())


def test_log_loss_terms_by_hand():
    p = torch.tensor([0.9, 0.2, 0.0])
    y = torch.tensor([1.0, 0.0, 1.0])
    expected = torch.tensor([-np.log(0.9), -np.log(0.8), -np.log(1e-7)], dtype=torch.float32)
    assert torch.allclose(log_loss_terms(p, y), expected, rtol=1e-5)


def test_mmoe_gates_are_softmaxes_and_mix_the_experts():
    torch.manual_seed(0)
    net = MMoENet(SIZES, tasks=("click", "purchase"), n_experts=3, dim=4, expert_hidden=(8,), tower_hidden=(4,))
    codes = _codes()
    h = net.embed(codes)
    gates = net.gate_weights(h)
    assert gates.shape == (32, 2, 3)
    assert torch.allclose(gates.sum(-1), torch.ones(32, 2))
    experts = torch.stack([e(h) for e in net.experts], 1)
    mixed = (gates[:, 1, :, None] * experts).sum(1)
    assert torch.allclose(net(codes)[:, 1], net.towers[1](mixed).squeeze(-1), atol=1e-6)
    labels = torch.randint(0, 2, (32, 2)).float()
    by_hand = sum(F.binary_cross_entropy_with_logits(net(codes)[:, k], labels[:, k]) for k in range(2))
    assert torch.allclose(multitask_loss(net, (codes, labels)), by_hand, atol=1e-6)


def test_esmm_recovers_a_planted_funnel():
    # field 0 drives clicks, field 1 drives purchase-given-click: ESMM's pCVR tower must find field 1
    rng = np.random.default_rng(0)
    n = 6000
    codes = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    ctr = np.array([0.1, 0.3, 0.5, 0.7, 0.8, 0.9])[codes[:, 0]]
    cvr = np.array([0.05, 0.2, 0.4, 0.6, 0.8])[codes[:, 1]]
    clicked = (rng.random(n) < ctr).astype(np.float32)
    bought = (clicked * (rng.random(n) < cvr)).astype(np.float32)
    net = ESMMNet(SIZES, dim=4, hidden=(8,))
    fit_rows(net, [codes, clicked, bought], esmm_loss, epochs=8, batch_size=256, lr=1e-2, patience=None,
             seed=0, progress=False)
    pcvr = predict_rows(net, [codes], lambda m, x: m.probabilities(x)["pcvr"])
    assert np.abs(pcvr - cvr).mean() < 0.06


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="sizes"):
        ESMMNet([])
    with pytest.raises(ValueError, match="at least one task"):
        MMoENet(SIZES, tasks=())
    net = MMoENet(SIZES, tasks=("click",), n_experts=1)
    with pytest.raises(ValueError, match="codes must have shape"):
        net(_codes()[:, :2])
    with pytest.raises(ValueError, match="labels of shape"):
        multitask_loss(net, (_codes(), torch.zeros(32, 3)))
