"""``TorchRecommender``: the base of every torch recommender, trained by the one loop."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.train.checkpoint import load_state, save_state
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch, make_scheduler
from recsys_utils.models.train.validation import validation_ndcg


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


def refit(model: TorchRecommender, train: Interactions, epochs: int | None = None, **overrides
          ) -> TorchRecommender:
    """A fresh copy of ``model`` (same hyperparameters) trained on ``train`` without validation.

    The usual last step of tuning: early stopping on the validation period chose the number of
    epochs (``model.history_.best_epoch``, or ``epochs``); the copy is trained that long on train
    + validation before the test period is scored. ``overrides`` set attributes of the copy
    first (e.g. ``pretrained=`` for a NeuMF whose GMF and MLP were refitted too).
    """
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
