"""The dataset registry: the :class:`Dataset` shape every loader returns, and ``register_dataset``.

Loaders (the marketplace in :mod:`recsys_utils.data.datasets`, the real datasets in
:mod:`recsys_utils.data.movielens` and :mod:`recsys_utils.data.online_retail`) register themselves
here; :func:`recsys_utils.data.datasets.load_dataset` imports them all and looks the name up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from recsys_utils.core.vocabulary import TIMESTAMP
from recsys_utils.data.splits import DataSplit, temporal_split


@dataclass
class Dataset:
    """A dataset in the course vocabulary.

    ``interactions`` has at least ``user_id, item_id, timestamp`` (plus ``event``, ``rating``,
    ``session_id`` ... where the source has them); ``items`` and ``users`` hold side information
    keyed by ``item_id`` / ``user_id`` (possibly with no columns beyond the id).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    description: str = ""
    ratings: pd.DataFrame | None = None  # explicit ratings, where the source has them
    world: object | None = None  # the Marketplace, for the simulated dataset
    test_days: float = 14.0
    validation_days: float = 7.0
    extras: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name}: {len(self.interactions):,} interactions, "
            f"{self.interactions['user_id'].nunique():,} users, {len(self.items):,} items)"
        )

    def temporal_split(self, validation: bool = True) -> DataSplit:
        """The main protocol: the last ``test_days`` test, the ``validation_days`` before validate."""
        return temporal_split(
            self.interactions,
            test_days=self.test_days,
            validation_days=self.validation_days if validation else None,
        )

    @property
    def period(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        time = self.interactions[TIMESTAMP]
        return time.min(), time.max()


DatasetLoader = Callable[..., Dataset]


DATASETS: dict[str, DatasetLoader] = {}


def register_dataset(name: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator adding a loader ``f(seed, data_dir, **kwargs) -> Dataset`` to the switch."""

    def decorate(loader: DatasetLoader) -> DatasetLoader:
        DATASETS[name] = loader
        return loader

    return decorate
