"""Tests of recsys_utils.models.generative on tiny data (CPU, seconds)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.evaluation import synthetic as sy
from recsys_utils.models import generative as gen


def _users(n=120, n_items=40, seed=0):
    """Two kinds of users: items 0-19 or items 20-39, 3-8 items each."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, n_items), dtype=np.float32)
    for u in range(n):
        lo = 0 if u % 2 == 0 else n_items // 2
        out[u, rng.choice(np.arange(lo, lo + n_items // 2), rng.integers(3, 9), replace=False)] = 1
    return sp.csr_matrix(out)


def test_draw_without_replacement_sizes_and_distinct():
    rng = np.random.default_rng(0)
    logw = np.log(np.arange(1, 11, dtype=float))
    out = gen.draw_without_replacement(logw, np.array([0, 3, 10, 12]), rng)
    assert list(np.diff(out.indptr)) == [0, 3, 10, 10]
    assert out.max() == 1
    # frequencies follow the weights for single draws
    many = gen.draw_without_replacement(logw, np.ones(20000, dtype=int), rng)
    freq = np.asarray(many.sum(0)).ravel() / 20000
    np.testing.assert_allclose(freq, np.arange(1, 11) / 55, atol=0.01)


def test_samplers_keep_shape_activity_and_binary():
    x = _users()
    for g in (gen.PopularitySampler(), gen.ClusterSampler(n_clusters=2, factors=4), gen.CopyGenerator()):
        s = g.fit(x).sample(50, seed=1)
        assert s.shape == (50, 40) and set(np.unique(s.data)) <= {1.0}
        assert set(np.diff(s.indptr)) <= set(np.diff(x.indptr))


def test_cluster_sampler_keeps_groups_popularity_does_not():
    x = _users()
    cluster = gen.ClusterSampler(n_clusters=2, factors=4).fit(x).sample(100, seed=1).toarray()
    mixed = lambda s: np.mean((s[:, :20].sum(1) > 0) & (s[:, 20:].sum(1) > 0))  # noqa: E731
    assert mixed(cluster) < 0.2
    pop = gen.PopularitySampler().fit(x).sample(100, seed=1).toarray()
    assert mixed(pop) > 0.5


def test_copy_generator_copies():
    x = _users()
    s = gen.CopyGenerator().fit(x).sample(30, seed=0)
    assert sy.exact_copies(x, s) == 30
    flipped = gen.CopyGenerator(flip=2).fit(x).sample(30, seed=0)
    assert sy.exact_copies(x, flipped) < 30


def test_gan_trains_samples_and_is_seeded():
    x = _users()
    a = gen.InteractionGAN(steps=15, batch_size=32, noise_dim=4, hidden=16, critic_hidden=16, factors=4,
                           progress=False, log_every=5).fit(x)
    s = a.sample(64, seed=3)
    assert s.shape == (64, 40) and set(np.unique(s.data)) <= {1.0}
    assert len(a.history_.step) == 3
    b = gen.InteractionGAN(steps=15, batch_size=32, noise_dim=4, hidden=16, critic_hidden=16, factors=4,
                           progress=False).fit(x)
    assert (a.sample(64, seed=3) != b.sample(64, seed=3)).nnz == 0


def _mixed(sample) -> float:
    """Share of users with items from both planted groups (items 0-19 and 20-39)."""
    s = sample.toarray()
    return float(np.mean((s[:, :20].sum(1) > 0) & (s[:, 20:].sum(1) > 0)))


def test_gan_learns_the_planted_groups():
    """Real users take items from one half of the catalogue only. A trained GAN must learn that; the
    same GAN with the detach bug (no gradient reaches the generator) and the popularity sampler
    cannot (they mix both halves for most users)."""
    torch.set_num_threads(1)
    x = _users(n=200)
    kwargs = dict(steps=150, critic_steps=2, batch_size=64, noise_dim=4, hidden=32, critic_hidden=32, factors=4,
                  lr=1e-2, log_every=50, progress=False)
    trained = gen.InteractionGAN(**kwargs).fit(x)
    frozen = gen.InteractionGAN(detach_bug=True, **kwargs).fit(x)
    s_trained, s_frozen = trained.sample(400, seed=1), frozen.sample(400, seed=1)
    s_pop = gen.PopularitySampler().fit(x).sample(400, seed=1)
    assert _mixed(s_trained) < 0.3 and _mixed(s_frozen) > 0.7 and _mixed(s_pop) > 0.7
    corr = {name: sy.cooccurrence_correlation(x, s) for name, s in
            {"trained": s_trained, "frozen": s_frozen, "popularity": s_pop}.items()}
    assert corr["trained"] > 0.6 and corr["trained"] > max(corr["frozen"], corr["popularity"]) + 0.4, corr
    assert sy.popularity_js(x, s_trained) < 0.05  # and the marginals stay close to the real ones
    # the loop's history: one "epoch" per log block, the mean losses of each block in logs
    history = trained.train_history_
    assert history.epoch == [1, 2, 3] and set(history.logs) == {"critic_loss", "wasserstein", "generator_loss"}
    assert trained.history_.step == [50, 100, 150]


def test_every_generator_speaks_the_protocol():
    for cls in (gen.PopularitySampler, gen.ClusterSampler, gen.CopyGenerator, gen.InteractionGAN,
                gen.SessionGenerator):
        assert issubclass(cls, gen.Generator), cls
    with pytest.raises(TypeError):
        gen.Generator()


def test_gan_detach_bug_freezes_generator():
    x = _users()
    kwargs = dict(batch_size=32, noise_dim=4, hidden=16, critic_hidden=16, factors=4, progress=False)
    init = gen.InteractionGAN(steps=1, detach_bug=True, **kwargs).fit(x)
    buggy = gen.InteractionGAN(steps=10, detach_bug=True, **kwargs).fit(x)
    good = gen.InteractionGAN(steps=10, **kwargs).fit(x)
    for (name, p0), p1 in zip(init.generator_.named_parameters(), buggy.generator_.parameters(), strict=True):
        assert torch.equal(p0, p1), name
    assert any(not torch.equal(p0, p2) for p0, p2 in zip(init.generator_.parameters(), good.generator_.parameters(),
                                                         strict=True))


def test_straight_through_output_is_binary_with_gradient():
    torch.manual_seed(0)
    g = gen.GeneratorNet(4, 8, np.eye(10, 3, dtype=np.float32), np.zeros(10))
    out = g(torch.randn(5, 4), torch.full((5,), 3.0))
    values = out.detach()
    assert torch.allclose(values, values.round(), atol=1e-6)
    out.sum().backward()
    assert g.bias.grad is not None and g.bias.grad.abs().sum() > 0


def test_gan_errors():
    with pytest.raises(ValueError):
        gen.InteractionGAN(steps=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        gen.InteractionGAN().sample(3)
    with pytest.raises(ValueError, match="no interactions"):
        gen.PopularitySampler().fit(sp.csr_matrix((3, 4)))


def test_session_gru_fits_and_samples():
    rng = np.random.default_rng(0)
    # sessions walk up the item ids: i, i+1, i+2 (right-aligned, -1 padding)
    starts = rng.integers(0, 7, 400)
    lengths = rng.integers(1, 4, 400)
    seq = np.full((400, 5), -1)
    for r, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        seq[r, 5 - n:] = s + np.arange(n)
    model = gen.fit_session_gru(seq, 10, epochs=8, dim=8, hidden=16, noise_dim=2, batch_size=64, lr=1e-2,
                                progress=False)
    out = gen.sample_sessions(model, 300, max_len=5, temperature=0.5, seed=1)
    assert out.shape == (300, 5)
    lengths_out = (out >= 0).sum(1)
    assert lengths_out.min() >= 1
    # right-aligned: no padding after an item
    assert not (np.diff((out >= 0).astype(int), axis=1) < 0).any()
    # the learned transition: most next items are the previous + 1
    prev, nxt = out[:, :-1].ravel(), out[:, 1:].ravel()
    keep = (prev >= 0) & (nxt >= 0)
    assert np.mean(nxt[keep] == prev[keep] + 1) > 0.6
    with pytest.raises(ValueError):
        gen.sample_sessions(model, 3, temperature=-1)
    with pytest.raises(ValueError, match="n_items"):
        gen.fit_session_gru(seq, 5, progress=False)
    assert len(model.history_) == 8 and model.history_.train_loss[-1] < 0.7 * model.history_.train_loss[0]
    # the same training through the Generator protocol gives the same sessions
    wrapped = gen.SessionGenerator(epochs=8, dim=8, hidden=16, noise_dim=2, batch_size=64, lr=1e-2, max_len=5,
                                   temperature=0.5, progress=False).fit(seq, n_items=10)
    np.testing.assert_array_equal(wrapped.sample(300, seed=1), out)
    with pytest.raises(RuntimeError, match="not fitted"):
        gen.SessionGenerator().sample(3)


def test_marginal_calibration_matches_item_frequencies():
    x = _users(n=200)
    gan = gen.InteractionGAN(steps=5, batch_size=32, noise_dim=4, hidden=16, critic_hidden=16, factors=4,
                             progress=False).fit(x)
    with torch.no_grad():  # knock the item marginals off, as a collapsing generator does
        gan.generator_.bias += torch.as_tensor(np.random.default_rng(1).normal(0, 1.0, 40), dtype=torch.float32)
    with pytest.raises(RuntimeError, match="not fitted"):
        gen.InteractionGAN().calibrate_marginals(x)
    report = gan.calibrate_marginals(x, iterations=15, n_samples=4000)
    assert report["max_relative_error_after"] < 0.2 * report["max_relative_error_before"]
    target = np.asarray(x.mean(axis=0)).ravel()
    sample = gan.sample(4000, seed=2)
    generated = np.asarray(sample.mean(axis=0)).ravel()
    assert np.abs(generated - target).max() < 0.05
