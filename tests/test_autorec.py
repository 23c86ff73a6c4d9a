"""I-AutoRec (Sedhain et al. 2015): the masked loss, the network's shapes, learning on planted blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.autorec import AutoRec, AutoRecNet, autorec_loss, autorec_weights
from recsys_utils.models.registry import create


def _interactions(dense: np.ndarray) -> Interactions:
    coo = sp.coo_matrix(dense)
    frame = pd.DataFrame({"user_id": coo.row, "item_id": coo.col, "w": coo.data})
    return Interactions.from_frame(frame, IdIndex(np.arange(dense.shape[0]), "user_id"),
                                   IdIndex(np.arange(dense.shape[1]), "item_id"), weight="w")


def _blocks(n_users=60, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    likes = (np.arange(n_users) % 2)[:, None] == (np.arange(n_items) // (n_items // 2))[None, :]
    return _interactions((likes & (rng.random(likes.shape) < 0.5)).astype(np.float32)), likes


def test_masked_loss_ignores_unobserved_entries():
    torch.manual_seed(0)
    target = torch.tensor([[5.0, 0.0, 3.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    pred = torch.randn(2, 4, requires_grad=True)
    weight = autorec_weights(target, implicit=False)
    assert torch.equal(weight, (target != 0).float())
    loss = autorec_loss(pred, target, weight)
    by_hand = ((5 - pred[0, 0]) ** 2 + (3 - pred[0, 2]) ** 2 + (1 - pred[1, 1]) ** 2) / 2
    torch.testing.assert_close(loss, by_hand)
    # changing the predictions (even to inf/nan) and the targets of unobserved entries changes nothing
    unobserved = weight == 0
    other_pred = torch.where(unobserved, torch.full_like(pred, float("nan")), pred)
    other_target = torch.where(unobserved, torch.full_like(target, 123.0), target)
    torch.testing.assert_close(autorec_loss(other_pred, other_target, weight), loss)
    loss.backward()
    assert torch.all(pred.grad[unobserved] == 0) and torch.all(pred.grad[~unobserved] != 0)


def test_implicit_weights_count_every_entry_with_confidence():
    x = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(autorec_weights(x, implicit=True, alpha=4.0), torch.tensor([[5.0, 1.0, 5.0]]))
    with pytest.raises(ValueError, match="shapes"):
        autorec_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2))


def test_network_shapes_and_scores_equal_the_reconstruction():
    train, _ = _blocks(n_users=12, n_items=8)
    model = AutoRec(hidden=5, epochs=2, batch_size=4, seed=1).fit(train)
    net = model.module_
    assert isinstance(net, AutoRecNet) and net.encoder.weight.shape == (5, 12) and net.decoder.weight.shape == (12, 5)
    scores = model.score(np.arange(12))
    with torch.no_grad():
        columns = torch.from_numpy(train.binary().T.toarray().astype(np.float32))
        full = net(columns).numpy().T  # (n_users, n_items): the reconstruction of every item column
    np.testing.assert_allclose(scores, full, rtol=1e-5, atol=1e-5)
    assert scores.shape == (12, 8)


def test_autorec_learns_planted_blocks_and_is_registered():
    train, likes = _blocks()
    model = create("autorec", seed=0, hidden=4, epochs=20, lr=0.05, batch_size=8)
    assert isinstance(model, AutoRec)
    model.fit(train)
    scores = model.score(np.arange(likes.shape[0]))
    seen = train.matrix.toarray() > 0
    aucs = [np.mean(s[lk & ~v][:, None] > s[~lk][None, :]) for s, lk, v in zip(scores, likes, seen, strict=True)]
    assert np.mean(aucs) > 0.9
    assert model.history_.train_loss[-1] < 0.8 * model.history_.train_loss[0]
    with pytest.raises(ValueError, match="hidden"):
        AutoRec(hidden=0)


def test_ratings_variant_fits_the_stored_values():
    rng = np.random.default_rng(0)
    ratings = (rng.integers(1, 6, size=(30, 10)) * (rng.random((30, 10)) < 0.6)).astype(np.float32)
    model = AutoRec(hidden=8, implicit=False, epochs=60, lr=0.02, batch_size=10, seed=0).fit(_interactions(ratings))
    pred = model.score(np.arange(30))
    observed = ratings > 0
    rmse = np.sqrt(np.mean((pred[observed] - ratings[observed]) ** 2))
    assert rmse < np.std(ratings[observed])  # better than the constant mean on the entries it was fitted to
