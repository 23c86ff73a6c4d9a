"""DIN: the attention ignores padding, the weights are read out per row, the training loop learns a
planted target-behaviour interaction, bad shapes are rejected."""

import numpy as np
import pytest
import torch

from recsys_utils.models.din import AttentionPooling, DINNet, bce_rows, fit_rows, predict_rows

SIZES = [5, 7, 4, 3]  # user, item, category, position
ITEM, CATEGORY = 1, 2


def _rows(n=6, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(1, s, (n,), generator=g) for s in SIZES], dim=1)
    seq = torch.stack([torch.randint(1, SIZES[ITEM], (n, length), generator=g),
                       torch.randint(1, SIZES[CATEGORY], (n, length), generator=g)], dim=-1)
    seq[:, 3:] = 0  # the last two positions are padding
    seq[0] = 0  # a user without any behaviour
    return codes, seq


@pytest.mark.parametrize("softmax", [False, True])
def test_padding_is_ignored_whatever_it_stores(softmax):
    torch.manual_seed(0)
    pool = AttentionPooling(4, (6,), softmax=softmax)
    keys = torch.randn(3, 5, 4)
    query = torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    pooled, weights = pool(keys, query, mask)
    other = keys.clone()
    other[~mask] = 100 * torch.randn(int((~mask).sum()), 4)
    pooled2, weights2 = pool(other, query, mask)
    assert torch.allclose(pooled, pooled2) and torch.allclose(weights, weights2)
    assert (weights[~mask] == 0).all()
    assert torch.allclose(pooled[2], torch.zeros(4))
    # against a brute-force loop over the valid positions
    for n in range(3):
        expected = sum((weights[n, j] * keys[n, j] for j in range(5) if mask[n, j]), torch.zeros(4))
        assert torch.allclose(pooled[n], expected, atol=1e-6)
    if softmax:
        assert torch.allclose(weights[:2].sum(1), torch.ones(2))


def test_din_padding_embeddings_change_nothing():
    torch.manual_seed(1)
    net = DINNet(SIZES, ITEM, CATEGORY, dim=4, attention_hidden=(8,), hidden=(8,))
    codes, seq = _rows()
    before = net(codes, seq)
    weights = net.attention(codes, seq)
    with torch.no_grad():  # the padding rows (code 0) of the item-id and category tables
        net.embedding.weight[net.offsets[ITEM]] = 50.0
        net.embedding.weight[net.offsets[CATEGORY]] = -50.0
    assert torch.allclose(net(codes, seq), before, atol=1e-5)
    assert weights.shape == (6, 5) and (weights[:, 3:] == 0).all() and (weights[0] == 0).all()
    assert (weights[1:, :3] != 0).all()


def test_din_learns_a_target_behaviour_match():
    # a click happens exactly when the candidate's category is among the user's behaviours' categories:
    # no single field tells, only the attention between the candidate and the history does
    rng = np.random.default_rng(0)
    n, length, n_categories = 2000, 3, 6
    sizes = [2, 10, n_categories + 1, 2]
    seq = np.stack([rng.integers(1, 10, (n, length)), rng.integers(1, n_categories + 1, (n, length))], axis=-1)
    target = rng.integers(1, n_categories + 1, n)
    codes = np.stack([np.ones(n, np.int64), rng.integers(1, 10, n), target, np.ones(n, np.int64)], axis=1)
    y = (seq[:, :, 1] == target[:, None]).any(1).astype(np.float32)
    torch.manual_seed(0)
    net = DINNet(sizes, 1, 2, dim=8, attention_hidden=(16,), hidden=(16,))
    history = fit_rows(net, [codes, seq, y], bce_rows, epochs=8, batch_size=128, lr=1e-2, patience=None,
                       seed=0, progress=False)
    p = predict_rows(net, [codes, seq])
    accuracy = ((p > 0.5) == (y > 0.5)).mean()
    assert history.train_loss[-1] < 0.75 * history.train_loss[0], history.train_loss
    assert accuracy > 0.7, accuracy  # the majority class alone is right on 58% of the rows


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="item_field"):
        DINNet(SIZES, 1, 1)
    net = DINNet(SIZES, ITEM, CATEGORY, dim=4)
    codes, seq = _rows()
    with pytest.raises(ValueError, match="codes must have shape"):
        net(codes[:, :3], seq)
    with pytest.raises(ValueError, match="sequence must have shape"):
        net(codes, seq[..., 0])
