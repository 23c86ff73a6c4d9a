"""Evaluation: vectorised metrics (accuracy, AUC, beyond accuracy) and protocols."""

from .metrics import (
    RankingMetrics,
    auc_score,
    average_popularity,
    catalog_coverage,
    gini_index,
    hits_at_k,
    intra_list_diversity,
    novelty,
    per_user_auc,
    ranking_metrics,
    sampled_ranking_metrics,
)

__all__ = [
    "RankingMetrics",
    "auc_score",
    "average_popularity",
    "catalog_coverage",
    "gini_index",
    "hits_at_k",
    "intra_list_diversity",
    "novelty",
    "per_user_auc",
    "ranking_metrics",
    "sampled_ranking_metrics",
]
