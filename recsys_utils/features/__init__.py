"""Feature engineering: user profiles, item attributes, context features and segmentation.

The API the notebooks use (02 builds and explains it; 04 and 05 reuse it)::

    from recsys_utils.features import user_profile, item_features, context_features, features_for_pairs

    profile = user_profile(interactions, items, users, at=cutoff)     # one row per user
    item_table = item_features(items, interactions, at=cutoff)         # one row per item
    context = context_features(interactions, promotions)               # one row per event
    tables = build_feature_tables(interactions, items, users, at=cutoff)
    X = features_for_pairs(candidates, tables, context)                # one row per (user, item)

``features.pairs`` is the package's one builder of (user, item) pair features: the ranker, the CTR
model and the serving pipeline all read it (``pair_features`` on tables built with indexes).

Everything computed from behaviour uses only events strictly before ``at``.
"""

from recsys_utils.features.context import DAYPARTS, context_features, daypart, daypart_codes, world_promotions
from recsys_utils.features.items import attribute_matrix, item_features, price_bands, similar_items, title_tfidf
from recsys_utils.features.pairs import FeatureTables, build_feature_tables, features_for_pairs, pair_features
from recsys_utils.features.profile import split_columns, user_profile
from recsys_utils.features.segmentation import compare_segments, segment_predictability, segment_users

__all__ = [
    "DAYPARTS",
    "FeatureTables",
    "attribute_matrix",
    "build_feature_tables",
    "compare_segments",
    "context_features",
    "daypart",
    "daypart_codes",
    "features_for_pairs",
    "item_features",
    "pair_features",
    "price_bands",
    "segment_predictability",
    "segment_users",
    "similar_items",
    "split_columns",
    "title_tfidf",
    "user_profile",
    "world_promotions",
]
