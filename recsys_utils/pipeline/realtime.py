"""Real-time updates (实时推荐): item popularity that follows the stream of events.

A new user's first session is folded into a fitted ALS model with
:meth:`recsys_utils.models.als.ALS.fold_in` (one least-squares solve for the user vector, no
retraining); this module keeps item popularity current as events arrive.
"""

from __future__ import annotations

import numpy as np


class DecayedPopularity:
    """Exponentially decayed item counts: ``count ← count · 2^(−Δt / half_life) + new events``.

    Updating is O(events) per batch; the ranking follows trends within about one half-life,
    where all-time counts would keep yesterday's hits on top.
    """

    def __init__(self, n_items: int, half_life_hours: float = 24.0) -> None:
        if half_life_hours <= 0:
            raise ValueError(f"DecayedPopularity: half_life_hours must be > 0, got {half_life_hours}")
        self.counts = np.zeros(n_items)
        self.half_life = half_life_hours * 3600.0
        self.clock: float | None = None

    def update(self, items: np.ndarray, seconds: np.ndarray, weights: np.ndarray | None = None) -> DecayedPopularity:
        """Add a batch of events (item indices, event times in seconds, optional weights)."""
        items = np.asarray(items, dtype=np.int64)
        seconds = np.asarray(seconds, dtype=np.float64)
        if items.size == 0:
            return self
        now = float(seconds.max())
        if self.clock is not None and now < self.clock:
            raise ValueError(f"DecayedPopularity: events at {now} are older than the clock {self.clock}")
        if self.clock is not None:
            self.counts *= 2.0 ** (-(now - self.clock) / self.half_life)
        weights = np.ones(items.size) if weights is None else np.asarray(weights, dtype=np.float64)
        decay = 2.0 ** (-(now - seconds) / self.half_life)
        self.counts += np.bincount(items, weights=weights * decay, minlength=self.counts.size)
        self.clock = now
        return self

    def top(self, k: int = 10) -> np.ndarray:
        return np.argsort(-self.counts, kind="stable")[:k]
