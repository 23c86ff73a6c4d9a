"""The training loop's TensorBoard callback: what it writes is read back, equal to what the loop computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recsys_utils.models.train.callbacks import GradientTrace
from recsys_utils.models.train.loop import fit_torch
from recsys_utils.models.train.tracking import TensorBoardTracker, read_runs, read_scalars, weights_version


def _train(log_dir, run_name, seed=0, epochs=3):
    torch.manual_seed(seed)
    x = torch.randn(64, 5)
    y = x @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(64)
    model = nn.Linear(5, 1)
    tracker = TensorBoardTracker(log_dir, run_name, hparams={"lr": 0.05}, every=2)
    trace = GradientTrace()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    history = fit_torch(model, batches, lambda m, b: nn.functional.mse_loss(m(b[0]).squeeze(-1), b[1]),
                        torch.optim.SGD(model.parameters(), lr=0.05), epochs=epochs,
                        validate=lambda: -float(nn.functional.mse_loss(model(x).squeeze(-1), y)), patience=None,
                        progress=False, seed=seed, callbacks=[tracker, trace])
    return model, tracker, trace, history


def test_tracker_logs_what_the_loop_computed_and_reads_back(tmp_path):
    model, tracker, trace, history = _train(tmp_path, "first")
    scalars = read_scalars(tmp_path / "first")
    tags = set(scalars["tag"])
    assert {"batch/loss", "batch/grad_norm", "epoch/loss", "epoch/lr", "validation/ndcg@10"} <= tags, tags
    epoch_loss = scalars[scalars["tag"] == "epoch/loss"].sort_values("step")["value"].to_numpy()
    np.testing.assert_allclose(epoch_loss, history.train_loss, rtol=1e-5)
    np.testing.assert_allclose(scalars[scalars["tag"] == "epoch/lr"]["value"], 0.05, rtol=1e-6)
    norms = scalars[scalars["tag"] == "batch/grad_norm"].set_index("step")["value"]
    assert list(norms.index) == list(range(2, 13, 2))  # every 2nd of 12 steps
    traced = {row["step"]: row["grad_norm"] for row in trace.rows}
    np.testing.assert_allclose(norms.to_numpy(), [traced[s] for s in norms.index], rtol=1e-5)
    assert tracker.model_version == f"first-{weights_version(model)}"


def test_runs_are_listed_with_their_versions_and_the_version_follows_the_weights(tmp_path):
    _, first, _, _ = _train(tmp_path, "a", seed=0)
    _, same, _, _ = _train(tmp_path / "again", "a", seed=0)
    _, other, _, _ = _train(tmp_path, "b", seed=1, epochs=2)
    assert first.model_version == same.model_version != other.model_version.replace("b-", "a-")
    runs = read_runs(tmp_path)
    assert list(runs["run"]) == ["a", "b"] and list(runs["epochs"]) == [3, 2]
    assert list(runs["model_version"]) == [first.model_version, other.model_version]
    assert (runs["scalar_points"] > 10).all() and runs["best_validation"].notna().all()


def test_tracker_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="run_name"):
        TensorBoardTracker(tmp_path, "a/b")
    with pytest.raises(ValueError, match="every"):
        TensorBoardTracker(tmp_path, "a", every=0)
