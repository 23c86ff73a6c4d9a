"""How good is generated interaction data? Fidelity, structure, detectability, utility, diversity,
privacy and plausibility, each measured next to the same number for real held-out users (the floor).

Every function compares binary user x item matrices (``scipy.sparse`` CSR, rows = users) over one
item index: ``reference`` is the real data the generator was trained on, ``sample`` the data being
judged (generated users, or real held-out users of the same size for the floor).

- :func:`popularity_js`: Jensen-Shannon divergence (base 2, in [0, 1]) of the item-popularity
  distributions (Lin 1991).
- :func:`activity_ks`: two-sample Kolmogorov-Smirnov statistic of items per user.
- :func:`cooccurrence_correlation`: Pearson correlation of the item-pair co-occurrence rates over
  the pairs of the ``top`` most popular reference items (a popularity sampler, which draws items
  independently, gets the products of the marginals and misses the pairs that go together).
- :func:`detection_auc`: cross-validated ROC AUC of a logistic regression telling sample rows from
  reference rows (0.5 = indistinguishable; Lopez-Paz & Oquab 2017, "classifier two-sample tests").
- :func:`tstr_ndcg`: "train on synthetic, test on real" (Esteban et al. 2017): an item-item model
  fitted on the sample, folded in on real evaluation users' history, NDCG@k on their held-out items.
- :func:`item_coverage`, :func:`distinct_share`, :func:`length_ks`: diversity.
- :func:`exact_copies`, :func:`nearest_neighbour_jaccard`: memorisation (a generator that copies
  its training users looks perfectly faithful and leaks them).
- :func:`plausibility`: the mean log-likelihood per item of each row under the simulated world's
  true choice model, for the best-fitting true taste among a pool of real users (only a simulated
  world with its truth kept makes this measurable).
- :func:`quality_report`: all of the above as one table row per sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models.baselines import ItemScorer
from recsys_utils.models.ease import EASE

__all__ = [
    "ab_pick_rate",
    "activity_ks",
    "as_binary",
    "cooccurrence_correlation",
    "detection_auc",
    "distinct_share",
    "exact_copies",
    "fold_in_split",
    "item_coverage",
    "kendall_tau",
    "length_ks",
    "nearest_neighbour_jaccard",
    "offline_pick_rate",
    "plausibility",
    "popularity_js",
    "quality_report",
    "tstr_ndcg",
]


def as_binary(matrix, name: str = "matrix") -> sp.csr_matrix:
    """A binary CSR copy of a dense or sparse 2-D matrix (any stored value > 0 becomes 1)."""
    if isinstance(matrix, Interactions):
        matrix = matrix.matrix
    if sp.issparse(matrix):
        out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    else:
        array = np.asarray(matrix)
        if array.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D users x items matrix, got shape {array.shape}")
        out = sp.csr_matrix(array.astype(np.float32))
    if out.nnz and np.isnan(out.data).any():
        raise ValueError(f"{name}: contains NaN")
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


def _pair(reference, sample) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    ref, smp = as_binary(reference, "reference"), as_binary(sample, "sample")
    if ref.shape[1] != smp.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} items but sample has {smp.shape[1]}: use one item index")
    if ref.shape[0] == 0 or smp.shape[0] == 0:
        raise ValueError("reference and sample need at least one user each")
    return ref, smp


# ---------------------------------------------------------------------------------- marginals
def popularity_js(reference, sample) -> float:
    """Jensen-Shannon divergence (base 2) between the item-popularity distributions, in [0, 1]."""
    ref, smp = _pair(reference, sample)
    p = np.asarray(ref.sum(axis=0), dtype=np.float64).ravel()
    q = np.asarray(smp.sum(axis=0), dtype=np.float64).ravel()
    if p.sum() == 0 or q.sum() == 0:
        raise ValueError("popularity_js: a matrix has no interactions")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def activity_ks(reference, sample) -> float:
    """Kolmogorov-Smirnov statistic between the items-per-user distributions."""
    ref, smp = _pair(reference, sample)
    return float(stats.ks_2samp(np.diff(ref.indptr), np.diff(smp.indptr)).statistic)


def length_ks(reference_lengths, sample_lengths) -> float:
    """Kolmogorov-Smirnov statistic between two samples of lengths (e.g. session lengths)."""
    a, b = np.asarray(reference_lengths), np.asarray(sample_lengths)
    if a.size == 0 or b.size == 0:
        raise ValueError("length_ks: empty sample")
    return float(stats.ks_2samp(a, b).statistic)


# ---------------------------------------------------------------------------------- structure
def cooccurrence_correlation(reference, sample, top: int = 200) -> float:
    """Pearson correlation of per-user co-occurrence rates ``C_ij / n_users`` over the pairs ``i < j``
    of the ``top`` most popular reference items."""
    ref, smp = _pair(reference, sample)
    items = np.argsort(-np.asarray(ref.sum(axis=0)).ravel(), kind="stable")[: min(top, ref.shape[1])]
    if len(items) < 3:
        raise ValueError("cooccurrence_correlation: need at least 3 items")

    def rates(x: sp.csr_matrix) -> np.ndarray:
        sub = x[:, items]
        c = np.asarray((sub.T @ sub).todense()) / x.shape[0]
        return c[np.triu_indices(len(items), k=1)]

    a, b = rates(ref), rates(smp)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------------------- detectability
def detection_auc(reference, sample, folds: int = 5, factors: int = 32, seed: int = 0) -> float:
    """Cross-validated AUC of a classifier separating ``sample`` rows from ``reference`` rows.

    A classifier two-sample test (Lopez-Paz & Oquab 2017): both sets (the larger one subsampled
    to the smaller one's size, so 0.5 means "cannot tell them apart") are projected on
    ``factors`` truncated-SVD factors fitted on the pooled rows (unsupervised), each row divided
    by the root of its activity, plus the log activity; a gradient-boosted tree classifier is
    scored by ``folds``-fold cross-validated ROC AUC. A linear model on the raw vectors only sees
    the marginals and misses a generator that draws items independently; the factors see
    whether a user's items belong together.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ref, smp = _pair(reference, sample)
    rng = np.random.default_rng(seed)
    n = min(ref.shape[0], smp.shape[0])
    if n < 2 * folds:
        raise ValueError(f"detection_auc: need at least {2 * folds} rows on each side, got {n}")
    ref = ref[np.sort(rng.choice(ref.shape[0], n, replace=False))]
    smp = smp[np.sort(rng.choice(smp.shape[0], n, replace=False))]
    x = sp.vstack([ref, smp]).tocsr()
    activity = np.diff(x.indptr).astype(np.float64)
    k = int(min(factors, x.shape[1] - 1, 2 * n - 1))
    z = TruncatedSVD(k, random_state=seed).fit_transform(x) / (np.sqrt(activity)[:, None] + 1e-9)
    features = np.c_[z, np.log1p(activity)]
    y = np.r_[np.zeros(n), np.ones(n)]
    model = HistGradientBoostingClassifier(max_iter=100, max_depth=3, learning_rate=0.1, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    prob = cross_val_predict(model, features, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, prob))


# --------------------------------------------------------------------------------- utility
def fold_in_split(matrix, holdout: float = 0.2, seed: int = 0) -> tuple[Interactions, Interactions]:
    """Split each row's items at random into a history (``1 - holdout``) and held-out items.

    The Mult-VAE "strong generalisation" protocol (Liang et al. 2018): the users are unseen by the
    model, their history is folded in and their held-out items are ranked. Returns two
    :class:`Interactions` over one index (users ``0..n-1``, items ``0..n_items-1``).
    """
    if not 0 < holdout < 1:
        raise ValueError(f"fold_in_split: holdout must lie in (0, 1), got {holdout}")
    x = as_binary(matrix).tocoo()
    rng = np.random.default_rng(seed)
    test = rng.random(x.nnz) < holdout
    users, items = IdIndex(np.arange(x.shape[0]), "user_id"), IdIndex(np.arange(x.shape[1]), "item_id")

    def part(mask: np.ndarray) -> Interactions:
        m = sp.csr_matrix((x.data[mask], (x.row[mask], x.col[mask])), shape=x.shape, dtype=np.float32)
        return Interactions(m, users, items)

    return part(~test), part(test)


def tstr_ndcg(source, history: Interactions, target: Interactions, l2: float = 200.0, k: int = 10,
              per_user: bool = False):
    """NDCG@k on real users (``history`` folded in, ``target`` held out) of EASE fitted on ``source``.

    ``source`` is any users x items matrix: generated users (train on synthetic, test on real),
    real training users (train on real) or both (augmentation). With ``per_user`` the per-user
    NDCG values are returned as well (aligned with the evaluated users).
    """
    src = as_binary(source, "source")
    if src.shape[1] != history.n_items:
        raise ValueError(f"tstr_ndcg: source has {src.shape[1]} items, history {history.n_items}")
    ids = IdIndex(np.arange(src.shape[0]), "user_id")
    ease = EASE(l2=l2).fit(Interactions(src, ids, history.items))
    result = evaluate(ItemScorer(ease.weights_, "ease").fit(history), history, target, k=k, metrics=("ndcg",))
    if per_user:
        return result[f"ndcg@{k}"], result
    return result[f"ndcg@{k}"]


# -------------------------------------------------------------------------------- diversity
def item_coverage(sample) -> int:
    """Number of distinct items that occur at least once."""
    return int((np.asarray(as_binary(sample, "sample").sum(axis=0)).ravel() > 0).sum())


def distinct_share(sequences: np.ndarray) -> float:
    """Share of distinct rows among ``sequences`` (a 2-D int array, padding included)."""
    seq = np.ascontiguousarray(np.asarray(sequences))
    if seq.ndim != 2 or seq.shape[0] == 0:
        raise ValueError(f"distinct_share: expected a non-empty 2-D array, got shape {seq.shape}")
    return float(len(np.unique(seq, axis=0)) / seq.shape[0])


# --------------------------------------------------------------------------------- privacy
def _row_keys(x: sp.csr_matrix) -> np.ndarray:
    """One hashable key per row (its sorted item indices as bytes)."""
    x = x.copy()
    x.sort_indices()
    return np.array([x.indices[a:b].tobytes() for a, b in zip(x.indptr[:-1], x.indptr[1:], strict=True)],
                    dtype=object)


def exact_copies(training, sample, min_items: int = 3) -> int:
    """Number of sample rows identical to some training row.

    Rows with fewer than ``min_items`` items never count: two real users who each bought only the
    best-seller are identical without anyone having copied anyone.
    """
    ref, smp = _pair(training, sample)
    keys = set(_row_keys(ref).tolist())
    smp_keys = _row_keys(smp)
    nonempty = np.diff(smp.indptr) >= max(1, min_items)
    return int(sum(1 for key, full in zip(smp_keys, nonempty, strict=True) if full and key in keys))


def nearest_neighbour_jaccard(training, sample, block: int = 1024) -> np.ndarray:
    """For every sample row, the largest Jaccard similarity to any training row."""
    ref, smp = _pair(training, sample)
    ref_sizes = np.diff(ref.indptr).astype(np.float64)
    smp_sizes = np.diff(smp.indptr).astype(np.float64)
    out = np.zeros(smp.shape[0])
    ref_t = ref.T.tocsc()
    for start in range(0, smp.shape[0], block):
        rows = slice(start, start + block)
        inter = np.asarray((smp[rows] @ ref_t).todense())
        union = smp_sizes[rows, None] + ref_sizes[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        out[rows] = jac.max(axis=1)
    return out


# ------------------------------------------------------------------------------ plausibility
def plausibility(sample, log_choice: np.ndarray) -> np.ndarray:
    """Mean log-likelihood per item of each row under its best-fitting true taste.

    ``log_choice`` is ``(n_pool, n_items)``: each row the log choice probabilities of one real
    user's true taste (``log softmax`` of the world's utility). Each sample row gets
    ``max_u mean_{i in row} log_choice[u, i]``. Empty rows get NaN.
    """
    smp = as_binary(sample, "sample")
    log_choice = np.asarray(log_choice, dtype=np.float64)
    if log_choice.ndim != 2 or log_choice.shape[1] != smp.shape[1]:
        raise ValueError(f"plausibility: log_choice must be (n_pool, {smp.shape[1]}), got {log_choice.shape}")
    sizes = np.diff(smp.indptr).astype(np.float64)
    total = np.asarray(smp @ log_choice.T)
    best = total.max(axis=1)
    return np.divide(best, sizes, out=np.full(len(sizes), np.nan), where=sizes > 0)


# ------------------------------------------------------------------------------ rank agreement
def kendall_tau(a, b) -> float:
    """Kendall's tau-b between two scorings of the same models (Series or aligned arrays)."""
    a, b = pd.Series(a, dtype=np.float64), pd.Series(b, dtype=np.float64)
    b = b.reindex(a.index)  # align by model name (a no-op for two plain arrays)
    if len(a) < 2 or a.isna().any() or b.isna().any():
        raise ValueError("kendall_tau: need two aligned scorings of at least two models")
    return float(stats.kendalltau(a.to_numpy(), b.to_numpy()).statistic)


# ------------------------------------------------------------------------------ the report
def quality_report(training, sample, history: Interactions | None = None, target: Interactions | None = None,
                   log_choice: np.ndarray | None = None, l2: float = 200.0, top: int = 200,
                   seed: int = 0) -> dict[str, float]:
    """All row-level quality measures of ``sample`` against the real ``training`` users.

    Utility (``tstr_ndcg``) needs ``history``/``target`` of real evaluation users; plausibility
    needs ``log_choice`` (see :func:`plausibility`). Returns a dict (one table row).
    """
    ref, smp = _pair(training, sample)
    nn = nearest_neighbour_jaccard(ref, smp)
    row = {
        "users": int(smp.shape[0]),
        "popularity_js": popularity_js(ref, smp),
        "activity_ks": activity_ks(ref, smp),
        "cooccurrence_corr": cooccurrence_correlation(ref, smp, top=top),
        "detection_auc": detection_auc(ref, smp, seed=seed),
        "item_coverage": item_coverage(smp),
        "exact_copies": exact_copies(ref, smp),
        "nn_jaccard_median": float(np.median(nn)),
    }
    if history is not None and target is not None:
        row["tstr_ndcg"] = tstr_ndcg(smp, history, target, l2=l2)
    if log_choice is not None:
        row["plausibility"] = float(np.nanmean(plausibility(smp, log_choice)))
    return row


# ------------------------------------------------------------------------- picking a winner
def ab_pick_rate(p_click: list[np.ndarray], n_per_arm: int, best: int, trials: int = 2000, seed: int = 0) -> float:
    """Share of simulated multi-arm A/B tests whose arm with the most clicks per user is ``best``.

    ``p_click[a]`` is ``(n_users, k)``: the exact click probability of every slot model ``a``
    shows every user (:class:`recsys_utils.simulation.abtest.Exposure` ``.p_click``). Each trial
    splits a fresh random permutation of the users into ``len(p_click)`` arms of ``n_per_arm``
    and draws every slot's click (vectorised over trials).
    """
    arms = len(p_click)
    n_users = p_click[0].shape[0]
    if any(p.shape != p_click[0].shape for p in p_click):
        raise ValueError("ab_pick_rate: every arm needs click probabilities for the same users and slots")
    if n_per_arm < 1 or arms * n_per_arm > n_users:
        raise ValueError(f"ab_pick_rate: {arms} arms x {n_per_arm} users exceed the {n_users} users")
    rng = np.random.default_rng(seed)
    wins = 0
    chunk = max(1, (1 << 22) // (arms * n_per_arm * p_click[0].shape[1]))
    for start in range(0, trials, chunk):
        t = min(chunk, trials - start)
        order = np.argsort(rng.random((t, n_users)), axis=1)[:, : arms * n_per_arm].reshape(t, arms, n_per_arm)
        means = np.empty((t, arms))
        for a in range(arms):  # one vectorised draw per arm
            p = p_click[a][order[:, a]]
            means[:, a] = (rng.random(p.shape) < p).sum(axis=(1, 2)) / n_per_arm
        wins += int((means.argmax(axis=1) == best).sum())
    return wins / trials


def offline_pick_rate(per_user: np.ndarray, best: int, trials: int = 2000, seed: int = 0) -> float:
    """Share of bootstrap resamples of users (rows of ``per_user``, one column per model) in which
    model ``best`` has the highest mean offline metric."""
    values = np.asarray(per_user, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"offline_pick_rate: expected (users, models), got {values.shape}")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, values.shape[0], (trials, values.shape[0]))
    means = np.stack([values[:, m][index].mean(axis=1) for m in range(values.shape[1])], axis=1)
    return float((means.argmax(axis=1) == best).mean())
