"""Split from training.py."""

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
from recsys_utils.models.train.checkpoint import load_state, save_state
from recsys_utils.models.train.history import History


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


def fit_torch(
    model: nn.Module,
    batches: Callable[[int], Iterable] | Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
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
) -> History:
    """Train ``model`` with mini-batches, early stopping and best-weight restoration (see the
    module docstring for every argument). Returns the :class:`History`."""
    if epochs < 1:
        raise ValueError(f"fit_torch: epochs must be >= 1, got {epochs}")
    if mode not in ("max", "min"):
        raise ValueError(f"fit_torch: mode must be 'max' or 'min', got {mode!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"fit_torch: patience must be >= 1 or None, got {patience}")
    if seed is not None:
        seed_everything(seed)
    device = resolve_device(device)
    model.to(device)
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and validate is None and scheduler.mode != "min":
        raise ValueError("fit_torch: a ReduceLROnPlateau scheduler without validate() follows the training "
                         "loss; build it with mode='min'")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history = History(metric_name=metric_name if validate is not None else "val_metric", mode=mode)
    sign = 1.0 if mode == "max" else -1.0
    best_value = -math.inf
    best_state: dict | None = None
    stale = 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=desc or type(model).__name__, unit="epoch", leave=True)
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            model.train()
            epoch_batches = batches(epoch) if callable(batches) else batches
            total = torch.zeros((), dtype=torch.float64, device=device)
            rows = 0
            for step, batch in enumerate(epoch_batches):
                batch = _to_device(batch, device)
                loss = loss_fn(model, batch)
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(
                        f"fit_torch: the loss became {loss.item()} at epoch {epoch}, batch {step}; "
                        "lower the learning rate or set clip_norm")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
                optimizer.step()
                n = _batch_rows(batch)
                total += loss.detach().to(torch.float64) * n
                rows += n
                if bar is not None and step % 50 == 0:
                    bar.set_postfix(loss=f"{(total / max(rows, 1)).item():.4f}", refresh=False)
            if rows == 0:
                raise ValueError("fit_torch: batches produced no batch in epoch "
                                 f"{epoch} (a generator can only be iterated once: pass a callable)")
            train_loss = float((total / rows).item())
            lr = float(optimizer.param_groups[0]["lr"])
            value = math.nan
            if validate is not None:
                model.eval()
                with torch.no_grad():
                    value = float(validate())
                model.train()
            seconds = time.perf_counter() - started
            history.epoch.append(epoch)
            history.train_loss.append(train_loss)
            history.val_metric.append(value)
            history.lr.append(lr)
            history.seconds.append(seconds)

            improved = validate is None or (not math.isnan(value) and sign * value > best_value + min_delta)
            if improved:
                best_value = sign * value if validate is not None else -math.inf
                history.best_epoch = epoch
                history.best_metric = value if validate is not None else None
                stale = 0
                if validate is not None:
                    if checkpoint_dir is not None:
                        save_state(model, checkpoint_dir / "best.pt")
                    else:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
            if checkpoint_dir is not None:
                save_state(model, checkpoint_dir / "last.pt")
            if scheduler is not None:
                if plateau:
                    scheduler.step(value if validate is not None else train_loss)
                else:
                    scheduler.step()
            if bar is not None:
                post = {"loss": f"{train_loss:.4f}"}
                if validate is not None:
                    post[history.metric_name] = f"{value:.4f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if patience is not None and validate is not None and stale >= patience:
                history.stopped_early = epoch < epochs
                break
    finally:
        if bar is not None:
            bar.close()

    if validate is not None and history.best_epoch is not None:
        if checkpoint_dir is not None:
            load_state(model, checkpoint_dir / "best.pt", device)
        elif best_state is not None:
            model.load_state_dict(best_state)
    model.eval()
    return history
