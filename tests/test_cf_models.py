"""Collaborative-filtering models: kNN against brute force, ALS against exact least squares,
BPR and explicit MF on tiny matrices, factor helpers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.als import ALS, exact_solve
from recsys_utils.models.bpr import BPR
from recsys_utils.models.factors import factor_variance, nearest_items, project_2d
from recsys_utils.models.mf import BiasBaseline, ExplicitMF, GlobalMean
from recsys_utils.models.neighbors import ItemKNN, UserKNN, cosine_neighbours


def make(matrix) -> Interactions:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    n_users, n_items = matrix.shape
    users, items = IdIndex(np.arange(n_users), "user_id"), IdIndex(np.arange(100, 100 + n_items), "item_id")
    return Interactions(matrix, users, items)


def random_matrix(n_users=40, n_items=25, density=0.2, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 4, (n_users, n_items))
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1  # every user has an item
    return sp.csr_matrix(dense.astype(np.float32))


# ---------------------------------------------------------------- kNN


def brute_cosine(dense: np.ndarray, shrink: float) -> np.ndarray:
    sims = np.zeros((len(dense), len(dense)))
    for a in range(len(dense)):
        for b in range(len(dense)):
            if a != b:
                den = np.linalg.norm(dense[a]) * np.linalg.norm(dense[b]) + shrink
                sims[a, b] = dense[a] @ dense[b] / den if den > 0 else 0.0
    return sims


def test_cosine_neighbours_keeps_the_k_largest_shrunk_similarities():
    dense = random_matrix(30, 12).toarray().T.astype(np.float64)  # 12 items compared over 30 users
    expected = brute_cosine(dense, shrink=3.0)
    got = cosine_neighbours(sp.csr_matrix(dense), k=4, shrink=3.0, block=5).toarray()
    assert np.all(np.diag(got) == 0)
    for row in range(len(dense)):
        kept = np.flatnonzero(got[row])
        assert len(kept) == 4
        np.testing.assert_allclose(got[row, kept], expected[row, kept], rtol=1e-10)
        assert got[row, kept].min() >= np.sort(expected[row])[-4] - 1e-12


def test_item_knn_scores_equal_brute_force():
    matrix = random_matrix()
    binary = (matrix.toarray() > 0).astype(float)
    sims = brute_cosine(binary.T, shrink=2.0)
    model = ItemKNN(k=len(sims), shrink=2.0).fit(make(matrix))
    np.testing.assert_allclose(model.score(np.arange(5)), binary[:5] @ sims, rtol=1e-4, atol=1e-6)


def test_user_knn_uses_only_k_neighbours():
    matrix = random_matrix()
    binary = (matrix.toarray() > 0).astype(float)
    sims = brute_cosine(binary, shrink=0.0)
    k = 3
    keep = np.zeros_like(sims)
    for u in range(len(sims)):
        top = np.argsort(-sims[u], kind="stable")[:k]
        keep[u, top] = sims[u, top]
    model = UserKNN(k=k, shrink=0.0).fit(make(matrix))
    got = model.score(np.arange(len(sims)))
    # ties at the k-th place may keep a different neighbour: compare users without such ties
    kth = np.sort(sims, axis=1)[:, -k]
    clean = np.array([(np.isclose(sims[u], kth[u]).sum() == 1) for u in range(len(sims))])
    np.testing.assert_allclose(got[clean], (keep @ binary)[clean], rtol=1e-4, atol=1e-6)


def test_knn_recommends_the_co_purchased_item_on_a_tiny_matrix():
    # users 0-2 buy items 0 and 1 together; user 3 has only item 0 -> item 1 is next
    dense = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1]])
    train = make(dense)
    for model in (ItemKNN(k=2, shrink=0.0), UserKNN(k=2, shrink=0.0)):
        assert model.fit(train).recommend_indices([3], k=1)[0, 0] == 1


def test_knn_rejects_bad_settings_and_negative_weights():
    with pytest.raises(ValueError, match="k must be"):
        ItemKNN(k=0)
    with pytest.raises(ValueError, match="shrink"):
        UserKNN(shrink=-1)
    with pytest.raises(ValueError, match="non-negative"):
        ItemKNN(binary=False).fit(make(np.array([[1.0, -1.0]])))


# ---------------------------------------------------------------- ALS


def dense_als_user(matrix: np.ndarray, y: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Hu et al. (2008) eq. 4 solved row by row with dense matrices."""
    out = []
    for row in matrix:
        c = 1.0 + alpha * row
        p = (row > 0).astype(float)
        a = y.T @ (c[:, None] * y) + reg * np.eye(y.shape[1])
        out.append(np.linalg.solve(a, y.T @ (c * p)))
    return np.array(out)


def test_exact_solve_matches_dense_normal_equations():
    matrix = random_matrix(15, 10)
    y = np.random.default_rng(1).normal(size=(10, 4))
    expected = dense_als_user(matrix.toarray(), y, alpha=2.0, reg=0.3)
    np.testing.assert_allclose(exact_solve(matrix, y, 2.0, 0.3), expected, rtol=1e-8, atol=1e-10)


def test_als_cg_sweep_converges_to_the_least_squares_solution():
    # with enough CG steps one sweep solves each side exactly (CG is exact in <= f steps)
    matrix = random_matrix(30, 20)
    train = make(matrix)
    model = ALS(dim=5, l2=0.1, alpha=3.0, epochs=1, cg_steps=12, dtype="float64",
                device="cpu").fit(train)
    y = model.item_factors_
    x_expected = dense_als_user(matrix.toarray(), y, 3.0, 0.1)
    # the users were solved against the item factors *before* the item sweep: re-solve users
    # from the final items and compare the objective with fold_in instead
    vectors = model.fold_in(train)
    np.testing.assert_allclose(vectors, x_expected, rtol=1e-6, atol=1e-8)
    # the item side of the last sweep is exact for the final user factors
    y_expected = dense_als_user(matrix.toarray().T, model.user_factors_, 3.0, 0.1)
    np.testing.assert_allclose(y, y_expected, rtol=1e-6, atol=1e-8)


def test_als_loss_decreases_and_matches_its_definition():
    matrix = random_matrix(40, 25)
    model = ALS(dim=6, l2=0.05, alpha=2.0, epochs=6, dtype="float64", device="cpu",
                track_loss=True).fit(make(matrix))
    history = np.array(model.loss_history_)
    assert np.all(np.diff(history) <= 1e-9 * np.abs(history[:-1])), history
    dense = matrix.toarray()
    x, y = model.user_factors_, model.item_factors_
    c = 1.0 + 2.0 * dense
    direct = np.sum(c * ((dense > 0) - x @ y.T) ** 2) + 0.05 * (np.sum(x ** 2) + np.sum(y ** 2))
    assert model.loss() == pytest.approx(direct, rel=1e-9)


def test_als_recommends_and_finds_similar_items():
    # two blocks of users and items: neighbours stay inside the block
    block = np.kron(np.eye(2), np.ones((10, 6)))
    model = ALS(dim=4, l2=0.01, alpha=5.0, epochs=10, device="cpu").fit(make(block))
    near = model.similar_items([0, 7], k=3)
    assert set(near[0]) <= set(range(6)) and set(near[1]) <= set(range(6, 12))
    new_user = sp.csr_matrix(np.r_[np.zeros(6), np.ones(3), np.zeros(3)][None, :])
    scores = model.fold_in(new_user) @ model.item_factors_.T
    assert scores[0, 6:].min() > scores[0, :6].max()


def test_als_rejects_bad_input():
    with pytest.raises(ValueError, match="dtype"):
        ALS(dtype="float16")
    with pytest.raises(ValueError, match="non-negative"):
        ALS(device="cpu").fit(make(np.array([[1.0, -2.0]])))
    model = ALS(dim=2, epochs=1, device="cpu").fit(make(random_matrix(10, 8)))
    with pytest.raises(ValueError, match="columns"):
        model.fold_in(sp.csr_matrix((1, 5)))


# ---------------------------------------------------------------- BPR


def test_bpr_learns_block_structure_and_its_loss_falls():
    block = np.kron(np.eye(3), np.ones((20, 8)))
    rng = np.random.default_rng(0)
    train_mask = rng.random(block.shape) < 0.7
    train = make(block * train_mask)
    model = BPR(dim=8, lr=0.05, epochs=40, batch_size=64, seed=0).fit(train)
    assert model.loss_history_[-1] < 0.5 * model.loss_history_[0]
    top = model.recommend_indices(np.arange(60), k=1)[:, 0]  # every user has an unseen item in the block
    assert np.mean(top // 8 == np.arange(60) // 20) > 0.85  # chance is 1/3


def test_bpr_gradient_step_matches_autograd():
    import torch

    gen = torch.Generator().manual_seed(0)
    p, q, b = torch.randn(4, 3, generator=gen), torch.randn(5, 3, generator=gen), torch.randn(5, generator=gen)
    users, pos, neg = torch.tensor([0, 2, 3]), torch.tensor([1, 4, 0]), torch.tensor([2, 3, 1])
    lr, reg = 0.1, 0.01
    params = [t.clone().requires_grad_(True) for t in (p, q, b)]
    pu, qi, qj = params[0][users], params[1][pos], params[1][neg]
    x = (pu * (qi - qj)).sum(-1) + params[2][pos] - params[2][neg]
    objective = torch.nn.functional.logsigmoid(x).sum() - reg / 2 * (
        (pu ** 2).sum() + (qi ** 2).sum() + (qj ** 2).sum() + (params[2][pos] ** 2).sum()
        + (params[2][neg] ** 2).sum())
    objective.backward()
    BPR._step(p, q, b, users, pos, neg, lr, reg)
    for mine, param in zip((p, q, b), params, strict=True):
        np.testing.assert_allclose(mine.numpy(), (param + lr * param.grad).detach().numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- explicit MF


def test_bias_baseline_solves_the_regularised_least_squares_problem():
    rng = np.random.default_rng(3)
    ratings = sp.random(30, 20, density=0.3, random_state=4, data_rvs=lambda n: rng.integers(1, 6, n)).tocsr()
    train = make(ratings)
    model = BiasBaseline(user_l2=2.0, item_l2=3.0, epochs=200).fit(train)
    coo = ratings.tocoo()
    mu = coo.data.mean()
    # the same problem as one ridge regression on indicator columns
    design = np.zeros((coo.nnz, 50))
    design[np.arange(coo.nnz), coo.row] = 1
    design[np.arange(coo.nnz), 30 + coo.col] = 1
    penalty = np.diag(np.r_[np.full(30, 2.0), np.full(20, 3.0)])
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ (coo.data - mu))
    np.testing.assert_allclose(model.user_bias_, solution[:30], atol=1e-6)
    np.testing.assert_allclose(model.item_bias_, solution[30:], atol=1e-6)
    assert model.rmse(train) < GlobalMean().fit(train).rmse(train)


def test_explicit_mf_fits_a_low_rank_rating_matrix():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    full = 3.0 + p @ q.T
    mask = rng.random(full.shape) < 0.5
    train = make(sp.csr_matrix(np.where(mask, full, 0.0)))
    held = make(sp.csr_matrix(np.where(~mask, full, 0.0)))
    model = ExplicitMF(dim=2, l2=1e-4, epochs=150, batch_size=128, lr=0.02, patience=None,
                       device="cpu").fit(train)
    assert model.rmse(held) < 0.5 * BiasBaseline().fit(train).rmse(held)
    assert model.score([0]).shape == (1, 30)
    np.testing.assert_allclose(model.score([3])[0, [1, 5]], model.predict([3, 3], [1, 5]), rtol=1e-5)


def test_rating_models_reject_an_empty_matrix():
    empty = make(sp.csr_matrix((3, 2)))
    for model in (GlobalMean(), BiasBaseline()):
        with pytest.raises(ValueError, match="no stored cell"):
            model.fit(empty)
    with pytest.raises(ValueError, match="optimizer"):
        ExplicitMF(optimizer="rmsprop")


# ---------------------------------------------------------------- factor helpers


def test_factor_helpers():
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(50, 4)) * np.array([5.0, 2.0, 1.0, 0.1])
    share = factor_variance(factors)
    assert share.sum() == pytest.approx(1.0) and np.all(np.diff(share) <= 0) and share[0] > 0.7
    coords = project_2d(factors)
    assert coords.shape == (50, 2)
    assert np.var(coords[:, 0]) == pytest.approx(share[0] * np.var(factors - factors.mean(0), axis=0).sum(), rel=1e-6)
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    expected = np.argsort(-(unit[7] @ unit.T))[1:4]
    np.testing.assert_array_equal(nearest_items(factors, [7], k=3)[0], expected)
    with pytest.raises(IndexError, match="item indices"):
        nearest_items(factors, [50])


def test_torch_bpr_learns_block_structure():
    from recsys_utils.models.bpr_torch import TorchBPR

    block = np.kron(np.eye(3), np.ones((20, 8)))
    train = make(block * (np.random.default_rng(0).random(block.shape) < 0.7))
    model = TorchBPR(dim=8, epochs=30, batch_size=64, lr=0.02, device="cpu", patience=None).fit(train)
    top = model.recommend_indices(np.arange(60), k=1)[:, 0]
    assert np.mean(top // 8 == np.arange(60) // 20) > 0.85  # chance is 1/3
    assert model.embeddings()[1].shape == (24, 8)


def test_als_cholesky_solver_matches_many_cg_steps():
    train = make(random_matrix(30, 20))
    exact = ALS(dim=4, l2=0.1, alpha=2.0, epochs=3, solver="cholesky", dtype="float64",
                device="cpu").fit(train)
    cg = ALS(dim=4, l2=0.1, alpha=2.0, epochs=3, cg_steps=10, dtype="float64",
             device="cpu").fit(train)
    np.testing.assert_allclose(exact.item_factors_, cg.item_factors_, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="solver"):
        ALS(solver="lu")
