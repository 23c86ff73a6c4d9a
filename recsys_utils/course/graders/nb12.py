"""Graders of notebook 12 (GAN-generated data): the WGAN-GP gradient penalty, the straight-through
Bernoulli draw of a generated user, popularity JS divergence and memorisation (nearest-neighbour
Jaccard, exact copies) by hand."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.course.graders.registry import grader
from recsys_utils.evaluation import synthetic as sy
from recsys_utils.models.generative.gan import CriticNet, GeneratorNet


def _reference_penalty(critic: CriticNet, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The penalty exactly as :class:`~recsys_utils.models.generative.gan.WGANStep` computes it (autograd)."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
    return ((grad.norm(dim=1) - 1.0) ** 2).mean()


@grader("12.1")
def gradient_penalty(learner) -> str:
    """``learner(critic, real, fake, alpha)`` equals WGAN-GP's penalty and its gradient on the critic's weights."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    critic = CriticNet(rng.normal(size=(12, 3)), hidden=8, raw_dim=4)
    real = (torch.rand(6, 12) < 0.4).float()
    fake = (torch.rand(6, 12) < 0.4).float()
    alpha = torch.rand(6, 1)
    expected = _reference_penalty(critic, real, fake, alpha)
    expected_grads = [torch.zeros_like(w) if g is None else g for w, g in zip(
        critic.parameters(), torch.autograd.grad(expected, list(critic.parameters()), allow_unused=True), strict=True)]
    got = learner(critic, real.clone(), fake.clone(), alpha.clone())
    assert got is not None, "gradient_penalty returned None"
    assert torch.is_tensor(got) and got.dim() == 0, "return a scalar tensor (the mean over the batch)"
    assert torch.allclose(got.detach(), expected.detach(), atol=1e-5), (
        f"penalty {float(got.detach()):.6f}, expected {float(expected.detach()):.6f}: take the gradient of the "
        "critic at x_hat = alpha * real + (1 - alpha) * fake, its L2 norm PER ROW, then mean((norm - 1)^2)")
    assert got.requires_grad, ("the penalty has no gradient with respect to the critic's weights: "
                               "call torch.autograd.grad(..., create_graph=True)")
    grads = torch.autograd.grad(got, list(critic.parameters()), allow_unused=True)
    for (name, _), g, e in zip(critic.named_parameters(), grads, expected_grads, strict=True):
        g = torch.zeros_like(e) if g is None else g
        assert torch.allclose(g, e, atol=1e-5), (
            f"the penalty's gradient on critic.{name} differs from autograd's: use create_graph=True so the "
            "penalty can train the critic")
    return "the penalty and its gradient on a CriticNet equal WGAN-GP's (torch autograd, to 1e-5)"


@grader("12.2")
def straight_through_user(learner) -> str:
    """``learner(logits, activity)``: forward = a Bernoulli draw from the package generator's
    probabilities (same seed), backward = the gradient of those probabilities."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    net = GeneratorNet(noise_dim=3, hidden=8, item_factors=rng.normal(size=(15, 4)),
                       log_popularity=rng.normal(size=15))
    noise, activity = torch.randn(64, 3), torch.tensor(rng.integers(1, 9, 64), dtype=torch.float32)
    with torch.no_grad():
        h = net.body(torch.cat([noise, torch.log(activity)[:, None] / 3.0], dim=1))
        logits = net.bias + h @ net.items.T
        p = net.probabilities(noise, activity)
    torch.manual_seed(7)
    expected_draw = torch.bernoulli(p)
    weights = torch.randn(64, 15)
    leaf = logits.clone().requires_grad_(True)
    torch.manual_seed(7)
    got = learner(leaf, activity.clone())
    assert got is not None, "the function returned None"
    assert tuple(got.shape) == tuple(p.shape), f"one row per user, one column per item {tuple(p.shape)}"
    values = got.detach()
    binary = values.round()
    assert bool(((binary - values).abs() < 1e-5).all() and ((binary == 0) | (binary == 1)).all()), (
        "the forward values must be a binary draw (0 or 1)")
    assert torch.equal(binary, expected_draw), (
        "the draw differs from torch.bernoulli(p) with the same seed, where p = 1 - exp(-n * softmax(logits)) "
        "(GeneratorNet.probabilities): compute p, then draw once with torch.bernoulli(p.detach())")
    assert got.requires_grad, "no gradient reaches the logits: return hard + p - p.detach() (straight-through)"
    (grad,) = torch.autograd.grad((got * weights).sum(), leaf)
    ref_leaf = logits.clone().requires_grad_(True)
    ref_p = -torch.expm1(-activity[:, None] * torch.softmax(ref_leaf, dim=1))
    (ref_grad,) = torch.autograd.grad((ref_p * weights).sum(), ref_leaf)
    assert torch.allclose(grad, ref_grad, atol=1e-5), (
        "the backward pass must be the gradient of p (straight-through: hard + p - p.detach())")
    return "forward equals a Bernoulli draw from GeneratorNet.probabilities, backward equals d p (autograd)"


@grader("12.3")
def popularity_js(learner) -> str:
    """``learner(reference, sample)`` equals :func:`recsys_utils.evaluation.synthetic.popularity_js`."""
    rng = np.random.default_rng(3)
    for density, items in ((0.2, 20), (0.05, 50)):
        reference = sp.csr_matrix((rng.random((40, items)) < density).astype(np.float64))
        weights = rng.random(items) ** 3
        sample = sp.csr_matrix((rng.random((30, items)) < density * weights / weights.mean()).astype(np.float64))
        expected = sy.popularity_js(reference, sample)
        got = learner(reference.copy(), sample.copy())
        assert got is not None, "popularity_js returned None"
        assert abs(float(got) - expected) < 1e-9, (
            f"expected {expected:.6f}, got {float(got):.6f}: normalise each matrix's item counts to a distribution, "
            "M = (P + Q) / 2, JS = KL(P||M) / 2 + KL(Q||M) / 2 with log base 2, skipping zero terms")
    return "JS divergence equals recsys_utils.evaluation.synthetic.popularity_js on two random pairs"


def _memorisation_fixture(rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Training users and a sample with exact copies of long and of short (< 3 items) training rows."""
    train = (rng.random((30, 25)) < 0.25).astype(np.float64)
    train[0] = 0
    train[0, [3, 7]] = 1  # a two-item user: copying it is not memorisation
    sample = (rng.random((20, 25)) < 0.25).astype(np.float64)
    sample[[2, 5, 9]] = train[[4, 8, 4]]  # three copies of long rows
    sample[11] = train[0]  # a copy of the two-item row: does not count
    sample[13] = 0  # an empty row: Jaccard 0
    return sp.csr_matrix(train), sp.csr_matrix(sample)


@grader("12.4")
def memorisation(learner) -> str:
    """``learner(training, sample, min_items)`` returns (nearest-neighbour Jaccard per sample row, exact copies)."""
    train, sample = _memorisation_fixture(np.random.default_rng(4))
    expected_nn = sy.nearest_neighbour_jaccard(train, sample)
    expected_copies = sy.exact_copies(train, sample, min_items=3)
    got = learner(train.copy(), sample.copy(), 3)
    assert got is not None and len(got) == 2, "return the pair (jaccard per sample row, number of exact copies)"
    nn_jaccard, copies = np.asarray(got[0], dtype=np.float64).ravel(), int(got[1])
    assert nn_jaccard.shape == expected_nn.shape, (
        f"one Jaccard per sample row {expected_nn.shape}, got {nn_jaccard.shape}")
    np.testing.assert_allclose(nn_jaccard, expected_nn, atol=1e-9, err_msg=(
        "nearest-neighbour Jaccard differs from evaluation.synthetic: for each sample row, the LARGEST "
        "|a & b| / |a | b| over the training rows (0 when both rows are empty)"))
    assert copies == expected_copies, (
        f"{copies} exact copies, expected {expected_copies}: count sample rows identical to a training row, "
        "ignoring rows with fewer than min_items items")
    return "Jaccard and exact copies equal evaluation.synthetic's nearest_neighbour_jaccard and exact_copies"
