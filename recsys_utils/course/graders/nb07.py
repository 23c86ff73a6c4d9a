"""Graders of notebook 07 (deep retrieval): the log-Q corrected in-batch softmax, the item tower,
one LightGCN propagation step and an ANN result's recall against exact search."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.course.graders.registry import grader
from recsys_utils.models.lightgcn import normalized_adjacency
from recsys_utils.models.retrieval_losses import in_batch_softmax_loss
from recsys_utils.models.two_tower import ItemTower
from recsys_utils.pipeline.ann import recall_vs_exact


@grader("07.1")
def log_q_softmax(learner) -> str:
    """``learner(u, v, log_q, temperature)`` equals the package's loss (and its gradient) on random batches."""
    gen = torch.Generator().manual_seed(0)
    for batch, tau in ((5, 0.1), (8, 1.0)):
        u = torch.randn(batch, 4, generator=gen, dtype=torch.float64)
        v = torch.randn(batch, 4, generator=gen, dtype=torch.float64)
        log_q = torch.log(torch.rand(batch, generator=gen, dtype=torch.float64) * 0.3 + 0.01)
        expected = in_batch_softmax_loss(u, v, log_q, tau)
        u_learner = u.clone().requires_grad_(True)
        got = learner(u_learner, v.clone(), log_q.clone(), tau)
        assert got is not None, "the loss function returned None"
        got = torch.as_tensor(got)
        assert got.dim() == 0, f"the loss must be a scalar (the mean over rows), got shape {tuple(got.shape)}"
        assert torch.allclose(got.double(), expected, atol=1e-6), (
            f"loss {float(got.detach()):.6f} differs from the package's {float(expected):.6f}: logits are u_i . v_j / "
            "temperature MINUS log q_j (subtract, do not add), the target of row i is column i, average over rows")
        assert got.requires_grad, "the loss must keep its autograd graph (no .item(), no numpy)"
        got.backward()
        u_ref = u.clone().requires_grad_(True)
        in_batch_softmax_loss(u_ref, v, log_q, tau).backward()
        assert torch.allclose(u_learner.grad, u_ref.grad, atol=1e-6), "the gradient differs from the package's"
    return "the log-Q corrected in-batch softmax equals in_batch_softmax_loss (value and gradient)"


@grader("07.2")
def item_tower(learner) -> str:
    """``learner(n_items, field_sizes, n_tokens, dim)`` loads the package ItemTower's weights and matches it."""
    torch.manual_seed(0)
    sizes, n_items, n_tokens, dim = [4, 3], 6, 5, 8
    reference = ItemTower(n_items, sizes, n_tokens, dim).eval()
    mine = learner(n_items, sizes, n_tokens, dim)
    assert mine is not None, "the class returned None"
    try:
        mine.load_state_dict(reference.state_dict())
    except RuntimeError as error:
        raise AssertionError("the tower's parameters must have the package's names and shapes (id, fields, "
                             f"title, mlp): {str(error).splitlines()[0]}") from None
    mine.eval()
    ids = torch.arange(n_items)
    fields = torch.tensor([[1, 2], [3, 1], [0, 0], [2, 2], [1, 0], [3, 2]])
    title = torch.tensor([[1, 2, 0], [3, 0, 0], [0, 0, 0], [4, 4, 1], [2, 0, 0], [1, 3, 4]])
    keep = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])  # items 2 and 4 are new: no id embedding
    with torch.no_grad():
        expected = reference(ids, fields, title, keep)
        got = mine(ids, fields, title, keep)
    assert got is not None, "forward returned None"
    assert tuple(got.shape) == (n_items, dim), f"expected shape {(n_items, dim)}, got {tuple(got.shape)}"
    assert torch.allclose(got.norm(dim=1), torch.ones(n_items), atol=1e-5), "the output vectors must have norm 1"
    assert torch.allclose(got[keep.bool()], expected[keep.bool()], atol=1e-5), (
        "warm items differ from the package's ItemTower: concatenate [id, field embeddings in order, mean title "
        "words], apply the MLP, L2-normalise")
    assert torch.allclose(got, expected, atol=1e-5), (
        "new items (keep_id = 0) differ: their id embedding must be zeroed, so only attributes speak")
    return "the item tower equals the package's ItemTower with the same weights, new items included"


@grader("07.3")
def lightgcn_step(learner) -> str:
    """``learner(R, E)`` equals ``normalized_adjacency(R) @ E`` on a random graph with an isolated node."""
    rng = np.random.default_rng(3)
    r = (rng.random((6, 5)) < 0.4).astype(np.float64)
    r[:, 4] = 0.0  # item 4 has no edge
    r[0, :] = 0.0  # user 0 has no edge
    r[1, 1] = 1.0
    e = rng.normal(size=(11, 3))
    expected = normalized_adjacency(sp.csr_matrix(r)).toarray().astype(np.float64) @ e
    got = learner(r.copy(), e.copy())
    assert got is not None, "lightgcn_step returned None"
    got = np.asarray(got.toarray() if sp.issparse(got) else got, dtype=np.float64)
    assert got.shape == e.shape, f"expected shape {e.shape}, got {got.shape}"
    assert np.isfinite(got).all(), "NaN or inf: a node without edges (degree 0) must get a zero row, not 1/0"
    np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=(
        "one layer is D^-1/2 A D^-1/2 E with A = [[0, R], [R^T, 0]] (users first): each edge (u, i) weighs "
        "1 / sqrt(deg(u) deg(i)), not 1 / deg(u)"))
    return "one LightGCN propagation step equals D^-1/2 A D^-1/2 E on a 6 x 5 graph"


@grader("07.4")
def ann_recall(learner) -> str:
    """``learner(approx_ids, exact_ids)`` equals :func:`recall_vs_exact` on shuffled and padded id lists."""
    rng = np.random.default_rng(4)
    exact = np.stack([rng.permutation(50)[:10] for _ in range(20)])
    approx = exact.copy()
    for row in range(20):  # replace a few ids and shuffle the order: sets, not positions, matter
        approx[row, rng.integers(0, 10, row % 4)] = 100 + row
        approx[row] = rng.permutation(approx[row])
    approx[3, 7:] = -1
    expected = recall_vs_exact(approx, exact)
    got = learner(approx.copy(), exact.copy())
    assert got is not None, "recall_at_k returned None"
    assert abs(float(got) - expected) < 1e-9, (
        f"got {float(got):.4f}, expected {expected:.4f}: per query, the share of the exact top-k ids found "
        "ANYWHERE in the approximate list (order does not matter, -1 is no item), then the mean over queries")
    return "recall@k of ANN results against exact search equals recall_vs_exact"
