import numpy as np
import pandas as pd
import pytest
from helpers import FixedScores

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import compare, evaluate


def build(rows, users, items):
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]), users, items)


def test_hand_computed_protocol():
    users, items = IdIndex(["u1", "u2", "u3"], "user_id"), IdIndex(list("abcde"), "item_id")
    train = build([("u1", "a"), ("u2", "b")], users, items)
    # u1's test items: a (already seen in train, so not relevant) and c; u2: d, e; u3: cold user
    test = build([("u1", "a"), ("u1", "c"), ("u2", "d"), ("u2", "e"), ("u3", "a")], users, items)
    scores = [
        [5, 4, 3, 2, 1],  # u1: a excluded (seen) -> ranking b, c, d, e -> hit at rank 2
        [1, 9, 8, 7, 6],  # u2: b excluded -> c, d, e -> hits at ranks 2 and 3
        [0, 0, 0, 0, 0],
    ]
    result = evaluate(FixedScores(scores, np.float32).fit(train), train, test, k=2)
    ndcg_u1 = (1 / np.log2(3)) / 1.0
    ndcg_u2 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert result.summary["users"] == 2
    assert result.excluded == {"no_relevant_items": 0, "cold_users": 1}
    assert result.summary["ndcg@2"] == pytest.approx((ndcg_u1 + ndcg_u2) / 2)
    assert result.summary["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert result.summary["recall@2"] == pytest.approx((1 / 1 + 1 / 2) / 2)
    assert result.summary["hr@2"] == 1.0
    assert result.summary["mrr@2"] == pytest.approx(0.5)
    assert result.summary["coverage@2"] == pytest.approx(3 / 5)  # b, c from u1; c, d from u2


def test_compare_fits_and_reports_each_model():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 30, 300), "item_id": rng.integers(0, 20, 300)})
    users, items = IdIndex(frame.user_id, "user_id"), IdIndex(frame.item_id, "item_id")
    train = Interactions.from_frame(frame.iloc[:200], users, items)
    test = Interactions.from_frame(frame.iloc[200:], users, items)
    table = compare(
        {"a": FixedScores(rng.random((30, 20))), "b": FixedScores(rng.random((30, 20)))},
        train,
        test,
        k=(5, 10),
    )
    assert list(table.index) == ["a", "b"]
    assert {"ndcg@5", "ndcg@10", "recall@10", "fit_seconds", "users"} <= set(table.columns)


def test_mismatched_index_is_an_error():
    users, items = IdIndex(["u1"], "user_id"), IdIndex(["a", "b"], "item_id")
    train = build([("u1", "a")], users, items)
    other = build([("u1", "a")], users, IdIndex(["a"], "item_id"))
    with pytest.raises(ValueError, match="share an index"):
        evaluate(FixedScores([[1, 2]]).fit(train), train, other)
