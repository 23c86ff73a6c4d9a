"""Association rules (support, confidence, lift) over baskets and time windows, against hand-computed cases."""

import itertools

import numpy as np
import pandas as pd
import pytest

from recsys_utils.features.association import (
    association_rules,
    basket_matrix,
    bought_together_scores,
    rule_matrices,
    sequential_matrices,
)

# five orders: N = 5; a in 4, b in 4, c in 2, d in 2
BASKETS = [("o1", "a"), ("o1", "b"), ("o1", "c"), ("o2", "a"), ("o2", "b"), ("o3", "a"), ("o3", "c"),
           ("o4", "b"), ("o4", "d"), ("o5", "a"), ("o5", "b"), ("o5", "d"), ("o5", "d")]


def _baskets() -> pd.DataFrame:
    return pd.DataFrame(BASKETS, columns=["order_id", "item_id"])


def test_basket_rules_match_hand_computation():
    matrix, index = basket_matrix(_baskets())
    assert matrix.shape == (5, 4) and matrix.sum() == 12  # the repeated d in o5 counts once
    rules = association_rules(matrix, index=index).set_index(["antecedent", "consequent"])
    # a => b: together in o1, o2, o5 -> support 3/5, confidence 3/4, lift (3/4) / (4/5)
    assert rules.loc[("a", "b"), ["count", "support", "confidence", "lift"]].tolist() == pytest.approx(
        [3, 0.6, 0.75, 0.9375])
    # c => a: c in o1, o3, both with a -> confidence 1, lift 1 / (4/5) = 1.25; a => c: 2/4 / (2/5) = 1.25
    assert rules.loc[("c", "a"), ["confidence", "lift"]].tolist() == pytest.approx([1.0, 1.25])
    assert rules.loc[("a", "c"), ["confidence", "lift"]].tolist() == pytest.approx([0.5, 1.25])
    assert rules.loc[("d", "b"), ["support", "confidence", "lift"]].tolist() == pytest.approx([0.4, 1.0, 1.25])
    assert ("c", "d") not in rules.index and ("a", "a") not in rules.index  # never together; no self rules
    assert rules["lift"].is_monotonic_decreasing
    assert len(association_rules(matrix, index=index, min_count=3)) == 2  # a=>b and b=>a


def test_rules_match_brute_force_on_random_baskets():
    rng = np.random.default_rng(0)
    rows = [(o, i) for o in range(60) for i in range(8) if rng.random() < 0.3]
    frame = pd.DataFrame(rows, columns=["order_id", "item_id"])
    matrix, index = basket_matrix(frame)
    measures = rule_matrices(matrix)
    sets = frame.groupby("order_id")["item_id"].agg(set).tolist()
    n = len(sets)
    for x, y in itertools.permutations(index.ids, 2):
        both = sum(x in s and y in s for s in sets)
        n_x, n_y = sum(x in s for s in sets), sum(y in s for s in sets)
        i, j = index.to_index([x])[0], index.to_index([y])[0]
        assert measures["count"][i, j] == both
        if both:
            assert measures["support"][i, j] == pytest.approx(both / n)
            assert measures["confidence"][i, j] == pytest.approx(both / n_x)
            assert measures["lift"][i, j] == pytest.approx((both / n_x) / (n_y / n))


def _purchases(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    return frame.assign(timestamp=pd.Timestamp("2024-01-01") + pd.to_timedelta(frame.pop("day"), unit="D"))


def test_sequential_rules_count_what_follows_within_the_window():
    # user 1: a (day 0), b (day 2), c (day 10: 8 days after b, 10 after a); user 2: a (day 0), c (day 1)
    frame = _purchases([(1, "a", 0), (1, "b", 2), (1, "c", 10), (2, "a", 0), (2, "c", 1)])
    a, b, index = sequential_matrices(frame, "7D")
    rules = association_rules(a, b, index).set_index(["antecedent", "consequent"])
    assert set(rules.index) == {("a", "b"), ("a", "c")}  # nothing follows b, c within 7 days; never backwards
    # 5 transactions; a is 2 of them; b follows 1 of 5 and c 1 of 5 -> confidence 1/2, lift (1/2) / (1/5)
    assert rules.loc[("a", "b"), ["count", "support", "confidence", "lift"]].tolist() == pytest.approx(
        [1, 0.2, 0.5, 2.5])
    assert rules.loc[("a", "c"), "lift"] == pytest.approx(2.5)
    a, b, index = sequential_matrices(frame, "9D")  # now c follows b on day 10
    assert ("b", "c") in set(zip(*association_rules(a, b, index)[["antecedent", "consequent"]].T.to_numpy(),
                                 strict=True))


def test_sequential_matrices_match_brute_force():
    rng = np.random.default_rng(1)
    frame = _purchases([(int(rng.integers(0, 6)), f"i{rng.integers(0, 5)}", float(rng.uniform(0, 20)))
                        for _ in range(80)])
    a, b, index = sequential_matrices(frame, "3D")
    count = rule_matrices(a, b, exclude_self=False)["count"].toarray()
    expected = np.zeros_like(count)
    for _, e in frame.iterrows():
        later = frame[(frame.user_id == e.user_id) & (frame.timestamp > e.timestamp)
                      & (frame.timestamp <= e.timestamp + pd.Timedelta("3D"))]
        for item in set(later.item_id):
            expected[index.to_index([e.item_id])[0], index.to_index([item])[0]] += 1
    np.testing.assert_array_equal(count, expected)


def test_bought_together_scores_back_off_to_category_rules():
    # items 0, 1 in category 0; items 2, 3 in category 1; item 4 in category 2
    item_category = np.array([0, 0, 1, 1, 2])
    category_lift = np.array([[5.0, 3.0, 0.5], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    counts = np.zeros((5, 5))
    counts[0, 3] = 2.0  # item 0 was followed by item 3 twice
    popularity = np.array([1.0, 1.0, 3.0, 1.0, 1.0])
    scores = bought_together_scores(counts, category_lift, item_category, popularity, np.array([0, 1]))
    # category 0 -> 1 only (own category and lift <= 1 are no rule): 3 * (count + share in category)
    np.testing.assert_allclose(scores, [[0, 0, 3 * 0.75, 3 * (2 + 0.25), 0], [0, 0, 3 * 0.75, 3 * 0.25, 0]])


def test_bad_input_is_named():
    with pytest.raises(KeyError, match="order_id"):
        basket_matrix(pd.DataFrame({"item_id": [1]}))
    with pytest.raises(ValueError, match="window"):
        sequential_matrices(_purchases([(1, "a", 0)]), "0D")
    with pytest.raises(ValueError, match="min_count"):
        association_rules(basket_matrix(_baskets())[0], min_count=0)
    matrix = basket_matrix(_baskets())[0]
    with pytest.raises(ValueError, match="shape"):
        rule_matrices(matrix, matrix[:3])
