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


def close_to(got, expected: torch.Tensor, what: str, hint: str, tol: float = 1e-5) -> None:
    """Assert the learner's tensor ``got`` has ``expected``'s shape and lies within ``tol`` of it."""
    assert got is not None, f"{what} returned None"
    got = torch.as_tensor(got).detach().double()
    expected = expected.detach().double()
    assert got.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    gap = float((got - expected).abs().max()) if got.numel() else 0.0
    assert gap < tol, f"{what}: largest difference from the package {gap:.2e} ({hint})"
