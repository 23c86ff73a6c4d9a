"""Notebook 02's RFM and category-affinity profile as one Spark SQL job, leak-free at a cut-off.

:func:`spark_profile` computes, from events strictly before ``at`` only, the columns of
:func:`recsys_utils.features.profile.user_profile` listed in :data:`PROFILE_COLUMNS`: activity
(``n_events``, ``n_items``), RFM (Hughes 1994: ``recency_days``, ``purchase_recency_days``,
``frequency``, ``monetary``, ``avg_order_value``), ``first_seen_days`` and the category affinity
(``cat__<category>`` shares weighted by event strength, the largest ``max_categories`` categories
kept and the rest in ``cat__other``, and their ``category_entropy``). :func:`profile_max_abs_diff`
compares it with the pandas profile (equal to ~1e-12: only the order of floating-point sums differs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from recsys_utils.core.vocabulary import EVENT, EVENT_WEIGHTS, ITEM, PRICE, PURCHASE, TIMESTAMP, USER
from recsys_utils.features.profile import CATEGORY_PREFIX, category_column
from recsys_utils.scale.spark_io import to_spark

#: the profile columns computed in Spark (``cat__*`` shares come in addition)
PROFILE_COLUMNS = ("n_events", "n_items", "recency_days", "first_seen_days", "purchase_recency_days", "frequency",
                   "monetary", "avg_order_value", "category_entropy")

#: ``past`` = events before the cut-off with their weight and category; one row per user out.
PROFILE_SQL = """
WITH past AS (
  SELECT e.user_id, e.item_id, e.timestamp, e.event, e.order_id, e.price, e.quantity,
         COALESCE(w.weight, 1.0) AS w, COALESCE(i.category, 'unknown') AS category,
         (unix_micros(TIMESTAMP '{at}') - unix_micros(e.timestamp)) / 86400e6 AS age_days
  FROM events e
  LEFT JOIN event_weights w ON e.event = w.event
  LEFT JOIN item_categories i ON e.item_id = i.item_id
  WHERE e.timestamp < TIMESTAMP '{at}'
), tx AS (
  SELECT * FROM past WHERE event IN ({purchases})
), activity AS (
  SELECT user_id, COUNT(*) AS n_events, COUNT(DISTINCT item_id) AS n_items,
         MIN(age_days) AS recency_days, MAX(age_days) AS first_seen_days
  FROM past GROUP BY user_id
), rfm AS (
  SELECT user_id, MIN(age_days) AS purchase_recency_days, COUNT(DISTINCT order_id) AS frequency,
         SUM(COALESCE(price, 0D) * quantity) AS monetary
  FROM tx GROUP BY user_id
)
SELECT a.user_id, a.n_events, a.n_items, a.recency_days, a.first_seen_days,
       COALESCE(r.purchase_recency_days, (SELECT MAX(age_days) FROM past)) AS purchase_recency_days,
       CAST(COALESCE(r.frequency, 0) AS DOUBLE) AS frequency, COALESCE(r.monetary, 0D) AS monetary,
       COALESCE(r.monetary, 0D) / GREATEST(COALESCE(r.frequency, 0), 1) AS avg_order_value
FROM activity a LEFT JOIN rfm r ON a.user_id = r.user_id
"""

#: weighted category shares in long form (the largest categories kept, the rest 'other') and their entropy
AFFINITY_SQL = """
WITH past AS (
  SELECT e.user_id, COALESCE(w.weight, 1.0) AS w, i.category
  FROM events e
  LEFT JOIN event_weights w ON e.event = w.event
  LEFT JOIN item_categories i ON e.item_id = i.item_id
  WHERE e.timestamp < TIMESTAMP '{at}'
), ranked AS (
  SELECT category, ROW_NUMBER() OVER (ORDER BY SUM(w) DESC, category) AS position
  FROM past WHERE category IS NOT NULL GROUP BY category
), sums AS (
  SELECT p.user_id, IF(r.position <= {max_categories}, p.category, 'other') AS category, SUM(p.w) AS w
  FROM past p LEFT JOIN ranked r ON p.category = r.category
  GROUP BY 1, 2
), shares AS (
  SELECT user_id, category, w / SUM(w) OVER (PARTITION BY user_id) AS share FROM sums
)
SELECT user_id, category, share,
       -SUM(IF(share > 0, share * LN(share), 0D)) OVER (PARTITION BY user_id) AS category_entropy
FROM shares
"""


def _check(events: pd.DataFrame, items: pd.DataFrame) -> str:
    needed = [USER, ITEM, TIMESTAMP, EVENT, "order_id", PRICE, "quantity"]
    missing = [c for c in needed if c not in events.columns]
    if missing:
        raise KeyError(f"spark_profile: the events lack column(s) {missing}; columns are {list(events.columns)}")
    column = category_column(items)
    if column is None or ITEM not in items.columns:
        raise KeyError(f"spark_profile: the item table needs '{ITEM}' and a category column; "
                       f"columns are {list(items.columns)}")
    return column


def register_profile_inputs(spark: SparkSession, events: pd.DataFrame, items: pd.DataFrame) -> None:
    """Temporary views ``events``, ``item_categories`` and ``event_weights`` for the profile SQL."""
    column = _check(events, items)
    keep = [USER, ITEM, TIMESTAMP, EVENT, "order_id", PRICE, "quantity"]
    to_spark(spark, events[keep]).cache().createOrReplaceTempView("events")  # read by both queries
    categories = items[[ITEM, column]].rename(columns={column: "category"})
    to_spark(spark, categories.drop_duplicates(ITEM)).createOrReplaceTempView("item_categories")
    weights = [(str(event), float(weight)) for event, weight in EVENT_WEIGHTS.items()]
    spark.createDataFrame(weights, "event string, weight double").createOrReplaceTempView("event_weights")


def spark_profile(spark: SparkSession, events: pd.DataFrame, items: pd.DataFrame, at,
                  purchase_events: tuple[str, ...] = (PURCHASE,), max_categories: int = 12) -> pd.DataFrame:
    """The RFM and category-affinity profile at ``at``, computed by Spark SQL; indexed by ``user_id``."""
    if max_categories < 1:
        raise ValueError(f"spark_profile: max_categories must be >= 1, got {max_categories}")
    at = pd.Timestamp(at)
    register_profile_inputs(spark, events, items)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
    purchases = ", ".join("'" + str(e).replace("'", "''") + "'" for e in purchase_events)
    base = spark.sql(PROFILE_SQL.format(at=stamp, purchases=purchases)).toPandas().set_index(USER)
    if base.empty:
        raise ValueError(f"spark_profile: no events before {at}")
    long = spark.sql(AFFINITY_SQL.format(at=stamp, max_categories=int(max_categories))).toPandas()
    # one row per (user, category) came back from Spark; laying it out wide is presentation
    wide = long.pivot(index=USER, columns="category", values="share").fillna(0.0)
    wide = wide.rename(columns=lambda c: f"{CATEGORY_PREFIX}{c}")[sorted(f"{CATEGORY_PREFIX}{c}" for c in
                                                                         long["category"].unique())]
    entropy = long.groupby(USER)["category_entropy"].first()
    out = base.join(wide).join(entropy)
    spark.catalog.uncacheTable("events")
    out.index = out.index.astype(np.int64)
    return out.sort_index().astype(np.float64)


def profile_max_abs_diff(spark_table: pd.DataFrame, pandas_table: pd.DataFrame) -> float:
    """Largest absolute difference over the users and columns of the Spark profile (error if any is missing)."""
    missing_users = spark_table.index.symmetric_difference(pandas_table.index)
    if len(missing_users):
        raise ValueError(f"profile_max_abs_diff: {len(missing_users)} users differ, e.g. {list(missing_users[:5])}")
    missing = [c for c in spark_table.columns if c not in pandas_table.columns]
    if missing:
        raise ValueError(f"profile_max_abs_diff: the pandas profile lacks {missing}")
    a = spark_table.to_numpy(np.float64)
    b = pandas_table.loc[spark_table.index, list(spark_table.columns)].to_numpy(np.float64)
    return float(np.nanmax(np.abs(a - b))) if a.size else 0.0


__all__ = ["AFFINITY_SQL", "PROFILE_COLUMNS", "PROFILE_SQL", "profile_max_abs_diff", "register_profile_inputs",
           "spark_profile"]
