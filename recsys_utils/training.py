"""The one training loop for every torch model in the course, and the pieces around it.

Public API (stable; the neural, autoencoder, CTR and sequential models all build on it):

``fit_torch(model, batches, loss_fn, optimizer, epochs, validate=None, patience=3, clip_norm=None,
scheduler=None, device=None, seed=None, progress=True, checkpoint_dir=None, mode="max",
min_delta=0.0, metric_name="ndcg@10", desc=None) -> History``
    Trains ``model`` (an ``nn.Module``) for at most ``epochs`` epochs.

    * ``batches`` -- a callable ``batches(epoch) -> iterable of batches`` (e.g.
      :class:`InteractionBatches`) or any re-iterable (a list, a ``DataLoader``). A batch is a
      tensor, a tuple/list of tensors or a dict of tensors (numpy arrays are converted); it is
      moved to ``device`` before ``loss_fn`` sees it.
    * ``loss_fn(model, batch) -> scalar tensor`` -- the model and the batch already on the device.
      The loop calls ``zero_grad``, ``backward``, clips the gradient norm to ``clip_norm`` (if
      given), and ``optimizer.step()``.
    * ``validate() -> float`` -- called after every epoch with the model in ``eval`` mode (e.g.
      NDCG@10 on a validation split, see :func:`validation_ndcg`). With ``mode="max"`` higher is
      better ("min" for a loss). Training stops after ``patience`` epochs without an improvement
      larger than ``min_delta`` (``patience=None``: never stop early) and the weights of the best
      epoch are restored into ``model`` before it returns. Without ``validate`` the last epoch's
      weights are kept and ``best_epoch`` is the last epoch.
    * ``scheduler`` -- a torch LR scheduler stepped once per epoch (``ReduceLROnPlateau`` is given
      the validation metric), or a callable ``scheduler(optimizer) -> scheduler``; see
      :func:`make_scheduler` for the named ones ("cosine", "step", "plateau").
    * ``device`` -- ``None`` picks CUDA when present, else CPU (:func:`resolve_device`); the same
      code runs on both. ``seed`` -- calls :func:`recsys_utils.seed.seed_everything` first.
    * ``progress`` -- a ``tqdm.auto`` bar over epochs with the running loss and the last
      validation metric. ``checkpoint_dir`` -- saves ``last.pt`` every epoch and ``best.pt`` at
      every improvement (``state_dict`` only); the best weights are then restored from
      ``best.pt`` with ``torch.load(..., weights_only=True)``.

:class:`History` -- per-epoch ``epoch, train_loss, val_metric, lr, seconds`` (+ ``best_epoch``,
``best_metric``, ``stopped_early``); ``history.to_frame()`` gives a DataFrame and
``history.plot()`` draws the learning curves.

:func:`sample_negatives` -- uniform or popularity-proportional item indices (vectorised).

:class:`InteractionBatches` -- mini-batches straight from a CSR matrix: the stored cells are
shuffled once per epoch and sliced, negatives are drawn per batch (no Python loop per sample).
``kind="pointwise"`` yields ``(users, items, labels)`` (each positive followed by its
``n_negatives`` sampled non-clicks, label 0); ``kind="pairwise"`` yields ``(users, positives,
negatives)`` for BPR-style losses (``negatives`` has shape ``(B,)`` for one negative, else
``(B, n_negatives)``); ``kind="rating"`` yields ``(users, items, values)`` of the stored cells.
:class:`UserBatches` -- whole user rows ``(user_indices, dense rows)`` for autoencoders.
:class:`ArrayBatches` -- aligned arrays (e.g. encoded feature rows and labels), reshuffled per epoch.

:func:`save_state` / :func:`load_state` -- checkpoints as ``state_dict`` files, loaded with
``weights_only=True``.

:class:`TorchRecommender` -- the :class:`~recsys_utils.models.base.Recommender` base of the neural
models: ``fit(train, validation=None)`` builds the network, trains it with :func:`fit_torch`
(early stopping on validation NDCG@10 when a validation :class:`Interactions` is given, here or
in the constructor), keeps ``history_`` and ``module_``; ``score(user_indices)`` runs batched
forward passes on the device and returns a numpy array. Subclasses implement ``_build(train)``,
``_batches(train)``, ``_loss(module, batch)`` and ``_score_users(module, users)``; the class
attributes ``val_metric_name`` / ``val_mode`` name the metric of ``_validate`` ("ndcg@10", "max"
by default; a rating model uses "rmse", "min"). ``forward_pairs(users, items)`` runs the network on
aligned index pairs.

:func:`refit` -- a fresh copy of a tuned :class:`TorchRecommender` trained for its best number of
epochs on more data (train + validation) without validation.

:func:`validation_ndcg` -- NDCG@k of a fitted recommender on a validation :class:`Interactions`
through :func:`recsys_utils.evaluation.protocol.evaluate` (optionally on a fixed sample of users).

Example::

    batches = InteractionBatches(train.matrix, batch_size=2048, kind="pairwise", seed=0)
    history = fit_torch(net, batches, bpr_loss, torch.optim.Adam(net.parameters(), 1e-2),
                        epochs=20, validate=lambda: my_ndcg(net), patience=3)
    history.to_frame(); history.plot()
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.seed import seed_everything

__all__ = [
    "ArrayBatches",
    "History",
    "InteractionBatches",
    "TorchRecommender",
    "UserBatches",
    "fit_torch",
    "load_state",
    "make_scheduler",
    "refit",
    "resolve_device",
    "sample_negatives",
    "save_state",
    "validation_ndcg",
]


# --------------------------------------------------------------------------------------------
# device, checkpoints
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device; use device=None")
    return device


def save_state(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` to ``path`` (folders are created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def load_state(model: nn.Module, path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """Load a ``state_dict`` saved by :func:`save_state` into ``model`` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_state: no checkpoint at {path}")
    location = resolve_device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    state = torch.load(path, map_location=location, weights_only=True)
    model.load_state_dict(state)
    return model


# --------------------------------------------------------------------------------------------
# negative sampling and batches
# --------------------------------------------------------------------------------------------


def sample_negatives(
    n: int | tuple[int, ...],
    n_items: int,
    strategy: str = "uniform",
    item_counts: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw item indices to serve as sampled non-clicks (negatives), vectorised.

    ``strategy="uniform"``: every item equally likely. ``"popularity"``: item ``i`` with
    probability proportional to ``item_counts[i] ** alpha`` (word2vec uses ``alpha=0.75``;
    popular non-clicked items are the informative "hard" negatives, Rendle & Freudenthaler 2014).
    The draws may hit the user's own positives; :class:`InteractionBatches` re-draws those.
    """
    if n_items < 1:
        raise ValueError(f"sample_negatives: n_items must be >= 1, got {n_items}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if strategy == "uniform":
        return rng.integers(0, n_items, size=n, dtype=np.int64)
    if strategy == "popularity":
        if item_counts is None:
            raise ValueError("sample_negatives: strategy='popularity' needs item_counts")
        counts = np.asarray(item_counts, dtype=np.float64)
        if counts.shape != (n_items,):
            raise ValueError(f"sample_negatives: item_counts has shape {counts.shape}, expected ({n_items},)")
        if (counts < 0).any() or not np.isfinite(counts).all():
            raise ValueError("sample_negatives: item_counts must be finite and >= 0")
        weights = counts ** alpha
        total = weights.sum()
        if total <= 0:
            raise ValueError("sample_negatives: item_counts are all zero")
        cdf = np.cumsum(weights / total)
        draws = np.searchsorted(cdf, rng.random(size=n) * cdf[-1], side="right")
        return np.minimum(draws, n_items - 1).astype(np.int64)
    raise ValueError(f"sample_negatives: strategy must be 'uniform' or 'popularity', got {strategy!r}")


#: largest users x items matrix for which negative sampling keeps a dense bitmap of positives
BITMAP_MAX_CELLS = 64_000_000


class InteractionBatches:
    """Mini-batches of a CSR user x item matrix, reshuffled every epoch (call it with the epoch).

    One epoch visits every stored cell once in a random order. Sampled negatives that are
    positives of the same user are re-drawn (a few vectorised rounds; what is left after
    ``max_redraws`` rounds stays, which only matters for users who clicked most of the catalogue).
    Batches are CPU tensors; :func:`fit_torch` moves them to the device.
    """

    KINDS = ("pointwise", "pairwise", "rating")

    def __init__(
        self,
        matrix: sp.spmatrix | Interactions,
        batch_size: int = 1024,
        kind: str = "pointwise",
        n_negatives: int = 1,
        strategy: str = "uniform",
        item_counts: np.ndarray | None = None,
        alpha: float = 1.0,
        seed: int = 0,
        exclude_positives: bool = True,
        max_redraws: int = 5,
        shuffle: bool = True,
    ) -> None:
        if isinstance(matrix, Interactions):
            matrix = matrix.matrix
        if not sp.issparse(matrix):
            raise TypeError(f"InteractionBatches: expected a scipy.sparse matrix, got {type(matrix).__name__}")
        if kind not in self.KINDS:
            raise ValueError(f"InteractionBatches: kind must be one of {self.KINDS}, got {kind!r}")
        if batch_size < 1:
            raise ValueError(f"InteractionBatches: batch_size must be >= 1, got {batch_size}")
        if kind != "rating" and n_negatives < 1:
            raise ValueError(f"InteractionBatches: kind={kind!r} needs n_negatives >= 1, got {n_negatives}")
        csr = sp.csr_matrix(matrix, copy=True)  # never modify the caller's matrix
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        if csr.nnz == 0:
            raise ValueError("InteractionBatches: the matrix has no stored cells to train on")
        self.n_users, self.n_items = csr.shape
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(csr.indptr))
        self.items = csr.indices.astype(np.int64)
        self.values = csr.data.astype(np.float32)
        # sorted keys user * n_items + item: membership tests for re-drawing negatives; a dense
        # bitmap of the cells answers them in O(1) when the matrix is small enough (<= 64 MB)
        self._keys = np.sort(self.users * self.n_items + self.items)
        self._bitmap = None
        if self.n_users * self.n_items <= BITMAP_MAX_CELLS:
            self._bitmap = np.zeros(self.n_users * self.n_items, dtype=bool)
            self._bitmap[self._keys] = True
        self.batch_size = int(batch_size)
        self.kind = kind
        self.n_negatives = int(n_negatives)
        self.strategy = strategy
        if strategy == "popularity" and item_counts is None:
            item_counts = np.bincount(self.items, minlength=self.n_items)
        self.item_counts = item_counts
        self.alpha = alpha
        self.seed = int(seed)
        self.exclude_positives = exclude_positives
        self.max_redraws = int(max_redraws)
        self.shuffle = shuffle

    @property
    def nnz(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return math.ceil(self.nnz / self.batch_size)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: is ``(users[j], items[j])`` a stored cell (same shape as ``items``)."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        if self._bitmap is not None:
            return self._bitmap[keys]
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return self._keys[pos] == keys

    def negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(len(users), n_negatives)`` sampled items, re-drawn where they are the user's positives."""
        shape = (len(users), self.n_negatives)
        neg = sample_negatives(shape, self.n_items, self.strategy, self.item_counts, rng, self.alpha)
        if self.exclude_positives:
            owners = np.broadcast_to(users[:, None], shape).ravel()
            flat = neg.reshape(-1)
            todo = np.flatnonzero(self.is_positive(owners, flat))
            for _ in range(self.max_redraws):  # only re-drawn cells are checked again
                if todo.size == 0:
                    break
                flat[todo] = sample_negatives(todo.size, self.n_items, self.strategy, self.item_counts, rng,
                                              self.alpha)
                todo = todo[self.is_positive(owners[todo], flat[todo])]
            neg = flat.reshape(shape)
        return neg

    def __call__(self, epoch: int = 0):
        """The batches of one epoch (a generator); ``epoch`` selects the shuffle and the negatives."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.nnz) if self.shuffle else np.arange(self.nnz)
        for start in range(0, self.nnz, self.batch_size):
            idx = order[start:start + self.batch_size]
            users, items = self.users[idx], self.items[idx]
            if self.kind == "rating":
                yield (torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(self.values[idx]))
                continue
            neg = self.negatives(users, rng)
            if self.kind == "pairwise":
                neg_t = torch.from_numpy(neg[:, 0].copy() if self.n_negatives == 1 else neg)
                yield torch.from_numpy(users), torch.from_numpy(items), neg_t
                continue
            # pointwise: each positive followed by its negatives
            width = 1 + self.n_negatives
            all_users = np.repeat(users, width)
            all_items = np.concatenate([items[:, None], neg], axis=1).ravel()
            labels = np.zeros((len(users), width), dtype=np.float32)
            labels[:, 0] = 1.0
            yield torch.from_numpy(all_users), torch.from_numpy(all_items), torch.from_numpy(labels.ravel())


class UserBatches:
    """Mini-batches of whole user rows of a CSR matrix (for autoencoders), reshuffled per epoch.

    Yields ``(user_indices, rows)`` with ``rows`` a dense float32 ``(B, n_items)`` tensor; users
    without any stored cell are skipped (``skip_empty``).
    """

    def __init__(self, matrix: sp.spmatrix | Interactions, batch_size: int = 256, seed: int = 0,
                 binary: bool = True, skip_empty: bool = True, shuffle: bool = True) -> None:
        if isinstance(matrix, Interactions):
            matrix = matrix.matrix
        if not sp.issparse(matrix):
            raise TypeError(f"UserBatches: expected a scipy.sparse matrix, got {type(matrix).__name__}")
        csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if binary:
            csr.data[:] = 1.0
        self.matrix = csr
        users = np.arange(csr.shape[0], dtype=np.int64)
        self.users = users[np.diff(csr.indptr) > 0] if skip_empty else users
        if len(self.users) == 0:
            raise ValueError("UserBatches: the matrix has no user with a stored cell")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.users) if self.shuffle else self.users
        for start in range(0, len(order), self.batch_size):
            users = order[start:start + self.batch_size]
            yield torch.from_numpy(users), torch.from_numpy(self.matrix[users].toarray())


class ArrayBatches:
    """Mini-batches of aligned arrays (features, labels, ...), reshuffled per epoch.

    ``ArrayBatches(x, y, batch_size=4096)(epoch)`` yields tuples ``(x[idx], y[idx])`` of CPU
    tensors; every array must have the same first dimension. For datasets that are already a
    table of rows (e.g. a click-through-rate frame encoded as integer fields).
    """

    def __init__(self, *arrays: np.ndarray | torch.Tensor, batch_size: int = 4096, seed: int = 0,
                 shuffle: bool = True) -> None:
        if not arrays:
            raise ValueError("ArrayBatches: give at least one array")
        tensors = [a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
                   for a in arrays]
        lengths = {int(t.shape[0]) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"ArrayBatches: arrays have different lengths {sorted(lengths)}")
        self.n = lengths.pop()
        if self.n == 0:
            raise ValueError("ArrayBatches: the arrays are empty")
        if batch_size < 1:
            raise ValueError(f"ArrayBatches: batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = torch.from_numpy(rng.permutation(self.n) if self.shuffle else np.arange(self.n))
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


# --------------------------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit_torch` measured, one entry per epoch (epochs count from 1)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    metric_name: str = "val_metric"
    mode: str = "max"
    stopped_early: bool = False

    def __len__(self) -> int:
        return len(self.epoch)

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch: ``epoch, train_loss, val_metric, lr, seconds, best``."""
        frame = pd.DataFrame({
            "epoch": self.epoch, "train_loss": self.train_loss, "val_metric": self.val_metric,
            "lr": self.lr, "seconds": self.seconds,
        })
        frame["best"] = frame["epoch"] == self.best_epoch
        return frame

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable) of the whole history."""
        return {"epoch": list(self.epoch), "train_loss": list(self.train_loss),
                "val_metric": list(self.val_metric), "lr": list(self.lr), "seconds": list(self.seconds),
                "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "metric_name": self.metric_name, "mode": self.mode, "stopped_early": self.stopped_early}

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def plot(self, ax=None, title: str | None = None):
        """Learning curves: training loss (left axis) and the validation metric (right axis)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.0, 3.5))
        ax.plot(self.epoch, self.train_loss, "o-", color="C0", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss", color="C0")
        if any(not math.isnan(v) for v in self.val_metric):
            right = ax.twinx()
            right.plot(self.epoch, self.val_metric, "s-", color="C1", label=self.metric_name)
            right.set_ylabel(f"validation {self.metric_name}", color="C1")
            right.grid(False)
            if self.best_epoch is not None:
                right.axvline(self.best_epoch, color="C2", ls="--", lw=1)
                right.annotate("best", (self.best_epoch, self.best_metric), color="C2",
                               textcoords="offset points", xytext=(4, 4))
        if title:
            ax.set_title(title)
        return ax


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# validation and the recommender base class
# --------------------------------------------------------------------------------------------


def validation_ndcg(model: Recommender, train: Interactions, validation: Interactions, k: int = 10,
                    max_users: int | None = None, seed: int = 0) -> float:
    """NDCG@k of a fitted ``model`` on ``validation`` (full catalogue, seen items excluded, warm
    users) via :func:`recsys_utils.evaluation.protocol.evaluate`; ``max_users`` evaluates a fixed
    random sample of those users (same sample every call, so epochs are comparable)."""
    from recsys_utils.evaluation.protocol import evaluate, evaluation_users, relevant_matrix

    users: str | np.ndarray = "warm"
    if max_users is not None:
        chosen, _ = evaluation_users(train, relevant_matrix(train, validation), "warm")
        if len(chosen) > max_users:
            chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_users, replace=False))
        users = chosen
    result = evaluate(model, train, validation, k=k, metrics=("ndcg",), users=users)
    return float(result.summary[f"ndcg@{k}"])


class TorchRecommender(Recommender):
    """Base class of the torch recommenders: training through :func:`fit_torch`, batched scoring.

    Subclasses implement ``_build(train) -> nn.Module``, ``_batches(train)`` (a callable per
    epoch, e.g. :class:`InteractionBatches`), ``_loss(module, batch) -> tensor`` and
    ``_score_users(module, users: LongTensor) -> (n, n_items) tensor``. ``fit(train,
    validation)`` with a validation :class:`Interactions` (same index) stops early on its
    NDCG@10 and restores the best epoch; ``history_`` holds the curves and ``fit_seconds_`` the
    wall time.
    """

    name = "torch"
    #: name and direction of the validation metric of :meth:`_validate` (early stopping)
    val_metric_name = "ndcg@10"
    val_mode = "max"

    def __init__(self, epochs: int = 20, batch_size: int = 1024, lr: float = 1e-3,
                 weight_decay: float = 0.0, patience: int | None = 3, clip_norm: float | None = 5.0,
                 scheduler: str | None = None, device: str | None = None, seed: int = 42,
                 progress: bool = False, validation: Interactions | None = None,
                 val_users: int | None = 2000, checkpoint_dir: str | Path | None = None) -> None:
        super().__init__()
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.clip_norm = clip_norm
        self.scheduler = scheduler
        self.device = device
        self.seed = seed
        self.progress = progress
        self.validation = validation
        self.val_users = val_users
        self.checkpoint_dir = checkpoint_dir
        self.module_: nn.Module | None = None
        self.history_: History | None = None

    # -- to implement -------------------------------------------------------------------------
    def _build(self, train: Interactions) -> nn.Module:
        raise NotImplementedError

    def _batches(self, train: Interactions):
        raise NotImplementedError

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        raise NotImplementedError

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- optional hooks -----------------------------------------------------------------------
    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def _validate(self, train: Interactions, validation: Interactions) -> float:
        return validation_ndcg(self, train, validation, k=10, max_users=self.val_users, seed=self.seed)

    def _init_module(self, module: nn.Module, train: Interactions) -> None:
        """Called after ``_build`` (e.g. to copy pre-trained weights)."""

    # -- protocol -----------------------------------------------------------------------------
    def fit(self, train: Interactions, validation: Interactions | None = None) -> TorchRecommender:
        """Train on ``train``; early stopping on ``validation`` (argument or constructor)."""
        if validation is not None:
            self.validation = validation
        return super().fit(train)

    def _fit(self, train: Interactions) -> None:
        validation = self.validation
        if validation is not None and validation.matrix.shape != train.matrix.shape:
            raise ValueError(f"{type(self).__name__}: validation {validation.matrix.shape} and train "
                             f"{train.matrix.shape} do not share an index (use MatrixSplit)")
        seed_everything(self.seed)
        self.device_ = resolve_device(self.device)
        module = self._build(train)
        self._init_module(module, train)
        self.module_ = module.to(self.device_)
        optimizer = self._optimizer(module)
        mode = self.val_mode if validation is not None else "min"
        scheduler = make_scheduler(self.scheduler, optimizer, self.epochs, mode=mode)
        validate = None if validation is None else (lambda: self._validate(train, validation))
        started = time.perf_counter()
        self.history_ = fit_torch(
            module, self._batches(train), self._loss, optimizer, self.epochs, validate=validate,
            patience=self.patience, clip_norm=self.clip_norm, scheduler=scheduler,
            device=self.device_, seed=None, progress=self.progress,
            checkpoint_dir=self.checkpoint_dir, desc=self.name, mode=self.val_mode,
            metric_name=self.val_metric_name)
        self.fit_seconds_ = time.perf_counter() - started

    def _check_module(self) -> nn.Module:
        self._check_fitted()
        if self.module_ is None:
            raise RuntimeError(f"{type(self).__name__} has no trained network: call fit(train) first")
        return self.module_

    def _score_batch_size(self) -> int:
        """Users per forward pass in :meth:`score` (models that expand user x item pairs lower it)."""
        return max(1, min(1024, (1 << 22) // max(1, self.train_.n_items)))

    def score(self, user_indices: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Scores of every item for each user index, from batched forward passes (no grad)."""
        module = self._check_module()
        batch_size = batch_size or self._score_batch_size()
        users = np.asarray(user_indices, dtype=np.int64)
        out = np.empty((len(users), self.train_.n_items), dtype=np.float32)
        was_training = module.training
        module.eval()
        with torch.no_grad():
            for start in range(0, len(users), batch_size):
                chunk = torch.from_numpy(users[start:start + batch_size]).to(self.device_)
                out[start:start + len(chunk)] = self._score_users(module, chunk).float().cpu().numpy()
        module.train(was_training)
        return out

    def forward_pairs(self, user_indices, item_indices) -> np.ndarray:
        """``module(users, items)`` for aligned index pairs, in eval mode without gradients (raw
        outputs: logits for click models, ratings minus any offset for regressors)."""
        module = self._check_module()
        users = torch.as_tensor(np.asarray(user_indices, dtype=np.int64), device=self.device_)
        items = torch.as_tensor(np.asarray(item_indices, dtype=np.int64), device=self.device_)
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = module(users, items).float().cpu().numpy()
        module.train(was_training)
        return out

    def save(self, path: str | Path) -> Path:
        """Save the trained network's ``state_dict``."""
        return save_state(self._check_module(), path)

    def load_weights(self, path: str | Path) -> TorchRecommender:
        """Load a ``state_dict`` (``weights_only=True``) into the already built network."""
        load_state(self._check_module(), path, self.device_)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epochs={self.epochs}, lr={self.lr}, batch_size={self.batch_size})"


def refit(model: TorchRecommender, train: Interactions, epochs: int | None = None, **overrides
          ) -> TorchRecommender:
    """A fresh copy of ``model`` (same hyperparameters) trained on ``train`` without validation.

    The usual last step of tuning: early stopping on the validation period chose the number of
    epochs (``model.history_.best_epoch``, or ``epochs``); the copy is trained that long on train
    + validation before the test period is scored. ``overrides`` set attributes of the copy
    first (e.g. ``pretrained=`` for a NeuMF whose GMF and MLP were refitted too).
    """
    import copy

    if epochs is None:
        if model.history_ is None or model.history_.best_epoch is None:
            raise ValueError(f"refit: {type(model).__name__} has no training history; fit it first or give epochs")
        epochs = model.history_.best_epoch
    if epochs < 1:
        raise ValueError(f"refit: epochs must be >= 1, got {epochs}")
    clone = copy.copy(model)
    clone.__dict__.update({"epochs": int(epochs), "validation": None, "module_": None, "history_": None,
                           "train_": None})
    for key, value in overrides.items():
        if not hasattr(clone, key):
            raise AttributeError(f"refit: {type(model).__name__} has no attribute {key!r}")
        setattr(clone, key, value)
    return clone.fit(train)
