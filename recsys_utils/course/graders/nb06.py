"""Graders of notebook 06 (sequential models): the Markov chain's transitions, one GRU step, SASRec's
causal mask and next-item HR@k / NDCG@k by hand."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.course.graders.registry import grader
from recsys_utils.data.sequences import Sequences
from recsys_utils.models.sequential import MarkovChain, SASRecNet


def _random_sequences(rng: np.random.Generator, rows: int, width: int, n_items: int) -> np.ndarray:
    """Right-aligned histories (``-1`` = left padding) of random lengths, some rows empty of transitions."""
    items = rng.integers(0, n_items, size=(rows, width))
    lengths = rng.integers(1, width + 1, size=rows)
    items[np.arange(width)[None, :] < (width - lengths)[:, None]] = -1
    return items


@grader("06.1")
def transition_matrix(learner) -> str:
    """``learner(prev, nxt, n_items)`` equals ``MarkovChain(window=1).transition_`` on random sequences."""
    rng = np.random.default_rng(0)
    n_items = 9  # item 8 never occurs, so its row has no transitions
    items = _random_sequences(rng, 25, 6, n_items - 1)
    seqs = Sequences.from_array(items, n_items)
    expected = MarkovChain(window=1).fit(seqs).transition_.toarray().astype(np.float64)
    prev, nxt = seqs.transitions()
    got = learner(prev.copy(), nxt.copy(), n_items)
    assert got is not None, "transition_matrix returned None"
    got = got.toarray() if sp.issparse(got) else np.asarray(got)
    assert got.shape == (n_items, n_items), f"expected an items x items matrix {(n_items, n_items)}, got {got.shape}"
    assert np.all(np.isfinite(got)), "the matrix has NaN/inf: an item that is never a predecessor must get a zero row"
    np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=(
        "P(j | i) differs from the package's MarkovChain: count the (prev, next) pairs, then divide each "
        "ROW i by its total (rows with no transitions stay zero)"))
    return "P(next | last) equals MarkovChain(window=1).transition_ on 25 random sequences"


@grader("06.2")
def gru_step(learner) -> str:
    """``learner(x, h, weight_ih, weight_hh, bias_ih, bias_hh)`` equals ``torch.nn.GRUCell`` with the same weights."""
    torch.manual_seed(0)
    cell = nn.GRUCell(5, 4)
    x, h = torch.randn(3, 5), torch.randn(3, 4)
    with torch.no_grad():
        expected = cell(x, h)
        got = learner(x.clone(), h.clone(), cell.weight_ih.detach().clone(), cell.weight_hh.detach().clone(),
                      cell.bias_ih.detach().clone(), cell.bias_hh.detach().clone())
    assert got is not None, "gru_step returned None"
    got = torch.as_tensor(got)
    assert tuple(got.shape) == tuple(expected.shape), (
        f"h_new must have shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    assert torch.allclose(got, expected, atol=1e-5), (
        "h_new differs from torch.nn.GRUCell: gates r, z = sigmoid(x W_i + b_i + h W_h + b_h) (PyTorch stacks "
        "r, z, n in that order), n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), h_new = (1 - z) * n + z * h")
    return "one GRU step equals torch.nn.GRUCell with the same weights (to 1e-5)"


@grader("06.3")
def causal_mask(learner) -> str:
    """``learner(x)`` equals the attention mask of the package's ``SASRecNet`` on padded id batches."""
    net = SASRecNet(n_items=7, dim=8, max_len=6, blocks=1).eval()
    rng = np.random.default_rng(2)
    x = torch.as_tensor(_random_sequences(rng, 5, 6, 7) + 1)  # ids: 0 = padding, item i is i + 1
    x[0] = torch.arange(1, 7)  # one row without padding
    with torch.no_grad():
        expected = net._inputs(x)[2]
        got = learner(x.clone())
    assert got is not None, "causal_mask returned None"
    got = torch.as_tensor(got)
    assert got.dtype == torch.bool, f"the mask must be boolean (True = may attend), got {got.dtype}"
    assert tuple(got.shape) == tuple(expected.shape), (
        f"the mask must have shape (B, 1, T, T) = {tuple(expected.shape)}, got {tuple(got.shape)}")
    wrong = (got != expected).nonzero()
    assert len(wrong) == 0, (
        f"{len(wrong)} cells differ from SASRecNet's mask, first at (row, _, t, s) = {tuple(wrong[0].tolist())}: "
        "position t may read s <= t only, never a padding position (0), but always itself")
    return "the mask equals SASRecNet's causal + padding mask on a batch of padded histories"


@grader("06.4")
def next_item_metrics(learner) -> str:
    """``learner(scores, targets, k)`` returns ``(HR@k, NDCG@k)`` equal to the package's ranking metrics."""
    rng = np.random.default_rng(3)
    n, n_items = 200, 40
    scores = rng.normal(size=(n, n_items))
    targets = rng.integers(0, n_items, size=n)
    relevant = sp.csr_matrix((np.ones(n), (np.arange(n), targets)), shape=(n, n_items))
    top = np.argsort(-scores, axis=1)
    for k in (1, 5, 10):
        mean = ranking_metrics(top, relevant, k, ("hr", "ndcg")).mean
        got = learner(scores.copy(), targets.copy(), k)
        assert got is not None and len(got) == 2, "next_item_metrics must return the pair (hr, ndcg)"
        hr, ndcg = (float(v) for v in got)
        assert abs(hr - mean[f"hr@{k}"]) < 1e-9, (
            f"HR@{k}: expected {mean[f'hr@{k}']:.4f}, got {hr:.4f} (share of rows whose target is in the top {k})")
        assert abs(ndcg - mean[f"ndcg@{k}"]) < 1e-9, (
            f"NDCG@{k}: expected {mean[f'ndcg@{k}']:.4f}, got {ndcg:.4f} (a hit at rank r, counted from 1, "
            "scores 1 / log2(1 + r); a miss scores 0; average over rows)")
    return "HR@k and NDCG@k equal recsys_utils.core.metrics.ranking_metrics for k = 1, 5, 10"
