"""The sampled protocol: candidates drawn correctly, ranks against brute force, bad input."""

import numpy as np
import pandas as pd
import pytest
from helpers import FixedScores

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.sampled import compare_sampled, evaluate_sampled, sampled_protocol


def random_split(n_users=40, n_items=60, seed=0):
    rng = np.random.default_rng(seed)
    users = IdIndex([f"u{i}" for i in range(n_users)], "user_id")
    items = IdIndex([f"i{j}" for j in range(n_items)], "item_id")
    cells = rng.random((n_users, n_items))
    train_rows = [(f"u{u}", f"i{i}") for u, i in zip(*np.nonzero(cells < 0.1), strict=True)]
    test_rows = [(f"u{u}", f"i{i}") for u, i in zip(*np.nonzero(cells > 0.95), strict=True)]

    def build(rows):
        return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]), users, items)

    return build(train_rows), build(test_rows)


def test_protocol_draws_valid_distinct_negatives():
    train, test = random_split()
    proto = sampled_protocol(train, test, n_negatives=20, seed=3)
    blocked = (train.binary() + test.binary()).toarray() > 0
    assert proto.negatives.shape == (len(proto), 20)
    # negatives: distinct per row, never a train or test item of that user
    assert all(len(set(row)) == 20 for row in proto.negatives)
    assert not blocked[proto.user_indices[:, None], proto.negatives].any()
    # positives are held-out items not seen in training
    assert test.binary()[proto.user_indices, proto.positives].all()
    assert not train.binary()[proto.user_indices, proto.positives].any()
    # one row per user with a relevant item, seeded
    assert np.unique(proto.user_indices).size == len(proto)
    again = sampled_protocol(train, test, n_negatives=20, seed=3)
    np.testing.assert_array_equal(again.negatives, proto.negatives)


def test_all_positives_share_negatives():
    train, test = random_split()
    proto = sampled_protocol(train, test, n_negatives=5, positives="all", seed=1)
    relevant = test.binary() - test.binary().multiply(train.binary())
    assert len(proto) == int((relevant.toarray() > 0)[np.unique(proto.user_indices)].sum())
    first = {}
    for user, negatives in zip(proto.user_indices, proto.negatives, strict=True):
        assert np.array_equal(first.setdefault(user, negatives), negatives)


def test_ranks_match_brute_force():
    train, test = random_split(seed=5)
    scores = np.random.default_rng(1).random((train.n_users, train.n_items))
    proto = sampled_protocol(train, test, n_negatives=15, seed=2)
    result = evaluate_sampled(FixedScores(scores).fit(train), proto, k=(1, 5), batch_size=7)
    blocked = (train.binary() + test.binary()).toarray() > 0
    for row, (u, pos) in enumerate(zip(proto.user_indices, proto.positives, strict=True)):
        s = scores[u]
        assert result.ranks.sampled_rank[row] == (s[proto.negatives[row]] >= s[pos]).sum()
        others = ~blocked[u]
        assert result.ranks.full_rank[row] == (s[others] >= s[pos]).sum()
    sampled_rank = result.ranks.sampled_rank.to_numpy()
    assert result.summary["sampled_hr@5"] == pytest.approx((sampled_rank < 5).mean())
    assert result.summary["sampled_ndcg@1"] == pytest.approx((sampled_rank == 0).mean())
    full = result.ranks.full_rank.to_numpy()
    assert result.summary["full_ndcg@5"] == pytest.approx(np.where(full < 5, 1 / np.log2(full + 2), 0).mean())
    # sampling can only flatter a model: the sampled rank never exceeds the full one
    assert (sampled_rank <= full).all()


def test_perfect_and_constant_models():
    train, test = random_split(seed=7)
    proto = sampled_protocol(train, test, n_negatives=10, seed=0)
    perfect = np.zeros((train.n_users, train.n_items))
    perfect[proto.user_indices, proto.positives] = 1.0
    constant = np.zeros_like(perfect)
    table = compare_sampled({"perfect": FixedScores(perfect).fit(train), "constant": FixedScores(constant).fit(train)},
                            proto, k=3)
    assert table.loc["perfect", "sampled_hr@3"] == 1.0 and table.loc["perfect", "full_ndcg@3"] == 1.0
    assert table.loc["constant", "sampled_hr@3"] == 0.0  # ties count against the positive


def test_bad_input():
    train, test = random_split()
    with pytest.raises(ValueError, match="positives"):
        sampled_protocol(train, test, positives="some")
    with pytest.raises(ValueError, match="n_negatives"):
        sampled_protocol(train, test, n_negatives=0)
    with pytest.raises(ValueError, match="items outside"):
        sampled_protocol(train, test, n_negatives=59)
    proto = sampled_protocol(train, test, n_negatives=5)
    with pytest.raises(ValueError, match="shape"):
        evaluate_sampled(FixedScores(np.zeros((train.n_users, 3))).fit(train), proto)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_sampled(FixedScores(np.full((train.n_users, train.n_items), np.nan)).fit(train), proto)
