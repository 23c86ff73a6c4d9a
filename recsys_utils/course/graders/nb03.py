"""Graders of notebook 03 (collaborative filtering): item-kNN's shrunk cosine, the MF network and
its loss, an ALS half-step and a BPR update, each compared with the package on the same inputs."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.course.graders.answers import as_array
from recsys_utils.course.graders.registry import grader
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.als import exact_solve
from recsys_utils.models.bpr import BPR
from recsys_utils.models.mf import BiasedMFNet, ExplicitMF
from recsys_utils.models.neighbors import ItemKNN


@grader("03.1")
def shrunk_cosine(learner) -> str:
    """``learner(X, h)`` equals ItemKNN's item-item similarity (all neighbours kept) to 1e-5."""
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 9
    x = (rng.random((n_users, n_items)) < 0.3).astype(np.float64)
    x[:, -1] = 0.0  # an item nobody has: its similarities must be 0, not NaN
    train = Interactions(sp.csr_matrix(x), IdIndex(np.arange(n_users), "user_id"),
                         IdIndex(np.arange(n_items), "item_id"))
    for h in (0.0, 5.0):
        expected = ItemKNN(k=n_items, shrink=h).fit(train).similarity_.toarray().astype(np.float64)
        got = as_array(learner(x.copy(), h), "shrunk_cosine", (n_items, n_items))
        assert np.isfinite(got).all(), "similarities must be finite (an item without users has similarity 0)"
        assert np.allclose(np.diag(got), 0.0, atol=1e-8), "the diagonal must be 0: an item is not its own neighbour"
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=(
            f"similarities differ from ItemKNN(shrink={h}): s_ij = x_i.x_j / (|x_i| |x_j| + h), "
            "with x_i the column of item i"))
    return "S equals recsys_utils.models.neighbors.ItemKNN's similarity for h = 0 and h = 5"


def _mf_fixture() -> tuple[BiasedMFNet, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    net = BiasedMFNet(7, 9, 4, init_std=0.5)
    with torch.no_grad():  # non-zero biases, so a forward that forgets them is caught
        net.user_bias.weight.normal_(0.0, 0.5)
        net.item_bias.weight.normal_(0.0, 0.5)
    users = torch.tensor([0, 1, 1, 3, 6, 6, 2, 5])
    items = torch.tensor([0, 8, 2, 2, 4, 7, 1, 3])
    ratings = torch.tensor([4.0, 2.0, 5.0, 3.0, 1.0, 4.0, 5.0, 2.0])
    return net, users, items, ratings


@grader("03.2")
def mf_network(learner_class, learner_loss) -> str:
    """``learner_class(n_users, n_items, dim)``'s forward and ``learner_loss`` equal the package's
    BiasedMFNet and ExplicitMF's loss with the same weights; the loss's gradients equal autograd's."""
    reference, users, items, ratings = _mf_fixture()
    net = learner_class(7, 9, 4)
    try:
        net.load_state_dict(reference.state_dict())
    except RuntimeError as error:
        raise AssertionError("the module needs embedding tables user (n_users x dim), item (n_items x dim), "
                             f"user_bias (n_users x 1) and item_bias (n_items x 1): {error}") from None
    got = net(users, items)
    assert isinstance(got, torch.Tensor), "forward must return a torch tensor (keep it differentiable)"
    expected = reference(users, items)
    assert got.shape == expected.shape, f"forward must return one number per pair, shape {tuple(expected.shape)}"
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=lambda m: (
        f"predictions differ from b_u + b_i + p_u . q_i (the package's BiasedMFNet): {m}"))
    mu, checked = 3.5, 0
    for l2 in (0.0, 0.1):
        package = ExplicitMF(dim=4, l2=l2)
        package.global_mean_ = mu
        reference.zero_grad()
        net.zero_grad()
        expected_loss = package._loss(reference, (users, items, ratings))
        loss = learner_loss(net, users, items, ratings, mu, l2)
        assert isinstance(loss, torch.Tensor) and loss.requires_grad, (
            "mf_loss must return a torch scalar that autograd can differentiate (no .item(), no numpy)")
        got_value, expected_value = float(loss.detach()), float(expected_loss.detach())
        assert abs(got_value - expected_value) < 1e-5, (
            f"l2={l2}: loss {got_value:.6f}, expected {expected_value:.6f} (the mean of (mu + prediction "
            "- rating)^2 over the batch, plus l2 x the batch mean of |p_u|^2 + |q_i|^2 + b_u^2 + b_i^2)")
        expected_loss.backward()
        loss.backward()
        for name, parameter in reference.named_parameters():
            torch.testing.assert_close(dict(net.named_parameters())[name].grad, parameter.grad, rtol=1e-5, atol=1e-6)
        checked += 1
    return f"forward equals BiasedMFNet with the same weights; loss and gradients equal ExplicitMF's for {checked} l2"


@grader("03.3")
def als_half_step(learner) -> str:
    """``learner(X, Q, alpha, l2)`` equals the package's exact ALS solve (fold-in) to 1e-5."""
    rng = np.random.default_rng(3)
    n_users, n_items, dim = 12, 15, 4
    x = np.where(rng.random((n_users, n_items)) < 0.25, rng.integers(1, 4, (n_users, n_items)), 0).astype(float)
    x[0] = 0.0  # a user with no interaction: the solution is the zero vector
    q = rng.normal(0.0, 0.5, (n_items, dim))
    for alpha, l2 in ((1.0, 0.1), (10.0, 2.0)):
        expected = exact_solve(sp.csr_matrix(x), q, alpha, l2)
        got = as_array(learner(x.copy(), q.copy(), alpha, l2), "als_user_step", (n_users, dim))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=(
            f"alpha={alpha}, l2={l2}: user vectors differ from recsys_utils.models.als.exact_solve; solve "
            "(Q^T C_u Q + l2 I) p_u = Q^T C_u z_u with c_ui = 1 + alpha x_ui and z_ui = [x_ui > 0] "
            "(C_u weights every item, unobserved ones with 1)"))
    return "user vectors equal recsys_utils.models.als.exact_solve for two (alpha, l2) settings"


@grader("03.4")
def bpr_update(learner) -> str:
    """``learner(P, Q, b, users, pos, neg, lr, l2)`` equals the package's BPR step on the same batch."""
    rng = np.random.default_rng(3)
    n_users, n_items, dim = 5, 8, 3
    p, q, b = rng.normal(0, 0.5, (n_users, dim)), rng.normal(0, 0.5, (n_items, dim)), rng.normal(0, 0.5, n_items)
    users = np.array([0, 1, 1, 4, 2, 1])  # repeated users and items: their updates add up
    pos = np.array([2, 3, 5, 2, 0, 3])
    neg = np.array([7, 0, 2, 6, 2, 1])
    lr, l2 = 0.1, 0.05
    expected = [torch.from_numpy(a.copy()) for a in (p, q, b)]
    BPR._step(*expected, *(torch.from_numpy(a) for a in (users, pos, neg)), lr, l2)
    got = learner(p.copy(), q.copy(), b.copy(), users.copy(), pos.copy(), neg.copy(), lr, l2)
    assert got is not None and len(got) == 3, "bpr_update must return (P, Q, b)"
    for name, value, reference, start in zip("PQb", got, expected, (p, q, b), strict=True):
        value = as_array(value, f"bpr_update's {name}", start.shape)
        np.testing.assert_allclose(value, reference.numpy(), rtol=1e-5, atol=1e-5, err_msg=(
            f"{name} after the step differs from the package's BPR update: g = sigmoid(-(r_ui - r_uj)) is the "
            "gradient's weight; ascend (add lr x gradient); read every old value before writing; repeated "
            "rows must add up (np.add.at, not P[users] += ...)"))
    _bpr_matches_autograd(learner, p, q, b, lr, l2)
    return ("P, Q and b after one step equal recsys_utils.models.bpr.BPR's update on a batch with repeated rows, "
            "and lr x the autograd gradient of the BPR objective on a batch without")


def _bpr_matches_autograd(learner, p: np.ndarray, q: np.ndarray, b: np.ndarray, lr: float, l2: float) -> None:
    """On distinct rows the step is lr x the gradient of sum ln sigma(r_uij) - l2/2 (squared rows)."""
    users, pos, neg = np.array([0, 1, 2]), np.array([1, 3, 5]), np.array([0, 2, 4])
    tensors = [torch.tensor(a, requires_grad=True) for a in (p, q, b)]
    pt, qt, bt = tensors
    pu, qi, qj = pt[users], qt[pos], qt[neg]
    x = (pu * (qi - qj)).sum(-1) + bt[pos] - bt[neg]
    penalty = (pu ** 2).sum() + (qi ** 2).sum() + (qj ** 2).sum() + (bt[pos] ** 2).sum() + (bt[neg] ** 2).sum()
    (torch.nn.functional.logsigmoid(x).sum() - l2 / 2 * penalty).backward()
    got = learner(p.copy(), q.copy(), b.copy(), users, pos, neg, lr, l2)
    for name, value, start, tensor in zip("PQb", got, (p, q, b), tensors, strict=True):
        np.testing.assert_allclose((np.asarray(value, dtype=np.float64) - start) / lr, tensor.grad.numpy(),
                                   rtol=1e-5, atol=1e-6,
                                   err_msg=f"the step on {name} is not lr x the autograd gradient")
