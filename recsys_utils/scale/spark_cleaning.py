"""Notebook 01's de-duplication and bot rules as a Spark job, with the same audit counts.

The rules and their order are those of :func:`recsys_utils.data.cleaning.clean_sources`, each row
dropped by the first rule that catches it:

- click log: exact duplicates (``duplicate``), timestamps outside the plausible window -- the
  0.5%/99.5% quantiles widened by 7 days (``bad_timestamp``), crawler user agents, then accounts
  whose median gap between requests is inhuman (``bot``);
- behaviour log: exact duplicates, then near duplicates -- the same user, item, event type and order
  less than ``window`` after the previous such row (``duplicate``).

Spark has no row order, so each row carries its position (``_row``) and "the first copy" means the
smallest position; window functions (``row_number``, ``lag`` over ``PARTITION BY ... ORDER BY``)
replace pandas' sorted scans. :func:`spark_dedup_and_bots` returns the counts per source and reason
in the shape of the pandas audit so the two can be compared with ``==``.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from recsys_utils.core.vocabulary import ITEM, USER
from recsys_utils.data.cleaning import NEAR_DUPLICATE_WINDOW
from recsys_utils.data.cleaning_rules import BOT_AGENT_PATTERN, PLAUSIBLE_MARGIN
from recsys_utils.scale.spark_io import to_spark

ROW = "_row"
#: the audit cells this job reproduces: (source, reason)
AUDITED = (("click_log", "duplicate"), ("click_log", "bad_timestamp"), ("click_log", "bot"),
           ("behaviour_log", "duplicate"))


def with_positions(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """``frame`` in Spark with its row position in ``_row`` (what "an earlier row" means)."""
    if ROW in frame.columns:
        raise ValueError(f"with_positions: the table already has a '{ROW}' column")
    return to_spark(spark, frame.reset_index(drop=True).assign(**{ROW: range(len(frame))}))


def exact_duplicate_flag(frame: DataFrame) -> Column:
    """True for rows identical (all columns but ``_row``) to a row at an earlier position."""
    columns = [c for c in frame.columns if c != ROW]
    return F.row_number().over(Window.partitionBy(*columns).orderBy(ROW)) > 1


def near_duplicate_flag(keys: list[str], time_micros: Column, window_micros: int) -> Column:
    """True for rows less than ``window_micros`` after the previous row with the same ``keys``."""
    order = Window.partitionBy(*keys).orderBy(time_micros, F.col(ROW))
    return F.coalesce(time_micros - F.lag(time_micros).over(order) < window_micros, F.lit(False))


def _drop(frame: DataFrame, flag: Column, reason: str) -> DataFrame:
    """Give still-kept rows where ``flag`` holds the ``reason`` (the audit's "first rule wins")."""
    return frame.withColumn("reason", F.when(F.col("reason").isNull() & flag, F.lit(reason))
                            .otherwise(F.col("reason"))).localCheckpoint()


def _kept(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("reason").isNull())


def clean_click_log(clicks: DataFrame, max_median_gap_s: float = 2.5, min_requests: int = 30,
                    margin: pd.Timedelta = PLAUSIBLE_MARGIN) -> DataFrame:
    """The click log with a ``reason`` column (null = kept) after the duplicate, time and bot rules."""
    frame = clicks.withColumn("reason", F.lit(None).cast("string"))
    frame = _drop(frame, exact_duplicate_flag(clicks), "duplicate")
    low, high = _kept(frame).agg(F.percentile("ts_ms", F.array(F.lit(0.005), F.lit(0.995)))).first()[0]
    margin_ms = margin.value / 1e6
    frame = _drop(frame, (F.col("ts_ms") < low - margin_ms) | (F.col("ts_ms") > high + margin_ms), "bad_timestamp")
    agent_is_bot = F.coalesce(F.col("user_agent").rlike("(?i)" + BOT_AGENT_PATTERN), F.lit(False))
    frame = _drop(frame, agent_is_bot, "bot")
    scrapers = inhuman_rate_accounts(_kept(frame), max_median_gap_s, min_requests)
    flagged = frame.join(scrapers.where("scraper").select(USER, F.lit(True).alias("_scraper")), on=USER, how="left")
    return _drop(flagged, F.coalesce(F.col("_scraper"), F.lit(False)), "bot").drop("_scraper")


def inhuman_rate_accounts(clicks: DataFrame, max_median_gap_s: float = 2.5, min_requests: int = 30) -> DataFrame:
    """Per account: ``requests``, ``median_gap_s`` and ``scraper`` (as :func:`~recsys_utils.data.
    cleaning_rules.inhuman_rate_accounts`)."""
    order = Window.partitionBy(USER).orderBy("ts_ms")
    gaps = clicks.where(F.col(USER).isNotNull()).withColumn(
        "gap", (F.col("ts_ms") - F.lag("ts_ms").over(order)) / 1000.0)
    stats = gaps.groupBy(USER).agg(F.count("*").alias("requests"), F.percentile("gap", 0.5).alias("median_gap_s"))
    return stats.withColumn("scraper", F.coalesce(
        (F.col("requests") >= min_requests) & (F.col("median_gap_s") < max_median_gap_s), F.lit(False)))


def clean_behaviour_log(behaviour: DataFrame, window: pd.Timedelta = NEAR_DUPLICATE_WINDOW) -> DataFrame:
    """The behaviour log with a ``reason`` column after the exact and near duplicate rules."""
    frame = behaviour.withColumn("reason", F.lit(None).cast("string"))
    frame = _drop(frame, exact_duplicate_flag(behaviour), "duplicate")
    kept = _kept(frame)
    micros = F.unix_micros(F.col("event_time"))
    near = kept.withColumn("_near", near_duplicate_flag([USER, ITEM, "event_type", "order_id"], micros,
                                                        int(window.value // 1000)))
    frame = frame.join(near.select(ROW, "_near"), on=ROW, how="left")
    return _drop(frame, F.coalesce(F.col("_near"), F.lit(False)), "duplicate").drop("_near")


def reason_counts(frame: DataFrame) -> dict[str, int]:
    """``{reason: rows}`` of the dropped rows of a cleaned frame."""
    rows = frame.where(F.col("reason").isNotNull()).groupBy("reason").count().collect()
    return {row["reason"]: int(row["count"]) for row in rows}


def spark_dedup_and_bots(spark: SparkSession, click_log: pd.DataFrame, behaviour_log: pd.DataFrame,
                         **rules) -> pd.DataFrame:
    """Run both jobs; returns the audit cells of :data:`AUDITED` as a ``source x dropped:<reason>`` table.

    ``rules`` may set ``max_median_gap_s``, ``min_requests`` (click log) and ``window`` (behaviour log).
    """
    for name, frame, needed in (("click_log", click_log, [USER, "ts_ms", "user_agent"]),
                                ("behaviour_log", behaviour_log, [USER, ITEM, "event_type", "order_id", "event_time"])):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise KeyError(f"spark_dedup_and_bots: {name} lacks column(s) {missing}")
    unknown = set(rules) - {"max_median_gap_s", "min_requests", "window"}
    if unknown:
        raise TypeError(f"spark_dedup_and_bots: unknown rule option(s) {sorted(unknown)}")
    click_rules = {k: v for k, v in rules.items() if k != "window"}
    counts = {"click_log": reason_counts(clean_click_log(with_positions(spark, click_log), **click_rules)),
              "behaviour_log": reason_counts(clean_behaviour_log(with_positions(spark, behaviour_log),
                                                                 **({"window": rules["window"]} if "window" in rules
                                                                    else {})))}
    return audit_cells(counts)


def audit_cells(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    """The :data:`AUDITED` cells of ``{source: {reason: rows}}`` (or of a pandas audit) as one table."""
    table = pd.DataFrame(0, index=pd.Index(sorted({s for s, _ in AUDITED}), name="source"),
                         columns=sorted({f"dropped:{r}" for _, r in AUDITED}), dtype="int64")
    for source, reason in AUDITED:
        table.loc[source, f"dropped:{reason}"] = int(counts.get(source, {}).get(reason, 0))
    return table


def pandas_audit_cells(audit: pd.DataFrame) -> pd.DataFrame:
    """The same cells read from :func:`~recsys_utils.data.cleaning.clean_sources`'s ``audit`` table."""
    counts = {source: {col.split(":", 1)[1]: int(audit.loc[source, col]) for col in audit.columns
                       if col.startswith("dropped:")} for source in audit.index}
    return audit_cells(counts)


__all__ = ["AUDITED", "audit_cells", "clean_behaviour_log", "clean_click_log", "exact_duplicate_flag",
           "inhuman_rate_accounts", "near_duplicate_flag", "pandas_audit_cells", "reason_counts",
           "spark_dedup_and_bots", "with_positions"]
