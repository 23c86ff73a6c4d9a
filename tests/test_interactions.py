import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import IdIndex, Interactions


def frame():
    return pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c", "a"],
            "item_id": [10, 20, 10, 30, 10],
            "event": ["view", "purchase", "view", "add_to_cart", "view"],
        }
    )


def test_aggregates_event_weights_and_maps_both_ways():
    data = Interactions.from_frame(frame())
    assert (data.n_users, data.n_items) == (3, 3)
    a, b = data.users.to_index(["a", "b"])
    i10, i20 = data.items.to_index([10, 20])
    # 'a' viewed item 10 twice (1 + 1) and bought 20 (5)
    assert data.matrix[a, i10] == 2.0
    assert data.matrix[a, i20] == 5.0
    assert data.matrix[b, i10] == 1.0
    assert list(data.users.to_ids([a, b])) == ["a", "b"]


def test_binary_and_counts():
    data = Interactions.from_frame(frame(), binary=True)
    assert set(data.matrix.data) == {1.0}
    assert data.user_counts().tolist() == [2, 1, 1]
    assert data.item_counts().sum() == data.nnz == 4


def test_shared_index_keeps_columns_aligned():
    full = frame()
    users, items = IdIndex(full.user_id, "user_id"), IdIndex(full.item_id, "item_id")
    part = Interactions.from_frame(full.iloc[2:3], users, items)
    assert part.matrix.shape == (3, 3)
    assert part.matrix[users.to_index(["b"])[0], items.to_index([10])[0]] == 1.0


def test_unknown_ids_raise_or_drop():
    users, items = IdIndex(["a"], "user_id"), IdIndex([10], "item_id")
    with pytest.raises(KeyError, match="unknown"):
        Interactions.from_frame(frame(), users, items)
    kept = Interactions.from_frame(frame(), users, items, drop_unknown=True)
    assert kept.matrix[0, 0] == 2.0


def test_input_not_mutated_and_round_trip():
    original = frame()
    copy = original.copy()
    data = Interactions.from_frame(original, weight=None)
    pd.testing.assert_frame_equal(original, copy)
    back = data.to_frame().sort_values(["user_id", "item_id"]).reset_index(drop=True)
    expected = original.groupby(["user_id", "item_id"]).size().reset_index(name="weight")
    assert back[["user_id", "item_id"]].values.tolist() == expected[["user_id", "item_id"]].values.tolist()
    np.testing.assert_allclose(back["weight"], expected["weight"])


def test_clear_errors():
    with pytest.raises(KeyError, match="user_id"):
        Interactions.from_frame(pd.DataFrame({"item_id": [1]}))
    bad = frame().assign(w=["1", "x", "2", "3", "4"])
    with pytest.raises(ValueError, match="row 1"):
        Interactions.from_frame(bad, weight="w")
    with pytest.raises(ValueError, match="no weight for events"):
        Interactions.from_frame(frame(), weight={"view": 1.0})


def test_movielens_ratings_are_one_interaction_each_whatever_the_value():
    frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10], "event": "rating", "rating": [1, 5, 3],
                          "timestamp": pd.to_datetime([1, 2, 3], unit="s")})
    m = Interactions.from_frame(frame)
    assert m.nnz == 3 and set(m.matrix.data) == {1.0}
