"""The one training loop of the course: every torch model (recommenders, sequential models, the GAN,
the session generator, the gradient traces of the tuning lesson) is trained by :func:`fit_torch`.

``fit_torch(model, batches, loss_fn, optimizer, epochs, validate=None, patience=3, clip_norm=None,
scheduler=None, device=None, seed=None, progress=True, checkpoint_dir=None, mode="max",
min_delta=0.0, metric_name="ndcg@10", desc=None, callbacks=(), step_fn=None) -> History``

* ``batches`` -- a callable ``batches(epoch) -> iterable`` (epochs count from 1; e.g.
  :class:`~recsys_utils.models.train.batches.InteractionBatches`) or any re-iterable (a list, a
  ``DataLoader``). A batch is a tensor, a tuple/list/dict of tensors (numpy arrays are converted)
  or anything else (passed as is); it is moved to ``device`` first.
* ``loss_fn(model, batch) -> scalar tensor`` -- the default step: the loop checks that the loss is
  finite (a ``FloatingPointError`` names the epoch and batch), calls ``zero_grad``, ``backward``,
  the callbacks' ``on_after_backward``, clips the gradient norm to ``clip_norm`` (Pascanu et al.
  2013) and calls ``optimizer.step()``.
* ``step_fn(model, batch) -> dict[str, float | tensor]`` -- instead of ``loss_fn``: a step that
  performs the optimisation itself (several optimizers, critic and generator updates, ...) and
  returns the numbers to log; their per-epoch means go to :class:`History` (``"loss"`` becomes
  ``train_loss``, the others ``history.logs``). ``optimizer`` is then optional (it gives the
  ``lr`` column and drives ``scheduler``). The loop still does epochs, device, seeding,
  validation, callbacks, progress and history.
* ``validate() -> float`` -- after every epoch in ``eval`` mode without gradients. With
  ``mode="max"`` higher is better. :class:`~recsys_utils.models.train.callbacks.EarlyStopping`
  stops after ``patience`` epochs without an improvement larger than ``min_delta``
  (``patience=None``: never) and restores the best epoch's weights (from ``checkpoint_dir/best.pt``
  when ``checkpoint_dir`` is given). Without ``validate`` the last epoch's weights are kept.
* ``scheduler`` -- a torch LR scheduler (or ``scheduler(optimizer) -> scheduler``) stepped once
  per epoch; :func:`make_scheduler` builds "cosine", "step" and "plateau".
* ``device`` -- ``None`` picks CUDA when present (:func:`~recsys_utils.core.device.resolve_device`);
  ``seed`` calls :func:`~recsys_utils.core.seed.seed_everything` first.
* ``progress`` -- a ``tqdm.auto`` bar over epochs; ``checkpoint_dir`` -- ``last.pt`` every epoch
  and ``best.pt`` at every improvement (``state_dict`` files, loaded with ``weights_only=True``).
* ``callbacks`` -- more :class:`~recsys_utils.models.train.callbacks.Callback` objects, called
  after the built-in ones (history, early stopping, checkpoint, scheduler, progress bar). Hooks:
  ``on_train_begin``, ``on_epoch_begin``, ``on_after_backward`` (default step: gradients ready,
  before clipping and the step), ``on_batch_end``, ``on_epoch_end`` (set ``state.stop = True`` to
  stop) and ``on_train_end``.

Example::

    batches = InteractionBatches(train.matrix, batch_size=2048, kind="pairwise", seed=0)
    trace = GradientTrace()
    history = fit_torch(net, batches, bpr_loss, torch.optim.Adam(net.parameters(), 1e-2), epochs=20,
                        validate=lambda: my_ndcg(net), patience=3, callbacks=[trace])
    history.to_frame(); history.plot(); pd.DataFrame(trace.rows)

References: Prechelt (1998) "Early stopping -- but when?"; the ``callback`` argument of the
``implicit`` library and Keras callbacks for the design.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.models.train.callbacks import (
    Callback,
    CallbackList,
    Checkpoint,
    EarlyStopping,
    HistoryRecorder,
    LRScheduler,
    ProgressBar,
    TrainState,
)
from recsys_utils.models.train.history import History

StepFn = Callable[[nn.Module, Any], Mapping[str, Any]]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch).to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _batch_rows(batch: Any) -> int:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        return _batch_rows(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and batch:
        return _batch_rows(batch[0])
    return 1


def make_scheduler(name: str | None, optimizer: torch.optim.Optimizer, epochs: int, mode: str = "max"):
    """A per-epoch LR scheduler by name: ``None``, ``"cosine"`` (cosine annealing to 0 over
    ``epochs``; Loshchilov & Hutter 2017), ``"step"`` (halve every third of the run) or
    ``"plateau"`` (halve when the validation metric stalls for one epoch)."""
    if name is None:
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.5)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1)
    raise ValueError(f"make_scheduler: unknown schedule {name!r}; use None, 'cosine', 'step' or 'plateau'")


def _check_arguments(epochs: int, mode: str, patience: int | None, loss_fn, optimizer, step_fn) -> None:
    if epochs < 1:
        raise ValueError(f"fit_torch: epochs must be >= 1, got {epochs}")
    if mode not in ("max", "min"):
        raise ValueError(f"fit_torch: mode must be 'max' or 'min', got {mode!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"fit_torch: patience must be >= 1 or None, got {patience}")
    if step_fn is None and (loss_fn is None or optimizer is None):
        raise ValueError("fit_torch: give loss_fn and optimizer, or a step_fn that optimises itself")
    if step_fn is not None and loss_fn is not None:
        raise ValueError("fit_torch: give either loss_fn or step_fn, not both")


def _builtin_callbacks(scheduler, optimizer, validate, patience, mode, min_delta, checkpoint_dir,
                       progress, desc: str) -> list[Callback]:
    """History first, then early stopping, checkpoint, scheduler and progress bar (their order matters:
    the learning rate is recorded before the scheduler steps)."""
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and validate is None and scheduler.mode != "min":
        raise ValueError("fit_torch: a ReduceLROnPlateau scheduler without validate() follows the training "
                         "loss; build it with mode='min'")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    out: list[Callback] = [HistoryRecorder()]
    if validate is not None:
        best = checkpoint_dir / "best.pt" if checkpoint_dir is not None else None
        out.append(EarlyStopping(patience, mode, min_delta, best_path=best))
    if checkpoint_dir is not None:
        out.append(Checkpoint(checkpoint_dir))
    if scheduler is not None:
        out.append(LRScheduler(scheduler))
    if progress:
        out.append(ProgressBar(desc))
    return out


def _loss_step(state: TrainState, loss_fn, clip_norm: float | None, hooks: CallbackList) -> dict[str, Any]:
    """The default step: loss, finiteness check, backward, ``on_after_backward``, clipping, optimizer step."""
    model, optimizer = state.model, state.optimizer
    loss = loss_fn(model, state.batch)
    state.loss = loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    hooks.on_after_backward(state)
    if state.stop:  # a callback ended the training before this step
        return {"loss": loss.detach()}
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(
            f"fit_torch: the loss became {loss.item()} at epoch {state.epoch}, batch {state.batch_index}; "
            "lower the learning rate or set clip_norm")
    if clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return {"loss": loss.detach()}


def _accumulate(state: TrainState, logs: Mapping[str, Any], rows: int) -> None:
    for key, value in logs.items():
        value = value.detach().to(torch.float64) if isinstance(value, torch.Tensor) else float(value)
        state.totals[key] = state.totals.get(key, 0.0) + value * rows
    state.rows += rows


def _run_epoch(state: TrainState, batches, step: Callable[[TrainState], Mapping[str, Any]],
               hooks: CallbackList) -> None:
    """One pass over the epoch's batches (stops early when a callback sets ``state.stop``)."""
    state.totals, state.rows = {}, 0
    state.model.train()
    epoch_batches = batches(state.epoch) if callable(batches) else batches
    for index, batch in enumerate(epoch_batches):
        state.batch_index, state.batch = index, _to_device(batch, state.device)
        state.logs = dict(step(state))
        _accumulate(state, state.logs, _batch_rows(state.batch))
        state.global_step += 1
        hooks.on_batch_end(state)
        if state.stop:
            state.stopped_in_epoch = True
            break
    state.batch = None
    if state.rows == 0:
        raise ValueError("fit_torch: batches produced no batch in epoch "
                         f"{state.epoch} (a generator can only be iterated once: pass a callable)")
    state.epoch_logs = {key: float(total / state.rows) for key, total in state.totals.items()}


def _validate(state: TrainState, validate: Callable[[], float] | None) -> float:
    if validate is None:
        return math.nan
    state.model.eval()
    with torch.no_grad():
        value = float(validate())
    state.model.train()
    return value


def fit_torch(
    model: nn.Module,
    batches: Callable[[int], Iterable] | Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = 1,
    validate: Callable[[], float] | None = None,
    patience: int | None = 3,
    clip_norm: float | None = None,
    scheduler=None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    mode: str = "max",
    min_delta: float = 0.0,
    metric_name: str = "ndcg@10",
    desc: str | None = None,
    callbacks: Iterable[Callback] = (),
    step_fn: StepFn | None = None,
) -> History:
    """Train ``model`` epoch by epoch with callbacks (see the module docstring for every argument).

    Returns the :class:`History`; the model ends in ``eval`` mode with the best epoch's weights
    when ``validate`` is given.
    """
    _check_arguments(epochs, mode, patience, loss_fn, optimizer, step_fn)
    if seed is not None:
        seed_everything(seed)
    device = resolve_device(device)
    model.to(device)
    hooks = CallbackList(_builtin_callbacks(scheduler, optimizer, validate, patience, mode, min_delta,
                                            checkpoint_dir, progress, desc or type(model).__name__) + list(callbacks))
    history = History(metric_name=metric_name if validate is not None else "val_metric", mode=mode)
    state = TrainState(model, optimizer, device, epochs, history, has_validation=validate is not None)
    if step_fn is None:
        def step(s: TrainState) -> dict[str, Any]:
            return _loss_step(s, loss_fn, clip_norm, hooks)
    else:
        def step(s: TrainState) -> Mapping[str, Any]:
            return step_fn(s.model, s.batch)
    hooks.on_train_begin(state)
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            state.epoch = epoch
            hooks.on_epoch_begin(state)
            _run_epoch(state, batches, step, hooks)
            state.val_metric = _validate(state, validate)
            state.epoch_seconds = time.perf_counter() - started
            hooks.on_epoch_end(state)
            if state.stop:
                history.stopped_early = epoch < epochs or state.stopped_in_epoch
                break
    except BaseException:
        state.failed = True
        raise
    finally:
        hooks.on_train_end(state)
    model.eval()
    return history

