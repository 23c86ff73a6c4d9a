"""Per-epoch training history: a table and learning curves."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd


@dataclass
class History:
    """What :func:`fit_torch` measured, one entry per epoch (epochs count from 1).

    ``logs`` holds the per-epoch means of any other number a ``step_fn`` returned (e.g. a GAN's
    ``critic_loss``), one list per name.
    """

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
    logs: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch: ``epoch, train_loss, val_metric, lr, seconds, best`` (then any ``logs``)."""
        frame = pd.DataFrame({
            "epoch": self.epoch, "train_loss": self.train_loss, "val_metric": self.val_metric,
            "lr": self.lr, "seconds": self.seconds,
        })
        frame["best"] = frame["epoch"] == self.best_epoch
        for key, values in self.logs.items():
            frame[key] = values
        return frame

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable) of the whole history."""
        return {"epoch": list(self.epoch), "train_loss": list(self.train_loss),
                "val_metric": list(self.val_metric), "lr": list(self.lr), "seconds": list(self.seconds),
                "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "metric_name": self.metric_name, "mode": self.mode, "stopped_early": self.stopped_early,
                "logs": {key: list(values) for key, values in self.logs.items()}}

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def plot(self, ax=None, title: str | None = None):
        """Learning curves: training loss (left axis) and the validation metric (right axis)."""
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
