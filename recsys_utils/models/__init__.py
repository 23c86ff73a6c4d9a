"""Recommenders speaking one protocol: ``fit(train)``, ``score(user_indices)``, ``recommend(user_ids, k)``.

Names are imported lazily (PEP 562), so ``recsys_utils.training`` can import the base class without
pulling in the torch models that are built on it. Neural, sequential and generative models live in
their own modules (``neural``, ``autoencoders``, ``ctr``, ``sequential``, ``generative``).
"""

from importlib import import_module

_EXPORTS = {
    "ALS": "als",
    "BPR": "bpr",
    "EASE": "ease",
    "BiasBaseline": "mf",
    "ExplicitMF": "mf",
    "GlobalMean": "mf",
    "ItemKNN": "neighbors",
    "PopularityRecommender": "baselines",
    "RandomRecommender": "baselines",
    "Recommender": "base",
    "UserKNN": "neighbors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"recsys_utils.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'recsys_utils.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
