"""Shared handling of what a learner's code returns, for the graders."""

from __future__ import annotations

import numpy as np
import torch


def as_array(value, name: str, shape: tuple[int, ...] | None = None, hint: str = "") -> np.ndarray:
    """``value`` (a list, numpy array or torch tensor) as float64, of ``shape`` when given; a clear
    AssertionError when it is ``None`` or has another shape."""
    assert value is not None, f"{name} returned None"
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    out = np.asarray(value, dtype=np.float64)
    assert shape is None or out.shape == shape, f"{name} must have shape {shape}{hint}, got {out.shape}"
    return out
