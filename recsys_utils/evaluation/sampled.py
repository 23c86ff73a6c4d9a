"""The SAMPLED ranking protocol, kept to reproduce papers — not the course's main protocol.

Many papers (He et al. 2017, NCF, and those following it) rank each held-out item against
``N = 99`` negatives drawn at random instead of against the whole catalogue. Krichene & Rendle
(2020, "On Sampled Metrics for Item Recommendation", KDD) show that such sampled metrics are
biased estimates of the full ones and can even order models differently: with uniform negatives
most of the 99 are obscure items, so a model only has to beat the long tail, and ties or
flat score regions are punished or rewarded in ways the full ranking never sees.

This module builds the protocol once (:func:`sampled_protocol`: one or all held-out items per
user plus ``N`` uniform negatives per user, seeded, never an item of the user's train or test
set) so that every model is scored on the same candidates, and :func:`evaluate_sampled` returns
both the sampled metrics (via :func:`~recsys_utils.core.metrics.sampled_ranking_metrics`)
and the full-catalogue metrics *of the same positives*, so the two can be compared directly.
Everything is vectorised over users in batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import sampled_ranking_metrics
from recsys_utils.data.holdout import evaluation_users, relevant_matrix
from recsys_utils.data.interactions import Interactions

__all__ = ["SampledEvaluation", "SampledProtocol", "compare_sampled", "evaluate_sampled", "sampled_protocol"]

# Cells (users x items) materialised per batch.
_BATCH_CELLS = 1 << 22


@dataclass
class SampledProtocol:
    """Fixed evaluation candidates: row ``r`` ranks ``positives[r]`` against ``negatives[r]``.

    ``user_indices[r]`` is the row's user (a user appears once per positive); ``negatives[r]`` may
    hold ``-1`` for a dropped candidate (a row then ranks against fewer negatives); ``blocked`` holds,
    per user of the index, the items that are neither candidates nor negatives (training items
    and the user's other held-out items), used for the full-catalogue rank of the same positive.
    """

    user_indices: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    blocked: sp.csr_matrix
    n_items: int
    seed: int

    @property
    def n_negatives(self) -> int:
        return int(self.negatives.shape[1])

    def __len__(self) -> int:
        return int(self.user_indices.size)

    def __repr__(self) -> str:
        return (f"SampledProtocol(rows={len(self)}, users={np.unique(self.user_indices).size}, "
                f"negatives={self.n_negatives}, items={self.n_items}, seed={self.seed})")


def _uniform_without_replacement(blocked: sp.csr_matrix, users: np.ndarray, n: int,
                                 rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct items per user drawn uniformly from the items not blocked for that user.

    Vectorised: every (user, item) cell gets a uniform key, blocked cells get ``+inf``, and the
    ``n`` smallest keys of each row are a uniform sample without replacement of the others.
    """
    n_items = blocked.shape[1]
    out = np.empty((users.size, n), dtype=np.int64)
    batch = max(1, _BATCH_CELLS // n_items)
    for start in range(0, users.size, batch):
        rows = users[start:start + batch]
        keys = rng.random((rows.size, n_items))
        sub = blocked[rows]
        keys[np.repeat(np.arange(rows.size), np.diff(sub.indptr)), sub.indices] = np.inf
        out[start:start + rows.size] = np.argpartition(keys, n - 1, axis=1)[:, :n]
    return out


def sampled_protocol(train: Interactions, test: Interactions, n_negatives: int = 99,
                     positives: str = "one", users: str | np.ndarray = "warm", exclude_seen: bool = True,
                     seed: int = 0) -> SampledProtocol:
    """Draw the sampled protocol's candidates for the test users (seeded).

    ``positives="one"`` keeps one held-out item per user, chosen uniformly (the leave-one-out
    shape of the papers); ``"all"`` makes one row per held-out item, all of a user's rows
    sharing that user's negatives. Negatives are ``n_negatives`` distinct items drawn uniformly
    from the items the user has neither in train nor in test. Users and relevance follow
    :func:`~recsys_utils.evaluation.protocol.evaluate` (warm users; held-out items already seen
    in training are not relevant when ``exclude_seen``).
    """
    if positives not in ("one", "all"):
        raise ValueError(f"sampled_protocol: positives must be 'one' or 'all', got {positives!r}")
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, (int, np.integer)) or n_negatives < 1:
        raise ValueError(f"sampled_protocol: n_negatives must be an integer >= 1, got {n_negatives!r}")
    relevant = relevant_matrix(train, test, exclude_seen)
    user_idx, _ = evaluation_users(train, relevant, users)
    if user_idx.size == 0:
        raise ValueError("sampled_protocol: no test user has a held-out item")
    blocked = sp.csr_matrix(((train.binary() + test.binary()) > 0).astype(np.float32))
    free = train.n_items - np.diff(blocked.indptr)[user_idx]
    if (free < n_negatives).any():
        bad = int(user_idx[np.argmax(free < n_negatives)])
        raise ValueError(f"sampled_protocol: user index {bad} ({train.users.to_ids([bad])[0]!r}) has only "
                         f"{int(free.min())} items outside its train and test sets; fewer than "
                         f"n_negatives={n_negatives}")
    rng = np.random.default_rng(seed)
    rel = relevant[user_idx]
    counts = np.diff(rel.indptr)
    if positives == "one":
        pick = rel.indptr[:-1] + np.floor(rng.random(user_idx.size) * counts).astype(np.int64)
        rows, pos = user_idx, rel.indices[pick].astype(np.int64)
        owner = np.arange(user_idx.size)
    else:
        owner = np.repeat(np.arange(user_idx.size), counts)
        rows, pos = user_idx[owner], rel.indices.astype(np.int64)
    negatives = _uniform_without_replacement(blocked, user_idx, n_negatives, rng)[owner]
    # blocked for the full ranking: train items and the user's held-out items (the positive is
    # put back per row when ranking)
    return SampledProtocol(rows, pos, negatives, blocked, train.n_items, seed)


@dataclass
class SampledEvaluation:
    """One model under both protocols, on the same positives.

    ``ranks`` has one row per protocol row: ``sampled_rank`` (0-based, negatives scoring at
    least as high as the positive) and ``full_rank`` (0-based, among every item outside the
    user's train and test sets, ties counted against the positive as well).
    """

    model: str
    summary: dict[str, float]
    ranks: pd.DataFrame


def _rank_metrics(rank: np.ndarray, k: int, prefix: str) -> dict[str, float]:
    inside = rank < k
    return {f"{prefix}hr@{k}": float(inside.mean()),
            f"{prefix}ndcg@{k}": float(np.where(inside, 1.0 / np.log2(rank + 2.0), 0.0).mean())}


def evaluate_sampled(model, protocol: SampledProtocol, k: int | tuple[int, ...] = 10, name: str | None = None,
                     batch_size: int | None = None) -> SampledEvaluation:
    """Score a fitted model on a :class:`SampledProtocol`: sampled and full HR@k / NDCG@k.

    Keys of ``summary``: ``sampled_hr@k`` and ``sampled_ndcg@k`` (from
    :func:`~recsys_utils.core.metrics.sampled_ranking_metrics`, the SAMPLED protocol, for
    reproducing papers), ``full_hr@k`` and ``full_ndcg@k`` (the same positives ranked against the
    whole catalogue: what the sampled numbers try to estimate), ``rows`` and ``score_seconds``.
    """
    ks = (k,) if np.isscalar(k) else tuple(k)
    users, inverse = np.unique(protocol.user_indices, return_inverse=True)
    batch = batch_size or max(1, _BATCH_CELLS // max(1, protocol.n_items))
    pos_scores = np.empty(len(protocol))
    neg_scores = np.empty(protocol.negatives.shape)
    full_rank = np.empty(len(protocol), dtype=np.int64)
    order = np.argsort(inverse, kind="stable")  # protocol rows grouped by user
    row_start = np.searchsorted(inverse[order], np.arange(users.size + 1))
    started = time.perf_counter()
    for start in range(0, users.size, batch):
        stop = min(start + batch, users.size)
        scores = np.asarray(model.score(users[start:stop]), dtype=np.float64)
        if scores.shape != (stop - start, protocol.n_items):
            raise ValueError(f"evaluate_sampled: model.score returned shape {scores.shape}, expected "
                             f"{(stop - start, protocol.n_items)}")
        if np.isnan(scores).any():
            raise ValueError(f"evaluate_sampled: model.score returned NaN for user batch starting at {start}")
        rows = order[row_start[start]:row_start[stop]]
        local = inverse[rows] - start
        pos = scores[local, protocol.positives[rows]]
        pos_scores[rows] = pos
        neg_scores[rows] = scores[local[:, None], protocol.negatives[rows]]
        # full rank: other candidate items scoring >= the positive (blocked items cannot compete)
        sub = protocol.blocked[users[start:stop]]
        masked = scores.copy()
        masked[np.repeat(np.arange(stop - start), np.diff(sub.indptr)), sub.indices] = -np.inf
        full_rank[rows] = (masked[local] >= pos[:, None]).sum(axis=1)
    seconds = time.perf_counter() - started
    neg_scores[protocol.negatives < 0] = -np.inf  # a dropped negative (-1) never outranks the positive
    sampled_rank = (neg_scores >= pos_scores[:, None]).sum(axis=1)
    summary: dict[str, float] = {}
    for cut in ks:
        sampled = sampled_ranking_metrics(pos_scores, neg_scores, cut)
        summary.update({key: value for key, value in sampled.items() if key != "users"})
        summary.update(_rank_metrics(full_rank, cut, "full_"))
    summary["rows"] = len(protocol)
    summary["score_seconds"] = seconds
    ranks = pd.DataFrame({"user_index": protocol.user_indices, "item_index": protocol.positives,
                          "sampled_rank": sampled_rank, "full_rank": full_rank})
    return SampledEvaluation(name or getattr(model, "name", type(model).__name__), summary, ranks)


def compare_sampled(models: dict, protocol: SampledProtocol, k: int | tuple[int, ...] = 10) -> pd.DataFrame:
    """Evaluate fitted models on one :class:`SampledProtocol`; one row per model."""
    rows = {label: evaluate_sampled(model, protocol, k, name=label).summary for label, model in models.items()}
    return pd.DataFrame.from_dict(rows, orient="index")
