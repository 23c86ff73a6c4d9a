"""Metrics: hand-computed cases for each definition and agreement with scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score, precision_score, recall_score, roc_auc_score

from recsys_utils.core import metrics as metrics_module
from recsys_utils.core.beyond_accuracy import (
    average_popularity,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    novelty,
)
from recsys_utils.core.metrics import (
    RankingMetrics,
    auc_score,
    hits_at_k,
    per_user_auc,
    ranking_metrics,
    sampled_ranking_metrics,
)
from recsys_utils.core.topk import top_k


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """A binary relevance matrix from one list of relevant items per row."""
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [item for items in rows for item in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# Four users, six items, k = 4.
#   user 0: relevant {0, 2}, list [0, 1, 2, 3] -> hits at ranks 1 and 3
#   user 1: relevant {5},    list [1, -, -, -] -> no hit, three empty slots
#   user 2: relevant {}                        -> excluded
#   user 3: relevant {1, 3, 4}, list [0, 4, 2, -] -> hit at rank 2
RELEVANT = csr([[0, 2], [5], [], [1, 3, 4]], 6)
TOP = np.array([[0, 1, 2, 3], [1, -1, -1, -1], [2, 3, 4, 5], [0, 4, 2, -1]])
L3, L4 = math.log2(3), math.log2(4)
EXPECTED = {
    # user 0: 2 hits / 4; user 1: 0; user 3: 1 hit / 4
    "precision@4": [2 / 4, 0.0, 1 / 4],
    # user 0: 2 / |{0, 2}|; user 3: 1 / |{1, 3, 4}|
    "recall@4": [1.0, 0.0, 1 / 3],
    # user 0: (1 + 1/log2 4) / (1 + 1/log2 3); user 3: (1/log2 3) / (1 + 1/log2 3 + 1/log2 4)
    "ndcg@4": [(1 + 1 / L4) / (1 + 1 / L3), 0.0, (1 / L3) / (1 + 1 / L3 + 1 / L4)],
    # user 0: (P@1 + P@3) / min(2, 4) = (1 + 2/3) / 2; user 3: P@2 / min(3, 4) = (1/2) / 3
    "map@4": [(1 + 2 / 3) / 2, 0.0, (1 / 2) / 3],
    "hr@4": [1.0, 0.0, 1.0],
    # first hits at ranks 1 and 2
    "mrr@4": [1.0, 0.0, 1 / 2],
}


def test_hand_computed_ranking_metrics() -> None:
    result = ranking_metrics(TOP, RELEVANT, 4)
    assert isinstance(result, RankingMetrics)
    assert result.k == 4
    assert result.n_excluded == 1
    np.testing.assert_array_equal(result.users, [0, 1, 3])
    assert list(result.per_user.columns) == list(EXPECTED)
    for name, values in EXPECTED.items():
        np.testing.assert_allclose(result.per_user[name].to_numpy(), values, rtol=0, atol=1e-12)
    mean = result.mean
    assert mean["users"] == 3
    for name, values in EXPECTED.items():
        assert mean[name] == pytest.approx(sum(values) / 3, abs=1e-12)


def test_hits_at_k_marks_relevant_cells_only() -> None:
    hits = hits_at_k(TOP, RELEVANT)
    expected = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(hits, expected)
    assert hits.dtype == bool


def test_hits_ignore_explicit_zeros_and_accept_non_canonical_csr() -> None:
    # row 0 stores item 1 twice (duplicates) and item 3 with an explicit 0, indices unsorted
    matrix = sp.csr_matrix((np.array([1.0, 0.0, 1.0, 1.0]), np.array([4, 3, 1, 1]), np.array([0, 4, 4])),
                           shape=(2, 5))
    assert not matrix.has_canonical_format
    hits = hits_at_k(np.array([[3, 1, 4], [1, -1, 0]]), matrix)
    np.testing.assert_array_equal(hits, [[False, True, True], [False, False, False]])
    # |relevant| of row 0 is 2 (items 1 and 4), so recall@3 = 2 / 2; row 1 is excluded
    result = ranking_metrics(np.array([[3, 1, 4], [1, -1, 0]]), matrix, 3)
    assert result.per_user["recall@3"].tolist() == [1.0]
    assert result.n_excluded == 1


def test_precision_denominator_is_k_even_for_short_lists() -> None:
    # two columns given, k = 4: missing positions are empty slots; 1 hit -> 1/4
    result = ranking_metrics(np.array([[3, 0]]), csr([[0]], 5), 4)
    assert result.per_user["precision@4"].iloc[0] == 0.25
    # hit at rank 2, |R| = 1: ndcg = (1/log2 3) / 1, map = (1/2) / 1, mrr = 1/2
    assert result.per_user["ndcg@4"].iloc[0] == pytest.approx(1 / L3)
    assert result.per_user["map@4"].iloc[0] == pytest.approx(0.5)
    assert result.per_user["mrr@4"].iloc[0] == pytest.approx(0.5)


def test_only_the_first_k_columns_count() -> None:
    # the hit sits at rank 3, outside k = 2
    result = ranking_metrics(np.array([[1, 2, 0]]), csr([[0]], 3), 2)
    assert result.mean["hr@2"] == 0.0
    assert result.mean["precision@2"] == 0.0


def test_ideal_dcg_and_ap_use_min_of_relevant_and_k() -> None:
    # five relevant items, k = 2, hits at ranks 1 and 2: a perfect list at this k
    result = ranking_metrics(np.array([[0, 1]]), csr([[0, 1, 2, 3, 4]], 6), 2)
    assert result.per_user["ndcg@2"].iloc[0] == pytest.approx(1.0)
    assert result.per_user["map@2"].iloc[0] == pytest.approx(1.0)  # (1 + 1) / min(5, 2)
    assert result.per_user["recall@2"].iloc[0] == pytest.approx(2 / 5)


def test_metric_selection_and_errors() -> None:
    result = ranking_metrics(TOP, RELEVANT, 2, metrics=("ndcg", "hr"))
    assert list(result.per_user.columns) == ["ndcg@2", "hr@2"]
    with pytest.raises(ValueError, match="unknown metrics"):
        ranking_metrics(TOP, RELEVANT, 2, metrics=("f1",))
    with pytest.raises(ValueError, match="k must be"):
        ranking_metrics(TOP, RELEVANT, 0)
    with pytest.raises(ValueError, match="more than once"):
        ranking_metrics(np.array([[1, 1]]), csr([[1]], 3), 2)
    with pytest.raises(ValueError, match="only 3 items"):
        ranking_metrics(np.array([[3, 1]]), csr([[1]], 3), 2)
    with pytest.raises(ValueError, match="rows"):
        ranking_metrics(TOP[:2], RELEVANT, 2)


def test_no_evaluable_user_gives_nan_means() -> None:
    result = ranking_metrics(np.array([[0, 1]]), csr([[]], 3), 2)
    assert result.n_excluded == 1
    assert result.mean["users"] == 0
    assert math.isnan(result.mean["ndcg@2"])


def random_case(seed: int, n_users: int = 40, n_items: int = 30, density: float = 0.15):
    rng = np.random.default_rng(seed)
    scores = rng.random((n_users, n_items))  # continuous: no ties
    truth = rng.random((n_users, n_items)) < density
    truth[0] = False  # one user without relevant items
    return scores, truth


@pytest.mark.parametrize("k", [1, 5, 12])
def test_agrees_with_sklearn_ndcg_precision_recall(k: int) -> None:
    scores, truth = random_case(k)
    result = ranking_metrics(top_k(scores, k), sp.csr_matrix(truth), k)
    users = np.flatnonzero(truth.any(axis=1))
    assert result.n_excluded == len(truth) - users.size
    np.testing.assert_array_equal(result.users, users)
    top = top_k(scores, k)
    for position, user in enumerate(users):
        # sklearn's IDCG sorts the true gains: for binary relevance that is min(|R|, k) ones
        expected_ndcg = ndcg_score(truth[user : user + 1], scores[user : user + 1], k=k)
        assert result.per_user[f"ndcg@{k}"].iloc[position] == pytest.approx(expected_ndcg, abs=1e-12)
        predicted = np.zeros(truth.shape[1], dtype=bool)
        predicted[top[user]] = True  # exactly k items recommended: precision over k applies
        assert result.per_user[f"precision@{k}"].iloc[position] == pytest.approx(
            precision_score(truth[user], predicted, zero_division=0), abs=1e-12)
        assert result.per_user[f"recall@{k}"].iloc[position] == pytest.approx(
            recall_score(truth[user], predicted), abs=1e-12)


# ------------------------------------------------------------------------------------------------
# AUC
# ------------------------------------------------------------------------------------------------


def test_auc_hand_computed_with_ties() -> None:
    # positives score 0.8 and 0.4, negatives 0.4 and 0.1: pairs (0.8 > 0.4), (0.8 > 0.1),
    # (0.4 = 0.4 counts 1/2), (0.4 > 0.1) -> 3.5 / 4
    assert auc_score([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)
    assert auc_score([True, False], [0.0, 1.0]) == 0.0


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.random(500) < 0.3
    y_score = rng.integers(0, 7, 500).astype(float)  # many ties
    assert auc_score(y_true, y_score) == pytest.approx(roc_auc_score(y_true, y_score), abs=1e-12)


def test_auc_errors() -> None:
    with pytest.raises(ValueError, match="one class"):
        auc_score([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 values but y_score has 2"):
        auc_score([1, 0, 1], [0.1, 0.2])


def test_per_user_auc_hand_computed() -> None:
    scores = np.array([[0.8, 0.4, 0.4, 0.1, 0.9],
                       [0.1, 0.2, 0.3, 0.4, 0.5],
                       [0.5, 0.5, 0.5, 0.5, 0.5]])
    relevant = csr([[0, 2], [], [0, 1]], 5)
    exclude = csr([[4], [], [2, 3, 4]], 5)
    # row 0: item 4 (0.9) excluded -> the 3.5 / 4 case above; row 1: no positive -> NaN;
    # row 2: items 2, 3, 4 excluded leave only positives -> no negative -> NaN
    auc = per_user_auc(scores, relevant, exclude)
    assert auc[0] == pytest.approx(3.5 / 4)
    assert np.isnan(auc[1]) and np.isnan(auc[2])
    # without the exclusion item 4 is a negative above both positives: (3.5 + 0) / 6
    assert per_user_auc(scores, relevant)[0] == pytest.approx(3.5 / 6)
    # constant scores: every pair tied
    assert per_user_auc(scores, relevant)[2] == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_user_auc_matches_sklearn(dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "_BATCH_CELLS", 7 * 25)  # several batches of rows
    rng = np.random.default_rng(4)
    scores = np.round(rng.random((30, 25)), 1).astype(dtype)  # ties on purpose
    truth = rng.random((30, 25)) < 0.2
    seen = (rng.random((30, 25)) < 0.2) & ~truth
    truth[1], truth[2] = False, True
    original = scores.copy()
    auc = per_user_auc(scores, sp.csr_matrix(truth), sp.csr_matrix(seen))
    np.testing.assert_array_equal(scores, original)  # input untouched
    for user in range(30):
        keep = ~seen[user]
        labels = truth[user][keep]
        if labels.all() or not labels.any():
            assert np.isnan(auc[user])
        else:
            assert auc[user] == pytest.approx(roc_auc_score(labels, scores[user][keep]), abs=1e-12)


def test_per_user_auc_rejects_nan_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="NaN"):
        per_user_auc(np.array([[0.1, np.nan]]), csr([[0]], 2))
    with pytest.raises(ValueError, match="shape"):
        per_user_auc(np.zeros((2, 3)), csr([[0]], 3))


# ------------------------------------------------------------------------------------------------
# beyond accuracy
# ------------------------------------------------------------------------------------------------


def test_catalog_coverage() -> None:
    # items {0, 1} of 4 were recommended to someone
    assert catalog_coverage(np.array([[0, 1], [1, -1]]), 4) == 0.5


def test_novelty() -> None:
    counts = np.array([10, 5, 0, 1])
    # user 0: (-log2(10/10) - log2(5/10)) / 2 = (0 + 1) / 2; user 1: -log2(1/10) (count 0 clipped to 1)
    expected = (0.5 + math.log2(10)) / 2
    assert novelty(np.array([[0, 1], [2, -1]]), counts, 10) == pytest.approx(expected)
    with pytest.raises(ValueError, match="exceeds n_users"):
        novelty(np.array([[0]]), np.array([11]), 10)


def test_average_popularity() -> None:
    # user 0: (10 + 5) / 2 = 7.5; user 1: 0 / 1; an empty list is left out; ARP = 3.75
    top = np.array([[0, 1], [2, -1], [-1, -1]])
    assert average_popularity(top, np.array([10, 5, 0, 1])) == pytest.approx(3.75)


def test_gini_index() -> None:
    # counts item0 2, item1 1, items 2-3 0 -> sorted [0, 0, 1, 2], weights 2j - n - 1 = [-3, -1, 1, 3]
    # G = (0 + 0 + 1 + 6) / (4 * 3) = 7/12
    assert gini_index(np.array([[0, 1], [0, -1]]), 4) == pytest.approx(7 / 12)
    assert gini_index(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)  # equal exposure
    assert gini_index(np.array([[0], [0]]), 4) == pytest.approx(3 / 4)  # one item: (n - 1) / n
    assert math.isnan(gini_index(np.full((2, 2), -1), 4))


FEATURES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("to_features", [np.asarray, sp.csr_matrix])
def test_intra_list_diversity_hand_computed(to_features) -> None:
    top = np.array([[0, 1, 2], [0, 3, -1], [1, -1, -1]])
    # list 0: cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/sqrt 2 -> mean distance (1 + 2 (1 - 1/sqrt 2)) / 3
    # list 1: item 3 has no features, similarity 0 -> distance 1; list 2: one item, left out
    expected = ((3 - math.sqrt(2)) / 3 + 1.0) / 2
    assert intra_list_diversity(top, to_features(FEATURES)) == pytest.approx(expected)


def test_intra_list_diversity_matches_pairwise_loop() -> None:
    rng = np.random.default_rng(5)
    features = rng.standard_normal((50, 8))
    top = np.stack([rng.choice(50, 6, replace=False) for _ in range(20)])
    top[3, 4:] = -1
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    means = []
    for row in top:
        items = row[row >= 0]
        sims = unit[items] @ unit[items].T
        n = len(items)
        means.append((1 - sims[~np.eye(n, dtype=bool)]).mean())
    assert intra_list_diversity(top, features) == pytest.approx(np.mean(means), abs=1e-12)
    assert intra_list_diversity(top, sp.csr_matrix(features)) == pytest.approx(np.mean(means), abs=1e-12)


# ------------------------------------------------------------------------------------------------
# sampled protocol
# ------------------------------------------------------------------------------------------------


def test_sampled_metrics_hand_computed() -> None:
    pos = np.array([0.9, 0.5, 0.3])
    neg = np.array([[0.1, 0.2, 0.3], [0.6, 0.5, 0.1], [0.3, 0.3, 0.3]])
    # ranks: user 0: 0; user 1: 1 higher + 1 tie = 2; user 2: 3 ties = 3
    out = sampled_ranking_metrics(pos, neg, 2)
    assert set(out) == {"sampled_hr@2", "sampled_ndcg@2", "users"}
    assert out["users"] == 3
    assert out["sampled_hr@2"] == pytest.approx(1 / 3)
    assert out["sampled_ndcg@2"] == pytest.approx(1 / 3)  # 1/log2(0 + 2) = 1 for user 0 only
    out = sampled_ranking_metrics(pos, neg, 3)
    assert out["sampled_hr@3"] == pytest.approx(2 / 3)
    assert out["sampled_ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / 3)  # user 1 at rank 2


def test_sampled_metrics_give_a_constant_scorer_nothing() -> None:
    out = sampled_ranking_metrics(np.ones(4), np.ones((4, 99)), 10)
    assert out["sampled_hr@10"] == 0.0 and out["sampled_ndcg@10"] == 0.0
    with pytest.raises(ValueError, match="neg_scores"):
        sampled_ranking_metrics(np.ones(4), np.ones((3, 99)), 10)
