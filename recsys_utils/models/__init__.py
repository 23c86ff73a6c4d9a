"""Recommenders speaking one protocol: ``fit(train)``, ``score(user_indices)``, ``recommend(user_ids, k)``."""

from recsys_utils.models.base import Recommender
from recsys_utils.models.baselines import PopularityRecommender, RandomRecommender
from recsys_utils.models.ease import EASE

__all__ = ["EASE", "PopularityRecommender", "RandomRecommender", "Recommender"]
