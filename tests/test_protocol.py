"""The evaluation protocol (``evaluate``, ``compare``): hand-computed cases, the user modes, several
cut-offs, the beyond-accuracy numbers, and a brute-force per-user loop as the reference."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import FixedScores

from recsys_utils.core.beyond_accuracy import (
    average_popularity,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    novelty,
)
from recsys_utils.data.holdout import evaluation_users, relevant_matrix
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import compare, evaluate

L3 = math.log2(3)


def build(rows, users, items):
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]), users, items)


@pytest.fixture
def tiny():
    """Four users, five items. u1 saw a, u2 saw b, u4 saw d; u3 is cold; u4 has no test item."""
    users, items = IdIndex(["u1", "u2", "u3", "u4"], "user_id"), IdIndex(list("abcde"), "item_id")
    train = build([("u1", "a"), ("u2", "b"), ("u4", "d")], users, items)
    # u1's test items: a (already seen in train, so not relevant) and c; u2: d, e; u3 (cold): a
    test = build([("u1", "a"), ("u1", "c"), ("u2", "d"), ("u2", "e"), ("u3", "a")], users, items)
    scores = [
        [5, 4, 3, 2, 1],  # u1: a excluded (seen) -> ranking b, c, d, e -> hit at rank 2
        [1, 9, 8, 7, 6],  # u2: b excluded -> c, d, e -> hits at ranks 2 and 3
        [1, 5, 4, 3, 2],  # u3: nothing seen -> b, c, d, e, a -> hit at rank 5
        [9, 8, 7, 6, 5],
    ]
    return train, test, FixedScores(scores, np.float32).fit(train)


# per-user values at k = 2 of the fixture (u1, u2) and at k = 3
HAND_K2 = {
    "precision@2": [1 / 2, 1 / 2],
    "recall@2": [1 / 1, 1 / 2],
    "ndcg@2": [1 / L3, (1 / L3) / (1 + 1 / L3)],
    "map@2": [(1 / 2) / 1, (1 / 2) / 2],  # u1: P@2 / min(1, 2); u2: P@2 / min(2, 2)
    "hr@2": [1.0, 1.0],
    "mrr@2": [1 / 2, 1 / 2],
}
HAND_K3 = {
    "precision@3": [1 / 3, 2 / 3],
    "recall@3": [1.0, 1.0],
    "ndcg@3": [1 / L3, (1 / L3 + 1 / 2) / (1 + 1 / L3)],
    "map@3": [1 / 2, (1 / 2 + 2 / 3) / 2],
    "hr@3": [1.0, 1.0],
    "mrr@3": [1 / 2, 1 / 2],
}


def test_hand_computed_protocol(tiny):
    train, test, model = tiny
    result = evaluate(model, train, test, k=(2, 3))
    assert result.summary["users"] == 2
    assert result.excluded == {"no_relevant_items": 1, "cold_users": 1}  # u4 has no test item, u3 is cold
    np.testing.assert_array_equal(result.user_indices, [0, 1])
    np.testing.assert_array_equal(result.per_user["user_index"], [0, 1])
    for name, values in {**HAND_K2, **HAND_K3}.items():
        np.testing.assert_allclose(result.per_user[name], values, rtol=0, atol=1e-12, err_msg=name)
        assert result.summary[name] == pytest.approx(np.mean(values), abs=1e-12), name
    np.testing.assert_array_equal(result.top_items, [[1, 2, 3], [2, 3, 4]])  # seen items never recommended
    assert result.summary["coverage@2"] == pytest.approx(3 / 5)  # b, c from u1; c, d from u2
    assert result.summary["coverage@3"] == pytest.approx(4 / 5)


def test_users_all_and_cold_include_the_cold_user(tiny):
    train, test, model = tiny
    every = evaluate(model, train, test, k=2, users="all")
    assert every.summary["users"] == 3 and every.excluded == {"no_relevant_items": 1}
    np.testing.assert_array_equal(every.user_indices, [0, 1, 2])
    np.testing.assert_allclose(every.per_user["ndcg@2"], HAND_K2["ndcg@2"] + [0.0])  # u3's hit is at rank 5
    assert every.summary["ndcg@2"] == pytest.approx(sum(HAND_K2["ndcg@2"]) / 3)
    cold = evaluate(model, train, test, k=(2, 5), users="cold")
    assert cold.summary["users"] == 1 and cold.excluded == {"no_relevant_items": 1, "warm_users": 2}
    assert cold.summary["hr@2"] == 0.0
    assert cold.summary["ndcg@5"] == pytest.approx(1 / math.log2(6)) and cold.summary["mrr@5"] == pytest.approx(0.2)
    given = evaluate(model, train, test, k=2, users=np.array([1, 3]))  # u4 (index 3) has nothing to find
    assert given.summary["users"] == 1 and given.excluded == {"no_relevant_items": 1}
    assert given.summary["ndcg@2"] == pytest.approx(HAND_K2["ndcg@2"][1])
    with pytest.raises(ValueError, match="users must be"):
        evaluate(model, train, test, users="new")


def test_without_exclude_seen_the_seen_items_count(tiny):
    train, test, model = tiny
    result = evaluate(model, train, test, k=2, exclude_seen=False)
    # u1: relevant {a, c}, list a, b -> hit at rank 1; u2: relevant {d, e}, list b, c -> nothing
    np.testing.assert_allclose(result.per_user["ndcg@2"], [1 / (1 + 1 / L3), 0.0])
    np.testing.assert_allclose(result.per_user["map@2"], [1 / 2, 0.0])
    np.testing.assert_allclose(result.per_user["recall@2"], [1 / 2, 0.0])
    np.testing.assert_allclose(result.per_user["mrr@2"], [1.0, 0.0])


def test_beyond_accuracy_numbers_are_the_core_metrics(tiny):
    train, test, model = tiny
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    result = evaluate(model, train, test, k=(2, 3), item_features=features, metrics=("ndcg",))
    counts = train.item_counts()
    for k in (2, 3):
        top = result.top_items[:, :k]
        assert result.summary[f"coverage@{k}"] == catalog_coverage(top, train.n_items)
        assert result.summary[f"novelty@{k}"] == novelty(top, counts, train.n_users)
        assert result.summary[f"arp@{k}"] == average_popularity(top, counts)
        assert result.summary[f"gini@{k}"] == gini_index(top, train.n_items)
        assert result.summary[f"diversity@{k}"] == intra_list_diversity(top, features)
    # and by hand at k = 3: lists b c d and c d e; train counts a 1, b 1, d 1 (c, e: 0, counted as 1)
    assert result.summary["arp@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert result.summary["novelty@3"] == pytest.approx(math.log2(4))  # every item: -log2(1 / 4 users)
    # exposure a 0, b 1, c 2, d 2, e 1 -> sorted [0, 1, 1, 2, 2], weights 2j - n - 1 = [-4, -2, 0, 2, 4]
    assert result.summary["gini@3"] == pytest.approx((-2 * 1 + 2 * 2 + 4 * 2) / (5 * 6))
    # cosine: b.c = c.d = 1/sqrt 2, b.d = 0, e has no features (similarity 0)
    r = 1 / math.sqrt(2)
    assert result.summary["diversity@3"] == pytest.approx(((3 - 2 * r) / 3 + (3 - r) / 3) / 2)
    assert {key.split("@")[0] for key in result.summary} == {
        "ndcg", "coverage", "novelty", "arp", "gini", "diversity", "users", "score_seconds"}


# ------------------------------------------------------------------ brute force on random data


def random_split(seed, n_users=40, n_items=25):
    rng = np.random.default_rng(seed)
    users, items = IdIndex(np.arange(n_users), "user_id"), IdIndex(np.arange(n_items), "item_id")
    cells = rng.random((n_users, n_items))
    train_cells = cells < 0.15
    train_cells[:5] = False  # five cold users
    test_cells = (cells > 0.85) | ((cells > 0.1) & (cells < 0.15))  # some test cells were seen in train
    test_cells[5:8] = False  # three warm users without a test item

    def as_interactions(mask):
        r, c = np.nonzero(mask)
        return Interactions.from_frame(pd.DataFrame({"user_id": r, "item_id": c}), users, items)

    return as_interactions(train_cells), as_interactions(test_cells), rng.random((n_users, n_items))


def brute_force(scores, train_cells, test_cells, k, mode):
    """Per-user metrics from the definitions, one user at a time."""
    rows = {}
    for user in range(len(scores)):
        seen = set(np.flatnonzero(train_cells[user]))
        relevant = set(np.flatnonzero(test_cells[user])) - seen
        if not relevant or (mode == "warm" and not seen) or (mode == "cold" and seen):
            continue
        ranking = [i for i in np.argsort(-scores[user], kind="stable") if i not in seen][:k]
        hits = [item in relevant for item in ranking]
        dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
        precisions = [sum(hits[: rank + 1]) / (rank + 1) for rank, hit in enumerate(hits) if hit]
        first = next((rank for rank, hit in enumerate(hits) if hit), None)
        rows[user] = {
            f"precision@{k}": sum(hits) / k, f"recall@{k}": sum(hits) / len(relevant), f"ndcg@{k}": dcg / idcg,
            f"map@{k}": sum(precisions) / min(len(relevant), k), f"hr@{k}": float(any(hits)),
            f"mrr@{k}": 0.0 if first is None else 1 / (first + 1),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize("mode", ["warm", "all", "cold"])
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_a_brute_force_loop(mode, seed):
    train, test, scores = random_split(seed)
    result = evaluate(FixedScores(scores).fit(train), train, test, k=(1, 4, 10), users=mode)
    train_cells, test_cells = train.matrix.toarray() > 0, test.matrix.toarray() > 0
    for k in (1, 4, 10):
        expected = brute_force(scores, train_cells, test_cells, k, mode)
        np.testing.assert_array_equal(result.user_indices, expected.index)
        for column in expected.columns:
            np.testing.assert_allclose(result.per_user[column], expected[column], rtol=0, atol=1e-12,
                                       err_msg=column)
            assert result.summary[column] == pytest.approx(expected[column].mean(), abs=1e-12)
    assert result.summary["users"] == len(expected) > 0


def test_relevant_matrix_and_evaluation_users_by_hand(tiny):
    train, test, _ = tiny
    relevant = relevant_matrix(train, test).toarray()
    np.testing.assert_array_equal(relevant, [[0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert relevant_matrix(train, test, exclude_seen=False).toarray()[0, 0] == 1
    chosen, excluded = evaluation_users(train, sp.csr_matrix(relevant), "warm")
    assert chosen.tolist() == [0, 1] and excluded == {"no_relevant_items": 1, "cold_users": 1}


# ------------------------------------------------------------------ compare


def test_compare_reports_what_evaluate_reports_for_each_model():
    train, test, scores = random_split(3)
    perfect = scores + 10 * (test.matrix.toarray() > 0)  # the held-out items first
    models = {"random": FixedScores(scores), "perfect": FixedScores(perfect)}
    table = compare(models, train, test, k=(5, 10))
    assert list(table.index) == ["random", "perfect"]
    for name, model in models.items():
        expected = evaluate(model, train, test, k=(5, 10)).summary
        for column, value in expected.items():
            if column != "score_seconds":
                assert table.loc[name, column] == pytest.approx(value, abs=1e-12), (name, column)
    assert (table["fit_seconds"] >= 0).all()
    assert table.loc["perfect", "hr@10"] == 1.0 and table.loc["perfect", "recall@10"] > 0.9
    assert table.loc["perfect", "ndcg@10"] > 3 * table.loc["random", "ndcg@10"]
    # options reach evaluate; without fitting, fit_seconds is missing
    unfitted = compare(models, train, test, k=5, fit=False, users="all")
    assert unfitted["fit_seconds"].isna().all()
    assert unfitted.loc["random", "users"] == evaluate(models["random"], train, test, k=5, users="all")["users"]
    assert unfitted.loc["random", "users"] > table.loc["random", "users"]  # the cold users are in


def test_mismatched_index_is_an_error():
    users, items = IdIndex(["u1"], "user_id"), IdIndex(["a", "b"], "item_id")
    train = build([("u1", "a")], users, items)
    other = build([("u1", "a")], users, IdIndex(["a"], "item_id"))
    with pytest.raises(ValueError, match="share an index"):
        evaluate(FixedScores([[1, 2]]).fit(train), train, other)
    scores = FixedScores([[1, 2]]).fit(train)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate(scores, train, build([("u1", "b")], users, items), metrics=("f1",))


def test_a_negative_cutoff_gets_the_clear_error(tiny):
    train, test, model = tiny
    with pytest.raises(ValueError, match="k must be"):
        evaluate(model, train, test, k=-1)


def test_user_indices_outside_the_matrix_are_named(tiny):
    train, test, model = tiny
    with pytest.raises(ValueError, match="users"):
        evaluate(model, train, test, users=np.array([0, 9]))
