"""Tests of multi-channel recall: merging, candidate generation with provenance, recall."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.pipeline.recall import (
    RecentCategories,
    SimilarToRecent,
    candidate_recall,
    generate_candidates,
    launched_items,
    merge_lists,
    recent_interactions,
)


class Fixed(Recommender):
    """A channel with a fixed score matrix (rows: users)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = np.asarray(scores, dtype=np.float32)

    def _fit(self, train):
        pass

    def score(self, user_indices):
        return self.scores[np.asarray(user_indices)].copy()


def matrix(dense):
    dense = np.asarray(dense, dtype=np.float32)
    return Interactions(sp.csr_matrix(dense), IdIndex(np.arange(dense.shape[0]) + 100, "user_id"),
                        IdIndex(np.arange(dense.shape[1]) + 500, "item_id"))


def test_merge_lists_hand_case():
    a = np.array([[1, 2, 3]])
    b = np.array([[3, 4, 5]])
    items, bits = merge_lists([a, b], np.array([1.0, 1.0]), 4)
    assert items.tolist() == [[1, 3, 2, 4]]
    assert bits.tolist() == [[1, 3, 1, 2]]


def test_merge_lists_quotas_and_padding():
    a = np.array([[1, 2, 3, -1], [7, -1, -1, -1]])
    b = np.array([[4, 5, 6, 1], [-1, -1, -1, -1]])
    items, bits = merge_lists([a, b], np.array([2.0, 1.0]), 5)
    # channel a gets priorities 0.5, 1, 1.5; b gets 1, 2, 3, 4 -> a, a, b, a, b
    assert items[0].tolist() == [1, 2, 4, 3, 5]
    assert bits[0, 0] == 3  # item 1 proposed by both
    assert items[1].tolist() == [7, -1, -1, -1, -1]


def test_merge_lists_matches_brute_force():
    rng = np.random.default_rng(0)
    lists = [np.stack([rng.permutation(30)[:10] for _ in range(20)]) for _ in range(3)]
    quotas = np.array([3.0, 1.0, 2.0])
    items, bits = merge_lists(lists, quotas, 12)
    for row in range(20):
        best = {}
        for c, top in enumerate(lists):
            for r, item in enumerate(top[row]):
                prio = (r + 1) / quotas[c] + c * 1e-9
                old = best.get(item, (np.inf, 0))
                best[item] = (min(old[0], prio), old[1] | (1 << c))
        expected = sorted(best, key=lambda i: best[i][0])[:12]
        assert items[row].tolist() == expected
        assert bits[row].tolist() == [best[i][1] for i in expected]


def test_generate_candidates_excludes_seen_and_unavailable_and_records_provenance():
    train = matrix([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]])
    s1 = np.array([[9, 8, 7, 6, 5, 4], [1, 2, 3, 4, 5, 6]], dtype=float)
    s2 = np.array([[0, 1, 2, 3, 4, 5], [6, 5, 4, 3, 2, 1]], dtype=float)
    s2[0, 5] = -np.inf  # channel 2 does not speak for item 5 of user 0
    channels = {"a": Fixed(s1).fit(train), "b": Fixed(s2).fit(train)}
    available = np.array([True, True, True, False, True, True])
    cands = generate_candidates(channels, train, [0, 1], n=3, available=available)
    # user 0 saw item 0, item 3 is not launched
    assert cands.channel_items["a"][0].tolist() == [1, 2, 4]
    assert cands.channel_items["b"][0].tolist() == [4, 2, 1]
    assert cands.items[0].tolist() == [1, 4, 2]
    frame = cands.frame[cands.frame.user_index == 0].set_index("item_index")
    assert frame.loc[1, "sources"] == 3 and frame.loc[1, "n_sources"] == 2
    assert frame.loc[1, "score_a"] == 8 and frame.loc[1, "rank_b"] == 3 and frame.loc[2, "rank_a"] == 2
    assert not (cands.items[1] == 5).any() and not (cands.items == 3).any()
    assert set(cands.source_share().index) == {"a", "b"}


def test_channel_without_score_leaves_pad_and_nan():
    train = matrix([[0, 0, 0]])
    s = np.array([[1.0, -np.inf, -np.inf]])
    cands = generate_candidates({"only": Fixed(s).fit(train)}, train, [0], n=3)
    assert cands.channel_items["only"][0].tolist() == [0, -1, -1]
    assert len(cands.frame) == 1


def test_candidate_recall_hand_case():
    train = matrix([[0, 0, 0, 0], [0, 0, 0, 0]])
    s1 = np.array([[4, 3, 2, 1], [4, 3, 2, 1]], dtype=float)
    s2 = np.array([[1, 2, 3, 4], [1, 2, 3, 4]], dtype=float)
    cands = generate_candidates({"x": Fixed(s1).fit(train), "y": Fixed(s2).fit(train)}, train, [0, 1], n=2)
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 1], [1, 0, 0, 0]]))
    table = candidate_recall(cands, relevant)
    assert table.loc["x", "recall@2"] == pytest.approx((0 + 1) / 2)
    assert table.loc["y", "recall@2"] == pytest.approx((1 + 0) / 2)
    # merged: items 0 and 3 for both users
    assert table.loc["merged", "recall@2"] == pytest.approx((0.5 + 1) / 2)
    with pytest.raises(ValueError, match="recall@3"):
        candidate_recall(cands, relevant, ns=(3,))


def test_generate_candidates_errors():
    train = matrix([[0, 1]])
    ok = Fixed([[1.0, 2.0]]).fit(train)
    with pytest.raises(KeyError, match="unknown channels"):
        generate_candidates({"a": ok}, train, [0], n=1, quotas={"b": 1})
    with pytest.raises(ValueError, match="n must be"):
        generate_candidates({"a": ok}, train, [0], n=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        generate_candidates({"a": Fixed([[1.0, 2.0]])}, train, [0], n=1)
    with pytest.raises(ValueError, match="channel name"):
        generate_candidates({"a b": ok}, train, [0], n=1)
    with pytest.raises(ValueError, match="available"):
        generate_candidates({"a": ok}, train, [0], n=1, available=np.ones(3, bool))


def test_recent_categories_hand_case():
    # user 0: weight 3 in category A (items 0, 1), 1 in B (item 2); user 1: nothing
    train = matrix([[2, 1, 1, 0], [0, 0, 0, 0]])
    model = RecentCategories(np.array(["A", "A", "B", "C"])).fit(train)
    scores = model.score([0, 1])
    # item shares within category: counts + 1 -> A: 2/4, 2/4; B: 2/2
    np.testing.assert_allclose(scores[0, :3], [0.75 * 0.5, 0.75 * 0.5, 0.25 * 1.0], rtol=1e-6)
    assert np.isneginf(scores[0, 3]) and np.isneginf(scores[1]).all()
    with pytest.raises(ValueError, match="item categories"):
        RecentCategories(np.array(["A"])).fit(train)


def test_similar_to_recent_is_recent_vector_times_similarity():
    sim = sp.csr_matrix(np.array([[0, 0.5, 0], [0.5, 0, 0.2], [0, 0.2, 0]]))
    recent = matrix([[1, 0, 0], [0, 0, 0]])
    scores = SimilarToRecent(sim).fit(recent).score([0, 1])
    assert scores[0, 1] == pytest.approx(0.5)
    assert np.isneginf(scores[0, [0, 2]]).all() and np.isneginf(scores[1]).all()


def test_recent_interactions_window_and_launched_items():
    users, items = IdIndex([1, 2], "user_id"), IdIndex([10, 11], "item_id")
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 11],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-09", "2024-01-10"])})
    recent = recent_interactions(frame, "2024-01-10", 7, users, items, weight=None)
    assert recent.matrix.toarray().tolist() == [[0, 1], [0, 0]]
    with pytest.raises(KeyError, match="timestamp"):
        recent_interactions(frame.drop(columns="timestamp"), "2024-01-10", 7, users, items)
    table = pd.DataFrame({"item_id": [11, 10], "launch_time": pd.to_datetime(["2024-02-01", "2023-01-01"])})
    assert launched_items(table, items, "2024-01-10").tolist() == [True, False]
