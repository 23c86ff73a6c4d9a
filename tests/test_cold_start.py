"""Tests of cold-start models: content vectors, content and hybrid scores, group and category popularity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.hybrid import (
    AttributeHybrid,
    CategoryPopularity,
    ContentRecommender,
    GroupPopularity,
    item_content_matrix,
    restrict_items,
    restrict_matrix,
)

ITEMS = pd.DataFrame({
    "item_id": [10, 11, 12, 13],
    "title": ["red running shoe", "blue running shoe", "red wool hat", "green wool hat"],
    "category": ["shoes", "shoes", "hats", "hats"], "brand": ["a", "a", "b", "c"],
    "price": [10.0, 20.0, 5.0, 8.0]})


def matrix(dense, items=(10, 11, 12, 13)):
    dense = np.asarray(dense, dtype=np.float32)
    return Interactions(sp.csr_matrix(dense), IdIndex(np.arange(dense.shape[0]), "user_id"),
                        IdIndex(list(items), "item_id"))


def test_item_content_matrix_rows_and_similarity():
    index = IdIndex([13, 12, 11, 10], "item_id")
    features = item_content_matrix(ITEMS, index).toarray()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0)
    sims = features @ features.T
    # item 11 (row 2) is closest to item 10 (row 3): same category, brand and title words
    assert np.argsort(sims[2])[-2] == 3
    with pytest.raises(KeyError, match="not in the item table"):
        item_content_matrix(ITEMS, IdIndex([10, 99], "item_id"))


def test_content_scores_are_cosines():
    features = sp.csr_matrix(np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 1, 1]], dtype=float))
    train = matrix([[2, 0, 0, 0], [0, 0, 0, 0]])
    scores = ContentRecommender(features).fit(train).score([0, 1])
    dense = features.toarray() / np.linalg.norm(features.toarray(), axis=1, keepdims=True)
    profile = 2 * dense[0]
    expected = dense @ profile / np.linalg.norm(profile)
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)
    assert (scores[1] == 0).all()
    with pytest.raises(ValueError, match="rows"):
        ContentRecommender(features[:2]).fit(train)


class FakeFactors(Recommender):
    def __init__(self, user_factors, item_factors):
        super().__init__()
        self.uf, self.itf = np.asarray(user_factors, float), np.asarray(item_factors, float)

    def _fit(self, train):
        self.user_factors_, self.item_factors_ = self.uf, self.itf.copy()

    def score(self, user_indices):
        return self.user_factors_[user_indices] @ self.item_factors_.T


def test_attribute_hybrid_predicts_factors_of_new_items_by_ridge():
    features = np.array([[1, 0], [0, 1], [1, 1], [1, 0.5]], dtype=float)
    item_factors = np.array([[1.0], [-1.0], [0.0], [99.0]])
    train = matrix([[1, 1, 1, 0], [1, 0, 0, 0]])  # item 3 has no users: its factor is predicted
    model = AttributeHybrid(FakeFactors([[1.0], [2.0]], item_factors), sp.csr_matrix(features),
                            content_weight=0.0, l2=0.5).fit(train)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    x, t = unit[:3], item_factors[:3, 0]
    xc, tc = x - x.mean(0), t - t.mean()
    w = np.linalg.solve(xc.T @ xc + 0.5 * np.eye(2), xc.T @ tc)
    expected = (unit[3] - x.mean(0)) @ w + t.mean()
    assert model.item_factors_[3, 0] == pytest.approx(expected, rel=1e-5)
    assert model.cold_items_.tolist() == [3]
    scores = model.score([0])
    np.testing.assert_allclose(scores.mean(), 0.0, atol=1e-6)  # standardised per user
    with pytest.raises(ValueError, match="content_weight"):
        AttributeHybrid(FakeFactors([[1.0]], item_factors), features, content_weight=2.0)


def test_group_popularity_hand_case():
    users = pd.DataFrame({"user_id": [0, 1, 2, 3], "gender": ["F", "F", "M", "M"], "age": [20, 22, 50, 52]})
    train = matrix([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    model = GroupPopularity(users, columns=("gender", "age"), shrinkage=1.0).fit(train)
    global_share = np.array([2, 1, 1, 0]) / 3
    np.testing.assert_allclose(model.score([0])[0], (np.array([2, 1, 0, 0]) + global_share) / 3, rtol=1e-6)
    # user 3 (M, 50s) has no history but belongs to user 2's group
    np.testing.assert_allclose(model.score([3])[0], (np.array([0, 0, 1, 0]) + global_share) / 2, rtol=1e-6)
    with pytest.raises(KeyError, match="city"):
        GroupPopularity(users, columns=("city",))


def test_category_popularity_and_restriction():
    train = matrix([[1, 1, 0, 0], [1, 0, 1, 0]])
    model = CategoryPopularity(["s", "s", "h", "h"]).fit(train)
    # shoes: items 10 (2 users), 11 (1) -> 1.5; hats: only item 12 is warm (1 user) -> 1.0
    np.testing.assert_allclose(model.score([0])[0], [1.5, 1.5, 1.0, 1.0])
    allowed = np.array([False, False, True, True])
    restricted = restrict_items(model, allowed)
    scores = restricted.score([0])
    assert np.isneginf(scores[0, :2]).all() and (scores[0, 2:] == 1.0).all()
    assert restricted.recommend_indices([0], k=3).tolist() == [[2, 3, -1]]
    assert restrict_matrix(train, allowed).matrix.toarray().tolist() == [[0, 0, 0, 0], [0, 0, 1, 0]]
    with pytest.raises(ValueError, match="mask"):
        restrict_items(model, np.ones(3, bool))
