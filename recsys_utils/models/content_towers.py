"""Item content towers: a TextCNN over titles, a small CNN over thumbnails, an attribute embedding tower.

- :class:`TextCNN` (Kim 2014, "Convolutional neural networks for sentence classification"): word
  embeddings of the title, parallel 1-D convolutions of widths 2, 3 and 4, ReLU, max over time,
  concatenation and a linear layer. Titles are right-padded with token 0; a window that starts on
  padding (or, when the title is long enough, reaches into it) is masked to ``-inf`` before the
  max, so padding never wins it and adding padding never changes the output.
- :class:`ImageCNN`: two conv-ReLU-max-pool blocks (32 -> 16 -> 8 pixels), a 4 x 4 average pool
  and a linear layer, for 32 x 32 RGB pictures (uint8 ``(n, 32, 32, 3)`` or float ``(n, 3, 32, 32)``).
- :class:`AttributeTower`: one embedding per coded attribute field (category, top category,
  brand, price band; code 0 = unknown), concatenated, then a small MLP.

Each maps an item's content to an ``out_dim`` vector; :mod:`recsys_utils.models.multimodal`
fuses them and learns to predict collaborative item factors (van den Oord et al. 2013).
:func:`encode_titles` reuses the title tokens of the two-tower inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils.data.interactions import IdIndex
from recsys_utils.models.two_tower_inputs import item_fields, title_tokens

#: convolution widths of :class:`TextCNN` (Kim 2014 uses 3, 4, 5 on sentences; titles are short)
WIDTHS = (2, 3, 4)


def encode_titles(items: pd.DataFrame, index: IdIndex, max_tokens: int = 8, min_count: int = 2
                  ) -> tuple[np.ndarray, int]:
    """Title word ids ``(n_items, max_tokens)`` in ``index`` order, right-padded with 0, and the
    vocabulary size (padding included): :func:`recsys_utils.models.two_tower_inputs.title_tokens`."""
    return title_tokens(items, index, max_tokens=max_tokens, min_count=min_count)


def encode_attributes(items: pd.DataFrame, index: IdIndex) -> tuple[np.ndarray, list[int]]:
    """Attribute codes ``(n_items, n_fields)`` (0 = unknown) in ``index`` order and each field's size."""
    fields = item_fields(items, index)
    return fields.codes, fields.sizes


def valid_windows(tokens: torch.Tensor, width: int) -> torch.Tensor:
    """Boolean ``(batch, L - width + 1)``: the conv windows of ``width`` that may win the max-pool.

    A window starting at ``t`` is valid when it lies inside the title (``t + width <= length``);
    a title shorter than ``width`` keeps its first window (real words plus zero padding).
    """
    length = (tokens != 0).sum(dim=1, keepdim=True)
    starts = torch.arange(tokens.shape[1] - width + 1, device=tokens.device)[None, :]
    return (starts + width <= length) | ((starts == 0) & (length > 0))


class TextCNN(nn.Module):
    """Kim's (2014) CNN for text: ``(batch, L)`` token ids (0 = padding) -> ``(batch, out_dim)``."""

    def __init__(self, vocab_size: int, out_dim: int, embed_dim: int = 32, n_filters: int = 32,
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.1) -> None:
        super().__init__()
        if vocab_size < 2 or min(widths) < 1:
            raise ValueError(f"TextCNN: vocab_size must be >= 2 and widths >= 1, got {vocab_size}, {widths}")
        self.widths = tuple(widths)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, n_filters, w) for w in self.widths)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(n_filters * len(self.widths), out_dim)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max-over-time pooled conv features ``(batch, n_filters * len(widths))``."""
        tokens = tokens.long()
        if tokens.shape[1] < max(self.widths):  # pad so the widest filter has one window
            tokens = nn.functional.pad(tokens, (0, max(self.widths) - tokens.shape[1]))
        x = self.embedding(tokens).transpose(1, 2)  # (batch, embed_dim, L)
        pooled = []
        for width, conv in zip(self.widths, self.convs, strict=True):
            h = torch.relu(conv(x))  # (batch, n_filters, L - width + 1)
            h = h.masked_fill(~valid_windows(tokens, width)[:, None, :], float("-inf"))
            best = h.max(dim=2).values
            pooled.append(torch.where(torch.isfinite(best), best, torch.zeros_like(best)))  # empty titles: 0
        return torch.cat(pooled, dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(tokens)))


def images_to_tensor(images) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` pictures (array or tensor) as float ``(n, 3, H, W)`` in [0, 1]."""
    images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images_to_tensor: expected (n, H, W, 3) pictures, got shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float() / 255.0


class ImageCNN(nn.Module):
    """A small CNN for 32 x 32 RGB thumbnails -> ``(batch, out_dim)``.

    Accepts uint8 ``(batch, 32, 32, 3)`` (converted by :func:`images_to_tensor`) or float
    ``(batch, 3, 32, 32)`` in [0, 1] (centred on 0.5 inside). Conv 3x3 (``channels[0]``) - ReLU - max-pool 2, conv 3x3
    (``channels[1]``) - ReLU - max-pool 2, average pool to 4 x 4; concatenated with a skip path of the
    picture's 4 x 4 mean colours (the low-resolution colour layout), then a linear layer.
    """

    def __init__(self, out_dim: int, channels: tuple[int, int] = (16, 32), dropout: float = 0.1) -> None:
        super().__init__()
        c1, c2 = channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Dropout(dropout))
        self.colour = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())  # 4 x 4 mean colours, a skip path
        self.out = nn.Linear(c2 * 16 + 3 * 16, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images_to_tensor(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"ImageCNN: expected (batch, 3, H, W) floats or (batch, H, W, 3) uint8, "
                             f"got shape {tuple(images.shape)}")
        centred = images - 0.5
        return self.out(torch.cat([self.body(centred), self.colour(centred)], dim=1))


class AttributeTower(nn.Module):
    """Embeddings of coded attribute fields (0 = unknown), concatenated, through a small MLP."""

    def __init__(self, sizes: list[int], out_dim: int, embed_dim: int = 8, hidden: int = 64) -> None:
        super().__init__()
        if not sizes:
            raise ValueError("AttributeTower: no attribute field to embed (sizes is empty)")
        self.embeddings = nn.ModuleList(nn.Embedding(size, embed_dim) for size in sizes)
        self.mlp = nn.Sequential(nn.Linear(embed_dim * len(sizes), hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        parts = [emb(codes[:, k].long()) for k, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1))


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a convolution's output along one axis: ``floor((size + 2 padding - kernel) / stride) + 1``."""
    if kernel > size + 2 * padding:
        raise ValueError(f"conv_output_size: kernel {kernel} is larger than the padded input {size + 2 * padding}")
    return (size + 2 * padding - kernel) // stride + 1


__all__ = ["WIDTHS", "AttributeTower", "ImageCNN", "TextCNN", "conv_output_size", "encode_attributes",
           "encode_titles", "images_to_tensor", "valid_windows"]
