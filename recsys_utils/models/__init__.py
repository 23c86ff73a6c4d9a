"""Recommenders speaking one protocol: ``fit(train)``, ``score(user_indices)``, ``recommend(user_ids, k)``.

The classic models are exported here; every registered model is in :mod:`recsys_utils.models.registry`.
Torch models build on :class:`~recsys_utils.models.torch_base.TorchRecommender` and the one training
loop in :mod:`recsys_utils.models.train`; sequential and generative models have their own modules.
"""

from recsys_utils.models.als import ALS
from recsys_utils.models.base import Recommender
from recsys_utils.models.baselines import PopularityRecommender, RandomRecommender
from recsys_utils.models.bpr import BPR
from recsys_utils.models.ease import EASE
from recsys_utils.models.mf import BiasBaseline, ExplicitMF, GlobalMean
from recsys_utils.models.neighbors import ItemKNN, UserKNN

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "BiasBaseline",
    "ExplicitMF",
    "GlobalMean",
    "ItemKNN",
    "PopularityRecommender",
    "RandomRecommender",
    "Recommender",
    "UserKNN",
]
