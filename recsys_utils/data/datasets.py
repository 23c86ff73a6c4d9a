"""The dataset switch: every notebook loads its data through :func:`load_dataset`.

``RECSYS_DATASET`` (read by :func:`recsys_utils.course.setup`) picks the dataset; the default is
the simulated marketplace, generated in seconds with no download. Real datasets register
themselves here with :func:`register_dataset` and return the same :class:`Dataset` shape in the
same column vocabulary.
"""

from __future__ import annotations

from pathlib import Path

from recsys_utils.data import movielens, online_retail  # noqa: F401  (the real-data loaders register on import)
from recsys_utils.data.registry import DATASETS, Dataset, register_dataset
from recsys_utils.data.world import WorldConfig, load_marketplace


def load_dataset(
    name: str = "marketplace", seed: int = 42, data_dir: str | Path | None = None, **kwargs
) -> Dataset:
    """Load a dataset by name (see :data:`DATASETS`).

    ``data_dir=None`` is the project's ``data/`` cache, where the real-data loaders also look for a
    local copy (``../shared/data``); a folder given explicitly is the only one they look in
    (:func:`recsys_utils.data.source_files.searches_local_copies`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    return DATASETS[name](seed=seed, data_dir=None if data_dir is None else Path(data_dir), **kwargs)


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset` (and by ``RECSYS_DATASET``)."""
    return sorted(DATASETS)


@register_dataset("marketplace")
def load_marketplace_dataset(seed: int = 42, data_dir: Path | None = None, **overrides) -> Dataset:
    """The simulated marketplace (clean interactions view) with its world attached."""
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
