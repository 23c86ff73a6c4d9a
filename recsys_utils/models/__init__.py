"""Recommenders speaking one protocol: ``fit(train)``, ``score(user_indices)``, ``recommend(user_ids, k)``.

The classic models import without torch-heavy work; neural, sequential and generative models live
in their own modules (``neural``, ``autoencoders``, ``ctr``, ``sequential``, ``generative``).
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
