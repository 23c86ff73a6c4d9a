"""User segmentation: k-means on scaled profile features, k chosen by the silhouette, checked against truth.

* :func:`segmentation_matrix` picks the behavioural columns of a :func:`~recsys_utils.features.profile.user_profile`
  (category, device and daypart shares, price index, hour of day, weekend share, age, city tier),
  log-transforms heavy-tailed counts, fills gaps with the median and standardises.
* :func:`segment_users` projects them on their main principal components (Kaiser's rule), runs
  k-means (Lloyd 1982, k-means++ seeding, Arthur & Vassilvitskii 2007) for each candidate k and keeps
  the k with the best silhouette (Rousseeuw 1987) on a seeded sample.
* :func:`compare_segments` scores found clusters against known labels: adjusted Rand index
  (Hubert & Arabie 1985) and normalised mutual information; :func:`segment_predictability` measures
  how well a classifier recovers the labels from the profile (cross-validated accuracy vs the
  majority class), i.e. whether the profile carries the segment at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_utils.features.profile import CATEGORY_PREFIX, DAYPART_PREFIX, DEVICE_PREFIX, split_columns

#: profile columns used by default (those present); share columns are matched by prefix
DEFAULT_COLUMNS = ("price_index", "hour_sin", "hour_cos", "weekend_share", "age", "city_tier")
DEFAULT_PREFIXES = (CATEGORY_PREFIX, DEVICE_PREFIX, DAYPART_PREFIX)
#: heavy-tailed counts that are log1p-transformed when used
LOG_COLUMNS = ("n_events", "n_items", "n_sessions", "n_active_days", "frequency", "monetary", "avg_order_value",
               "events_per_active_day")


def default_columns(profile: pd.DataFrame) -> list[str]:
    """The behavioural profile columns present in ``profile`` (see :data:`DEFAULT_COLUMNS`)."""
    numeric, _ = split_columns(profile)
    cols = [c for c in numeric if str(c).startswith(DEFAULT_PREFIXES)]
    cols += [c for c in DEFAULT_COLUMNS if c in numeric]
    if not cols:
        raise ValueError(f"segmentation: none of the default columns is in the profile; pass columns=... "
                         f"(numeric columns are {numeric})")
    return cols


def segmentation_matrix(profile: pd.DataFrame, columns: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Standardised feature matrix (users x columns) and the columns used.

    Counts in :data:`LOG_COLUMNS` are ``log1p``-transformed, missing values filled with the column
    median, then every column is scaled to mean 0 and standard deviation 1 (constant columns to 0).
    """
    columns = default_columns(profile) if columns is None else list(columns)
    missing = [c for c in columns if c not in profile.columns]
    if missing:
        raise KeyError(f"segmentation: profile lacks column(s) {missing}")
    numeric, _ = split_columns(profile[columns])
    if len(numeric) != len(columns):
        raise TypeError(f"segmentation: column(s) {sorted(set(columns) - set(numeric))} are not numeric")
    if len(profile) < 3:
        raise ValueError(f"segmentation: need at least 3 users, got {len(profile)}")
    x = profile[columns].astype(np.float64).copy()
    for c in columns:
        if c in LOG_COLUMNS:
            x[c] = np.log1p(x[c].clip(lower=0))
    x = x.fillna(x.median()).fillna(0.0).to_numpy()
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x, columns


@dataclass
class Segmentation:
    """Result of :func:`segment_users`."""

    labels: pd.Series  # segment number per user_id (0 = largest)
    k: int
    scores: pd.DataFrame  # one row per candidate k: inertia, silhouette
    centers: pd.DataFrame  # k x columns, in standardised units
    columns: list[str] = field(default_factory=list)
    n_components: int = 0  # principal components clustered on (0: the standardised columns)
    fitted_on: int = 0  # users that shaped the clusters (at least ``min_events`` events)


def segment_users(profile: pd.DataFrame, ks=range(2, 9), k: int | None = None, columns: list[str] | None = None,
                  n_components: int | str | None = "kaiser", min_events: int = 5, seed: int = 42,
                  sample: int = 3000, n_init: int = 4) -> Segmentation:
    """k-means segments of the users of ``profile``; k from ``ks`` by the best silhouette unless given.

    The standardised columns (:func:`segmentation_matrix`) are first projected on their principal
    components: ``"kaiser"`` keeps those with eigenvalue above 1 (Kaiser 1960), an int keeps that
    many, ``None`` skips the projection. Dropping the noisy small components is what lets the
    silhouette see the segments. Only users with at least ``min_events`` events (``n_events``)
    shape the clusters; the others are assigned to the nearest centre. The silhouette is computed
    on a seeded sample of at most ``sample`` users (it is quadratic). Labels are renumbered by
    segment size (0 = largest).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    x, columns = segmentation_matrix(profile, columns)
    fit = (profile["n_events"].to_numpy() >= min_events) if "n_events" in profile.columns and min_events > 1 \
        else np.ones(len(x), dtype=bool)
    if fit.sum() < 3:
        raise ValueError(f"segment_users: only {int(fit.sum())} users have at least {min_events} events")
    components = 0
    z = x
    if n_components is not None:
        if n_components == "kaiser":
            eig = PCA(random_state=seed).fit(x[fit]).explained_variance_
            components = max(2, int((eig > 1.0).sum()))
        elif isinstance(n_components, (int, np.integer)) and 1 <= n_components <= x.shape[1]:
            components = int(n_components)
        else:
            raise ValueError(f"segment_users: n_components must be 'kaiser', None or 1..{x.shape[1]}, "
                             f"got {n_components!r}")
        z = PCA(components, random_state=seed).fit(x[fit]).transform(x)
    candidates = [int(k)] if k is not None else sorted({int(v) for v in ks})
    if not candidates or min(candidates) < 2 or max(candidates) >= int(fit.sum()):
        raise ValueError(f"segment_users: k must be between 2 and {int(fit.sum()) - 1}; got {candidates}")
    rng = np.random.default_rng(seed)
    zf = z[fit]
    idx = rng.choice(len(zf), size=min(sample, len(zf)), replace=False)
    rows, models = [], {}
    for kk in candidates:
        model = KMeans(n_clusters=kk, n_init=n_init, random_state=seed).fit(zf)
        models[kk] = model
        sample_labels = model.labels_[idx]
        sil = silhouette_score(zf[idx], sample_labels) if len(np.unique(sample_labels)) > 1 else np.nan
        rows.append({"k": kk, "inertia": float(model.inertia_), "silhouette": float(sil)})
    scores = pd.DataFrame(rows)
    best = int(scores.loc[scores["silhouette"].idxmax(), "k"]) if k is None else int(k)
    raw = models[best].predict(z)
    sizes = np.bincount(raw, minlength=best)
    rename = np.empty(best, dtype=np.int64)
    rename[np.argsort(-sizes, kind="stable")] = np.arange(best)
    labels = pd.Series(rename[raw], index=profile.index, name="cluster")
    centers = pd.DataFrame(x, columns=columns).groupby(labels.to_numpy()).mean()
    centers.index.name = "cluster"
    return Segmentation(labels=labels, k=best, scores=scores, centers=centers, columns=columns,
                        n_components=components, fitted_on=int(fit.sum()))


def _aligned(found: pd.Series, truth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    common = found.index.intersection(truth.index)
    if len(common) < 2:
        raise ValueError(f"segments: only {len(common)} users in both the clusters and the truth")
    return found.loc[common].to_numpy(), truth.loc[common].to_numpy()


def compare_segments(found: pd.Series, truth: pd.Series, seed: int = 0) -> dict[str, float]:
    """Adjusted Rand index, NMI and the ARI of a random permutation of ``found`` (chance level).

    Both are Series indexed by user_id; users in both are compared.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    a, b = _aligned(found, truth)
    shuffled = np.random.default_rng(seed).permutation(a)
    return {"ari": float(adjusted_rand_score(b, a)), "nmi": float(normalized_mutual_info_score(b, a)),
            "ari_shuffled": float(adjusted_rand_score(b, shuffled)), "n_users": int(len(a))}


def segment_predictability(profile: pd.DataFrame, truth: pd.Series, columns: list[str] | None = None,
                           folds: int = 5, seed: int = 42) -> dict[str, float]:
    """Cross-validated accuracy of a logistic regression predicting ``truth`` from the profile.

    Returns ``accuracy``, ``majority`` (the accuracy of always guessing the largest segment) and
    ``chance`` (1 / number of segments).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    common = profile.index.intersection(truth.index)
    x, _ = segmentation_matrix(profile.loc[common], columns)
    y = truth.loc[common].to_numpy()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    acc = cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv).mean()
    counts = pd.Series(y).value_counts(normalize=True)
    return {"accuracy": float(acc), "majority": float(counts.max()), "chance": 1.0 / len(counts)}


def segment_portraits(profile: pd.DataFrame, labels: pd.Series, columns: list[str] | None = None) -> pd.DataFrame:
    """Mean of each profile column per segment, with a ``users`` count column (a segment "portrait")."""
    columns = default_columns(profile) if columns is None else list(columns)
    frame = profile.loc[labels.index, columns].astype(np.float64)
    out = frame.groupby(labels.to_numpy()).mean()
    out.insert(0, "users", labels.value_counts().reindex(out.index).to_numpy())
    out.index.name = labels.name or "segment"
    return out
