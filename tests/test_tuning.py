"""Hyperparameter search, score fusion and the tunable BPR model of the tuning lesson."""

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FixedScores
from scipy.stats import rankdata

from recsys_utils.core.seed import seed_everything
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models.base import Recommender
from recsys_utils.tuning.optimisation import TunableBPR, gradient_trace
from recsys_utils.tuning.search import (
    BlendRecommender,
    blend_search,
    grid_search,
    normalise_scores,
    optuna_search,
    random_search,
    simplex_grid,
)


class Noisy(Recommender):
    """Truth plus seeded noise of size ``noise``: lower noise = better model (a known optimum)."""

    def __init__(self, truth, noise=1.0, seed=0):
        super().__init__()
        self.truth, self.noise, self.seed = truth, noise, seed

    def _fit(self, train):
        pass

    def score(self, user_indices):
        rng = np.random.default_rng(self.seed + 1000)  # independent of the truth
        noise = rng.normal(size=self.truth.shape)
        return (self.truth + self.noise * noise)[np.asarray(user_indices)]


def toy(n_users=60, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    users, items = IdIndex(range(n_users), "user_id"), IdIndex(range(n_items), "item_id")
    truth = rng.normal(size=(n_users, n_items))
    order = np.argsort(-truth, axis=1)
    train_rows = [(u, i) for u in range(n_users) for i in order[u, :3]]
    val_rows = [(u, i) for u in range(n_users) for i in order[u, 3:6]]

    def build(rows):
        return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]), users, items)

    return build(train_rows), build(val_rows), truth


def test_normalise_scores():
    s = np.array([[1.0, 2.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    z = normalise_scores(s, "zscore")
    np.testing.assert_allclose(z[0], (s[0] - s[0].mean()) / s[0].std())
    np.testing.assert_array_equal(z[1], 0.0)
    np.testing.assert_allclose(normalise_scores(s, "minmax")[0], [0, 0.5, 1, 1])
    np.testing.assert_allclose(normalise_scores(s, "rank")[0], (rankdata(s[0]) - 1) / 3)
    with pytest.raises(ValueError, match="method"):
        normalise_scores(s, "softmax")
    with pytest.raises(ValueError, match="2-D"):
        normalise_scores(s[0])


def test_simplex_grid():
    grid = simplex_grid(3, 0.5)
    assert grid.shape == (6, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert len(simplex_grid(3, 0.1)) == 66  # C(12, 2)
    with pytest.raises(ValueError, match="whole number"):
        simplex_grid(2, 0.3)


def test_blend_recommender_scores_and_search():
    train, val, truth = toy()
    a = FixedScores(truth + np.random.default_rng(1).normal(size=truth.shape) * 2)
    b = FixedScores(truth + np.random.default_rng(2).normal(size=truth.shape) * 2)
    members = {"a": a.fit(train), "b": b.fit(train)}
    blend = BlendRecommender(members, [0.3, 0.7], prefitted=True).fit(train)
    users = np.arange(5)
    expected = 0.3 * normalise_scores(a.score(users)) + 0.7 * normalise_scores(b.score(users))
    np.testing.assert_allclose(blend.score(users), expected, rtol=1e-5, atol=1e-6)
    weights, table = blend_search(members, train, val, weights=simplex_grid(2, 0.1))
    assert len(table) == 11 and table["ndcg@10"].is_monotonic_decreasing
    # every row of the table is what the protocol gives for that blend
    for _, row in table.iloc[[0, 5]].iterrows():
        model = BlendRecommender(members, [row["a"], row["b"]], prefitted=True).fit(train)
        assert evaluate(model, train, val, k=10, metrics=("ndcg",))["ndcg@10"] == pytest.approx(row["ndcg@10"])
    # two independent noisy views of the truth: their average beats either alone
    single = table.set_index(["a", "b"])["ndcg@10"]
    assert table["ndcg@10"].iloc[0] > max(single[(1.0, 0.0)], single[(0.0, 1.0)])
    assert 0.0 < weights[0] < 1.0
    with pytest.raises(ValueError, match="not fitted"):
        BlendRecommender({"a": FixedScores(truth)}, prefitted=True).fit(train)
    with pytest.raises(ValueError, match="weights"):
        BlendRecommender(members, [1.0])


def test_grid_and_random_search_find_the_known_optimum():
    train, val, truth = toy()

    def build(noise, seed=0):
        return Noisy(truth, noise, seed)

    grid = grid_search(build, {"noise": [3.0, 0.0, 1.0]}, train, val)
    assert grid.best_params == {"noise": 0.0} and grid.best_value == pytest.approx(1.0)
    assert list(grid.trials["noise"]) == [3.0, 0.0, 1.0]
    assert (np.diff(grid.best_so_far()) >= 0).all()
    budget = grid_search(build, {"noise": [3.0, 2.0, 1.0, 0.5], "seed": [0, 1]}, train, val, budget=3, seed=4)
    assert budget.n_trials == 3
    rand = random_search(build, {"noise": ("uniform", 0.0, 4.0), "seed": [0, 1, 2]}, train, val, n_trials=8, seed=1)
    assert rand.n_trials == 8 and rand.trials["noise"].between(0, 4).all()
    assert rand.best_params["noise"] == pytest.approx(rand.trials["noise"].min())
    again = random_search(build, {"noise": ("uniform", 0.0, 4.0), "seed": [0, 1, 2]}, train, val, n_trials=8, seed=1)
    pd.testing.assert_frame_equal(rand.trials.drop(columns="seconds"), again.trials.drop(columns="seconds"))
    assert isinstance(rand.best_params["seed"], int)
    with pytest.raises(ValueError, match="cannot draw"):
        random_search(build, {"noise": ("beta", 0, 1)}, train, val)
    with pytest.raises(ValueError, match="empty"):
        grid_search(build, {}, train, val)


def test_optuna_search_is_seeded_and_prunes():
    def objective(params, report):
        for step in range(5):
            report(step, -abs(params["x"] - 2.0) - 1.0 / (step + 1))
        return -abs(params["x"] - 2.0)

    def space(trial):
        return {"x": trial.suggest_float("x", -10.0, 10.0)}

    result = optuna_search(objective, space, n_trials=25, seed=3, n_startup_trials=5, n_warmup_steps=1)
    assert abs(result.best_params["x"] - 2.0) < 1.0
    assert (result.trials["state"] == "PRUNED").any()
    assert result.trials.loc[result.trials["state"] == "PRUNED", "value"].isna().all()
    again = optuna_search(objective, space, n_trials=25, seed=3, n_startup_trials=5, n_warmup_steps=1)
    assert again.best_params == result.best_params


def small_matrix():
    rng = np.random.default_rng(0)
    users, items = IdIndex(range(50), "user_id"), IdIndex(range(30), "item_id")
    rows = [(u, i) for u in range(50) for i in rng.choice(30, 5, replace=False)]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id"]), users, items)


def test_tunable_bpr_options_and_callback():
    train = small_matrix()
    seen = []
    model = TunableBPR(dim=8, epochs=3, batch_size=64, optimizer="adagrad", lr=0.1, patience=None, init="uniform",
                       init_scale=0.01, l1=1e-4, l2=1e-4, dropout=0.2, device="cpu",
                       on_epoch=lambda epoch, value: seen.append(epoch)).fit(train, train)
    assert seen == [1, 2, 3] and model.score(np.arange(4)).shape == (4, 30)
    users, _ = model.embeddings()
    assert np.abs(users).max() < 1.0
    fresh = TunableBPR(dim=8, init="uniform", init_scale=0.01, epochs=1, device="cpu")._build(train)
    assert fresh.user.weight.abs().max() <= 0.01
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    for optimizer, lr in (("sgd", 2.0), ("adam", 0.05), ("adamw", 0.05)):
        fitted = TunableBPR(dim=16, epochs=5, batch_size=64, optimizer=optimizer, lr=lr, device="cpu").fit(train)
        assert type(fitted._optimizer(fitted.module_)) is expected[optimizer]
        losses = fitted.history_.train_loss
        assert losses[-1] < 0.9 * losses[0], (optimizer, losses)  # each optimiser trains the model
    with pytest.raises(ValueError, match="init"):
        TunableBPR(init="he")
    with pytest.raises(ValueError, match="optimizer"):
        TunableBPR(optimizer="lion")
    with pytest.raises(ValueError, match="dropout"):
        TunableBPR(dropout=1.0)


def test_gradient_trace_clipping_bounds_the_run():
    train = small_matrix()
    setup = dict(dim=8, optimizer="sgd", lr=1e4, batch_size=32, init="normal", init_scale=1.0, device="cpu")
    wild = gradient_trace(TunableBPR(clip_norm=None, **setup), train, steps=60)
    tame = gradient_trace(TunableBPR(clip_norm=0.01, **setup), train, steps=60)
    assert len(tame) == 60 and np.isfinite(tame["loss"]).all()
    assert wild["max_embedding_norm"].iloc[-1] > 100 * tame["max_embedding_norm"].iloc[-1]
    assert (tame["grad_norm"].iloc[0] == wild["grad_norm"].iloc[0])  # same start, same seed
    with pytest.raises(ValueError, match="steps"):
        gradient_trace(TunableBPR(**setup), train, steps=0)


def test_gradient_trace_matches_a_hand_written_loop():
    """The trace (the course loop + a callback) against plain torch: the same batches, autograd
    gradients, their norm summed by hand, the model's own optimiser stepped by hand."""
    train = small_matrix()
    model = TunableBPR(dim=8, optimizer="sgd", momentum=0.9, lr=0.5, batch_size=32, clip_norm=0.1, seed=3,
                       device="cpu")
    trace = gradient_trace(model, train, steps=12)  # 12 steps: more than one epoch of 8 batches
    seed_everything(model.seed)  # the hand loop seeds like fit does
    module = model._build(train)
    optimizer = model._optimizer(module)
    batches = model._batches(train)
    norms, losses = [], []
    for batch in [b for epoch in (1, 2) for b in batches(epoch)][:12]:
        loss = model._loss(module, batch)
        grads = torch.autograd.grad(loss, list(module.parameters()))
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
        norms.append(norm)
        losses.append(float(loss.detach()))
        for p, g in zip(module.parameters(), grads, strict=True):
            p.grad = g * min(1.0, 0.1 / (norm + 1e-6))  # clip to 0.1 as clip_grad_norm_ does
        optimizer.step()
    np.testing.assert_allclose(trace["grad_norm"].to_numpy(), norms, rtol=1e-5)
    np.testing.assert_allclose(trace["loss"].to_numpy(), losses, rtol=1e-5)
    assert max(norms) > 0.1  # clipping was active, so the replay checks it too
