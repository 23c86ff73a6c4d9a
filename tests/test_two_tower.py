"""Two-tower retrieval: the log-Q corrected in-batch softmax against hand and brute-force losses,
the input encoders, and new items getting vectors from their attributes alone."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models import registry
from recsys_utils.models.retrieval_losses import in_batch_softmax_loss, item_log_q, mixed_log_q
from recsys_utils.models.two_tower import ItemTower, TwoTower
from recsys_utils.models.two_tower_inputs import item_fields, title_tokens, top_history, user_fields


def test_log_q_correction_matches_a_hand_computed_batch():
    # two rows, orthogonal unit vectors, temperature 1: logits [[1, 0], [0, 1]] minus log q per column
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    log_q = torch.log(torch.tensor([0.5, 0.125]))
    # row 0: logits 1 - log .5, 0 - log .125; row 1: 0 - log .5, 1 - log .125
    a0, b0 = 1 + math.log(2), math.log(8)
    a1, b1 = math.log(2), 1 + math.log(8)
    expected = (-(a0 - math.log(math.exp(a0) + math.exp(b0))) - (b1 - math.log(math.exp(a1) + math.exp(b1)))) / 2
    got = in_batch_softmax_loss(u, v, log_q, temperature=1.0)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # without correction: both rows softmax over (1, 0)
    plain = -(1 - math.log(math.e + 1))
    assert in_batch_softmax_loss(u, v).item() == pytest.approx(plain, abs=1e-6)
    # the correction raises the loss of the row whose negative is rare (its logit is pushed up)
    assert got.item() > plain


def _brute_force(u, v, log_q, tau, ids, extra_v=None, extra_q=None, extra_ids=None):
    """One row at a time with Python loops: -log softmax of the diagonal over the valid columns."""
    cols = list(v) + ([] if extra_v is None else list(extra_v))
    qs = list(log_q) + ([] if extra_q is None else list(extra_q))
    col_ids = list(ids) + ([] if extra_ids is None else list(extra_ids))
    total = 0.0
    for i in range(len(u)):
        terms = []
        for j, col in enumerate(cols):
            if j != i and col_ids[j] == ids[i]:
                continue  # an accidental hit of the row's own item is not a negative
            terms.append(float(u[i] @ col) / tau - float(qs[j]))
        target = float(u[i] @ v[i]) / tau - float(log_q[i])
        total += -(target - math.log(sum(math.exp(t) for t in terms)))
    return total / len(u)


def test_in_batch_softmax_equals_a_brute_force_loss_with_mixed_negatives_and_duplicates():
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen), dim=-1).double()
    v = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen), dim=-1).double()
    ids = torch.tensor([3, 1, 3, 0, 2, 5])  # item 3 twice in the batch
    extra_ids = torch.tensor([1, 4, 6])
    extra_v = torch.nn.functional.normalize(torch.randn(3, 4, generator=gen), dim=-1).double()
    v[2] = v[0]  # the same item has the same vector
    log_q = torch.log(torch.tensor([0.1, 0.2, 0.1, 0.05, 0.3, 0.25], dtype=torch.float64))
    extra_q = torch.log(torch.tensor([0.2, 0.01, 0.02], dtype=torch.float64))
    got = in_batch_softmax_loss(u, v, log_q, 0.2, item_ids=ids, extra_vecs=extra_v, extra_log_q=extra_q,
                                extra_ids=extra_ids)
    assert got.item() == pytest.approx(_brute_force(u, v, log_q, 0.2, ids, extra_v, extra_q, extra_ids), rel=1e-9)
    assert in_batch_softmax_loss(u, v, None, 0.5).item() == pytest.approx(
        _brute_force(u, v, torch.zeros(6), 0.5, list(range(6))), rel=1e-9)


def test_log_q_helpers_and_bad_inputs():
    log_q = item_log_q(np.array([3, 0, 1]), smoothing=1.0)
    np.testing.assert_allclose(np.exp(log_q), [4 / 7, 1 / 7, 2 / 7])
    mixed = mixed_log_q(torch.tensor(log_q), batch_size=10, n_uniform=6, n_items=3)
    np.testing.assert_allclose(torch.exp(mixed).numpy(), 10 * np.exp(log_q) + 2, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        in_batch_softmax_loss(torch.ones(2, 2), torch.ones(2, 2), temperature=0)
    with pytest.raises(ValueError, match="item_counts"):
        item_log_q(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="extra_log_q"):
        in_batch_softmax_loss(torch.ones(2, 2), torch.ones(2, 2), torch.zeros(2), extra_vecs=torch.ones(1, 2))
    with pytest.raises(ValueError, match="temperature"):
        TwoTower(temperature=-1.0)


def test_top_history_keeps_the_heaviest_items_per_user():
    matrix = sp.csr_matrix(np.array([[0, 3, 1, 2], [0, 0, 0, 0], [5, 0, 5, 1]], dtype=np.float32))
    items, weights = top_history(matrix, 2)
    np.testing.assert_array_equal(items, [[1, 3], [-1, -1], [0, 2]])
    np.testing.assert_array_equal(weights, [[3, 2], [0, 0], [5, 5]])


def _catalogue():
    items = pd.DataFrame({
        "item_id": np.arange(12) + 100,
        "title": [f"{c} {b} thing" for c, b in zip(["red shoe", "blue shirt"] * 6, ["aa", "bb", "cc"] * 4,
                                                      strict=True)],
        "category": np.where(np.arange(12) % 2, "shirts", "shoes"), "top_category": "fashion",
        "brand": np.array(["x", "y", "z"])[np.arange(12) % 3], "price": np.linspace(10, 120, 12)})
    users = pd.DataFrame({"user_id": np.arange(20) + 1, "gender": np.where(np.arange(20) % 2, "F", "M"),
                          "age": np.arange(20) + 20, "city_tier": 1 + np.arange(20) % 3})
    return items, users


def test_encoders_give_codes_with_zero_for_unknown():
    items, users = _catalogue()
    index = IdIndex(np.append(items.item_id.to_numpy(), 999), "item_id")  # 999 is not in the table
    coded = item_fields(items, index)
    assert coded.names == ["category", "top_category", "brand", "price_band"]
    assert (coded.codes[:-1] > 0).all() and (coded.codes[-1] == 0).all()
    assert coded.codes[:, 0].max() < coded.sizes[0]
    tokens, n_tokens = title_tokens(items, index, max_tokens=4)
    assert tokens.shape == (13, 4) and n_tokens == 9 and (tokens[-1] == 0).all()  # 8 words + padding
    member = user_fields(users, IdIndex(np.arange(22) + 1, "user_id"))
    assert member.names == ["gender", "age", "city_tier"] and (member.codes[-2:] == 0).all()
    with pytest.raises(KeyError, match="item_id"):
        item_fields(items.rename(columns={"item_id": "sku"}), index)


def _fitted(**kwargs):
    items, users = _catalogue()
    rng = np.random.default_rng(0)
    u = rng.integers(0, 20, 400)
    i = 2 * rng.integers(0, 5, 400) + u % 2  # users of parity p buy items of parity p; items 10, 11 never
    frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 100})
    train = Interactions.from_frame(frame, IdIndex(users.user_id.to_numpy(), "user_id"),
                                    IdIndex(items.item_id.to_numpy(), "item_id"), weight=None, binary=True)
    model = TwoTower(items=items, users=users, dim=8, epochs=15, batch_size=64, lr=1e-2, temperature=0.2,
                     id_dropout=0.5, seed=0, **kwargs)
    return model.fit(train), train


def test_new_items_get_vectors_from_attributes_alone():
    model, train = _fitted(n_uniform=4)
    module = model.module_
    assert module.keep_id[:10].eq(1).all() and module.keep_id[10:].eq(0).all()  # 10, 11 unseen: no id
    assert module.vocabulary.tolist() == list(range(10))  # uniform negatives come from the seen items only
    vectors = model.item_vectors()
    assert np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # an unseen item's vector does not depend on its (untrained) id embedding
    with torch.no_grad():
        module.item_tower.id.weight[10:] += 5.0
    np.testing.assert_allclose(model.item_vectors(), vectors, atol=1e-6)
    # the new shirt (item 11) is scored higher by the shirt buyers (odd users) than by the shoe buyers
    scores = model.score(np.arange(20))
    odd, even = scores[1::2], scores[0::2]
    assert odd[:, 11].mean() - even[:, 11].mean() > 0.5 and even[:, 10].mean() - odd[:, 10].mean() > 0.5
    top = model.recommend_indices(np.arange(20), k=3, exclude_seen=False)
    assert ((top % 2) == (np.arange(20) % 2)[:, None]).mean() > 0.9


def test_item_tower_without_attributes_and_the_registry():
    model = registry.create("two-tower", seed=1, dim=4, epochs=2)
    assert isinstance(model, TwoTower) and model.seed == 1
    tower = ItemTower(5, [], 1, dim=4)
    out = tower(torch.arange(5), torch.zeros(5, 0, dtype=torch.long), torch.zeros(5, 1, dtype=torch.long),
                torch.ones(5))
    assert out.shape == (5, 4) and torch.allclose(out.norm(dim=1), torch.ones(5))
