"""Content-to-factor cold start (多模态冷启动): text, image and attribute towers that predict CF item factors.

A collaborative model (ALS, EASE-derived factors) learns item factors only for items users
touched. :class:`ContentToFactors` trains item towers over content -- a TextCNN over the title,
a CNN over the thumbnail, an attribute embedding tower, or their fusion (the towers' outputs
concatenated, then a linear layer) -- to regress the factor model's item factors on the warm items
(van den Oord et al. 2013, "Deep content-based music recommendation": a CNN predicts latent
factors from audio; Gantner et al. 2010 do the same with a linear map from attributes). A new item
gets predicted factors, and is scored by ``user factors · predicted factors``; warm items keep
their learned factors. Training goes through the one loop
(:func:`~recsys_utils.models.train.loop.fit_torch`): progress bar, CUDA when present, early
stopping on the squared error of held-out warm items.

The loss is the mean squared error between predicted and learned factors, weighted per item by
``min(1, n_i / count_scale)`` with ``n_i`` the item's training users: factors of rarely touched
items are mostly regularisation noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.core.vocabulary import ITEM
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.content_towers import AttributeTower, ImageCNN, TextCNN, encode_attributes, encode_titles
from recsys_utils.models.train.loop import fit_torch

MODALITIES = ("text", "image", "attributes")


class ContentNet(nn.Module):
    """One tower per modality, outputs concatenated and mapped to ``out_dim`` factors by a linear layer."""

    def __init__(self, towers: dict[str, nn.Module], tower_dim: int, out_dim: int) -> None:
        super().__init__()
        self.towers = nn.ModuleDict(towers)
        self.fusion = nn.Linear(tower_dim * len(towers), out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [torch.relu(tower(batch[name])) for name, tower in self.towers.items()]
        return self.fusion(torch.cat(parts, dim=1))


def weighted_factor_loss(predicted: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i ||f_i - f̂_i||² / sum_i w_i``: the content -> factor regression loss."""
    return (weight * ((predicted - target) ** 2).sum(dim=1)).sum() / weight.sum().clamp_min(1e-12)


class ContentToFactors(Recommender):
    """Cold-start recommender: content towers regress a factor model's item factors (see the module).

    ``items`` is the item table (``item_id``, ``title``, ``category``, ``top_category``, ``brand``,
    ``price``); ``images`` the thumbnails aligned with its rows (``(len(items), H, W, 3)`` uint8),
    needed when ``"image"`` is in ``modalities``. ``factor_model`` must expose ``user_factors_`` and
    ``item_factors_`` once fitted (``refit=False``: it is already fitted on the same training data).
    Items with at least ``min_count`` training users are warm: they train the towers (a share
    ``val_share`` of them is held out for early stopping) and keep their own factors.
    """

    name = "multimodal"

    def __init__(self, factor_model: Recommender, items: pd.DataFrame, images: np.ndarray | None = None,
                 modalities: tuple[str, ...] = MODALITIES, tower_dim: int = 32,
                 image_channels: tuple[int, int] = (16, 32), epochs: int = 30,
                 batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 1e-5, min_count: int = 1,
                 count_scale: float = 10.0, val_share: float = 0.15, patience: int | None = 4,
                 refit: bool = True, seed: int = 42, device: str | None = None, progress: bool = False) -> None:
        super().__init__()
        unknown = set(modalities) - set(MODALITIES)
        if unknown or not modalities:
            raise ValueError(f"ContentToFactors: modalities must be a non-empty subset of {MODALITIES}, got "
                             f"{tuple(modalities)}")
        if "image" in modalities and images is None:
            raise ValueError("ContentToFactors: modality 'image' needs images (one thumbnail per item row)")
        if images is not None and len(images) != len(items):
            raise ValueError(f"ContentToFactors: {len(images)} images for {len(items)} item rows")
        if not 0.0 <= val_share < 1.0:
            raise ValueError(f"ContentToFactors: val_share must lie in [0, 1), got {val_share}")
        self.factor_model, self.items, self.images = factor_model, items, images
        self.modalities = tuple(modalities)
        self.image_channels = tuple(image_channels)
        self.tower_dim, self.epochs, self.batch_size = tower_dim, epochs, batch_size
        self.lr, self.weight_decay, self.min_count, self.count_scale = lr, weight_decay, min_count, count_scale
        self.val_share, self.patience, self.refit = val_share, patience, refit
        self.seed, self.device, self.progress = seed, device, progress

    def _inputs(self, train: Interactions) -> dict[str, np.ndarray]:
        """Content arrays in the training index's item order, one per modality."""
        if ITEM not in self.items.columns:
            raise KeyError(f"ContentToFactors: the item table has no '{ITEM}' column")
        rows = pd.Index(self.items[ITEM].to_numpy()).get_indexer(train.items.ids)
        if (rows < 0).any():
            raise KeyError(f"ContentToFactors: {int((rows < 0).sum())} item ids of the training index are not "
                           f"in the item table, e.g. {list(train.items.ids[rows < 0][:5])}")
        out: dict[str, np.ndarray] = {}
        if "text" in self.modalities:
            out["text"], self.vocab_size_ = encode_titles(self.items, train.items)
        if "image" in self.modalities:
            out["image"] = np.ascontiguousarray(np.asarray(self.images)[rows])
        if "attributes" in self.modalities:
            out["attributes"], self.field_sizes_ = encode_attributes(self.items, train.items)
        return out

    def _build(self, out_dim: int) -> ContentNet:
        towers: dict[str, nn.Module] = {}
        if "text" in self.modalities:
            towers["text"] = TextCNN(self.vocab_size_, self.tower_dim)
        if "image" in self.modalities:
            towers["image"] = ImageCNN(self.tower_dim, channels=self.image_channels)
        if "attributes" in self.modalities:
            towers["attributes"] = AttributeTower(self.field_sizes_, self.tower_dim)
        return ContentNet(towers, self.tower_dim, out_dim)

    def _fit(self, train: Interactions) -> None:
        if self.refit:
            self.factor_model.fit(train)
        for attr in ("user_factors_", "item_factors_"):
            if not hasattr(self.factor_model, attr):
                raise TypeError(f"ContentToFactors: {type(self.factor_model).__name__} has no {attr} "
                                "(use a factor model such as ALS)")
        factors = np.asarray(self.factor_model.item_factors_, dtype=np.float32)
        counts = train.item_counts()
        warm = np.flatnonzero(counts >= self.min_count)
        if len(warm) < 2:
            raise ValueError("ContentToFactors: fewer than two items have enough training users to learn from")
        seed_everything(self.seed)
        self.device_ = resolve_device(self.device)
        inputs = self._inputs(train)
        self.scale_ = float(factors[warm].std()) or 1.0
        target = torch.from_numpy(factors / self.scale_)
        weight = torch.from_numpy(np.minimum(1.0, counts / self.count_scale).astype(np.float32))
        data = {name: torch.from_numpy(array) for name, array in inputs.items()}
        order = np.random.default_rng(self.seed).permutation(warm)
        n_val = int(round(self.val_share * len(order))) if len(order) >= 10 else 0
        val, fit_items = order[:n_val], order[n_val:]
        self.module_ = self._build(factors.shape[1])

        def batches(epoch: int):
            perm = np.random.default_rng([self.seed, epoch]).permutation(fit_items)
            for start in range(0, len(perm), self.batch_size):
                idx = torch.from_numpy(perm[start:start + self.batch_size])
                yield {**{k: v[idx] for k, v in data.items()}, "target": target[idx], "weight": weight[idx]}

        def loss(module: nn.Module, batch: dict) -> torch.Tensor:
            return weighted_factor_loss(module(batch), batch["target"], batch["weight"])

        def validate() -> float:
            idx = torch.from_numpy(val)
            batch = {k: v[idx].to(self.device_) for k, v in data.items()}
            return float(loss(self.module_, {**batch, "target": target[idx].to(self.device_),
                                             "weight": weight[idx].to(self.device_)}))

        optimizer = torch.optim.Adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.history_ = fit_torch(self.module_, batches, loss, optimizer, self.epochs,
                                  validate=validate if n_val else None, patience=self.patience, mode="min",
                                  metric_name="val_factor_mse", device=self.device_, progress=self.progress,
                                  desc=f"{self.name}:{'+'.join(self.modalities)}")
        self.inputs_ = data
        self.predicted_factors_ = self.predict_factors()
        item_factors = factors.copy()
        cold = counts < self.min_count
        item_factors[cold] = self.predicted_factors_[cold]
        self.item_factors_ = item_factors
        self.user_factors_ = np.asarray(self.factor_model.user_factors_, dtype=np.float32)
        self.cold_items_ = np.flatnonzero(cold)

    def predict_factors(self, item_indices=None, batch_size: int = 1024) -> np.ndarray:
        """Factors predicted from content alone (no grad, eval mode) for ``item_indices`` (default: every
        item of the training index), ``(n, k)``; warm items too, whatever their learned factors."""
        if getattr(self, "module_", None) is None:
            raise RuntimeError("ContentToFactors is not fitted: call fit(train) first")
        n_items = len(next(iter(self.inputs_.values())))
        rows = torch.arange(n_items) if item_indices is None else torch.as_tensor(np.asarray(item_indices))
        self.module_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                batch = {k: v[chunk].to(self.device_) for k, v in self.inputs_.items()}
                out.append(self.module_(batch).float().cpu().numpy())
        return np.concatenate(out) * self.scale_

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return (self.user_factors_[np.asarray(user_indices)] @ self.item_factors_.T).astype(np.float32)


__all__ = ["MODALITIES", "ContentNet", "ContentToFactors", "weighted_factor_loss"]
