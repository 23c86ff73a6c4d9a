"""Graders of notebook 13 (evaluation and A/B testing): the metrics and the tests by hand.

10.1 NDCG@k and AP@k of a batch of users (against :func:`recsys_utils.core.metrics.ranking_metrics`),
10.2 one user's AUC with ties (against ``per_user_auc`` and ``auc_score``), 10.3 the sampled and the
full-catalogue rank of a held-out item (against :func:`recsys_utils.evaluation.sampled.evaluate_sampled`),
10.4 the pooled two-proportion z-test and 10.5 the users per arm for a relative lift (against
:mod:`recsys_utils.evaluation.significance`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.core.metrics import auc_score, hits_at_k, per_user_auc, ranking_metrics
from recsys_utils.course.graders.answers import as_array
from recsys_utils.course.graders.registry import grader
from recsys_utils.evaluation.sampled import SampledProtocol, evaluate_sampled
from recsys_utils.evaluation.significance import sample_size_two_means, two_proportion_ztest


def _random_lists(rng: np.random.Generator, n_users: int, n_items: int, k: int
                  ) -> tuple[np.ndarray, sp.csr_matrix]:
    """Random top-k lists and relevant sets; some users have fewer relevant items than k, some more."""
    top = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    sizes = rng.integers(1, 2 * k + 3, size=n_users)
    rows = np.repeat(np.arange(n_users), sizes)
    cols = np.concatenate([rng.choice(n_items, size=s, replace=False) for s in sizes])
    relevant = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    return top, relevant




@grader("13.1")
def ndcg_and_ap(learner) -> str:
    """``learner(hits, n_relevant)`` returns per-user NDCG@k and AP@k equal to the package's."""
    rng = np.random.default_rng(8)
    n_users, n_items = 200, 40
    for k in (1, 5, 10):
        top, relevant = _random_lists(rng, n_users, n_items, k)
        hits = hits_at_k(top, relevant)
        n_relevant = np.diff(relevant.indptr)
        expected = ranking_metrics(top, relevant, k, ("ndcg", "map")).per_user
        result = learner(hits.copy(), n_relevant.copy())
        assert isinstance(result, tuple) and len(result) == 2, "return a pair (ndcg, ap) of arrays"
        ndcg = as_array(result[0], "ndcg", (n_users,), hint=' (one value per user)')
        ap = as_array(result[1], "ap", (n_users,), hint=' (one value per user)')
        worst = int(np.argmax(np.abs(ndcg - expected[f"ndcg@{k}"].to_numpy())))
        assert np.allclose(ndcg, expected[f"ndcg@{k}"], atol=1e-9), (
            f"k={k}, user with hits {hits[worst].astype(int).tolist()} and {n_relevant[worst]} relevant items: "
            f"NDCG expected {expected[f'ndcg@{k}'].iloc[worst]:.4f}, got {ndcg[worst]:.4f} "
            "(the ideal DCG puts min(|R|, k) hits at the top, discount 1/log2(rank + 1))")
        worst = int(np.argmax(np.abs(ap - expected[f"map@{k}"].to_numpy())))
        assert np.allclose(ap, expected[f"map@{k}"], atol=1e-9), (
            f"k={k}, user with hits {hits[worst].astype(int).tolist()} and {n_relevant[worst]} relevant items: "
            f"AP expected {expected[f'map@{k}'].iloc[worst]:.4f}, got {ap[worst]:.4f} "
            "(sum precision@j at the hit positions j, divide by min(|R|, k))")
    return f"NDCG@k and AP@k equal recsys_utils' ranking_metrics for {n_users} random users at k = 1, 5, 10"


@grader("13.2")
def auc(learner) -> str:
    """``learner(scores, relevant, candidates)`` equals ``per_user_auc`` (ties count half)."""
    rng = np.random.default_rng(9)
    n_users, n_items = 25, 60
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float64)  # many ties on purpose
    relevant = sp.csr_matrix(rng.random((n_users, n_items)) < 0.15, dtype=np.float64)
    seen = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2) & (relevant.toarray() == 0), dtype=np.float64)
    expected = per_user_auc(scores, relevant, exclude=seen)
    checked = 0
    for u in range(n_users):
        candidates = np.setdiff1d(np.arange(n_items), seen[u].indices)
        positive = set(relevant[u].indices.tolist())
        if not positive or len(positive) == candidates.size:
            continue
        got = learner(scores[u].copy(), positive, candidates.copy())
        assert got is not None, "auc returned None"
        assert abs(float(got) - expected[u]) < 1e-9, (
            f"user {u}: expected AUC {expected[u]:.4f}, got {float(got):.4f} "
            "(count pairs (relevant, non-relevant candidate) with s_i > s_n, and a tie as one half)")
        labels = np.isin(candidates, list(positive))
        assert abs(float(got) - auc_score(labels, scores[u, candidates])) < 1e-9
        checked += 1
    return f"AUC equals recsys_utils' per_user_auc and auc_score for {checked} users with tied scores"


class _FixedScores:
    """A fitted 'model' that returns a fixed score matrix (the grader's fixture)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, users) -> np.ndarray:
        return self.scores[np.asarray(users)]


@grader("13.3")
def sampled_and_full_rank(learner) -> str:
    """``learner(scores, positive, negatives, blocked)`` equals the ranks of ``evaluate_sampled``."""
    rng = np.random.default_rng(10)
    n_users, n_items, n_neg = 30, 80, 15
    scores = rng.integers(0, 20, size=(n_users, n_items)).astype(np.float64)
    positives = rng.integers(0, n_items, size=n_users)
    blocked_dense = rng.random((n_users, n_items)) < 0.25
    blocked_dense[np.arange(n_users), positives] = True  # the held-out item itself is not a competitor
    keys = np.where(blocked_dense, np.inf, rng.random((n_users, n_items)))
    negatives = np.argsort(keys, axis=1)[:, :n_neg]
    protocol = SampledProtocol(np.arange(n_users), positives, negatives, sp.csr_matrix(blocked_dense),
                               n_items, seed=0)
    ranks = evaluate_sampled(_FixedScores(scores), protocol, k=10).ranks
    for u in range(n_users):
        got = learner(scores[u].copy(), int(positives[u]), negatives[u].copy(), np.flatnonzero(blocked_dense[u]))
        assert isinstance(got, tuple) and len(got) == 2, "return a pair (sampled_rank, full_rank)"
        want = (int(ranks.sampled_rank.iloc[u]), int(ranks.full_rank.iloc[u]))
        assert int(got[0]) == want[0], (
            f"user {u}: sampled rank expected {want[0]}, got {got[0]} "
            "(count the sampled negatives scoring at least as high as the positive)")
        assert int(got[1]) == want[1], (
            f"user {u}: full rank expected {want[1]}, got {got[1]} (count every item that is not blocked "
            "and scores at least as high as the positive; the blocked items - training items and the "
            "positive itself - do not compete)")
    return f"sampled and full ranks equal recsys_utils.evaluation.sampled for {n_users} users with ties"


@grader("13.4")
def two_proportion_z(learner) -> str:
    """``learner(successes_a, n_a, successes_b, n_b)`` returns the pooled z and two-sided p-value."""
    cases = [(120, 2000, 150, 2000), (30, 400, 61, 900), (500, 10000, 480, 8000), (7, 50, 19, 60),
             (45, 1000, 45, 1000)]
    for s_a, n_a, s_b, n_b in cases:
        got = learner(s_a, n_a, s_b, n_b)
        assert isinstance(got, tuple) and len(got) == 2, "return a pair (z, p_value)"
        z, p = two_proportion_ztest(s_a, n_a, s_b, n_b)
        assert abs(float(got[0]) - z) < 1e-6, (
            f"{s_a}/{n_a} vs {s_b}/{n_b}: z expected {z:.4f}, got {float(got[0]):.4f} "
            "(z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with the POOLED p = all successes / all trials)")
        assert abs(float(got[1]) - p) < 1e-6, (
            f"{s_a}/{n_a} vs {s_b}/{n_b}: two-sided p expected {p:.4f}, got {float(got[1]):.4f} "
            "(p = 2 * (1 - Phi(|z|)))")
    return f"z and p equal recsys_utils' two_proportion_ztest on {len(cases)} cases"


@grader("13.5")
def users_per_arm_for_lift(learner) -> str:
    """``learner(mean, sd, lift, alpha, power)`` equals ``sample_size_two_means(lift * mean, sd, ...)``."""
    cases = [(0.30, 0.9, 0.05, 0.05, 0.8), (0.12, 0.5, 0.10, 0.05, 0.9), (2.0, 3.0, 0.02, 0.01, 0.8),
             (0.05, 0.3, 0.20, 0.10, 0.8)]
    for mean, sd, lift, alpha, power in cases:
        got = learner(mean, sd, lift, alpha=alpha, power=power)
        assert got is not None, "users_per_arm_for_lift returned None"
        want = sample_size_two_means(lift * mean, sd, alpha=alpha, power=power)
        assert int(got) == want, (
            f"mean {mean}, sd {sd}, lift {lift:.0%}, alpha {alpha}, power {power}: expected {want:,} users "
            f"per arm, got {int(got):,} (n = 2 (z_(1-alpha/2) + z_power)^2 sd^2 / delta^2 with delta = lift * mean, "
            "rounded up; the test is two-sided)")
    return f"users per arm equal recsys_utils' sample_size_two_means on {len(cases)} cases"
