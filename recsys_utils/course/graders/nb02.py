"""Graders of notebook 02 (user profiling, item attributes and context features): the features by hand.

02.1 RFM at a cut-off (against :func:`~recsys_utils.features.profile.user_profile` on a log that
goes on after the cut-off, so a leaky answer fails), 02.2 TF-IDF of titles (against
:func:`~recsys_utils.features.items.title_tfidf`, i.e. scikit-learn's ``TfidfVectorizer`` with the
package's settings), 02.3 category affinity with a half-life (without decay against
``user_profile``'s ``cat__`` shares, with decay against
:class:`~recsys_utils.pipeline.realtime.DecayedPopularity` counting (user, category) pairs) and
02.4 one Lloyd step of k-means (against scikit-learn's ``KMeans`` started from the same centroids).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT_WEIGHTS
from recsys_utils.course.graders.registry import grader
from recsys_utils.features.items import LETTER_TOKENS, title_tfidf
from recsys_utils.features.profile import CATEGORY_PREFIX, user_profile
from recsys_utils.pipeline.realtime import DecayedPopularity

T0 = pd.Timestamp("2024-03-01")
DAY = pd.Timedelta(days=1)
EVENTS = np.array(["view", "favorite", "add_to_cart", "purchase"])


def _log(rng: np.random.Generator, n: int = 500, n_users: int = 25, days: int = 60) -> pd.DataFrame:
    """A shuffled event log over ``days`` days: some users only after the cut-off, some never buy."""
    event = rng.choice(EVENTS, size=n, p=[0.55, 0.15, 0.15, 0.15])
    user = rng.integers(0, n_users, size=n)
    buys = event == "purchase"
    frame = pd.DataFrame({
        "user_id": 100 + user,
        "item_id": rng.integers(0, 40, size=n),
        "timestamp": T0 + pd.to_timedelta(rng.integers(0, days * 86_400, size=n), unit="s"),
        "event": event,
        "order_id": np.where(buys, rng.integers(0, 60, size=n), -1),
        "price": np.where(buys, rng.integers(100, 5000, size=n) / 100.0, np.nan),
        "quantity": np.where(buys, rng.integers(1, 4, size=n), 0),
    })
    late = T0 + pd.Timedelta(days=days)  # two users appear only after the cut-off
    extra = frame.head(6).assign(user_id=[900, 900, 900, 901, 901, 901], timestamp=late)
    return pd.concat([frame, extra], ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)


def _frame(answer, name: str, columns: list[str]) -> pd.DataFrame:
    assert answer is not None, f"{name} returned None"
    assert isinstance(answer, pd.DataFrame), f"{name} must return a DataFrame, got {type(answer).__name__}"
    missing = [c for c in columns if c not in answer.columns]
    assert not missing, f"{name}: missing column(s) {missing}"
    return answer


@grader("02.1")
def rfm_at(learner) -> str:
    """``learner(events, at)`` gives recency, frequency and monetary equal to ``user_profile``'s."""
    rng = np.random.default_rng(2)
    log = _log(rng)
    for day in (25, 41):
        at = T0 + pd.Timedelta(days=day)
        got = _frame(learner(log.copy(), at), "rfm_at", ["recency_days", "frequency", "monetary"])
        expected = user_profile(log, at=at)[["recency_days", "frequency", "monetary"]]
        extra = sorted(set(got.index) - set(expected.index))
        assert not extra, (f"at={at.date()}: users {extra[:5]} have no event before the cut-off; they must not "
                           "appear (a feature at a cut-off sees only events strictly before it)")
        lacking = sorted(set(expected.index) - set(got.index))
        assert not lacking, f"at={at.date()}: users {lacking[:5]} are missing (one row per user with a past event)"
        got = got.loc[expected.index].astype(np.float64)
        for column, hint in (("recency_days", "days from the user's last event before `at` to `at`"),
                             ("frequency", "distinct order_id of the purchases before `at`"),
                             ("monetary", "sum of price x quantity of the purchases before `at`")):
            wrong = ~np.isclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9, atol=1e-9)
            if wrong.any():
                user = expected.index[np.flatnonzero(wrong)[0]]
                raise AssertionError(f"at={at.date()}, user {user}: {column} = {got.loc[user, column]:.4f}, "
                                     f"expected {expected.loc[user, column]:.4f} ({hint}; events at or after "
                                     "`at` are the future and must be ignored)")
    return "recency, frequency and monetary equal user_profile's at two cut-offs (future events ignored)"


WORDS = ("red", "blue", "linen", "cotton", "shirt", "dress", "lamp", "desk", "oak", "steel", "mini", "pro",
         "sport", "classic", "kettle", "phone")


@grader("02.2")
def tfidf(learner) -> str:
    """``learner(docs, vocabulary)`` equals ``title_tfidf``'s matrix (sublinear tf, smooth idf, L2 rows)."""
    rng = np.random.default_rng(3)
    titles = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) for _ in range(40)]
    titles[0] = "red red red shirt"  # a repeated term: the tf must be sublinear
    titles[1] = "2024 edition"  # no letter token of the vocabulary except 'edition' (in one title only)
    items = pd.DataFrame({"item_id": np.arange(len(titles)), "title": titles})
    matrix, vectorizer = title_tfidf(items, max_features=None, min_df=1)
    vocabulary = list(vectorizer.get_feature_names_out())
    docs = [re.findall(LETTER_TOKENS, t.lower()) for t in titles]
    got = learner([list(d) for d in docs], list(vocabulary))
    assert got is not None, "tfidf returned None"
    got = np.asarray(got.toarray() if hasattr(got, "toarray") else got, dtype=np.float64)
    expected = matrix.toarray().astype(np.float64)
    assert got.shape == expected.shape, f"the matrix must be documents x terms {expected.shape}, got {got.shape}"
    rows = np.flatnonzero(~np.isclose(got, expected, atol=1e-5).all(axis=1))
    if rows.size:
        r = rows[0]
        raise AssertionError(f"document {r} {docs[r]}: got {np.round(got[r][expected[r] > 0], 4)}, expected "
                             f"{np.round(expected[r][expected[r] > 0], 4)} for its terms (tf = 1 + ln(count), "
                             "idf = ln((1 + n)/(1 + df)) + 1, then each row divided by its L2 norm)")
    return "equal to title_tfidf (scikit-learn TfidfVectorizer, sublinear_tf, smooth_idf, l2) to 1e-5"


def _decayed_reference(log: pd.DataFrame, category: pd.Series, at: pd.Timestamp, half_life_days: float,
                       users: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Shares from the package's decayed counter over (user, category) keys, clock advanced to ``at``."""
    past = log[log["timestamp"] < at].sort_values("timestamp", kind="stable")
    u = np.searchsorted(users, past["user_id"].to_numpy())
    c = np.searchsorted(cats, past["item_id"].map(category).to_numpy())
    seconds = (past["timestamp"] - T0) / pd.Timedelta(seconds=1)
    counter = DecayedPopularity(len(users) * len(cats), half_life_hours=half_life_days * 24.0)
    counter.update(u * len(cats) + c, seconds.to_numpy(), past["event"].map(EVENT_WEIGHTS).to_numpy())
    counter.update(np.array([0]), np.array([(at - T0) / pd.Timedelta(seconds=1)]), np.array([0.0]))
    counts = counter.counts.reshape(len(users), len(cats))
    return counts / counts.sum(axis=1, keepdims=True)


@grader("02.3")
def decayed_affinity(learner) -> str:
    """Without decay equal to ``user_profile``'s ``cat__`` shares; with decay to ``DecayedPopularity``'s."""
    rng = np.random.default_rng(4)
    log = _log(rng)
    items = pd.DataFrame({"item_id": np.arange(40), "category": rng.choice(["beauty", "books", "home", "toys"], 40)})
    category = items.set_index("item_id")["category"]
    at = T0 + pd.Timedelta(days=41)
    profile = user_profile(log, items, at=at)
    share_cols = [c for c in profile.columns if c.startswith(CATEGORY_PREFIX)]
    cats = np.array(sorted(c[len(CATEGORY_PREFIX):] for c in share_cols))
    users = profile.index.to_numpy()
    for half_life in (1e9, 7.0):
        got = _frame(learner(log.copy(), category.copy(), at, half_life), "decayed_affinity", list(cats))
        assert set(got.index) == set(users), ("one row per user with an event strictly before `at` "
                                              f"({len(users)} users), got {len(got)} rows")
        got = got.loc[users, list(cats)].to_numpy(np.float64)
        if half_life > 1e6:
            expected = profile[[f"{CATEGORY_PREFIX}{c}" for c in cats]].to_numpy()
            hint = "without decay the shares must equal user_profile's cat__ columns (weights view 1 ... purchase 5)"
        else:
            expected = _decayed_reference(log, category, at, half_life, users, cats)
            hint = "an event `age` days old weighs EVENT_WEIGHTS[event] * 2 ** (-age / half_life_days)"
        rows = np.flatnonzero(~np.isclose(got, expected, atol=1e-6).all(axis=1))
        if rows.size:
            r = rows[0]
            raise AssertionError(f"half-life {half_life:g} days, user {users[r]}: got {np.round(got[r], 4)}, "
                                 f"expected {np.round(expected[r], 4)} ({hint}; rows sum to 1)")
    return "equal to user_profile's shares without decay and to DecayedPopularity's with a 7-day half-life"


@grader("02.4")
def kmeans_step(learner) -> str:
    """``learner(X, centroids)`` gives sklearn's assignment and KMeans' centres after one Lloyd iteration."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances_argmin

    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0, 1, (70, 3)), rng.normal(4, 1, (70, 3)), rng.normal((0, 6, 2), 1.5, (60, 3))]
    centroids = x[rng.choice(len(x), 4, replace=False)] * np.array([[1.0], [0.3], [2.0], [1.0]])
    centroids[0] += 0.1
    answer = learner(x.copy(), centroids.copy())
    assert answer is not None, "kmeans_step returned None"
    assert isinstance(answer, tuple) and len(answer) == 2, "return a tuple (labels, new_centroids)"
    labels, new = (np.asarray(a) for a in answer)
    expected = pairwise_distances_argmin(x, centroids)
    assert labels.shape == expected.shape, f"labels must have one entry per row of X {expected.shape}"
    wrong = np.flatnonzero(labels != expected)
    assert not wrong.size, (f"row {wrong[0]} is assigned to centroid {labels[wrong[0]]}, but the nearest (squared "
                            f"Euclidean distance) is centroid {expected[wrong[0]]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that one iteration does not converge
        model = KMeans(n_clusters=len(centroids), init=centroids, n_init=1, max_iter=1).fit(x)
    assert new.shape == centroids.shape, f"new centroids must be {centroids.shape}, got {new.shape}"
    np.testing.assert_allclose(new, model.cluster_centers_, rtol=1e-8, atol=1e-8,
                               err_msg="each new centroid is the mean of the rows assigned to it")
    return "assignment equals pairwise_distances_argmin, update equals KMeans(max_iter=1) from the same centroids"
