"""Checkpoints as ``state_dict`` files, loaded with ``torch.load(..., weights_only=True)`` (never unpickled)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from recsys_utils.core.device import resolve_device


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
