"""A BPR matrix factorisation with every optimisation knob exposed, for the tuning lesson (14).

:class:`TunableBPR` is :class:`~recsys_utils.models.bpr_torch.TorchBPR` (trained by the course loop
:func:`~recsys_utils.models.train.loop.fit_torch`) plus the choices the lesson compares on one model:

- parameter initialisation (参数初始化) of the embeddings: ``"normal"`` (std ``init_scale``),
  ``"xavier"`` (Glorot & Bengio 2010, uniform with ``sqrt(6 / (fan_in + fan_out))``) or
  ``"uniform"`` (``U(-init_scale, init_scale)``, small);
- regularisation (正则化): ``l2`` and ``l1`` penalties on the embedding rows used in a batch, and
  ``dropout`` on the user embedding (Srivastava et al. 2014);
- the optimiser: ``"sgd"`` (with ``momentum``; Polyak 1964), ``"adam"`` (Kingma & Ba 2015),
  ``"adamw"`` (decoupled weight decay; Loshchilov & Hutter 2019) or ``"adagrad"`` (per-coordinate
  steps, suited to sparse embedding updates; Duchi et al. 2011), plus the base class's
  ``scheduler`` (cosine, step, plateau) and ``clip_norm`` (gradient clipping, 梯度裁剪;
  Pascanu et al. 2013);
- ``on_epoch(epoch, value)``: called after every validation, e.g. to report to an Optuna trial.

:func:`gradient_trace` runs the first optimisation steps of such a model through the course loop with
a :class:`~recsys_utils.models.train.callbacks.GradientTrace` callback and records the loss and the
gradient norm of every step, so an exploding run can be seen (and the clipped one
compared) before it turns into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.bpr_torch import MFNet, TorchBPR
from recsys_utils.models.train.callbacks import GradientTrace
from recsys_utils.models.train.loop import fit_torch

__all__ = ["INITS", "OPTIMISERS", "TunableBPR", "gradient_trace"]

INITS = ("normal", "xavier", "uniform")
OPTIMISERS = ("sgd", "adam", "adamw", "adagrad")


class TunableBPR(TorchBPR):
    """BPR-MF whose initialisation, optimiser and regularisation are arguments (see module doc).

    ``weight_decay`` goes to the optimiser (coupled L2 for SGD/Adam/Adagrad, decoupled for
    AdamW); ``l2``/``l1`` are explicit penalties on the rows a batch uses.
    """

    name = "bpr-tunable"

    def __init__(self, dim: int = 32, init: str = "normal", init_scale: float = 0.1, optimizer: str = "adam",
                 momentum: float = 0.9, l2: float = 0.0, l1: float = 0.0, dropout: float = 0.0,
                 on_epoch: Callable[[int, float], None] | None = None, **kwargs) -> None:
        super().__init__(dim=dim, l2=l2, **kwargs)
        if init not in INITS:
            raise ValueError(f"TunableBPR: init must be one of {INITS}, got {init!r}")
        if optimizer not in OPTIMISERS:
            raise ValueError(f"TunableBPR: optimizer must be one of {OPTIMISERS}, got {optimizer!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"TunableBPR: dropout must lie in [0, 1), got {dropout}")
        if l1 < 0 or l2 < 0 or init_scale <= 0:
            raise ValueError("TunableBPR: l1 and l2 must be >= 0 and init_scale > 0")
        self.init = init
        self.init_scale = init_scale
        self.optimizer = optimizer
        self.momentum = momentum
        self.l1 = l1
        self.dropout = dropout
        self.on_epoch = on_epoch

    def _build(self, train: Interactions) -> nn.Module:
        module = MFNet(train.n_users, train.n_items, self.dim)
        for embedding in (module.user, module.item):
            if self.init == "normal":
                nn.init.normal_(embedding.weight, std=self.init_scale)
            elif self.init == "xavier":
                nn.init.xavier_uniform_(embedding.weight)
            else:
                nn.init.uniform_(embedding.weight, -self.init_scale, self.init_scale)
        return module

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        params, lr, decay = module.parameters(), self.lr, self.weight_decay
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=self.momentum, weight_decay=decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=decay)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
        return torch.optim.Adagrad(params, lr=lr, weight_decay=decay)

    def _loss(self, module: MFNet, batch) -> torch.Tensor:
        users, pos, neg = batch
        p = F.dropout(module.user(users), self.dropout, training=module.training)
        q_pos, q_neg = module.item(pos), module.item(neg)
        bias = module.item_bias
        diff = (p * (q_pos - q_neg)).sum(-1) + (bias(pos) - bias(neg)).squeeze(-1)
        loss = -F.logsigmoid(diff).mean()
        if self.l2:
            loss = loss + self.l2 * (p.pow(2).sum(-1) + q_pos.pow(2).sum(-1) + q_neg.pow(2).sum(-1)).mean()
        if self.l1:
            loss = loss + self.l1 * (p.abs().sum(-1) + q_pos.abs().sum(-1) + q_neg.abs().sum(-1)).mean()
        return loss

    def _fit(self, train: Interactions) -> None:
        self._epoch = 0
        super()._fit(train)

    def _validate(self, train: Interactions, validation: Interactions) -> float:
        value = super()._validate(train, validation)
        self._epoch += 1
        if self.on_epoch is not None:
            self.on_epoch(self._epoch, value)
        return value

    def __repr__(self) -> str:
        return (f"TunableBPR(dim={self.dim}, init={self.init!r}, optimizer={self.optimizer!r}, lr={self.lr}, "
                f"l2={self.l2}, l1={self.l1}, dropout={self.dropout}, clip_norm={self.clip_norm})")


def _largest_embedding_norm(module: MFNet) -> dict[str, float]:
    largest = max(module.user.weight.norm(dim=1).max(), module.item.weight.norm(dim=1).max())
    return {"max_embedding_norm": float(largest)}


def gradient_trace(model: TunableBPR, train: Interactions, steps: int = 100) -> pd.DataFrame:
    """The first ``steps`` optimisation steps of ``model``'s setup on ``train``, traced step by step.

    Builds the network, optimiser and batches exactly as ``model.fit`` would (same seed) and trains
    them with the course loop :func:`~recsys_utils.models.train.loop.fit_torch` and a
    :class:`~recsys_utils.models.train.callbacks.GradientTrace` callback, which records per step the
    loss, the total gradient norm *before* clipping and the largest embedding norm;
    ``model.clip_norm`` (if set) clips as in training. Stops at the first non-finite loss or norm
    (that row has ``loss = inf`` or NaN) instead of raising. ``model`` itself is not fitted.
    """
    if steps < 1:
        raise ValueError(f"gradient_trace: steps must be >= 1, got {steps}")
    seed_everything(model.seed)
    device = resolve_device(model.device)
    module = model._build(train).to(device)
    optimizer = model._optimizer(module)
    batches = model._batches(train)
    trace = GradientTrace(max_steps=steps, extra=_largest_embedding_norm)
    fit_torch(module, batches, model._loss, optimizer, epochs=math.ceil(steps / len(batches)),
              clip_norm=model.clip_norm, device=device, progress=False, callbacks=[trace])
    return pd.DataFrame(trace.rows).set_index("step")
