"""Watching training as it runs (实时监测模型训练状态): a TensorBoard callback for the one training loop.

:class:`TensorBoardTracker` is a :class:`~recsys_utils.models.train.callbacks.Callback` of
:func:`~recsys_utils.models.train.loop.fit_torch` that writes, through ``torch.utils.tensorboard``,
the batch loss and the gradient norm before clipping (every ``every`` steps), the epoch's loss, its
validation metric and learning rate, and at the end the **model version**: the run's name and a hash
of the final weights. Save that version in the served model's metadata
(``ServingPipeline(meta={"model_version": ...})``) and the service's ``/metrics`` names it, so a
served model traces back to its run. :func:`read_runs` reads the event files back;
``tensorboard --logdir DIR`` (:func:`board_command`) opens the dashboard.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
from torch import nn

from recsys_utils.models.train.callbacks import Callback, TrainState

RUN_FILE = "run.json"


def weights_version(model: nn.Module, length: int = 10) -> str:
    """A short SHA-256 of the model's ``state_dict`` (names and values): same weights, same version."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:length]


class TensorBoardTracker(Callback):
    """Logs a :func:`fit_torch` run to ``log_dir/run_name`` (see the module docstring).

    ``hparams`` (a flat dict) is written as text and into ``run.json``; ``model_version`` after
    training is ``f"{run_name}-{weights_version(model)}"``.
    """

    def __init__(self, log_dir: str | Path, run_name: str, hparams: dict | None = None, every: int = 10) -> None:
        if not run_name or "/" in run_name:
            raise ValueError(f"TensorBoardTracker: run_name must be a non-empty name without '/', got {run_name!r}")
        if every < 1:
            raise ValueError(f"TensorBoardTracker: every must be >= 1, got {every}")
        self.run_dir = Path(log_dir) / run_name
        self.run_name, self.hparams, self.every = run_name, dict(hparams or {}), every
        self.writer = None
        self.model_version: str | None = None
        self._grad_norm = math.nan

    def on_train_begin(self, state: TrainState) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.run_dir))
        self.writer.add_text("hparams", json.dumps(self.hparams, sort_keys=True, default=str), 0)

    def on_after_backward(self, state: TrainState) -> None:
        if (state.global_step + 1) % self.every == 0:  # the step number this batch gets at its end
            grads = [p.grad for p in state.model.parameters() if p.grad is not None]
            self._grad_norm = float(nn.utils.get_total_norm(grads)) if grads else 0.0

    def on_batch_end(self, state: TrainState) -> None:
        step = state.global_step
        if step % self.every == 0 and "loss" in state.logs:
            self.writer.add_scalar("batch/loss", float(state.logs["loss"]), step)
            if math.isfinite(self._grad_norm):
                self.writer.add_scalar("batch/grad_norm", self._grad_norm, step)
                self._grad_norm = math.nan

    def on_epoch_end(self, state: TrainState) -> None:
        epoch = state.epoch
        for key, value in state.epoch_logs.items():
            self.writer.add_scalar(f"epoch/{key}", value, epoch)
        if state.has_validation and math.isfinite(state.val_metric):
            self.writer.add_scalar(f"validation/{state.history.metric_name}", state.val_metric, epoch)
        if state.optimizer is not None:
            self.writer.add_scalar("epoch/lr", float(state.optimizer.param_groups[0]["lr"]), epoch)
        self.writer.flush()

    def on_train_end(self, state: TrainState) -> None:
        if self.writer is None:
            return
        self.model_version = f"{self.run_name}-{weights_version(state.model)}"
        self.writer.add_text("model_version", self.model_version, state.epoch)
        self.writer.close()
        summary = {"run": self.run_name, "model_version": self.model_version, "epochs": state.epoch,
                   "failed": state.failed, "best_epoch": state.history.best_epoch,
                   "best_metric": state.history.best_metric, "hparams": self.hparams}
        (self.run_dir / RUN_FILE).write_text(json.dumps(summary, default=str, indent=1), encoding="utf-8")


def read_scalars(run_dir: str | Path) -> pd.DataFrame:
    """Every scalar of one run's event files: columns ``tag, step, value``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    rows = [{"tag": tag, "step": event.step, "value": event.value}
            for tag in accumulator.Tags()["scalars"] for event in accumulator.Scalars(tag)]
    return pd.DataFrame(rows, columns=["tag", "step", "value"])


def read_runs(log_dir: str | Path) -> pd.DataFrame:
    """One row per run under ``log_dir`` read back from its event files (and ``run.json``): the model
    version, epochs, last epoch loss, best validation value and how many scalar points were logged."""
    rows = []
    for run_json in sorted(Path(log_dir).glob(f"*/{RUN_FILE}")):
        summary = json.loads(run_json.read_text(encoding="utf-8"))
        scalars = read_scalars(run_json.parent)
        losses = scalars[scalars["tag"] == "epoch/loss"].sort_values("step")["value"]
        rows.append({"run": summary["run"], "model_version": summary["model_version"],
                     "epochs": summary["epochs"], "last_loss": float(losses.iloc[-1]) if len(losses) else math.nan,
                     "best_validation": math.nan if summary["best_metric"] is None else float(summary["best_metric"]),
                     "scalar_points": len(scalars), "tags": sorted(scalars["tag"].unique())})
    return pd.DataFrame(rows, columns=["run", "model_version", "epochs", "last_loss", "best_validation",
                                       "scalar_points", "tags"])


def board_command(log_dir: str | Path) -> str:
    """The one command that opens the dashboard on this machine only."""
    return f"tensorboard --logdir {Path(log_dir)} --host 127.0.0.1 --port 6006"

