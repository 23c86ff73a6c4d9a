"""Tests of recsys_utils.evaluation.synthetic: hand-computed cases, scipy/sklearn references, errors."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from recsys_utils.evaluation import synthetic as sy


def _random_users(n, n_items=60, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n, n_items)) < density).astype(np.float32))


def test_popularity_js_matches_scipy():
    a, b = _random_users(50, seed=1), _random_users(40, seed=2)
    p, q = np.asarray(a.sum(0)).ravel(), np.asarray(b.sum(0)).ravel()
    expected = jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2
    assert sy.popularity_js(a, b) == pytest.approx(expected, rel=1e-7)
    assert sy.popularity_js(a, a) == pytest.approx(0.0, abs=1e-12)


def test_popularity_js_disjoint_supports_is_one():
    a = sp.csr_matrix(np.array([[1, 1, 0, 0]]))
    b = sp.csr_matrix(np.array([[0, 0, 1, 1]]))
    assert sy.popularity_js(a, b) == pytest.approx(1.0)


def test_activity_and_length_ks_match_scipy():
    a, b = _random_users(30, density=0.05, seed=3), _random_users(30, density=0.2, seed=4)
    expected = stats.ks_2samp(np.diff(a.indptr), np.diff(b.indptr)).statistic
    assert sy.activity_ks(a, b) == pytest.approx(expected)
    assert sy.length_ks([1, 2, 3], [1, 2, 3]) == 0.0
    with pytest.raises(ValueError):
        sy.length_ks([], [1])


def test_cooccurrence_correlation_hand_case():
    # items 0 and 1 always together in the reference; the sample breaks the pairs
    ref = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=float))
    assert sy.cooccurrence_correlation(ref, ref, top=3) == pytest.approx(1.0)
    broken = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=float))
    assert sy.cooccurrence_correlation(ref, broken, top=3) < 0


def test_detection_auc_separates_and_not():
    same_a, same_b = _random_users(200, seed=5), _random_users(200, seed=6)
    assert sy.detection_auc(same_a, same_b) < 0.65
    # a sample whose users are twice as active is trivially detected
    busy = _random_users(200, density=0.3, seed=7)
    assert sy.detection_auc(same_a, busy) > 0.9


def test_exact_copies_and_min_items():
    train = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 1]], dtype=float))
    sample = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]], dtype=float))
    assert sy.exact_copies(train, sample) == 2  # the one-item row is not counted
    assert sy.exact_copies(train, sample, min_items=1) == 3


def test_nearest_neighbour_jaccard_brute_force():
    train, sample = _random_users(23, seed=8).toarray() > 0, _random_users(17, seed=9).toarray() > 0
    inter = sample.astype(int) @ train.T.astype(int)
    union = sample.sum(1)[:, None] + train.sum(1)[None, :] - inter
    expected = np.where(union > 0, inter / np.maximum(union, 1), 0).max(axis=1)
    got = sy.nearest_neighbour_jaccard(sp.csr_matrix(train), sp.csr_matrix(sample), block=5)
    np.testing.assert_allclose(got, expected)


def test_item_coverage_and_distinct_share():
    assert sy.item_coverage(sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 1]]))) == 2
    seq = np.array([[-1, 1, 2], [-1, 1, 2], [3, 4, 5], [-1, -1, 7]])
    assert sy.distinct_share(seq) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        sy.distinct_share(np.empty((0, 3)))


def test_plausibility_hand_case():
    log_choice = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    sample = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=float))
    got = sy.plausibility(sample, log_choice)
    assert got[0] == pytest.approx((np.log(0.5) + np.log(0.25)) / 2)
    assert got[1] == pytest.approx(np.log(0.8))
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="log_choice"):
        sy.plausibility(sample, log_choice[:, :2])


def test_fold_in_split_partitions_cells():
    x = _random_users(40, seed=10)
    hist, target = sy.fold_in_split(x, holdout=0.3, seed=1)
    assert (hist.matrix + target.matrix - x).nnz == 0
    assert hist.matrix.multiply(target.matrix).nnz == 0
    with pytest.raises(ValueError):
        sy.fold_in_split(x, holdout=1.5)


def test_tstr_ndcg_learns_pairs():
    # items come in pairs (2k, 2k+1); a model fitted on such users recommends the partner item
    rng = np.random.default_rng(0)
    n_items = 20
    rows = []
    for _ in range(300):
        pairs = rng.choice(n_items // 2, 3, replace=False)
        row = np.zeros(n_items)
        row[2 * pairs] = 1
        row[2 * pairs + 1] = 1
        rows.append(row)
    x = sp.csr_matrix(np.array(rows))
    hist, target = sy.fold_in_split(x[200:], holdout=0.3, seed=0)
    structured = sy.tstr_ndcg(x[:200], hist, target, l2=1.0)
    shuffled = sy.tstr_ndcg(sp.csr_matrix(rng.permuted(x[:200].toarray(), axis=0)), hist, target, l2=1.0)
    assert structured > shuffled + 0.2


def test_kendall_tau_matches_scipy():
    a = pd.Series({"m1": 1.0, "m2": 2.0, "m3": 3.0, "m4": 0.5})
    b = pd.Series({"m4": 0.1, "m3": 9.0, "m1": 2.0, "m2": 1.0})  # different order of the index
    expected = stats.kendalltau([1.0, 2.0, 3.0, 0.5], [2.0, 1.0, 9.0, 0.1]).statistic
    assert sy.kendall_tau(a, b) == pytest.approx(expected)


def test_pick_rates():
    # arm 1 clicks surely, arm 0 never: every trial picks arm 1
    p0, p1 = np.zeros((40, 3)), np.ones((40, 3))
    assert sy.ab_pick_rate([p0, p1], n_per_arm=10, best=1, trials=50) == 1.0
    with pytest.raises(ValueError):
        sy.ab_pick_rate([p0, p1], n_per_arm=30, best=1)
    per_user = np.c_[np.zeros(30), np.ones(30)]
    assert sy.offline_pick_rate(per_user, best=1, trials=100) == 1.0


def test_quality_report_of_real_split_and_errors():
    x = _random_users(200, seed=11)
    row = sy.quality_report(x[:100], x[100:])
    assert row["exact_copies"] == 0 and 0 <= row["popularity_js"] < 0.1
    with pytest.raises(ValueError, match="items"):
        sy.popularity_js(x, x[:, :10])
    with pytest.raises(ValueError, match="2-D"):
        sy.as_binary(np.zeros(3))
