"""Neural recommenders: NCF (GMF, MLP, NeuMF), the MLP regressor, Mult-VAE and DeepFM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.autoencoders import MultDAE, MultVAE, MultVAENet
from recsys_utils.models.ctr import CTRFeatures, DeepFM, DeepFMNet, ctr_metrics, ctr_samples
from recsys_utils.models.neural import GMF, GMFNet, IdMLP, IdMLPRegressor, MLPNet, NeuMF, NeuMFNet


def _as_interactions(matrix: sp.csr_matrix) -> Interactions:
    coo = sp.coo_matrix(matrix)
    frame = pd.DataFrame({"user_id": coo.row, "item_id": coo.col, "w": coo.data})
    users = IdIndex(np.arange(matrix.shape[0]), "user_id")
    items = IdIndex(np.arange(matrix.shape[1]), "item_id")
    return Interactions.from_frame(frame, users, items, weight="w")


def _blocks(n_users=60, n_items=40, p_in=0.5, seed=0):
    """Two groups of users, each clicking (only) inside its own half of the catalogue."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_users) % 2
    block = np.arange(n_items) // (n_items // 2)
    likes = group[:, None] == block[None, :]
    dense = (likes & (rng.random((n_users, n_items)) < p_in)).astype(np.float32)
    return _as_interactions(sp.csr_matrix(dense)), likes


def _block_auc(model, likes, train):
    """Share of (in-block unseen, out-of-block) pairs ranked the right way, averaged over users."""
    scores = model.score(np.arange(likes.shape[0]))
    seen = train.matrix.toarray() > 0
    aucs = []
    for u in range(likes.shape[0]):
        pos = scores[u, likes[u] & ~seen[u]]
        neg = scores[u, ~likes[u]]
        if len(pos):
            aucs.append((pos[:, None] > neg[None, :]).mean())
    return float(np.mean(aucs))


# ------------------------------------------------------------------------- networks: fast scoring is exact


def test_score_all_matches_pairwise_forward():
    torch.manual_seed(0)
    users = torch.arange(5)
    grid_u = users.repeat_interleave(7)
    grid_i = torch.arange(7).repeat(5)
    for net in (GMFNet(5, 7, 4), MLPNet(5, 7, 4, (8, 3)), NeuMFNet(5, 7, 4, 3, (6, 2))):
        net.eval()
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.5)
        with torch.no_grad():
            torch.testing.assert_close(net.score_all(users), net(grid_u, grid_i).reshape(5, 7), rtol=1e-5,
                                       atol=1e-5)


def test_neumf_pretraining_with_alpha_one_is_gmf():
    torch.manual_seed(0)
    gmf, mlp = GMFNet(4, 6, 3), MLPNet(4, 6, 2, (4, 2))
    for p in [*gmf.parameters(), *mlp.parameters()]:
        torch.nn.init.normal_(p)
    neumf = NeuMFNet(4, 6, 3, 2, (4, 2))
    neumf.load_pretrained(gmf, mlp, alpha=1.0)
    u, i = torch.arange(4).repeat(6), torch.arange(6).repeat_interleave(4)
    with torch.no_grad():
        torch.testing.assert_close(neumf(u, i), gmf(u, i))
        neumf.load_pretrained(gmf, mlp, alpha=0.0)
        torch.testing.assert_close(neumf(u, i), mlp(u, i))
    with pytest.raises(ValueError, match="alpha"):
        neumf.load_pretrained(gmf, mlp, alpha=1.5)


# ------------------------------------------------------------------------- learned behaviour


@pytest.mark.parametrize("make", [
    lambda: GMF(dim=8, lr=0.03, epochs=15),
    lambda: IdMLP(dim=8, hidden=(16, 8), lr=0.03, epochs=15),
    lambda: NeuMF(gmf_dim=8, mlp_dim=8, hidden=(16, 8), lr=0.01, epochs=15),
    lambda: MultVAE(hidden=(32,), latent=8, lr=0.01, epochs=40, batch_size=16),
    lambda: MultDAE(hidden=(32,), latent=8, lr=0.01, epochs=40, batch_size=16),
])
def test_models_learn_planted_blocks(make):
    train, likes = _blocks()
    model = make()
    model.batch_size = min(model.batch_size, 64)
    model.fit(train)
    assert _block_auc(model, likes, train) > 0.9
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]


def test_neumf_with_pretrained_parts():
    train, likes = _blocks()
    gmf = GMF(dim=8, lr=0.03, epochs=10, batch_size=64).fit(train)
    mlp = IdMLP(dim=8, hidden=(16, 8), lr=0.01, epochs=10, batch_size=64).fit(train)
    neumf = NeuMF(pretrained=(gmf, mlp), lr=1e-3, epochs=1, batch_size=64)
    assert (neumf.gmf_dim, neumf.mlp_dim, neumf.hidden) == (8, 8, (16, 8))
    scores = gmf.score(np.array([0, 1]))[[0, 1], [2, 3]]
    np.testing.assert_allclose(gmf.predict_proba([0, 1], [2, 3]), 1 / (1 + np.exp(-scores)), rtol=1e-5)
    neumf.fit(train)
    assert _block_auc(neumf, likes, train) > 0.9
    with pytest.raises(TypeError, match="pretrained"):
        NeuMF(pretrained=(mlp, gmf))
    other, _ = _blocks(n_users=50)
    with pytest.raises(ValueError, match="pre-trained"):
        NeuMF(pretrained=(gmf, mlp), epochs=1).fit(other)


def test_regressor_beats_the_global_mean_and_stops_on_rmse():
    rng = np.random.default_rng(0)
    n_users, n_items = 80, 30
    b_u, b_i = rng.normal(0, 0.8, n_users), rng.normal(0, 0.8, n_items)
    mask = rng.random((n_users, n_items)) < 0.5
    ratings = np.clip(np.round(3 + b_u[:, None] + b_i[None, :] + rng.normal(0, 0.3, mask.shape)), 1, 5) * mask
    split = rng.random(mask.shape) < 0.8
    train = _as_interactions(sp.csr_matrix(ratings * split))
    test = _as_interactions(sp.csr_matrix(ratings * ~split))
    model = IdMLPRegressor(dim=8, hidden=(16,), lr=0.01, epochs=30, batch_size=128, validation=test,
                           patience=5).fit(train)
    assert model.history_.metric_name == "rmse" and model.history_.mode == "min"
    assert model.history_.best_metric == min(model.history_.val_metric)
    baseline = np.sqrt(np.mean((test.matrix.data - train.matrix.data.mean()) ** 2))
    assert model.rmse(test) < 0.8 * baseline
    np.testing.assert_allclose(model.predict([0, 1], [2, 3]), model.score([0, 1])[[0, 1], [2, 3]], rtol=1e-5)


def _vae_forward_numpy(net: MultVAENet, rows: np.ndarray) -> np.ndarray:
    """The eval-mode Mult-VAE forward pass written out with the network's weights: normalise the
    history row, tanh encoder, take the mean of q(z|x) (no sampling), tanh decoder, raw logits."""
    w = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    h = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    for i in range(len(net.encoder)):
        h = np.tanh(h @ w[f"encoder.{i}.weight"].T + w[f"encoder.{i}.bias"])
    z = (h @ w["to_latent.weight"].T + w["to_latent.bias"])[:, :net.latent]
    for i in range(len(net.decoder)):
        z = z @ w[f"decoder.{i}.weight"].T + w[f"decoder.{i}.bias"]
        if i < len(net.decoder) - 1:
            z = np.tanh(z)
    return z


def test_vae_scores_come_from_the_history_row():
    dense = _blocks()[0].matrix.toarray()
    dense[2] = dense[0]  # users 0 and 2 share one history; user 1 is of the other group
    train = _as_interactions(sp.csr_matrix(dense))
    vae = MultVAE(hidden=(16,), latent=4, epochs=2, batch_size=16).fit(train)
    assert vae.beta == pytest.approx(vae.beta_cap)  # annealed over the whole run: 4 batches x 2 epochs
    users = np.arange(6)
    scores = vae.score(users)
    # the score of a user is the network applied to that user's (binarised) history row, nothing else
    np.testing.assert_allclose(scores, _vae_forward_numpy(vae.module_, (dense[users] > 0).astype(float)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(scores[0], scores[2])  # same history, same scores (no per-user parameter)
    assert np.abs(scores[0] - scores[1]).max() > 1e-3  # different histories, different scores
    np.testing.assert_array_equal(vae.score(users), scores)  # eval mode: no sampling, no dropout
    # the KL term is KL(N(mu, sigma^2) || N(0, 1)) summed over the latent dimensions
    net = MultVAENet(10, (6,), 3)
    net.eval()
    rows = torch.rand(4, 10)
    logits, kl = net(rows)
    mu, logvar = net.encode(rows)
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()), prior)
    torch.testing.assert_close(kl, expected.sum(dim=1))
    np.testing.assert_allclose(logits.detach().numpy(), _vae_forward_numpy(net, rows.double().numpy()),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="beta_cap"):
        MultVAE(beta_cap=-1)


# ------------------------------------------------------------------------- DeepFM and CTR data


def test_deepfm_grid_scoring_matches_forward():
    torch.manual_seed(0)
    sizes = [5, 3, 4, 6, 2]
    net = DeepFMNet(sizes, n_user_side=2, dim=3, hidden=(8, 4))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    net.eval()
    users = torch.stack([torch.randint(0, s, (4,)) for s in sizes[:2]], dim=1)
    items = torch.stack([torch.randint(0, s, (6,)) for s in sizes[2:]], dim=1)
    rows = torch.cat([users.repeat_interleave(6, 0), items.repeat(4, 1)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net.score_grid(users, items), net(rows).reshape(4, 6), rtol=1e-5, atol=1e-5)
    # the FM term equals the sum of pairwise inner products
    for layer in net.layers:  # the tower outputs its constant out.bias
        layer.weight.data.zero_()
        layer.bias.data.zero_()
    net.linear.weight.data.zero_()
    net.bias.data.zero_()
    e = net.embedding(rows[:1] + net.offsets)[0]
    with torch.no_grad():
        pairwise = sum(float(e[f] @ e[g]) for f in range(5) for g in range(f + 1, 5))
        assert float(net(rows[:1]) - net.out.bias) == pytest.approx(pairwise, rel=1e-4)
    with pytest.raises(ValueError, match="n_user_side"):
        DeepFMNet(sizes, n_user_side=5)


def _tiny_market(seed=0, n_users=60, n_items=30, days=20):
    """Users of two segments clicking items of 'their' category, with device and time."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": np.arange(n_items) + 100, "category": np.where(np.arange(n_items) % 2, "A", "B"),
                          "top_category": "all", "brand": rng.choice(["x", "y", "z"], n_items),
                          "price": rng.uniform(5, 100, n_items),
                          "launch_time": pd.Timestamp("2024-01-01")})
    users = pd.DataFrame({"user_id": np.arange(n_users) + 1, "gender": np.where(np.arange(n_users) % 2, "F", "M"),
                          "age": rng.integers(18, 60, n_users)})
    n = 3000
    u = rng.integers(0, n_users, n)
    like_a = u % 2 == 1
    same = rng.random(n) < 0.9
    cat_is_a = np.where(same, like_a, ~like_a)
    item = 2 * rng.integers(0, n_items // 2, n) + cat_is_a.astype(int)
    events = pd.DataFrame({
        "user_id": u + 1, "item_id": item + 100,
        "timestamp": pd.Timestamp("2024-02-01") + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D"),
        "event": "view", "device": rng.choice(["app", "web"], n), "session_id": np.arange(n),
    })
    return events, items, users


def test_ctr_samples_and_features():
    events, items, users = _tiny_market()
    samples = ctr_samples(events, items.item_id.to_numpy(), n_negatives=3, seed=0)
    pos, neg = samples[samples.label == 1], samples[samples.label == 0]
    assert len(pos) == len(events.drop_duplicates(["user_id", "item_id"]))
    clicked = set(zip(events.user_id, events.item_id, strict=True))
    assert not any((u, i) in clicked for u, i in zip(neg.user_id, neg.item_id, strict=True))
    assert 0.3 * len(pos) < len(neg) <= 3 * len(pos)  # draws that hit a click are dropped
    feats = CTRFeatures(n_bins=4).fit(events, items, users)
    codes = feats.encode(samples)
    assert codes.shape == (len(samples), len(feats.fields)) and codes.dtype == np.int64
    assert (codes >= 0).all() and (codes < np.array(feats.sizes)).all()
    assert feats.fields[: feats.n_user_side][-3:] == ["device", "daypart", "weekend"]
    # unknown users and items fall into code 0 of their id fields
    unknown = feats.encode(pd.DataFrame({"user_id": [999], "item_id": [999]}))
    assert unknown[0, feats.fields.index("user_id")] == 0 and unknown[0, feats.fields.index("item_id")] == 0
    assert feats.one_hot(codes).sum(axis=1).A.ravel().tolist() == [len(feats.fields)] * len(codes)
    with pytest.raises(KeyError, match="timestamp"):
        ctr_samples(events.drop(columns="timestamp"), items.item_id)
    with pytest.raises(RuntimeError, match="not fitted"):
        CTRFeatures().encode_items([1])


def test_ctr_metrics_against_hand_values():
    out = ctr_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert out["auc"] == pytest.approx(0.75)
    assert out["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert out["positive_rate"] == 0.5


def test_deepfm_learns_the_segment_category_interaction():
    events, items, users = _tiny_market()
    cut = pd.Timestamp("2024-02-15")  # train on days 0-14, measure on days 14-20
    past, future = events[events.timestamp < cut], events[events.timestamp >= cut]
    frame = past[["user_id", "item_id"]].drop_duplicates()
    uidx = IdIndex(users.user_id.to_numpy(), "user_id")
    iidx = IdIndex(items.item_id.to_numpy(), "item_id")
    train = Interactions.from_frame(frame, uidx, iidx, weight=None)
    model = DeepFM(past, items, users, label_days=6, dim=4, hidden=(16,), epochs=8, lr=0.02,
                   batch_size=256).fit(train)
    scores = model.score(np.arange(train.n_users))
    is_a = (items.category.to_numpy() == "A")
    likes_a = users.user_id.to_numpy() % 2 == 0  # index u = user_id - 1 likes A when u is odd
    own = np.where(likes_a[:, None], is_a[None, :], ~is_a[None, :])
    assert scores[own].mean() > scores[~own].mean() + 0.5
    # out of time: clicks after the training period against sampled non-clicks of the same users
    test = ctr_samples(future, items.item_id.to_numpy(), seed=3)
    deepfm_auc = ctr_metrics(test.label, model.predict_proba(test))["auc"]
    # baselines on the same test rows: popularity in the training period, and a logistic regression on
    # the one-hot of the same fields trained on the same kind of samples (no field interactions)
    popularity = past.item_id.value_counts().reindex(test.item_id, fill_value=0).to_numpy()
    popularity_auc = ctr_metrics(test.label, popularity / popularity.max())["auc"]
    label_start = past.timestamp.max() - pd.Timedelta(days=6)
    feats = CTRFeatures().fit(past[past.timestamp < label_start], items, users)
    samples = ctr_samples(past[past.timestamp >= label_start], items.item_id.to_numpy(), seed=0)
    logistic = LogisticRegression(C=1.0, max_iter=1000).fit(feats.one_hot(feats.encode(samples)), samples.label)
    serving = feats.refresh(past)
    logistic_auc = ctr_metrics(test.label, logistic.predict_proba(serving.one_hot(serving.encode(test)))[:, 1])["auc"]
    assert deepfm_auc > 0.72, deepfm_auc  # 0.78 when written; the baselines are at chance (about 0.5)
    assert deepfm_auc > max(popularity_auc, logistic_auc) + 0.15, (deepfm_auc, popularity_auc, logistic_auc)
    # refreshing the features to a shorter history changes the user features, not the weights
    before = model.score(np.arange(3))
    weights = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.refresh_features(past.iloc[:1000])
    assert not np.allclose(model.score(np.arange(3)), before)
    assert all(torch.equal(v, model.module_.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ValueError, match="label_days"):
        DeepFM(past, items, users, label_days=100, epochs=1).fit(train)
