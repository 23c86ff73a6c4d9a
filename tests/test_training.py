"""The shared torch training machinery: batches, negative sampling, the loop, seeding, checkpoints."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import refit
from recsys_utils.models.train.batches import ArrayBatches, InteractionBatches, UserBatches, sample_negatives
from recsys_utils.models.train.callbacks import Callback, GradientTrace
from recsys_utils.models.train.checkpoint import load_state, save_state
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch, make_scheduler


def _matrix(n_users=30, n_items=40, density=0.15, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32) * rng.integers(1, 4, (n_users, n_items))
    dense[0, :3] = 1.0  # every user row has something
    return sp.csr_matrix(dense)


def _interactions(matrix: sp.csr_matrix) -> Interactions:
    rows, cols = matrix.nonzero()
    frame = pd.DataFrame({"user_id": rows + 100, "item_id": cols + 1000, "w": np.asarray(matrix[rows, cols]).ravel()})
    from recsys_utils.data.interactions import IdIndex

    users = IdIndex(np.arange(matrix.shape[0]) + 100, "user_id")
    items = IdIndex(np.arange(matrix.shape[1]) + 1000, "item_id")
    return Interactions.from_frame(frame, users, items, weight="w")


# ------------------------------------------------------------------------- negative sampling


def test_uniform_negatives_in_range_and_seeded():
    a = sample_negatives((500, 3), 17, rng=1)
    b = sample_negatives((500, 3), 17, rng=1)
    assert a.shape == (500, 3) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() <= 16
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 17


def test_popularity_negatives_follow_counts():
    counts = np.array([0, 1, 2, 7, 0], dtype=float)
    draws = sample_negatives(200_000, 5, "popularity", counts, rng=0)
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, counts / counts.sum(), atol=0.005)
    assert freq[0] == 0 and freq[4] == 0  # items nobody clicked are never drawn
    # alpha flattens the distribution (word2vec's 0.75)
    flat = np.bincount(sample_negatives(200_000, 5, "popularity", counts, rng=0, alpha=0.5), minlength=5)
    expected = np.sqrt(counts) / np.sqrt(counts).sum()
    np.testing.assert_allclose(flat / flat.sum(), expected, atol=0.005)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_items": 0}, "n_items"),
    ({"strategy": "hard"}, "strategy"),
    ({"strategy": "popularity"}, "item_counts"),
    ({"strategy": "popularity", "item_counts": np.ones(3)}, "shape"),
    ({"strategy": "popularity", "item_counts": np.array([1.0, -1, 0, 0, 0])}, ">= 0"),
    ({"strategy": "popularity", "item_counts": np.zeros(5)}, "all zero"),
])
def test_negative_sampling_errors(kwargs, message):
    args = {"n": 4, "n_items": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_negatives(**args)


# ------------------------------------------------------------------------- batches


def test_pointwise_batches_cover_every_positive_once_with_true_negatives():
    matrix = _matrix()
    before = matrix.copy()
    batches = InteractionBatches(matrix, batch_size=64, kind="pointwise", n_negatives=3, seed=5)
    users, items, labels = (torch.cat(parts).numpy() for parts in zip(*batches(1), strict=True))
    assert len(labels) == matrix.nnz * 4
    np.testing.assert_array_equal(labels.reshape(-1, 4), np.tile([1.0, 0, 0, 0], (matrix.nnz, 1)))
    pos = labels == 1
    keys = np.sort(users[pos] * matrix.shape[1] + items[pos])
    rows, cols = matrix.nonzero()
    np.testing.assert_array_equal(keys, np.sort(rows * matrix.shape[1] + cols))
    # sampled negatives are non-clicks of their user (a sparse matrix leaves plenty to re-draw from)
    assert not np.asarray(matrix[users[~pos], items[~pos]]).any()
    # the caller's matrix is untouched
    assert (matrix != before).nnz == 0


def test_batches_are_seeded_per_epoch():
    batches = InteractionBatches(_matrix(), batch_size=50, kind="pairwise", seed=3)
    first = [b[2].numpy() for b in batches(1)]
    again = [b[2].numpy() for b in batches(1)]
    other = [b[2].numpy() for b in batches(2)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_pairwise_and_rating_batches():
    matrix = _matrix()
    pair = InteractionBatches(matrix, batch_size=32, kind="pairwise", n_negatives=2, seed=0)
    users, pos, neg = (t.numpy().copy() for t in next(iter(pair(0))))
    assert neg.shape == (32, 2) and users.shape == pos.shape == (32,)
    assert np.asarray(matrix[users, pos]).all()
    assert len(pair) == math.ceil(matrix.nnz / 32)
    rating = InteractionBatches(matrix, batch_size=1000, kind="rating", shuffle=False)
    users, items, values = (t.numpy().copy() for t in next(iter(rating(0))))
    np.testing.assert_array_equal(values, np.asarray(matrix[users, items]).ravel())


def test_popularity_batches_use_train_counts():
    matrix = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0.0]]))
    batches = InteractionBatches(matrix, batch_size=10, kind="pairwise", strategy="popularity", seed=0,
                                 exclude_positives=False)
    np.testing.assert_array_equal(batches.item_counts, [3, 2, 0, 0])
    negs = np.concatenate([b[2].numpy() for e in range(20) for b in batches(e)])
    assert set(negs) <= {0, 1}


@pytest.mark.parametrize("kwargs, error", [
    ({"matrix": np.ones((3, 3))}, TypeError),
    ({"kind": "listwise"}, ValueError),
    ({"batch_size": 0}, ValueError),
    ({"n_negatives": 0}, ValueError),
    ({"matrix": sp.csr_matrix((3, 3))}, ValueError),
])
def test_interaction_batches_errors(kwargs, error):
    args = {"matrix": _matrix(), **kwargs}
    with pytest.raises(error):
        InteractionBatches(**args)


def test_user_batches_give_binary_rows_and_skip_empty_users():
    matrix = _matrix().tolil()
    matrix[5, :] = 0
    matrix = sp.csr_matrix(matrix)
    batches = UserBatches(matrix, batch_size=7, seed=0)
    seen = []
    for users, rows in batches(0):
        np.testing.assert_array_equal(rows.numpy(), (matrix[users.numpy().copy()].toarray() > 0).astype(np.float32))
        seen.extend(users.tolist())
    assert sorted(seen) == [u for u in range(matrix.shape[0]) if u != 5]


def test_array_batches():
    x, y = np.arange(20).reshape(10, 2), np.arange(10.0)
    batches = ArrayBatches(x, y, batch_size=4, seed=0)
    parts = list(batches(0))
    assert len(parts) == len(batches) == 3
    xs, ys = torch.cat([p[0] for p in parts]).numpy(), torch.cat([p[1] for p in parts]).numpy()
    np.testing.assert_array_equal(xs[:, 0] // 2, ys)  # rows stay aligned
    assert sorted(ys) == list(range(10))
    with pytest.raises(ValueError, match="different lengths"):
        ArrayBatches(x, y[:3])


# ------------------------------------------------------------------------- the loop


def _logistic_problem(seed=0, n=600):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x @ np.array([2.0, -1, 0.5, 0, 1]) + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def _bce(model, batch):
    x, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y)


def test_training_loss_falls_and_history_is_data():
    x, y = _logistic_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    history = fit_torch(model, ArrayBatches(x, y, batch_size=64), _bce, torch.optim.Adam(model.parameters(), 0.05),
                        epochs=6, progress=True, device="cpu")
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.best_epoch == 6 and not history.stopped_early
    frame = history.to_frame()
    assert list(frame.columns) == ["epoch", "train_loss", "val_metric", "lr", "seconds", "best"]
    assert frame["best"].sum() == 1 and frame["val_metric"].isna().all()
    assert History(**{k: v for k, v in history.to_dict().items()}).to_frame().equals(frame)


def test_early_stopping_restores_best_epoch_weights():
    x, y = _logistic_problem()
    model = nn.Linear(5, 1)
    scripted = iter([0.10, 0.30, 0.25, 0.20, 0.40])
    snapshots = []

    def validate():
        snapshots.append(model.weight.detach().clone())
        return next(scripted)

    history = fit_torch(model, ArrayBatches(x, y, batch_size=100), _bce, torch.optim.SGD(model.parameters(), 0.5),
                        epochs=10, validate=validate, patience=2, progress=False, seed=0)
    assert history.epoch == [1, 2, 3, 4] and history.stopped_early
    assert history.best_epoch == 2 and history.best_metric == pytest.approx(0.30)
    torch.testing.assert_close(model.weight, snapshots[1])
    assert not torch.equal(model.weight, snapshots[-1])


def test_early_stopping_min_mode_and_checkpoints(tmp_path):
    x, y = _logistic_problem()
    model = nn.Linear(5, 1)
    scripted = iter([0.9, 0.5, 0.7, 0.8])
    snapshots = []

    def validate():
        snapshots.append(model.weight.detach().clone())
        return next(scripted)

    history = fit_torch(model, ArrayBatches(x, y), _bce, torch.optim.SGD(model.parameters(), 0.5), epochs=4,
                        validate=validate, patience=5, mode="min", metric_name="loss", progress=False, seed=0,
                        checkpoint_dir=tmp_path / "ckpt")
    assert history.best_epoch == 2 and history.metric_name == "loss"
    torch.testing.assert_close(model.weight, snapshots[1])
    assert (tmp_path / "ckpt" / "best.pt").is_file() and (tmp_path / "ckpt" / "last.pt").is_file()
    last = nn.Linear(5, 1)
    load_state(last, tmp_path / "ckpt" / "last.pt")
    torch.testing.assert_close(last.weight, snapshots[-1])


def test_gradient_clipping_bounds_the_step():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    data = [(torch.full((4, 1), 1000.0), torch.zeros(4))]

    def loss_fn(m, batch):
        x, _ = batch
        return m(x).sum() * 1000.0  # gradient 4e6

    fit_torch(model, data, loss_fn, torch.optim.SGD(model.parameters(), lr=1.0), epochs=1, clip_norm=0.5,
              progress=False)
    assert abs(model.weight.item()) == pytest.approx(0.5, rel=1e-5)


def test_non_finite_loss_is_reported():
    model = nn.Linear(1, 1)
    data = [(torch.ones(2, 1),)]
    with pytest.raises(FloatingPointError, match="epoch 1, batch 0"):
        fit_torch(model, data, lambda m, b: m(b[0]).sum() * float("nan"), torch.optim.SGD(model.parameters(), 0.1),
                  epochs=1, progress=False)


def test_schedules():
    model = nn.Linear(2, 1)
    data = [(torch.ones(3, 2),)]

    def loss(m, b):
        return m(b[0]).pow(2).mean()

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit_torch(model, data, loss, opt, epochs=4, scheduler=make_scheduler("cosine", opt, 4),
                        progress=False)
    cosine = [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(history.lr, cosine)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit_torch(model, data, loss, opt, epochs=6, scheduler=lambda o: make_scheduler("step", o, 6),
                        progress=False)
    assert history.lr == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="mode='min'"):
        fit_torch(model, data, loss, opt, epochs=1, scheduler=make_scheduler("plateau", opt, 1, mode="max"),
                  progress=False)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler("exponential", opt, 3)


def test_loop_argument_errors():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit_torch(model, [], _bce, opt, epochs=0)
    with pytest.raises(ValueError, match="mode"):
        fit_torch(model, [], _bce, opt, epochs=1, mode="best")
    with pytest.raises(ValueError, match="no batch"):
        fit_torch(model, iter([]), _bce, opt, epochs=1, progress=False)


def test_resolve_device():
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


# ------------------------------------------------------------------------- callbacks


class Recorder(Callback):
    """Writes down every hook call, the batch sizes and the epoch logs it sees."""

    def __init__(self):
        self.calls, self.rows, self.epoch_logs = [], [], []

    def on_train_begin(self, state):
        self.calls.append("train_begin")

    def on_epoch_begin(self, state):
        self.calls.append(f"epoch_begin {state.epoch}")

    def on_after_backward(self, state):
        assert all(p.grad is not None for p in state.model.parameters())
        self.calls.append("after_backward")

    def on_batch_end(self, state):
        self.rows.append(len(state.batch[0]))
        self.calls.append("batch_end")

    def on_epoch_end(self, state):
        self.epoch_logs.append(dict(state.epoch_logs))
        self.calls.append(f"epoch_end {state.epoch}")

    def on_train_end(self, state):
        self.calls.append("train_end")


def test_a_callback_sees_every_batch_in_order():
    x, y = _logistic_problem(n=250)
    model = nn.Linear(5, 1)
    recorder = Recorder()
    history = fit_torch(model, ArrayBatches(x, y, batch_size=100), _bce, torch.optim.SGD(model.parameters(), 0.1),
                        epochs=2, progress=False, callbacks=[recorder])
    assert recorder.rows == [100, 100, 50] * 2
    per_epoch = ["after_backward", "batch_end"] * 3
    assert recorder.calls == (["train_begin", "epoch_begin 1", *per_epoch, "epoch_end 1", "epoch_begin 2",
                               *per_epoch, "epoch_end 2", "train_end"])
    assert [logs["loss"] for logs in recorder.epoch_logs] == history.train_loss
    with pytest.raises(TypeError, match="Callback"):
        fit_torch(model, [(torch.ones(2, 5), torch.ones(2))], _bce, torch.optim.SGD(model.parameters(), 0.1),
                  callbacks=[lambda state: None], progress=False)


def test_early_stopping_callback_restores_the_best_weights_of_a_hand_made_model():
    """w moves by +1 per epoch (a fixed gradient); the metric peaks at epoch 3: w must come back to 3."""
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    data = [(torch.ones(1, 1),)]
    metric = iter([0.1, 0.5, 0.9, 0.2, 0.3, 0.95])
    seen = []

    def validate():
        seen.append(model.weight.item())
        return next(metric)

    history = fit_torch(model, data, lambda m, b: -m(b[0]).sum(), torch.optim.SGD(model.parameters(), lr=1.0),
                        epochs=6, validate=validate, patience=2, progress=False)
    assert seen == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert model.weight.item() == pytest.approx(3.0) and history.best_epoch == 3
    assert history.epoch == [1, 2, 3, 4, 5] and history.stopped_early  # epoch 6 never ran


def test_a_callback_can_stop_mid_epoch():
    class StopAfter(Callback):
        def on_batch_end(self, state):
            state.stop = state.global_step >= 4

    x, y = _logistic_problem()
    model = nn.Linear(5, 1)
    recorder = Recorder()
    history = fit_torch(model, ArrayBatches(x, y, batch_size=100), _bce, torch.optim.SGD(model.parameters(), 0.1),
                        epochs=3, progress=False, callbacks=[StopAfter(), recorder])
    assert recorder.rows == [100] * 4 and history.epoch == [1] and history.stopped_early


def test_step_fn_trains_with_its_own_optimisers():
    """A step with two optimisers (as a GAN has); the loop keeps epochs, device, history and logs."""
    x, y = _logistic_problem()
    model = nn.ModuleDict({"a": nn.Linear(5, 1), "b": nn.Linear(5, 1)})
    opt_a = torch.optim.Adam(model["a"].parameters(), 0.05)
    opt_b = torch.optim.Adam(model["b"].parameters(), 0.05)

    def step(m, batch):
        out = {}
        for name, opt in (("a", opt_a), ("b", opt_b)):
            loss = nn.functional.binary_cross_entropy_with_logits(m[name](batch[0]).squeeze(-1), batch[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            out[f"loss_{name}"] = loss.detach()
        return {"loss": out["loss_a"], "other": float(out["loss_b"]), "rows": len(batch[0])}

    history = fit_torch(model, ArrayBatches(x, y, batch_size=64), epochs=5, step_fn=step, progress=True,
                        optimizer=opt_a)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.logs["other"][-1] < 0.5 * history.logs["other"][0]
    assert history.logs["rows"] == [pytest.approx(64 * 64 * 9 / 600 + 24 * 24 / 600)] * 5  # row-weighted means
    assert history.lr == [0.05] * 5 and list(history.to_frame().columns)[-2:] == ["other", "rows"]
    with pytest.raises(ValueError, match="step_fn"):
        fit_torch(model, [], epochs=1)
    with pytest.raises(ValueError, match="not both"):
        fit_torch(model, [], _bce, opt_a, epochs=1, step_fn=step)


def test_gradient_trace_equals_autograd_norms():
    """GradientTrace (before clipping) against norms summed by hand from torch.autograd.grad, with a
    hand-written SGD that clips the same way."""
    x, y = _logistic_problem(n=200)
    batches = ArrayBatches(x, y, batch_size=50, seed=1)
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    twin = nn.Linear(5, 1)
    twin.load_state_dict(model.state_dict())
    trace = GradientTrace(max_steps=6, extra=lambda m: {"weight_norm": m.weight.norm()})
    fit_torch(model, batches, _bce, torch.optim.SGD(model.parameters(), lr=1.0), epochs=3, clip_norm=0.2,
              progress=False, callbacks=[trace])
    norms = []
    for batch in [b for epoch in (1, 2) for b in batches(epoch)][:6]:
        grads = torch.autograd.grad(_bce(twin, batch), list(twin.parameters()))
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        norms.append(norm)
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads, strict=True):
                p -= g * min(1.0, 0.2 / (norm + 1e-6))
    assert [row["step"] for row in trace.rows] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([row["grad_norm"] for row in trace.rows], norms, rtol=1e-5)
    assert max(norms) > 0.2  # the clipping mattered
    # the sixth step was not taken (the trace stops before it), the first five were
    assert not torch.allclose(model.weight, twin.weight)


def test_checkpoint_files_load_with_weights_only(tmp_path):
    x, y = _logistic_problem()
    model = nn.Linear(5, 1)
    values = iter([0.2, 0.6, 0.4])
    fit_torch(model, ArrayBatches(x, y), _bce, torch.optim.SGD(model.parameters(), 0.5), epochs=3,
              validate=lambda: next(values), patience=None, checkpoint_dir=tmp_path, progress=False)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(best) == {"weight", "bias"} and all(isinstance(v, torch.Tensor) for v in best.values())
    torch.testing.assert_close(model.state_dict(), best)  # best (epoch 2) restored from the file
    assert not torch.equal(best["weight"], last["weight"])


def test_explicit_mf_validation_is_labelled_rmse():
    from recsys_utils.models.mf import ExplicitMF

    train, validation = _interactions(_matrix(seed=1)), _interactions(_matrix(seed=2))
    model = ExplicitMF(epochs=4, batch_size=64, lr=0.02, patience=None, device="cpu").fit(train, validation)
    h = model.history_
    assert h.metric_name == "rmse" and h.mode == "min"
    assert h.best_metric == min(h.val_metric) and all(v > 0 for v in h.val_metric)
    assert model.rmse(validation) == pytest.approx(h.best_metric, rel=1e-6)


# ------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_weights_only(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    path = save_state(model, tmp_path / "sub" / "model.pt")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    load_state(fresh, path)
    x = torch.randn(5, 3)
    torch.testing.assert_close(fresh(x), model(x))
    # a file holding an arbitrary pickled object is refused (weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(1), "payload": pd.DataFrame({"a": [1]})}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_state(fresh, evil)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_state(fresh, tmp_path / "missing.pt")


# ------------------------------------------------------------------------- the recommender base


def _gmf(**kwargs):
    from recsys_utils.models.neural import GMF

    defaults = {"dim": 8, "epochs": 3, "batch_size": 64, "lr": 0.02, "val_users": None}
    return GMF(**{**defaults, **kwargs})


def test_same_seed_same_numbers_on_cpu():
    train = _interactions(_matrix())
    users = np.arange(train.n_users)
    a = _gmf(seed=7, device="cpu").fit(train)
    b = _gmf(seed=7, device="cpu").fit(train)
    c = _gmf(seed=8, device="cpu").fit(train)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    assert a.history_.train_loss == b.history_.train_loss
    assert not np.array_equal(a.score(users), c.score(users))


def test_recommender_validation_history_save_and_refit(tmp_path):
    matrix = _matrix(seed=1)
    train = _interactions(matrix)
    validation = _interactions(_matrix(seed=2))
    model = _gmf(epochs=4, patience=None, device="cpu").fit(train, validation=validation)
    h = model.history_
    assert h.metric_name == "ndcg@10" and len(h) == 4 and not any(math.isnan(v) for v in h.val_metric)
    assert h.best_metric == max(h.val_metric)
    path = model.save(tmp_path / "gmf.pt")
    scores = model.score(np.arange(5))
    other = _gmf(epochs=1, seed=99, device="cpu").fit(train).load_weights(path)
    np.testing.assert_allclose(other.score(np.arange(5)), scores)
    again = refit(model, train)
    assert again is not model and again.validation is None and len(again.history_) == h.best_epoch
    assert model.history_ is h  # the tuned model is untouched
    assert len(refit(model, train, epochs=2).history_) == 2
    with pytest.raises(ValueError, match="no training history"):
        refit(_gmf(), train)
    with pytest.raises(ValueError, match="share an index"):
        _gmf().fit(train, validation=_interactions(_matrix(n_items=41)))


def test_history_plot_draws_both_curves():
    import matplotlib

    matplotlib.use("Agg")
    history = History(epoch=[1, 2, 3], train_loss=[0.7, 0.5, 0.4], val_metric=[0.1, 0.2, 0.15], lr=[1e-3] * 3,
                      seconds=[0.1] * 3, best_epoch=2, best_metric=0.2, metric_name="ndcg@10")
    ax = history.plot(title="curves")
    assert ax.get_title() == "curves" and len(ax.figure.axes) == 2
    assert history.total_seconds == pytest.approx(0.3)
