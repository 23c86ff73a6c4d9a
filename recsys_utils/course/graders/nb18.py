"""Graders of notebook 18 (scaling out with Spark): top-k without seen items in the DataFrame API, RFM in
Spark SQL, Spark's implicit-ALS user solve, and NDCG@k as a join of two tables.

The two Spark graders use the running session (the notebook's) or start one small session for the
whole process (:func:`~recsys_utils.scale.spark_session.shared_spark`); the other two are numpy/pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.course.graders.registry import grader
from recsys_utils.features.profile import user_profile
from recsys_utils.models.als import exact_solve
from recsys_utils.scale.spark_als import exclude_seen_topk
from recsys_utils.scale.spark_io import to_spark
from recsys_utils.scale.spark_session import shared_spark


def _local(frame) -> pd.DataFrame:
    """A learner's result as pandas (a Spark DataFrame is collected)."""
    assert frame is not None, "the function returned None"
    return frame.toPandas() if hasattr(frame, "toPandas") else pd.DataFrame(frame)


@grader("18.1")
def top_k_unseen(learner) -> str:
    """``learner(candidates, seen, k)`` keeps the same rows as the package's ``exclude_seen_topk``."""
    rng = np.random.default_rng(0)
    users, items = 6, 12
    cand = pd.DataFrame({"user": np.repeat(np.arange(users), items), "item": np.tile(np.arange(items), users),
                         "score": np.round(rng.random(users * items), 1)})  # rounded: ties to break
    seen = cand.sample(frac=0.3, random_state=1)[["user", "item"]]
    spark = shared_spark()
    candidates, seen_df = to_spark(spark, cand), to_spark(spark, seen)
    got = _local(learner(candidates, seen_df, 3))
    for column in ("user", "item", "rank"):
        assert column in got.columns, f"the result needs columns user, item, rank; got {list(got.columns)}"
    expected = exclude_seen_topk(candidates, seen_df, 3).toPandas()
    key = ["user", "rank"]
    got = got[["user", "item", "rank"]].astype("int64").sort_values(key).reset_index(drop=True)
    expected = expected[["user", "item", "rank"]].astype("int64").sort_values(key).reset_index(drop=True)
    leaked = got.merge(seen, on=["user", "item"])
    assert leaked.empty, f"{len(leaked)} recommended items were already seen: anti-join candidates with seen first"
    assert len(got) == len(expected), f"expected {len(expected)} rows (k per user), got {len(got)}"
    assert got.equals(expected), ("the top 3 differ from exclude_seen_topk: rank unseen items by score descending, "
                                  "ties by the smaller item, with row_number() over a window per user")
    return "top-3 unseen items per user equal exclude_seen_topk on 6 users x 12 items, ties included"


def _rfm_fixture(rng: np.random.Generator) -> pd.DataFrame:
    n = 120
    event = rng.choice(["view", "cart", "purchase"], n, p=[0.6, 0.2, 0.2])
    frame = pd.DataFrame({
        "user_id": rng.integers(1, 9, n), "item_id": rng.integers(1, 15, n),
        "timestamp": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s"),
        "event": event, "order_id": np.where(event == "purchase", rng.integers(100, 110, n), -1),
        "price": np.where(event == "purchase", np.round(rng.uniform(5, 50, n), 2), np.nan),
        "quantity": np.where(event == "purchase", rng.integers(1, 3, n), 0)})
    frame.loc[frame["event"] == "purchase", "order_id"] += frame["user_id"] * 1000  # orders belong to one user
    return frame


@grader("18.2")
def rfm_query(learner) -> str:
    """``learner(at)`` is a SQL query over the view ``events`` equal to the pandas RFM columns at ``at``."""
    rng = np.random.default_rng(3)
    events = _rfm_fixture(rng)
    at = pd.Timestamp("2024-03-20 12:00:00")
    expected = user_profile(events, at=at)[["recency_days", "frequency", "monetary"]]
    spark = shared_spark()
    to_spark(spark, events).createOrReplaceTempView("events")
    query = learner(at.strftime("%Y-%m-%d %H:%M:%S"))
    assert isinstance(query, str), f"rfm_query must return the SQL text, got {type(query).__name__}"
    got = spark.sql(query).toPandas()
    for column in ("user_id", "recency_days", "frequency", "monetary"):
        assert column in got.columns, f"the query must return user_id, recency_days, frequency, monetary; got " \
                                      f"{list(got.columns)}"
    got = got.set_index("user_id").sort_index()
    assert sorted(got.index) == sorted(expected.index), (
        "the users differ: one row per user with an event BEFORE the cut-off (WHERE timestamp < at), no later event")
    got = got.loc[expected.index, list(expected.columns)].astype(float).fillna(0.0)
    for column in expected.columns:
        np.testing.assert_allclose(got[column], expected[column], atol=1e-9, err_msg=(
            f"{column} differs from the pandas profile: recency in days since the last event, frequency = distinct "
            "orders among purchases, monetary = sum of price * quantity over purchases (0 for users who never bought)"))
    return "recency, frequency and monetary equal the pandas profile at the cut-off (to 1e-9)"


@grader("18.3")
def spark_user_solve(learner) -> str:
    """``learner(y, r_u, alpha, reg_param)`` equals the normal equations with Spark's ``reg_param * n_u``."""
    rng = np.random.default_rng(4)
    n_items, dim = 9, 3
    y = rng.normal(size=(n_items, dim))
    checked = 0
    for count in (1, 3, 6):
        r_u = np.zeros(n_items)
        r_u[rng.choice(n_items, count, replace=False)] = rng.integers(1, 4, count)
        got = learner(y.copy(), r_u.copy(), 2.0, 0.3)
        assert got is not None, "spark_user_solve returned None"
        got = np.asarray(got, dtype=np.float64).ravel()
        assert got.shape == (dim,), f"expected a vector of {dim} factors, got shape {got.shape}"
        expected = exact_solve(sp.csr_matrix(r_u[None, :]), y, alpha=2.0, l2=0.3 * count)[0]
        np.testing.assert_allclose(got, expected, atol=1e-8, err_msg=(
            "x_u differs: solve (Y^T Y + Y^T (C_u - I) Y + reg_param * n_u * I) x = Y^T C_u p_u with "
            "c = 1 + alpha * r, p = [r > 0], and n_u the number of the user's items (Spark scales lambda by it)"))
        checked += 1
    return f"{checked} users' vectors equal the exact solve with lambda = reg_param * n_u (to 1e-8)"


@grader("18.4")
def ndcg_join(learner) -> str:
    """``learner(recs, test, k)`` equals the course's ``ranking_metrics`` NDCG@k on long tables."""
    rng = np.random.default_rng(5)
    n_users, n_items, k = 30, 20, 5
    top = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    top[3, 2:] = -1  # a short list
    dense = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    dense[7] = 0  # a user with nothing held out is not evaluated
    relevant = sp.csr_matrix(dense)
    users, ranks = np.nonzero(top >= 0)
    recs = pd.DataFrame({"user": users, "item": top[users, ranks], "rank": ranks + 1})
    coo = relevant.tocoo()
    test = pd.DataFrame({"user": coo.row, "item": coo.col})
    got = learner(recs.copy(), test.copy(), k)
    assert got is not None, "ndcg_join returned None"
    expected = ranking_metrics(top, relevant, k, ("ndcg",)).mean[f"ndcg@{k}"]
    assert np.isfinite(float(got)), f"NDCG must be a number, got {got!r}"
    assert abs(float(got) - expected) < 1e-9, (
        f"NDCG@{k} = {float(got):.6f}, expected {expected:.6f}: join the hits, DCG = sum 1/log2(rank + 1), IDCG "
        f"= the DCG of min(|R|, k) hits at the top, averaged over the users with a held-out item (no recs -> 0)")
    return f"NDCG@{k} from a join of two long tables equals ranking_metrics ({expected:.4f})"
