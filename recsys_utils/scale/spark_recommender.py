"""MLlib's implicit ALS behind the course's ``Recommender`` protocol, for ``recsys-bench --engine spark``.

:class:`SparkALS` takes the course ALS's arguments (``dim``, ``l2``, ``alpha``, ``epochs``) and, in
:meth:`fit` only, uses a local Spark session (its own, always stopped; or the running one, left as it is).
It trains MLlib's ALS with ``regParam`` mapped from ``l2`` (:func:`~recsys_utils.scale.spark_als.
spark_reg_param`), computes everyone's top ``k`` without seen items with ``recommendForAllUsers``, and
keeps the learned factors, so :meth:`score` (the sampled protocol) and :meth:`recommend_indices` (the
full-ranking protocol) work after the JVM is gone.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import DEFAULT_BATCH, Recommender
from recsys_utils.scale.spark_als import (
    fit_spark_als,
    interactions_to_spark,
    recommend_all,
    spark_reg_param,
    topk_array,
)
from recsys_utils.scale.spark_session import spark_for_job


def _factors(frame, n: int, dim: int) -> np.ndarray:
    """MLlib's ``id, features`` factor table as an ``(n, dim)`` array (rows Spark never saw stay 0)."""
    local = frame.toPandas()
    out = np.zeros((n, dim), dtype=np.float32)
    if len(local):
        out[local["id"].to_numpy(np.int64)] = np.stack(local["features"].to_numpy())
    return out


class SparkALS(Recommender):
    """Implicit ALS trained by Spark MLlib in local mode (Hu et al. 2008; Spark's weighted-lambda penalty)."""

    name = "als-spark"

    def __init__(self, dim: int = 64, l2: float = 0.01, alpha: float = 1.0, epochs: int = 15, k: int = 10,
                 seed: int = 42, cores: int | None = None, driver_memory: str = "2g", **ignored) -> None:
        super().__init__()
        if dim < 1 or epochs < 1 or k < 1 or l2 < 0 or alpha < 0:
            raise ValueError(f"SparkALS: need dim, epochs, k >= 1 and l2, alpha >= 0 (got dim={dim}, "
                             f"epochs={epochs}, k={k}, l2={l2}, alpha={alpha})")
        self.dim, self.l2, self.alpha, self.epochs, self.k, self.seed = dim, l2, alpha, epochs, k, seed
        self.cores, self.driver_memory = cores, driver_memory
        self.ignored = dict(ignored)  # arguments of the course ALS that MLlib has no equivalent for

    def _fit(self, train: Interactions) -> None:
        matrix = train.matrix
        if matrix.nnz and matrix.data.min() < 0:
            raise ValueError("SparkALS: interaction weights must be non-negative")
        self.reg_param_ = spark_reg_param(self.l2, train)
        with spark_for_job("recsys-bench-als", cores=self.cores, driver_memory=self.driver_memory) as spark:
            ratings = interactions_to_spark(spark, train).cache()
            model = fit_spark_als(ratings, dim=self.dim, reg_param=self.reg_param_, alpha=self.alpha,
                                  epochs=self.epochs, seed=self.seed)
            self.top_ = topk_array(recommend_all(model, ratings, self.k), train.n_users, self.k)
            self.user_factors_ = _factors(model.userFactors, train.n_users, self.dim)
            self.item_factors_ = _factors(model.itemFactors, train.n_items, self.dim)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(user_indices)] @ self.item_factors_.T

    def recommend_indices(self, user_indices, k: int = 10, exclude_seen: bool = True,
                          batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Spark's own top-k lists (``recommendForAllUsers`` without seen items) when they cover ``k``."""
        self._check_fitted()
        if exclude_seen and k <= self.top_.shape[1]:
            return self.top_[np.asarray(user_indices, dtype=np.int64), :k]
        return super().recommend_indices(user_indices, k, exclude_seen, batch_size)


__all__ = ["SparkALS"]
