"""MLlib's implicit ALS on a course split: Interactions <-> Spark DataFrames, top-k with seen items
excluded, scored with the course's own metrics.

:func:`interactions_to_spark` writes an :class:`~recsys_utils.data.interactions.Interactions`
matrix as a ``(user, item, weight)`` DataFrame of integer indices (so results map back through the
same id indexes); :func:`fit_spark_als` trains ``pyspark.ml.recommendation.ALS`` with
``implicitPrefs=True`` (Hu, Koren & Volinsky 2008, the model of :mod:`recsys_utils.models.als`);
:func:`recommend_all` calls ``recommendForAllUsers`` for ``k`` plus the largest training history,
drops each user's training items with an anti-join and keeps the best ``k`` -- exactly the course
protocol's ``exclude_seen``. :class:`SparkTopK` wraps the result so that
:func:`recsys_utils.evaluation.protocol.evaluate` scores it like any model.

Spark regularises each user's solve by ``regParam * n_u`` (the number of the user's items; Zhou et
al. 2008, "Large-scale parallel collaborative filtering for the Netflix prize") where the course's
ALS uses one ``lambda``; :func:`spark_reg_param` maps one to the other on average.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.ml.recommendation import ALS as SparkALS
from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from recsys_utils.data.interactions import Interactions
from recsys_utils.scale.spark_io import to_spark

USER_COL, ITEM_COL, RATING_COL = "user", "item", "weight"


def interactions_to_spark(spark: SparkSession, interactions: Interactions, binary: bool = False) -> DataFrame:
    """The stored cells as a Spark DataFrame ``user, item, weight`` (integer indices, float64 weights)."""
    coo = (interactions.binary() if binary else interactions.matrix).tocoo()
    frame = pd.DataFrame({USER_COL: coo.row.astype(np.int32), ITEM_COL: coo.col.astype(np.int32),
                          RATING_COL: coo.data.astype(np.float64)})
    return to_spark(spark, frame)


def spark_to_interactions(frame: DataFrame, like: Interactions) -> Interactions:
    """A ``user, item, weight`` DataFrame of indices back into a matrix sharing ``like``'s id indexes."""
    missing = [c for c in (USER_COL, ITEM_COL, RATING_COL) if c not in frame.columns]
    if missing:
        raise KeyError(f"spark_to_interactions: missing column(s) {missing}; columns are {frame.columns}")
    local = frame.select(USER_COL, ITEM_COL, RATING_COL).toPandas()
    matrix = sp.csr_matrix((local[RATING_COL].to_numpy(np.float32),
                            (local[USER_COL].to_numpy(np.int64), local[ITEM_COL].to_numpy(np.int64))),
                           shape=like.matrix.shape)
    matrix.sum_duplicates()
    return Interactions(matrix, like.users, like.items)


def spark_reg_param(l2: float, train: Interactions) -> float:
    """Spark's ``regParam`` whose penalty ``regParam * n_u`` equals the course's ``l2`` for an average user."""
    if l2 < 0:
        raise ValueError(f"spark_reg_param: l2 must be >= 0, got {l2}")
    counts = train.user_counts()
    return float(l2 / max(counts[counts > 0].mean(), 1.0))


def fit_spark_als(ratings: DataFrame, dim: int = 32, reg_param: float = 0.1, alpha: float = 1.0,
                  epochs: int = 10, seed: int = 42, blocks: int | None = None,
                  checkpoint_interval: int = 5) -> ALSModel:
    """Implicit ALS in MLlib: confidence ``1 + alpha * weight``, ``dim`` factors, ``epochs`` sweeps.

    ``blocks`` (default: the session's parallelism) sets the number of user and item blocks, i.e.
    how ALS partitions the factor matrices; ``checkpoint_interval`` truncates the lineage every few
    sweeps (needs a checkpoint directory, which :func:`~recsys_utils.scale.spark_session.start_spark` sets).
    """
    if dim < 1 or epochs < 1 or reg_param < 0 or alpha < 0:
        raise ValueError(f"fit_spark_als: need dim >= 1, epochs >= 1, reg_param >= 0, alpha >= 0 "
                         f"(got dim={dim}, epochs={epochs}, reg_param={reg_param}, alpha={alpha})")
    blocks = blocks or ratings.sparkSession.sparkContext.defaultParallelism
    als = SparkALS(rank=dim, maxIter=epochs, regParam=reg_param, alpha=alpha, implicitPrefs=True,
                   userCol=USER_COL, itemCol=ITEM_COL, ratingCol=RATING_COL, seed=seed,
                   numUserBlocks=blocks, numItemBlocks=blocks, checkpointInterval=checkpoint_interval,
                   coldStartStrategy="drop")
    return als.fit(ratings)


def exclude_seen_topk(candidates: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    """The best ``k`` candidates per user that are not among the user's ``seen`` items.

    ``candidates``: ``user, item, score``; ``seen``: ``user, item``. Returns ``user, item, score, rank``
    (rank 1 = best; ties broken by the smaller item index, as the course's top-k does).
    """
    if k < 1:
        raise ValueError(f"exclude_seen_topk: k must be >= 1, got {k}")
    unseen = candidates.join(seen.select(USER_COL, ITEM_COL), on=[USER_COL, ITEM_COL], how="left_anti")
    order = Window.partitionBy(USER_COL).orderBy(F.col("score").desc(), F.col(ITEM_COL).asc())
    return unseen.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)


def recommend_all(model: ALSModel, train: DataFrame, k: int = 10) -> DataFrame:
    """Everyone's top ``k`` unseen items: ``user, item, score, rank``.

    ``recommendForAllUsers(k + largest history)`` returns each user's best items as an array
    sorted by score; the user's training items are removed from that array (``filter`` against the
    collected history, one join on ``user`` instead of an exploded anti-join) and the first ``k``
    kept. Enough candidates are asked for that ``k`` remain even for the heaviest user.
    """
    if k < 1:
        raise ValueError(f"recommend_all: k must be >= 1, got {k}")
    history = train.groupBy(USER_COL).agg(F.collect_set(ITEM_COL).alias("seen"))
    longest = history.agg(F.max(F.size("seen"))).first()[0] or 0
    recs = model.recommendForAllUsers(k + int(longest))
    kept = recs.join(history, on=USER_COL, how="left").select(
        USER_COL, F.slice(F.filter("recommendations", lambda r: ~F.coalesce(
            F.array_contains(F.col("seen"), r[ITEM_COL]), F.lit(False))), 1, k).alias("top"))
    return kept.select(USER_COL, F.posexplode("top").alias("pos", "r")).select(
        USER_COL, F.col(f"r.{ITEM_COL}").alias(ITEM_COL), F.col("r.rating").alias("score"),
        (F.col("pos") + 1).alias("rank"))


def topk_array(recommendations: DataFrame, n_users: int, k: int) -> np.ndarray:
    """A ``user, item, rank`` DataFrame as the ``(n_users, k)`` index array of the course (``-1`` pads)."""
    local = recommendations.select(USER_COL, ITEM_COL, "rank").toPandas()
    out = np.full((n_users, k), -1, dtype=np.int64)
    rank = local["rank"].to_numpy(np.int64) - 1
    keep = rank < k
    out[local[USER_COL].to_numpy(np.int64)[keep], rank[keep]] = local[ITEM_COL].to_numpy(np.int64)[keep]
    return out


class SparkTopK:
    """Precomputed top-k lists that :func:`~recsys_utils.evaluation.protocol.evaluate` can score.

    Only ``exclude_seen=True`` is available: the lists were computed without the training items.
    """

    def __init__(self, top: np.ndarray, name: str = "spark-als", model: ALSModel | None = None) -> None:
        self.top = np.asarray(top, dtype=np.int64)
        self.name = name
        self.model = model  # the fitted MLlib model, when there is one

    def recommend_indices(self, user_indices, k: int = 10, exclude_seen: bool = True,
                          batch_size: int = 2048) -> np.ndarray:
        if not exclude_seen:
            raise ValueError("SparkTopK: the lists exclude seen items; evaluate with exclude_seen=True")
        if k > self.top.shape[1]:
            raise ValueError(f"SparkTopK: asked for k={k} but only {self.top.shape[1]} items per user were computed")
        return self.top[np.asarray(user_indices, dtype=np.int64), :k]


def spark_als_topk(spark: SparkSession, train: Interactions, k: int = 10, dim: int = 32, l2: float | None = None,
                   reg_param: float | None = None, alpha: float = 1.0, epochs: int = 10,
                   seed: int = 42) -> tuple[SparkTopK, dict]:
    """Fit MLlib ALS on ``train`` and return everyone's top ``k`` unseen items plus timings.

    Give the course's ``l2`` (mapped by :func:`spark_reg_param`) or Spark's own ``reg_param``.
    The timings dict has ``to_spark_seconds``, ``fit_seconds`` and ``recommend_seconds``.
    """
    if (l2 is None) == (reg_param is None):
        raise ValueError("spark_als_topk: give exactly one of l2 (the course's lambda) or reg_param (Spark's)")
    reg = reg_param if reg_param is not None else spark_reg_param(l2, train)
    started = time.perf_counter()
    ratings = interactions_to_spark(spark, train).cache()
    ratings.count()
    loaded = time.perf_counter()
    model = fit_spark_als(ratings, dim=dim, reg_param=reg, alpha=alpha, epochs=epochs, seed=seed)
    fitted = time.perf_counter()
    top = topk_array(recommend_all(model, ratings, k), train.n_users, k)  # collects: runs the job
    done = time.perf_counter()
    ratings.unpersist()
    timings = {"to_spark_seconds": loaded - started, "fit_seconds": fitted - loaded,
               "recommend_seconds": done - fitted, "reg_param": reg}
    return SparkTopK(top, model=model), timings


__all__ = ["SparkTopK", "exclude_seen_topk", "fit_spark_als", "interactions_to_spark", "recommend_all",
           "spark_als_topk", "spark_reg_param", "spark_to_interactions", "topk_array"]
