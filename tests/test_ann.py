"""The ANN wrapper (recsys_utils.pipeline.ann) and the ANN recall channel: exhaustive search is exact,
HNSW and IVF find nearly all true neighbours, the channel speaks the recall interface."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.als import ALS
from recsys_utils.pipeline import recall as R
from recsys_utils.pipeline.ann import ANNIndex, clustered_vectors, recall_vs_exact, time_queries
from recsys_utils.pipeline.ann_recall import ANNRecall


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    return items, queries


def brute_force(items, queries, k):
    scores = queries.astype(np.float64) @ items.T.astype(np.float64)
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def test_exhaustive_search_returns_the_exact_top_k(data):
    items, queries = data
    index = ANNIndex("exact").build(items)
    scores, ids = index.search(queries, k=10)
    expected_scores, expected_ids = brute_force(items, queries, 10)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-4)
    assert index.build_seconds_ >= 0 and recall_vs_exact(ids, expected_ids) == 1.0
    # k above the catalogue pads with -1 / -inf
    small = ANNIndex("exact").build(items[:4])
    scores, ids = small.search(queries[:2], k=6)
    assert (ids[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
    assert sorted(ids[0, :4]) == [0, 1, 2, 3]


def test_hnsw_and_ivf_find_most_true_neighbours(data):
    items, queries = data
    _, exact = brute_force(items, queries, 10)
    hnsw = ANNIndex("hnsw", m=16, ef_construction=80, ef_search=128).build(items)
    assert recall_vs_exact(hnsw.search(queries, 10)[1], exact) >= 0.9
    low = recall_vs_exact(hnsw.set_search(ef_search=10).search(queries, 10)[1], exact)
    assert low <= recall_vs_exact(hnsw.set_search(ef_search=256).search(queries, 10)[1], exact)
    ivf = ANNIndex("ivf", nlist=32, nprobe=32).build(items)  # every cell probed: exact
    np.testing.assert_array_equal(ivf.search(queries, 10)[1], exact)
    assert recall_vs_exact(ivf.set_search(nprobe=2).search(queries, 10)[1], exact) < 1.0
    seconds, ids = time_queries(hnsw, queries[:5], k=10)
    assert seconds > 0 and ids.shape == (5, 10)


def test_recall_vs_exact_by_hand_and_bad_inputs(data):
    approx = np.array([[1, 2, 3], [4, 5, -1]])
    exact = np.array([[3, 2, 9], [6, 7, 8]])
    assert recall_vs_exact(approx, exact) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match="mode"):
        ANNIndex("kd-tree")
    with pytest.raises(ValueError, match="ef_search"):
        ANNIndex("hnsw", ef_search=0)
    with pytest.raises(RuntimeError, match="build"):
        ANNIndex().search(data[1])
    with pytest.raises(ValueError, match="dimension"):
        ANNIndex("exact").build(data[0]).search(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ANNIndex("exact").build(np.full((3, 2), np.nan))
    vectors = clustered_vectors(500, dim=8, n_clusters=5, seed=1)
    assert vectors.shape == (500, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_ann_recall_channel_proposes_the_exact_top_items_of_its_model():
    rng = np.random.default_rng(1)
    matrix = sp.csr_matrix((rng.random((30, 40)) < 0.2).astype(np.float32))
    train = Interactions(matrix, IdIndex(np.arange(30)), IdIndex(np.arange(40)))
    als = ALS(dim=4, epochs=3, seed=0).fit(train)
    channel = ANNRecall(als, ANNIndex("exact"), n=10).fit(train)
    scores = channel.score(np.arange(5))
    expected = als.user_factors_[:5] @ als.item_factors_.T
    top = np.argsort(-expected, axis=1)[:, :10]
    assert (np.isfinite(scores).sum(1) == 10).all()
    np.testing.assert_array_equal(np.sort(np.argsort(-scores, axis=1)[:, :10]), np.sort(top))
    candidates = R.generate_candidates({"ann": channel, "als": als}, train, np.arange(30), n=5)
    proposed = candidates.channel_items["ann"]
    assert all(set(row[row >= 0]) <= set(np.argsort(-s)[:10]) for row, s in zip(proposed, als.score(np.arange(30)),
                                                                                  strict=True))
    with pytest.raises(TypeError, match="vectors"):
        ANNRecall(R.SimilarToRecent(sp.eye(40))).fit(train)
