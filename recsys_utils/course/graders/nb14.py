"""Graders of notebook 14 (optimisation and tuning): clipping by global norm, one Adam update, the
penalised BPR gradient, the L1 proximal step, the weighted score blend and Xavier/He initialisation.

Each grader builds its own tiny fixture and compares the learner's function with torch
(``clip_grad_norm_``, ``optim.Adam``, autograd, ``softshrink``, ``nn.init``) or with the package
(``TunableBPR._loss``, ``BlendRecommender``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsys_utils.course.graders.answers import as_array
from recsys_utils.course.graders.registry import grader
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models import EASE, ItemKNN, PopularityRecommender
from recsys_utils.models.bpr_torch import MFNet
from recsys_utils.tuning.optimisation import TunableBPR
from recsys_utils.tuning.search import BlendRecommender


@grader("14.1")
def clip_by_norm(learner) -> str:
    """``learner(grads, max_norm)`` equals ``torch.nn.utils.clip_grad_norm_`` on the same gradients."""
    rng = np.random.default_rng(0)
    for scale, max_norm in ((1.0, 1.0), (5.0, 0.5), (0.01, 10.0)):
        grads = [rng.normal(size=(4, 3)) * scale, rng.normal(size=5) * scale]
        got = learner([g.copy() for g in grads], max_norm)
        assert got is not None and len(got) == len(grads), "return one array per gradient, in the same order"
        params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        for p, g in zip(params, got, strict=True):
            np.testing.assert_allclose(as_array(g, "clip_by_norm"), p.grad.numpy(), rtol=1e-5, atol=1e-8, err_msg=(
                f"max_norm={max_norm}: differs from torch.nn.utils.clip_grad_norm_ (one factor "
                "min(1, max_norm / joint norm) for ALL arrays, the joint norm over every entry)"))
    return "3 cases (clipped and not clipped) equal torch.nn.utils.clip_grad_norm_"


@grader("14.2")
def adam_step(learner) -> str:
    """Five ``learner`` updates equal ``torch.optim.Adam`` fed the same gradients."""
    rng = np.random.default_rng(1)
    lr, betas, eps = 0.05, (0.9, 0.999), 1e-8
    theta = rng.normal(size=(3, 4))
    param = torch.nn.Parameter(torch.tensor(theta.copy()))
    optimiser = torch.optim.Adam([param], lr=lr, betas=betas, eps=eps)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, 6):
        grad = rng.normal(size=theta.shape) * (10.0 if t % 2 else 0.1)
        param.grad = torch.tensor(grad)
        optimiser.step()
        out = learner(theta.copy(), grad.copy(), m.copy(), v.copy(), t, lr=lr, betas=betas, eps=eps)
        assert out is not None and len(out) == 3, "return (theta, m, v)"
        theta, m, v = (as_array(x, "adam_step") for x in out)
        np.testing.assert_allclose(theta, param.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=(
            f"step t={t}: theta differs from torch.optim.Adam (did you bias-correct m and v by 1 - beta**t?)"))
    return "5 steps equal torch.optim.Adam with the same gradients"


def _package_grads(p, q_pos, q_neg, b_pos, b_neg, l2, l1) -> list[np.ndarray]:
    """Autograd of TunableBPR's own loss on a batch whose users and items are all distinct."""
    n, dim = p.shape
    net = MFNet(n, 2 * n, dim).double()
    with torch.no_grad():
        net.user.weight.copy_(torch.tensor(p))
        net.item.weight.copy_(torch.tensor(np.vstack([q_pos, q_neg])))
        net.item_bias.weight.copy_(torch.tensor(np.concatenate([b_pos, b_neg])[:, None]))
    users, pos, neg = torch.arange(n), torch.arange(n), torch.arange(n, 2 * n)
    TunableBPR(l2=l2, l1=l1)._loss(net, (users, pos, neg)).backward()
    item = net.item.weight.grad.numpy()
    return [net.user.weight.grad.numpy(), item[:n], item[n:]]


@grader("14.3")
def bpr_gradients(learner) -> str:
    """``learner(p, q_pos, q_neg, b_pos, b_neg, l2, l1)`` equals autograd of ``TunableBPR._loss``."""
    rng = np.random.default_rng(2)
    n, dim = 6, 4
    for l2, l1 in ((0.0, 0.0), (0.1, 0.0), (0.0, 0.05), (0.1, 0.05)):
        p, q_pos, q_neg = (rng.normal(size=(n, dim)) for _ in range(3))
        b_pos, b_neg = rng.normal(size=n), rng.normal(size=n)
        got = learner(p.copy(), q_pos.copy(), q_neg.copy(), b_pos.copy(), b_neg.copy(), l2, l1)
        assert got is not None and len(got) == 3, "return (grad_p, grad_q_pos, grad_q_neg)"
        for name, g, expected in zip(("p", "q_pos", "q_neg"), got, _package_grads(p, q_pos, q_neg, b_pos, b_neg,
                                                                               l2, l1), strict=True):
            np.testing.assert_allclose(as_array(g, "bpr_gradients"), expected, rtol=1e-5, atol=1e-8, err_msg=(
                f"l2={l2}, l1={l1}: the gradient for {name} differs from autograd of TunableBPR's loss "
                "(mean over the batch: divide by B; d/dx of -log sigma(x) is -sigma(-x); L2 gives 2*l2*x/B, "
                "L1 gives l1*sign(x)/B)"))
    return "gradients equal autograd of TunableBPR's loss with and without the L2 and L1 penalties"


@grader("14.4")
def soft_threshold(learner) -> str:
    """``learner(theta, step, l1)``: a hand-computed case, then ``torch.nn.functional.softshrink``."""
    got = as_array(learner(np.array([0.5, -0.5, 0.05, -0.02, 0.0]), 0.1, 1.0), "soft_threshold")
    np.testing.assert_allclose(got, [0.4, -0.4, 0.0, 0.0, 0.0], atol=1e-12, err_msg=(
        "theta=[0.5, -0.5, 0.05, -0.02, 0], step*l1=0.1 must give [0.4, -0.4, 0, 0, 0]: shrink |theta| by "
        "step*l1 towards zero, keep the sign, and set what crosses zero to exactly 0"))
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(5, 7))
    for step, l1 in ((0.5, 0.3), (0.01, 2.0)):
        expected = F.softshrink(torch.tensor(theta), step * l1).numpy()
        np.testing.assert_allclose(as_array(learner(theta.copy(), step, l1), "soft_threshold"), expected,
                                   atol=1e-12, err_msg=f"step={step}, l1={l1}: differs from torch's softshrink")
    return "a hand-computed case and torch.nn.functional.softshrink agree"


@grader("14.5")
def blend_scores(learner) -> str:
    """``learner([scores...], weights)`` equals ``BlendRecommender(..., normalise='zscore').score``."""
    rng = np.random.default_rng(4)
    x = (rng.random((30, 15)) < 0.3).astype(np.float64)
    train = Interactions(sp.csr_matrix(x), IdIndex(np.arange(30), "user_id"), IdIndex(np.arange(15), "item_id"))
    members = {"popularity": PopularityRecommender(), "ease": EASE(l2=5.0), "knn": ItemKNN()}
    for model in members.values():
        model.fit(train)
    users = np.arange(30)
    scores = [np.asarray(model.score(users), dtype=np.float64) for model in members.values()]
    for weights in ([0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [0.2, 1.0, -0.3]):
        expected = BlendRecommender(members, weights, prefitted=True).fit(train).score(users)
        got = as_array(learner([s.copy() for s in scores], np.asarray(weights)), "blend_scores")
        assert got.shape == expected.shape, f"return a users x items matrix {expected.shape}, got {got.shape}"
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=(
            f"weights={weights}: differs from BlendRecommender (z-score each member's scores per user row: "
            "(s - row mean) / row std, 0 where the row is constant, then the weighted sum)"))
    return "3 weight vectors equal recsys_utils.tuning.search.BlendRecommender on popularity, EASE and item-kNN"


@grader("14.6")
def init_weights(learner) -> str:
    """``learner(fan_out, fan_in, scheme, rng)`` has the statistics of torch's xavier_uniform_ / kaiming_normal_."""
    torch.manual_seed(0)
    for fan_out, fan_in in ((300, 400), (200, 50)):
        reference = {"xavier_uniform": torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in, dtype=torch.float64)),
                     "he_normal": torch.nn.init.kaiming_normal_(torch.empty(fan_out, fan_in, dtype=torch.float64),
                                                                nonlinearity="relu")}
        for scheme, expected in reference.items():
            got = as_array(learner(fan_out, fan_in, scheme, np.random.default_rng(5)), "init_weights")
            assert got.shape == (fan_out, fan_in), f"{scheme}: return a (fan_out, fan_in) array, got {got.shape}"
            target = float(expected.std())
            assert abs(got.std() / target - 1) < 0.03 and abs(got.mean()) < 0.05 * target, (
                f"{scheme} with fan_in={fan_in}, fan_out={fan_out}: std {got.std():.4f}, mean {got.mean():.4f}; "
                f"torch's init gives std {target:.4f} and mean 0 (Xavier: U(-a, a) with a = sqrt(6 / (fan_in + "
                "fan_out)); He: N(0, 2 / fan_in))")
            if scheme == "xavier_uniform":
                bound = float(expected.abs().max())
                assert got.min() >= -1.001 * bound and got.max() <= 1.001 * bound, "Xavier uniform exceeds its bound"
    return "Xavier-uniform and He-normal statistics equal torch.nn.init's on two layer shapes"
