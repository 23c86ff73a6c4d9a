"""Error analysis by slice: buckets, joins, grouped means and item-bucket recall, checked by hand."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import Evaluation
from recsys_utils.evaluation.slices import (
    activity_bucket,
    item_popularity_bucket,
    metrics_by_slice,
    per_user_frame,
    recall_by_item_bucket,
)


def test_activity_bucket_labels_and_edges():
    buckets = activity_bucket([0, 1, 4, 5, 9, 10, 49, 50, 1000])
    assert list(buckets.categories) == ["0", "1-4", "5-9", "10-19", "20-49", "50+"]
    assert list(buckets.astype(str)) == ["0", "1-4", "1-4", "5-9", "5-9", "10-19", "20-49", "50+", "50+"]
    with pytest.raises(ValueError, match="not inside"):
        activity_bucket([-1, 3])
    with pytest.raises(ValueError, match="increasing"):
        activity_bucket([1], bins=(0, 5, 5))


def counts_train(counts):
    """A train matrix whose item j has counts[j] distinct users."""
    n_users = max(counts)
    rows, cols = [], []
    for item, count in enumerate(counts):
        rows += list(range(count))
        cols += [item] * count
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, len(counts)))
    return Interactions(matrix, IdIndex(range(n_users), "user_id"), IdIndex(range(len(counts)), "item_id"))


def test_item_popularity_bucket_by_cumulative_share():
    # 100 pairs: item 0 holds 50 (the first 20% starts inside it), items 1-2 the next 40, the rest 10; item 6 new
    train = counts_train([50, 20, 20, 4, 3, 3, 0])
    buckets = item_popularity_bucket(train)
    assert list(buckets.astype(str)) == ["head", "torso", "torso", "tail", "tail", "tail", "new"]
    with pytest.raises(ValueError, match="labels"):
        item_popularity_bucket(train, shares=(0.5,), labels=("a", "b", "c"))
    with pytest.raises(ValueError, match="increase"):
        item_popularity_bucket(train, shares=(0.8, 0.2))


def test_per_user_frame_and_metrics_by_slice():
    users, items = IdIndex(["a", "b", "c", "d"], "user_id"), IdIndex([0, 1, 2], "item_id")
    matrix = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=np.float32))
    train = Interactions(matrix, users, items)
    per_user = pd.DataFrame({"user_index": [0, 1, 2, 3], "ndcg@10": [0.2, 0.4, 0.0, 0.6]})
    evaluation = Evaluation("m", {}, per_user, np.arange(4))
    attributes = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "segment": ["x", "y", "x", "y"]})
    frame = per_user_frame(evaluation, train, attributes)
    assert list(frame["train_items"]) == [3, 1, 0, 2]
    assert list(frame["warm"]) == [True, True, False, True]
    table = metrics_by_slice(frame, "segment", ["ndcg@10"])
    assert table.loc["x", "users"] == 2 and table.loc["y", "ndcg@10"] == pytest.approx(0.5)
    assert table.loc["y", "ndcg@10_se"] == pytest.approx(np.std([0.4, 0.6], ddof=1) / np.sqrt(2))
    with pytest.raises(KeyError, match="segmnt"):
        metrics_by_slice(frame, "segmnt", ["ndcg@10"])
    with pytest.raises(ValueError, match="more than once"):
        per_user_frame(evaluation, train, pd.concat([attributes, attributes.iloc[:1]]))
    with pytest.raises(KeyError, match="user_id"):
        per_user_frame(evaluation, train, attributes.rename(columns={"user_id": "uid"}))


def test_recall_by_item_bucket_by_hand():
    bucket = pd.Categorical.from_codes([0, 0, 1, 1, 2], categories=["head", "tail", "new"])
    top = np.array([[0, 2, -1], [1, 3, 4]])
    relevant = sp.csr_matrix(np.array([[1, 0, 0, 1, 0], [0, 0, 1, 1, 1]]))
    table = recall_by_item_bucket(top, relevant, bucket, k=3)
    # head: relevant {u0: 0}, hit 0 -> 1/1; tail: relevant {u0: 3, u1: 2, 3}, hit u1:3 -> 1/3; new: relevant u1:4, hit
    assert list(table["relevant"]) == [1, 3, 1]
    assert list(table["hits"]) == [1, 1, 1]
    np.testing.assert_allclose(table["recall@3"], [1.0, 1 / 3, 1.0])
    np.testing.assert_allclose(table["share_of_recommended"], [2 / 5, 2 / 5, 1 / 5])
    with pytest.raises(ValueError, match="item buckets"):
        recall_by_item_bucket(top, relevant, bucket[:4], k=3)
