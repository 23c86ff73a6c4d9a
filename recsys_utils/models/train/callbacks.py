"""Callbacks of the training loop :func:`~recsys_utils.models.train.loop.fit_torch`.

A callback is an object with any of the hooks of :class:`Callback`; the loop calls them in order
with one shared :class:`TrainState` (in the spirit of the ``callback`` argument of the
``implicit`` library and of Keras callbacks). Setting ``state.stop = True`` in any hook ends the
training after the current batch (set in :meth:`Callback.on_after_backward` it also skips that
batch's optimizer step). The loop itself is built from the callbacks below: :class:`HistoryRecorder`,
:class:`EarlyStopping` (best-weight restore), :class:`Checkpoint`, :class:`LRScheduler` and
:class:`ProgressBar`; :class:`GradientTrace` records gradient norms for plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from recsys_utils.models.train.checkpoint import load_state, save_state
from recsys_utils.models.train.history import History


@dataclass
class TrainState:
    """What the loop knows, shared by all callbacks of one :func:`fit_torch` call.

    ``logs`` holds the current batch's numbers (``{"loss": tensor}`` for a loss function, the
    ``step_fn``'s dict otherwise); ``epoch_logs`` the means of the finished epoch (floats);
    ``val_metric`` the epoch's validation value (NaN without ``validate``).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    device: torch.device
    epochs: int
    history: History
    has_validation: bool = False
    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    batch: Any = None
    loss: torch.Tensor | None = None
    logs: dict[str, Any] = field(default_factory=dict)
    epoch_logs: dict[str, float] = field(default_factory=dict)
    val_metric: float = math.nan
    epoch_seconds: float = 0.0
    totals: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    stop: bool = False
    stopped_in_epoch: bool = False
    failed: bool = False

    def running_mean(self, key: str = "loss") -> float:
        """Mean of ``key`` over the batches of the current epoch so far (NaN before the first)."""
        if key not in self.totals or self.rows == 0:
            return math.nan
        return float(self.totals[key] / self.rows)


class Callback:
    """Base class: override the hooks you need (each receives the :class:`TrainState`)."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first epoch (the model is on the device)."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Before the first batch of ``state.epoch``."""

    def on_after_backward(self, state: TrainState) -> None:
        """Default step only: gradients of ``state.loss`` are in ``.grad``, before clipping and the step."""

    def on_batch_end(self, state: TrainState) -> None:
        """After a batch's optimisation; ``state.logs`` holds its numbers."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After the epoch and its validation: ``state.epoch_logs`` and ``state.val_metric`` are set."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch, also when training failed (``state.failed``)."""


class CallbackList(Callback):
    """Calls every hook of its callbacks in order."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"fit_torch: callbacks must be Callback instances, got {type(callback).__name__}")

    def _call(self, hook: str, state: TrainState) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(state)

    def on_train_begin(self, state: TrainState) -> None:
        self._call("on_train_begin", state)

    def on_epoch_begin(self, state: TrainState) -> None:
        self._call("on_epoch_begin", state)

    def on_after_backward(self, state: TrainState) -> None:
        self._call("on_after_backward", state)

    def on_batch_end(self, state: TrainState) -> None:
        self._call("on_batch_end", state)

    def on_epoch_end(self, state: TrainState) -> None:
        self._call("on_epoch_end", state)

    def on_train_end(self, state: TrainState) -> None:
        self._call("on_train_end", state)


class HistoryRecorder(Callback):
    """Appends the epoch's loss, logs, validation value and learning rate to ``state.history``."""

    def on_epoch_end(self, state: TrainState) -> None:
        h = state.history
        logs = dict(state.epoch_logs)
        h.epoch.append(state.epoch)
        h.train_loss.append(logs.pop("loss", math.nan))
        h.val_metric.append(state.val_metric)
        h.lr.append(float(state.optimizer.param_groups[0]["lr"]) if state.optimizer is not None else math.nan)
        h.seconds.append(state.epoch_seconds)
        for key, value in logs.items():
            h.logs.setdefault(key, [math.nan] * (len(h.epoch) - 1)).append(value)
        if not state.has_validation:  # no metric: the last epoch is the one kept
            h.best_epoch = state.epoch


class EarlyStopping(Callback):
    """Keeps the best epoch's weights by the validation metric and stops after ``patience`` stale epochs.

    An epoch improves when ``sign * value > best + min_delta`` (``sign`` +1 for ``mode="max"``);
    ``patience=None`` never stops but still restores the best weights at the end. The best state
    is a copy in memory, or ``best_path`` (a ``state_dict`` file, loaded with ``weights_only=True``).
    """

    def __init__(self, patience: int | None = 3, mode: str = "max", min_delta: float = 0.0,
                 best_path: str | Path | None = None) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"EarlyStopping: mode must be 'max' or 'min', got {mode!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1 or None, got {patience}")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best_path = Path(best_path) if best_path is not None else None

    def on_train_begin(self, state: TrainState) -> None:
        self.sign = 1.0 if self.mode == "max" else -1.0
        self.best_value, self.stale, self.best_state = -math.inf, 0, None

    def on_epoch_end(self, state: TrainState) -> None:
        value = state.val_metric
        if not math.isnan(value) and self.sign * value > self.best_value + self.min_delta:
            self.best_value, self.stale = self.sign * value, 0
            state.history.best_epoch, state.history.best_metric = state.epoch, value
            if self.best_path is not None:
                save_state(state.model, self.best_path)
            else:
                self.best_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        else:
            self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            state.stop = True

    def on_train_end(self, state: TrainState) -> None:
        if state.failed or state.history.best_epoch is None:
            return
        if self.best_path is not None:
            load_state(state.model, self.best_path, state.device)
        elif self.best_state is not None:
            state.model.load_state_dict(self.best_state)


class Checkpoint(Callback):
    """Saves ``state_dict`` files: ``last.pt`` after every epoch (``every`` epochs) in ``directory``."""

    def __init__(self, directory: str | Path, every: int = 1, name: str = "last.pt") -> None:
        self.directory, self.every, self.name = Path(directory), int(every), name

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0 or state.stop or state.epoch == state.epochs:
            save_state(state.model, self.directory / self.name)


class LRScheduler(Callback):
    """Steps a torch LR scheduler once per epoch (``ReduceLROnPlateau`` gets the validation metric,
    or the training loss without validation)."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.plateau:
            value = state.val_metric if state.has_validation else state.epoch_logs.get("loss", math.nan)
            self.scheduler.step(value)
        else:
            self.scheduler.step()


class ProgressBar(Callback):
    """A ``tqdm.auto`` bar over epochs (``unit="epoch"``) or batches (``unit="batch"``) showing the
    running loss (or ``postfix`` keys of the batch logs) and the validation metric."""

    def __init__(self, desc: str = "training", unit: str = "epoch", every: int = 50,
                 postfix: tuple[str, ...] = ("loss",), mininterval: float = 0.1, total: int | None = None) -> None:
        if unit not in ("epoch", "batch"):
            raise ValueError(f"ProgressBar: unit must be 'epoch' or 'batch', got {unit!r}")
        self.desc, self.unit, self.every, self.postfix = desc, unit, every, postfix
        self.mininterval, self.total, self.bar = mininterval, total, None

    def on_train_begin(self, state: TrainState) -> None:
        total = self.total if self.total is not None or self.unit == "batch" else state.epochs
        self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=True, mininterval=self.mininterval)

    def on_batch_end(self, state: TrainState) -> None:
        if self.unit == "batch":
            self.bar.update(1)
        if state.batch_index % self.every == 0:
            if self.unit == "epoch":
                self.bar.set_postfix(loss=f"{state.running_mean():.4f}", refresh=False)
            else:
                self.bar.set_postfix({k: f"{float(state.logs[k]):.3f}" for k in self.postfix if k in state.logs},
                                     refresh=False)

    def on_epoch_end(self, state: TrainState) -> None:
        post = {"loss": f"{state.epoch_logs.get('loss', math.nan):.4f}"}
        if state.has_validation:
            post[state.history.metric_name] = f"{state.val_metric:.4f}"
        if self.unit == "epoch":
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        else:
            self.bar.set_postfix({k: f"{state.epoch_logs[k]:.3f}" for k in self.postfix if k in state.epoch_logs},
                                 refresh=False)

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class GradientTrace(Callback):
    """Records, for every optimisation step of the default loop, the loss and the total gradient
    norm *before* clipping (what ``clip_grad_norm_`` sees), plus ``extra(model) -> dict`` values.

    Stops the training after ``max_steps`` rows or at the first non-finite loss or norm (that row
    is kept and its optimizer step skipped). ``rows`` is the list of recorded dicts.
    """

    def __init__(self, max_steps: int | None = None,
                 extra: Callable[[nn.Module], dict[str, float]] | None = None) -> None:
        self.max_steps, self.extra, self.rows = max_steps, extra, []

    def on_after_backward(self, state: TrainState) -> None:
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        norm = float(nn.utils.get_total_norm(grads)) if grads else 0.0
        row = {"step": len(self.rows) + 1, "loss": float(state.loss.detach()), "grad_norm": norm}
        if self.extra is not None:
            with torch.no_grad():
                row.update({key: float(value) for key, value in self.extra(state.model).items()})
        self.rows.append(row)
        finite = math.isfinite(row["loss"]) and math.isfinite(norm)
        if not finite or (self.max_steps is not None and len(self.rows) >= self.max_steps):
            state.stop = True
