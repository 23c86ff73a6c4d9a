"""Seeding: one call makes a notebook, a test or a benchmark repeatable.

torch is imported inside :func:`seed_everything` (not at module import) so that
``import recsys_utils`` stays fast for code that never trains a network.
"""

from __future__ import annotations

import os
import random

import numpy as np

#: numpy's legacy global RNG accepts seeds in ``[0, 2**32)``
_MAX_SEED = 2**32 - 1


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be in [0, {_MAX_SEED}], got {seed}")
    return seed


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's legacy global RNG and torch (CPU and every CUDA device).

    Also asks torch for deterministic algorithms (``warn_only=True``: an operation without a
    deterministic implementation warns instead of failing) and makes cuDNN deterministic.
    Code that needs its own stream of random numbers should prefer :func:`make_rng`.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # the legacy global RNG, which older code uses

    # cuBLAS needs this before its first use to be deterministic on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def make_rng(seed: int) -> np.random.Generator:
    """A fresh numpy ``Generator`` (PCG64) for ``seed``, independent of the global state."""
    return np.random.default_rng(_check_seed(seed))
