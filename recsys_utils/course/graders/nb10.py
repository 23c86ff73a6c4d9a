"""Graders of notebook 10 (complementary items and a knowledge graph): support, confidence and lift by
hand, the TransE distance as an nn.Module, a corrupted-triple sampler and complementary precision@k."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.course.graders.registry import grader
from recsys_utils.features.association import rule_matrices
from recsys_utils.models.transe import TransE, margin_loss


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)


@grader("10.1")
def rule_measures(learner) -> str:
    """``learner(baskets)`` -> (support, confidence, lift) equal the package's ``rule_matrices`` off the diagonal."""
    rng = np.random.default_rng(0)
    baskets = (rng.random((40, 6)) < rng.uniform(0.1, 0.6, 6)).astype(np.float64)
    baskets[0] = 1.0  # every item occurs at least once
    expected = rule_matrices(sp.csr_matrix(baskets))
    got = learner(baskets.copy())
    assert got is not None, "rule_measures returned None"
    assert len(got) == 3, "return the tuple (support, confidence, lift)"
    off = ~np.eye(6, dtype=bool)
    seen = off & (_dense(expected["count"]) > 0)
    for name, value in zip(("support", "confidence", "lift"), got, strict=True):
        value = _dense(value)
        assert value.shape == (6, 6), f"{name} must be an items x items matrix (6, 6), got {value.shape}"
        np.testing.assert_allclose(value[seen], _dense(expected[name])[seen], rtol=1e-6, err_msg=(
            f"{name}[i, j] of the rule i => j differs from the package: support = n(i and j) / N, "
            "confidence = n(i and j) / n(i), lift = confidence / (n(j) / N) -- the CONSEQUENT's rate"))
    return "support, confidence and lift of every rule equal rule_matrices on 40 random baskets"


@grader("10.2")
def transe_distance(learner_class) -> str:
    """The learner's ``TransEDistance(n_entities, n_relations, dim)`` module equals the package's TransE."""
    torch.manual_seed(0)
    reference = TransE(7, 2, dim=5, p=2)
    module = learner_class(7, 2, 5)
    assert isinstance(module, torch.nn.Module), "TransEDistance must be a torch.nn.Module"
    for name in ("entity", "relation"):
        assert isinstance(getattr(module, name, None), torch.nn.Embedding), f"self.{name} must be an nn.Embedding"
    with torch.no_grad():
        module.entity.weight.copy_(reference.entity.weight)
        module.relation.weight.copy_(reference.relation.weight)
    triples = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 0, 4], [6, 1, 5]])
    corrupted = torch.tensor([[0, 0, 5], [1, 1, 3], [4, 0, 2], [3, 1, 5]])
    got = module(triples)
    assert got is not None, "forward returned None"
    assert tuple(got.shape) == (4,), f"one distance per triple: expected shape (4,), got {tuple(got.shape)}"
    assert torch.allclose(got, reference(triples), atol=1e-5), (
        "distances differ from the package: d = || e_head + e_relation - e_tail ||_2 (the L2 norm, not its square)")
    loss = margin_loss(module(triples), module(corrupted), 1.0)
    loss.backward()
    ref_loss = margin_loss(reference(triples), reference(corrupted), 1.0)
    ref_loss.backward()
    assert torch.allclose(module.entity.weight.grad, reference.entity.weight.grad, atol=1e-5), (
        "the margin loss's gradient differs from the package: compute the distance with differentiable torch ops")
    return "distances and the margin loss's gradient equal the package's TransE"


@grader("10.3")
def corrupt_triples(learner) -> str:
    """``learner(triples, n_entities, rng)`` replaces the head or the tail (about half each) by a random entity."""
    n, n_entities = 4000, 1000
    rng = np.random.default_rng(1)
    triples = np.column_stack([rng.integers(0, n_entities, n), rng.integers(0, 3, n), rng.integers(0, n_entities, n)])
    original = triples.copy()
    got = learner(triples, n_entities, np.random.default_rng(2))
    assert got is not None, "corrupt_triples returned None"
    got = np.asarray(got)
    assert (triples == original).all(), "do not change the input triples in place: return a corrupted copy"
    assert got.shape == triples.shape, f"expected the shape {triples.shape}, got {got.shape}"
    assert (got[:, 1] == triples[:, 1]).all(), "keep the relation; only the head or the tail is replaced"
    assert ((got[:, [0, 2]] >= 0) & (got[:, [0, 2]] < n_entities)).all(), "entities must lie in 0..n_entities-1"
    head, tail = got[:, 0] != triples[:, 0], got[:, 2] != triples[:, 2]
    assert not (head & tail).any(), "replace the head OR the tail of a triple, never both"
    assert 0.4 < head.mean() < 0.6 and 0.4 < tail.mean() < 0.6, (
        f"heads replaced in {head.mean():.0%} and tails in {tail.mean():.0%} of the triples: choose the end "
        "at random, about half each (Bordes et al. 2013)")
    again = learner(triples, n_entities, np.random.default_rng(2))
    assert (np.asarray(again) == got).all(), "draw only from the rng you are given (same rng seed, same output)"
    return "head or tail replaced, half each, relation kept, input untouched, reproducible"


@grader("10.4")
def complementary_precision(learner) -> str:
    """``learner(query_items, recommended, truth)`` equals the share of the k slots that are truly complementary."""
    rng = np.random.default_rng(3)
    n_items, n_queries, k = 30, 12, 5
    truth = rng.random((n_items, n_items)) < 0.2
    queries = rng.integers(0, n_items, n_queries)
    recommended = rng.integers(0, n_items, (n_queries, k))
    recommended[0, 3:] = -1  # a short list: empty slots count as misses
    recommended[1] = -1
    hits = np.array([[r >= 0 and truth[q, r] for r in row] for q, row in zip(queries, recommended, strict=True)])
    expected = hits.sum() / (n_queries * k)
    got = learner(queries.copy(), recommended.copy(), truth.copy())
    assert got is not None, "complementary_precision returned None"
    assert np.isclose(float(got), expected), (
        f"expected {expected:.4f}, got {float(got):.4f}: count truth[query, item] over every slot of the top-k "
        "(an empty slot, -1, is a miss; never let -1 index the last item) and divide by n_queries * k")
    return "precision@k of follow-ups equals a brute-force count, short lists included"
