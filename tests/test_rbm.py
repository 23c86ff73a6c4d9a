"""RBM and DBN: CD-k against the exact gradient on a tiny model, the free-energy surrogate against the
hand-written CD statistics, sampling, learning, and the DBN's shapes and pre-training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.dbn import DBN, DBNAutoencoder, DeepAutoencoderNet
from recsys_utils.models.rbm import RBM, RBMNet, cd_statistics, cd_surrogate, exact_gradient
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


def _tiny(seed=0, n_visible=5, n_hidden=3) -> tuple[RBMNet, torch.Tensor]:
    torch.manual_seed(seed)
    net = RBMNet(n_visible, n_hidden).double()
    with torch.no_grad():
        net.W.normal_(0, 0.8)
        net.b.normal_(0, 0.5)
        net.c.normal_(0, 0.5)
    data = torch.bernoulli(torch.full((6, n_visible), 0.4, dtype=torch.float64))
    return net, data


def _brute_force(net: RBMNet, data: torch.Tensor):
    """The exact gradient from the joint p(v, h): enumerate every (v, h) pair, no free energy."""
    nv, nh = net.W.shape
    vs = torch.tensor(np.array(np.meshgrid(*[[0, 1]] * nv, indexing="ij")).reshape(nv, -1).T, dtype=torch.float64)
    hs = torch.tensor(np.array(np.meshgrid(*[[0, 1]] * nh, indexing="ij")).reshape(nh, -1).T, dtype=torch.float64)
    with torch.no_grad():
        energy = -(vs @ net.b)[:, None] - (hs @ net.c)[None, :] - vs @ net.W @ hs.T
        p = torch.softmax(-energy.ravel(), 0).reshape(energy.shape)  # p(v, h)
        model_w = torch.einsum("vh,vi,hj->ij", p, vs, hs)
        h_data = torch.sigmoid(data @ net.W + net.c)
        return (data.T @ h_data / len(data) - model_w, data.mean(0) - p.sum(1) @ vs,
                h_data.mean(0) - p.sum(0) @ hs)


def test_exact_gradient_matches_the_joint_enumeration():
    net, data = _tiny()
    for got, expected in zip(exact_gradient(net, data), _brute_force(net, data), strict=True):
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="n_visible"):
        exact_gradient(RBMNet(20, 2), torch.zeros(1, 20))


def test_cd_with_many_gibbs_steps_approaches_the_exact_gradient():
    net, data = _tiny(n_visible=4)
    exact_w, exact_b, _ = exact_gradient(net, data)
    torch.manual_seed(1)
    v0 = data.repeat(2000, 1)  # many chains from the data
    vk = net.gibbs(v0, k=40)
    cd_w, cd_b, _ = cd_statistics(net, v0, vk)
    assert float((cd_w - exact_w).abs().max()) < 0.03
    assert float((cd_b - exact_b).abs().max()) < 0.03
    cd1_w, _, _ = cd_statistics(net, v0, net.gibbs(v0, k=1))
    assert float((cd1_w - exact_w).abs().max()) > float((cd_w - exact_w).abs().max())  # CD-1 is biased


def test_free_energy_surrogate_gradient_equals_cd_statistics():
    net, data = _tiny()
    vk = torch.bernoulli(torch.full_like(data, 0.5))  # a fixed negative sample
    loss = cd_surrogate(net, data, vk)
    grads = torch.autograd.grad(loss, [net.W, net.b, net.c])
    for grad, stat in zip(grads, cd_statistics(net, data, vk), strict=True):
        torch.testing.assert_close(-grad, stat)
    # the free energy against its definition -log Σ_h exp(-E(v, h))
    hs = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.float64)
    energy = -(data @ net.b)[:, None] - (hs @ net.c)[None, :] - data @ net.W @ hs.T
    torch.testing.assert_close(net.free_energy(data), -torch.logsumexp(-energy, dim=1))


def test_rbm_learns_blocks_logs_curves_and_samples():
    train, likes = _blocks()
    model = create("rbm", seed=0, hidden=8, epochs=30, lr=0.05, batch_size=16)
    assert isinstance(model, RBM)
    model.fit(train)
    logs = model.history_.logs
    assert len(logs["recon_error"]) == 30 and len(logs["free_energy"]) == 30
    assert logs["recon_error"][-1] < logs["recon_error"][0]
    scores = model.score(np.arange(likes.shape[0]))
    seen = train.matrix.toarray() > 0
    aucs = [np.mean(s[lk & ~v][:, None] > s[~lk][None, :]) for s, lk, v in zip(scores, likes, seen, strict=True)]
    assert np.mean(aucs) > 0.9
    samples = model.module_.sample(200, steps=100, seed=0).numpy()
    first = samples[:, :20].sum(1) > samples[:, 20:].sum(1)
    # a generated basket stays inside one block, as the data's do
    inside = np.where(first, samples[:, 20:].sum(1), samples[:, :20].sum(1)) / np.maximum(samples.sum(1), 1)
    assert inside.mean() < 0.2
    assert np.array_equal(samples, model.module_.sample(200, steps=100, seed=0).numpy())


def test_dbn_shapes_sampling_and_pretraining_initialises_the_autoencoder():
    train, _ = _blocks(n_users=40, n_items=20)
    dbn = DBN(20, hidden=(8, 4), epochs=2, batch_size=16).fit(train.binary())
    assert [tuple(r.W.shape) for r in dbn.rbms] == [(20, 8), (8, 4)] and len(dbn.histories_) == 2
    assert tuple(dbn.sample(7, steps=5).shape) == (7, 20)
    net = DeepAutoencoderNet(20, (8, 4), dropout=0.0)
    net.load_rbms(dbn.rbms)
    torch.testing.assert_close(net.encoder[0].weight, dbn.rbms[0].W.T)
    torch.testing.assert_close(net.encoder[1].bias, dbn.rbms[1].c)
    torch.testing.assert_close(net.decoder[0].weight, dbn.rbms[1].W)
    torch.testing.assert_close(net.decoder[-1].bias, dbn.rbms[0].b)
    assert tuple(net(torch.zeros(3, 20)).shape) == (3, 20)
    # the recommender: with one fine-tuning step at lr 0 the network is exactly the pre-trained stack
    model = DBNAutoencoder(hidden=(8, 4), pretrain_epochs=2, epochs=1, lr=0.0, batch_size=16, seed=0).fit(train)
    torch.testing.assert_close(model.module_.encoder[0].weight, model.dbn_.rbms[0].W.T)
    twin = DBNAutoencoder(hidden=(8, 4), pretrained=False, epochs=1, lr=0.0, batch_size=16, seed=0).fit(train)
    assert twin.dbn_ is None
    assert not torch.allclose(twin.module_.encoder[0].weight, model.module_.encoder[0].weight)
    assert model.score(np.arange(5)).shape == (5, 20)
    with pytest.raises(ValueError, match="hidden"):
        DBN(20, hidden=())
