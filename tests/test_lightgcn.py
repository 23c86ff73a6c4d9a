"""LightGCN: the normalised adjacency and the propagation against a dense hand computation on a tiny
graph, and training through the course loop."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models import registry
from recsys_utils.models.lightgcn import LightGCN, normalized_adjacency, propagate, to_torch_sparse

# 2 users x 3 items: u0 - i0, u0 - i1, u1 - i1; item 2 is isolated
R = np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32)


def test_normalized_adjacency_by_hand():
    a = normalized_adjacency(sp.csr_matrix(R * 5)).toarray()  # weights are ignored: an edge is an edge
    # node order u0, u1, i0, i1, i2; degrees 2, 1, 1, 2, 0
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 1)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 2)
    expected[1, 3] = expected[3, 1] = 1 / np.sqrt(1 * 2)
    np.testing.assert_allclose(a, expected, atol=1e-7)
    assert (a[4] == 0).all()  # the isolated item keeps a zero row


def test_propagation_matches_a_dense_hand_computation():
    a = normalized_adjacency(sp.csr_matrix(R)).toarray().astype(np.float64)
    e0 = np.arange(10, dtype=np.float64).reshape(5, 2) / 10
    e1 = a @ e0
    e2 = a @ e1
    expected = (e0 + e1 + e2) / 3
    # one hand-checked entry: user 0 at layer 1 = e0[i0] / sqrt(2) + e0[i1] / 2
    assert e1[0, 0] == pytest.approx(e0[2, 0] / np.sqrt(2) + e0[3, 0] / 2)
    sparse = to_torch_sparse(normalized_adjacency(sp.csr_matrix(R)))
    got = propagate(sparse, torch.tensor(e0, dtype=torch.float32), 2).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(propagate(torch.tensor(a), torch.tensor(e0), 2).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(propagate(sparse, torch.tensor(e0, dtype=torch.float32), 0).numpy(), e0, atol=1e-7)
    with pytest.raises(ValueError, match="n_layers"):
        propagate(sparse, torch.zeros(5, 2), -1)


def test_lightgcn_learns_block_structure_through_the_loop():
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 20
    users = rng.integers(0, n_users, 600)
    items = 2 * rng.integers(0, n_items // 2, 600) + users % 2
    matrix = sp.csr_matrix((np.ones(600), (users, items)), shape=(n_users, n_items))
    train = Interactions(matrix, IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items)))
    model = LightGCN(dim=8, n_layers=2, epochs=15, batch_size=128, lr=2e-2, seed=0).fit(train)
    assert model.history_.to_frame().train_loss.iloc[-1] < 0.6 * model.history_.to_frame().train_loss.iloc[0]
    top = model.recommend_indices(np.arange(n_users), k=3, exclude_seen=False)
    assert ((top % 2) == (np.arange(n_users) % 2)[:, None]).mean() > 0.95
    user_emb, item_emb = model.embeddings()
    np.testing.assert_allclose(user_emb[:5] @ item_emb.T, model.score(np.arange(5)), rtol=1e-4, atol=1e-5)
    assert isinstance(registry.create("lightgcn", seed=3), LightGCN)
    with pytest.raises(ValueError, match="n_layers"):
        LightGCN(n_layers=-1)
