import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from recsys_utils.data.interactions import Interactions
from recsys_utils.models import EASE, PopularityRecommender, RandomRecommender


@pytest.fixture
def train():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 40, 400)
    cols = rng.integers(0, 15, 400)
    return Interactions.from_frame(pd.DataFrame({"user_id": rows, "item_id": cols}))


def test_popularity_counts_distinct_users(train):
    model = PopularityRecommender().fit(train)
    np.testing.assert_array_equal(model.score([0])[0], train.item_counts())


def test_ease_equals_ridge_per_item(train):
    """EASE's column j is ridge regression of item j on all other items (Steck 2019, eq. 3-8)."""
    l2 = 7.0
    model = EASE(l2=l2).fit(train)
    x = train.binary().toarray()
    for j in range(3):
        others = np.delete(np.arange(train.n_items), j)
        ridge = Ridge(alpha=l2, fit_intercept=False).fit(x[:, others], x[:, j])
        np.testing.assert_allclose(model.weights_[others, j], ridge.coef_, atol=1e-5)
        assert model.weights_[j, j] == 0


def test_recommend_excludes_seen_and_ranks(train):
    model = EASE(l2=10).fit(train)
    users = train.users.ids[:5]
    recs = model.recommend(users, k=4)
    seen = set(zip(*train.matrix.nonzero(), strict=True))
    for row in recs.itertuples():
        u = train.users.to_index([row.user_id])[0]
        i = train.items.to_index([row.item_id])[0]
        assert (u, i) not in seen
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == sorted(r)).all()
    assert (recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_random_is_seeded_and_batch_independent(train):
    model = RandomRecommender(seed=5).fit(train)
    together = model.score(np.array([1, 2, 3]))
    alone = model.score(np.array([2]))
    np.testing.assert_array_equal(together[1], alone[0])
    assert not np.array_equal(together[0], together[1])
    other = RandomRecommender(seed=6).fit(train).score(np.array([2]))
    assert not np.array_equal(alone, other)
    assert ((together >= 0) & (together < 1)).all()


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        EASE().recommend([1])
