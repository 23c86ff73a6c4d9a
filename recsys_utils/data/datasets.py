"""The dataset switch: every notebook loads its data through :func:`load_dataset`.

``RECSYS_DATASET`` (read by :func:`recsys_utils.course.setup`) picks the dataset; the default is
the simulated marketplace, generated in seconds with no download. Real datasets register
themselves here with :func:`register_dataset` and return the same :class:`Dataset` shape in the
same column vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recsys_utils.constants import TIMESTAMP
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


def load_dataset(
    name: str = "marketplace", seed: int = 42, data_dir: str | Path = "data", **kwargs
) -> Dataset:
    """Load a dataset by name (see :data:`DATASETS`)."""
    _import_loaders()
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    return DATASETS[name](seed=seed, data_dir=Path(data_dir), **kwargs)


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset` (and by ``RECSYS_DATASET``)."""
    _import_loaders()
    return sorted(DATASETS)


def _import_loaders() -> None:
    """Real-data loaders live in their own modules and register on import."""
    import importlib

    for module in ("recsys_utils.data.loaders",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


@register_dataset("marketplace")
def load_marketplace_dataset(seed: int = 42, data_dir: Path | None = None, **overrides) -> Dataset:
    """The simulated marketplace (clean interactions view) with its world attached."""
    from recsys_utils.data.world import WorldConfig, load_marketplace

    world = load_marketplace(WorldConfig(seed=seed, **overrides))
    return Dataset(
        name="marketplace",
        interactions=world.interactions,
        items=world.items,
        users=world.users,
        description=f"simulated marketplace, seed {seed}: {world!r}",
        ratings=world.reviews,
        world=world,
        test_days=14.0,
        validation_days=7.0,
    )
