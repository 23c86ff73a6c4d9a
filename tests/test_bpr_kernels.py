"""BPR's compiled engine (recsys_utils.models.bpr_kernels) against the torch update and by hand."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.bpr import BPR
from recsys_utils.models.bpr_kernels import _contains, sgd_update


def test_one_triple_update_matches_the_torch_step():
    gen = torch.Generator().manual_seed(0)
    p, q, b = torch.randn(4, 3, generator=gen), torch.randn(5, 3, generator=gen), torch.randn(5, generator=gen)
    p_ext = np.hstack([p.numpy(), np.ones((4, 1))]).astype(np.float64)  # last column: the bias weight 1
    q_ext = np.hstack([q.numpy(), b.numpy()[:, None]]).astype(np.float64)  # last column: the item bias
    loss = sgd_update(p_ext, q_ext, 2, 4, 0, 0.1, 0.01)
    mine = [p_ext[:, :-1], q_ext[:, :-1], q_ext[:, -1]]
    assert (p_ext[:, -1] == 1).all()
    torch_loss = BPR._step(p.double(), q.double(), b.double(), torch.tensor([2]), torch.tensor([4]),
                           torch.tensor([0]), 0.1, 0.01)
    reference = [t.double() for t in (p, q, b)]
    BPR._step(*reference, torch.tensor([2]), torch.tensor([4]), torch.tensor([0]), 0.1, 0.01)
    for got, want in zip(mine, reference, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-9)
    assert loss == pytest.approx(torch_loss, rel=1e-6)


def test_binary_search_in_a_sorted_row():
    row = np.array([2, 5, 9, 11], dtype=np.int64)
    assert [_contains(row, 0, 4, j) for j in (2, 5, 9, 11)] == [True] * 4
    assert [_contains(row, 0, 4, j) for j in (0, 3, 10, 12)] == [False] * 4
    assert not _contains(row, 1, 3, 2) and not _contains(row, 1, 1, 5)


def _train(seed=0):
    rng = np.random.default_rng(seed)
    block = np.kron(np.eye(3), np.ones((20, 8))) * (rng.random((60, 24)) < 0.7)
    return Interactions(sp.csr_matrix(block.astype(np.float32)), IdIndex(np.arange(60)), IdIndex(np.arange(24)))


def test_numba_engine_is_seeded_and_learns():
    train = _train()
    first = BPR(dim=8, lr=0.05, epochs=30, seed=3, backend="numba").fit(train)
    again = BPR(dim=8, lr=0.05, epochs=30, seed=3, backend="numba").fit(train)
    np.testing.assert_array_equal(first.item_factors_, again.item_factors_)  # one thread: reproducible
    assert first.loss_history_[-1] < 0.5 * first.loss_history_[0]
    top = first.recommend_indices(np.arange(60), k=1)[:, 0]
    assert np.mean(top // 8 == np.arange(60) // 20) > 0.85
    two = BPR(dim=8, lr=0.05, epochs=30, seed=3, backend="numba", num_threads=2).fit(train)
    assert np.isfinite(two.item_factors_).all()
    with pytest.raises(ValueError, match="backend"):
        BPR(backend="cython")
