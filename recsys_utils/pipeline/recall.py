"""Multi-channel recall (召回): several cheap channels, merged and deduplicated into N candidates.

An industrial recommender does not run its expensive ranker over the whole catalogue. A first
stage of *recall channels* (collaborative models such as ALS or item-kNN, popularity, content
similarity, the user's recent categories) each proposes its top items; the lists are merged,
duplicates removed, and a few hundred candidates per user go on to the ranker (Covington et al.
2016, "Deep neural networks for YouTube recommendations", RecSys). What matters at this stage
is *recall*: the share of the items the user will interact with that survive into the
candidate set, because the ranker can never recover an item recall dropped.

Every channel here is a :class:`~recsys_utils.models.base.Recommender`; channels that only
speak for some items return ``-inf`` elsewhere. :func:`generate_candidates` scores users in
batches, takes each channel's top ``n`` (seen items excluded), and merges by weighted
round-robin: channel ``c``'s item at rank ``r`` gets priority ``r / quota_c``, the lowest
priorities win, so channels fill the list in proportion to their quota. It keeps, for every
candidate, which channels proposed it (a bit mask) and every channel's score and rank, which
become ranking features. Everything is vectorised over users (sorts and scatters, no loop per user).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.core.topk import top_k
from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.base import Recommender

USER_INDEX, ITEM_INDEX = "user_index", "item_index"


# ----------------------------------------------------------------------------------- channels


def recent_interactions(frame: pd.DataFrame, at, days: float, users: IdIndex, items: IdIndex,
                        weight="auto") -> Interactions:
    """Interactions of the ``days`` before ``at`` (exclusive) over the given indexes."""
    if TIMESTAMP not in frame.columns:
        raise KeyError(f"recent_interactions: missing column '{TIMESTAMP}'; columns are {list(frame.columns)}")
    at = pd.Timestamp(at)
    time = pd.to_datetime(frame[TIMESTAMP])
    window = frame[((time < at) & (time >= at - pd.Timedelta(days=days))).to_numpy()]
    return Interactions.from_frame(window, users, items, weight=weight, drop_unknown=True)


class RecentCategories(Recommender):
    """The user's recent categories: ``score(u, i) = a_{u,c(i)} * p_i``.

    ``a_{u,c}`` is the share of user ``u``'s (recent) interaction weight in category ``c`` and
    ``p_i`` the item's share of its category's users (plus one, so new items rank last but
    still appear). Fit it on a recent window (:func:`recent_interactions`); ``item_categories``
    gives each item's category in the training index's item order. Items of categories the user
    did not touch score ``-inf`` (the channel does not speak for them).
    """

    name = "recent-categories"

    def __init__(self, item_categories, popularity: Interactions | None = None) -> None:
        super().__init__()
        self.item_categories = np.asarray(item_categories)
        self.popularity = popularity

    def _fit(self, train: Interactions) -> None:
        if len(self.item_categories) != train.n_items:
            raise ValueError(f"RecentCategories: {len(self.item_categories)} item categories for "
                             f"{train.n_items} items")
        codes, _ = pd.factorize(pd.Series(self.item_categories).astype(object).fillna("unknown"))
        onehot = sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)))
        affinity = sp.csr_matrix(train.matrix @ onehot)
        totals = np.asarray(affinity.sum(axis=1)).ravel()
        self.affinity_ = sp.csr_matrix(sp.diags(1.0 / np.maximum(totals, 1e-12)) @ affinity)
        counts = (self.popularity or train).item_counts().astype(np.float64) + 1.0
        category_total = np.bincount(codes, weights=counts)
        self.item_share_ = counts / category_total[codes]
        self.onehot_ = onehot

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        per_item = np.asarray((self.affinity_[np.asarray(user_indices)] @ self.onehot_.T).toarray())
        scores = per_item * self.item_share_[None, :]
        scores[per_item <= 0] = -np.inf
        return scores.astype(np.float32)


def build_channels(events: pd.DataFrame, at, users: IdIndex, items: IdIndex, item_table: pd.DataFrame,
                   ease_l2: float = 500.0, knn_neighbours: int = 100, als_dim: int = 64,
                   popularity_days: float = 7.0, category_days: float = 14.0,
                   ) -> tuple[dict[str, Recommender], Interactions]:
    """The course's seven recall channels, fitted on the events strictly before ``at``.

    Returns ``(channels, history)``: ``ease`` (Steck 2019), ``item_knn`` (Sarwar et al. 2001),
    ``als`` (Hu et al. 2008), ``popularity_7d`` (most popular over the last ``popularity_days``), ``content``
    (attribute similarity, :class:`~recsys_utils.models.hybrid.ContentRecommender`) and
    ``recent_categories`` over the last ``category_days`` and ``similar_to_recent`` (item-kNN
    neighbours of the last ``popularity_days``' items); ``history`` is the matrix of all
    events before ``at`` (the items each user has seen).
    """
    from recsys_utils.models.als import ALS
    from recsys_utils.models.baselines import PopularityRecommender
    from recsys_utils.models.ease import EASE
    from recsys_utils.models.hybrid import ContentRecommender, item_content_matrix
    from recsys_utils.models.neighbors import ItemKNN

    if TIMESTAMP not in events.columns:
        raise KeyError(f"build_channels: missing column '{TIMESTAMP}'; columns are {list(events.columns)}")
    at = pd.Timestamp(at)
    past = events[(pd.to_datetime(events[TIMESTAMP]) < at).to_numpy()]
    history = Interactions.from_frame(past, users, items, drop_unknown=True)
    table = item_table.drop_duplicates(ITEM).set_index(ITEM).reindex(items.ids)
    category = table["category"].to_numpy() if "category" in table.columns else np.zeros(len(items))
    recent_week = recent_interactions(past, at, popularity_days, users, items)
    knn = ItemKNN(k=knn_neighbours, shrink=10.0).fit(history)
    channels: dict[str, Recommender] = {
        "ease": EASE(l2=ease_l2).fit(history),
        "item_knn": knn,
        "als": ALS(dim=als_dim, l2=0.1, alpha=1.0, epochs=10).fit(history),
        "popularity_7d": PopularityRecommender().fit(recent_week),
        "content": ContentRecommender(item_content_matrix(item_table, items)).fit(history),
        "recent_categories": RecentCategories(category, popularity=recent_week).fit(
            recent_interactions(past, at, category_days, users, items)),
        "similar_to_recent": SimilarToRecent(knn.similarity_).fit(recent_week),
    }
    return channels, history


class SimilarToRecent(Recommender):
    """Items similar to what the user touched recently: ``score = x_recent_u S`` (-inf where 0).

    ``similarity`` is an item x item matrix (e.g. a fitted ItemKNN's ``similarity_``); fit the
    channel on a recent window (:func:`recent_interactions`), so it follows the user's current
    interest rather than their whole history (sessions stay in a category; tastes drift).
    """

    name = "similar-to-recent"

    def __init__(self, similarity: sp.spmatrix) -> None:
        super().__init__()
        self.similarity = sp.csr_matrix(similarity, dtype=np.float32)

    def _fit(self, train: Interactions) -> None:
        if self.similarity.shape != (train.n_items, train.n_items):
            raise ValueError(f"SimilarToRecent: similarity has shape {self.similarity.shape}, "
                             f"expected ({train.n_items}, {train.n_items})")
        self._x = sp.csr_matrix(train.matrix, dtype=np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        scores = np.asarray((self._x[np.asarray(user_indices)] @ self.similarity).toarray())
        scores[scores <= 0] = -np.inf
        return scores


# ----------------------------------------------------------------------------------- merging


@dataclass
class Candidates:
    """Merged candidates of a set of users, with per-channel provenance.

    ``frame``: one row per (user, candidate): ``user_index``, ``item_index``, ``position``
    (0 = first in the merged order), ``sources`` (bit ``c`` set when channel ``c`` proposed the
    item), ``n_sources`` and, per channel, ``score_<name>`` (the channel's score for the item,
    NaN where it has none) and ``rank_<name>`` (1-based rank in the channel's list, NaN when
    the channel did not propose it). ``channel_items[name]`` is each channel's own top-``n``
    list ``(len(users), n)`` with ``-1`` pads; ``items`` the merged lists ``(len(users), n)``.
    """

    users: np.ndarray
    items: np.ndarray
    frame: pd.DataFrame
    channels: list[str]
    channel_items: dict[str, np.ndarray] = field(default_factory=dict)

    def source_share(self) -> pd.Series:
        """Share of candidates each channel proposed (a candidate can come from several)."""
        bits = self.frame["sources"].to_numpy()
        return pd.Series({name: float(((bits >> c) & 1).mean()) for c, name in enumerate(self.channels)})

    def unique_share(self) -> pd.Series:
        """Share of candidates that only this channel proposed."""
        bits = self.frame["sources"].to_numpy()
        return pd.Series({name: float((bits == (1 << c)).mean()) for c, name in enumerate(self.channels)})


def _check_channels(channels: dict[str, Recommender], train: Interactions) -> None:
    if not channels:
        raise ValueError("generate_candidates: give at least one channel")
    if len(channels) > 62:
        raise ValueError("generate_candidates: at most 62 channels (provenance is a 64-bit mask)")
    for name, model in channels.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"generate_candidates: channel name {name!r} must be letters, digits, '-' or '_'")
        fitted = getattr(model, "train_", None)
        if fitted is None:
            raise RuntimeError(f"generate_candidates: channel {name!r} is not fitted")
        if fitted.n_items != train.n_items:
            raise ValueError(f"generate_candidates: channel {name!r} has {fitted.n_items} items, "
                             f"the exclusion matrix {train.n_items}")


def merge_lists(lists: list[np.ndarray], quotas: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted round-robin merge of per-channel top lists into ``n`` distinct items per row.

    ``lists[c]`` is ``(n_rows, n_c)`` (``-1`` pads). Channel ``c``'s item at 0-based rank ``r``
    gets priority ``(r + 1) / quotas[c]`` (ties: lower channel first); an item proposed by
    several channels keeps its best priority. Returns ``(items, sources)``: ``(n_rows, n)``
    merged items (``-1`` pads) and the bit mask of the channels that proposed each one.
    """
    n_rows = lists[0].shape[0]
    rows, items, priority, bits = [], [], [], []
    for c, top in enumerate(lists):
        r, pos = np.nonzero(top >= 0)
        rows.append(r)
        items.append(top[r, pos])
        priority.append((pos + 1) / float(quotas[c]) + c * 1e-9)
        bits.append(np.full(len(r), 1 << c, dtype=np.int64))
    rows, items = np.concatenate(rows), np.concatenate(items)
    priority, bits = np.concatenate(priority), np.concatenate(bits)
    # one entry per (row, item): the best priority, and the OR of the proposing channels' bits
    order = np.lexsort((priority, items, rows))
    rows, items, priority, bits = rows[order], items[order], priority[order], bits[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
    starts = np.flatnonzero(first)
    merged_bits = np.bitwise_or.reduceat(bits, starts) if len(starts) else bits[:0]
    rows, items, priority = rows[starts], items[starts], priority[starts]
    # best n per row by priority
    order = np.lexsort((priority, rows))
    rows, items, merged_bits = rows[order], items[order], merged_bits[order]
    row_start = np.searchsorted(rows, np.arange(n_rows))
    position = np.arange(len(rows)) - row_start[rows]
    keep = position < n
    out = np.full((n_rows, n), -1, dtype=np.int64)
    out_bits = np.zeros((n_rows, n), dtype=np.int64)
    out[rows[keep], position[keep]] = items[keep]
    out_bits[rows[keep], position[keep]] = merged_bits[keep]
    return out, out_bits


def channel_ranks(tops: list[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Each channel's 1-based rank of every item, ``(n_rows, n_items)`` (0 = not in its list)."""
    out = []
    for top in tops:
        rank = np.zeros((top.shape[0], n_items), dtype=np.float32)
        rows, pos = np.nonzero(top >= 0)
        rank[rows, top[rows, pos]] = pos + 1
        out.append(rank)
    return out


def recall_batch(scores: list[np.ndarray], n_channel: int, n_merged: int, quotas: np.ndarray,
                 exclude: sp.spmatrix | None = None, available: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Recall for one batch of users from each channel's scores ``(n_rows, n_items)``.

    Cells of ``exclude`` (e.g. seen items) and items outside ``available`` score ``-inf``; each
    channel keeps its top ``n_channel`` (:func:`~recsys_utils.core.topk.top_k`, ``-1`` where fewer
    items score), and :func:`merge_lists` merges them into ``n_merged`` distinct candidates by
    ``quotas``. Returns ``(items, sources, tops, scores)``: the merged ``(n_rows, n_merged)``
    candidates and their channel bit masks, every channel's list and its masked float32 scores.
    The one recall of the package: :func:`generate_candidates` and the serving pipeline use it.
    """
    masked, tops = [], []
    for score in scores:
        s = np.array(score, dtype=np.float32)
        if exclude is not None:
            exclude = sp.csr_matrix(exclude)
            s[np.repeat(np.arange(s.shape[0]), np.diff(exclude.indptr)), exclude.indices] = -np.inf
        if available is not None:
            s[:, ~available] = -np.inf
        top = top_k(s, n_channel)
        top[~np.isfinite(np.take_along_axis(s, np.maximum(top, 0), axis=1))] = -1
        masked.append(s)
        tops.append(top)
    items, bits = merge_lists(tops, np.asarray(quotas, dtype=np.float64), n_merged)
    return items, bits, tops, masked


def _candidate_rows(batch: np.ndarray, names: list[str], items: np.ndarray, bits: np.ndarray,
                    tops: list[np.ndarray], scores: list[np.ndarray]) -> pd.DataFrame:
    """One row per merged candidate with its position, sources and every channel's score and rank."""
    rows, pos = np.nonzero(items >= 0)
    cand = items[rows, pos]
    part = {USER_INDEX: batch[rows], ITEM_INDEX: cand, "position": pos, "sources": bits[rows, pos]}
    n_items = scores[0].shape[1] if scores else 0
    for name, s, rank in zip(names, scores, channel_ranks(tops, n_items), strict=True):
        value = s[rows, cand].astype(np.float64)
        part[f"score_{name}"] = np.where(np.isfinite(value), value, np.nan)
        value = rank[rows, cand]
        part[f"rank_{name}"] = np.where(value > 0, value, np.nan)
    return pd.DataFrame(part)


def generate_candidates(channels: dict[str, Recommender], train: Interactions, user_indices, n: int = 200,
                        quotas: dict[str, float] | None = None, exclude_seen: bool = True,
                        available: np.ndarray | None = None, batch_size: int = 1024) -> Candidates:
    """Top-``n`` of every channel, merged into ``n`` distinct candidates per user (seen items excluded).

    ``channels`` maps a name to a fitted model; ``quotas`` (default: equal) sets each channel's
    share of the merged list (:func:`merge_lists`). ``train`` supplies the items to exclude;
    ``available`` (boolean per item) removes items that cannot be shown (not launched yet).
    """
    _check_channels(channels, train)
    if n < 1:
        raise ValueError(f"generate_candidates: n must be >= 1, got {n}")
    names = list(channels)
    quotas = quotas or {}
    unknown = set(quotas) - set(names)
    if unknown:
        raise KeyError(f"generate_candidates: quotas for unknown channels {sorted(unknown)}")
    weights = np.array([float(quotas.get(name, 1.0)) for name in names])
    if (weights <= 0).any():
        raise ValueError("generate_candidates: quotas must be positive")
    users = np.asarray(user_indices, dtype=np.int64)
    if available is not None:
        available = np.asarray(available, dtype=bool)
        if available.shape != (train.n_items,):
            raise ValueError(f"generate_candidates: available has shape {available.shape}, "
                             f"expected ({train.n_items},)")
    n = min(n, train.n_items)
    merged = np.full((len(users), n), -1, dtype=np.int64)
    channel_items = {name: np.full((len(users), n), -1, dtype=np.int64) for name in names}
    parts = []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = [channels[name].score(batch) for name in names]
        items, bits, tops, scores = recall_batch(scores, n, n, weights, train.matrix[batch] if exclude_seen else None,
                                                 available)
        merged[start:start + len(batch)] = items
        for name, top in zip(names, tops, strict=True):
            channel_items[name][start:start + len(batch)] = top
        parts.append(_candidate_rows(batch, names, items, bits, tops, scores))
    frame = pd.concat(parts, ignore_index=True)
    bits = frame["sources"].to_numpy()
    frame.insert(4, "n_sources", sum(((bits >> c) & 1) for c in range(len(names))).astype(np.int64))
    return Candidates(users, merged, frame, names, channel_items)


# ----------------------------------------------------------------------------------- recall


def launched_items(item_table: pd.DataFrame, items: IdIndex, at, column: str = "launch_time") -> np.ndarray:
    """Boolean per item index: launched before ``at`` (all true when the table has no ``column``)."""
    table = item_table.drop_duplicates(ITEM).set_index(ITEM).reindex(items.ids)
    if column not in table.columns:
        return np.ones(len(items), dtype=bool)
    return (pd.to_datetime(table[column]) < pd.Timestamp(at)).fillna(True).to_numpy()


def candidate_recall(candidates: Candidates, relevant: sp.csr_matrix,
                     ns: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Recall@N of every channel's own list and of the merged list (rows: channels + ``merged``).

    ``relevant`` is the held-out matrix over all users (``(n_users, n_items)``); its rows for
    ``candidates.users`` are used, and users without a relevant item are left out. Columns
    ``recall@N`` for each ``N`` in ``ns`` (default: the list length) and ``users``.
    """
    relevant = sp.csr_matrix(relevant)[candidates.users]
    n = candidates.items.shape[1]
    ns = (n,) if ns is None else tuple(ns)
    if max(ns) > n:
        raise ValueError(f"candidate_recall: lists hold {n} items, cannot measure recall@{max(ns)}")
    lists = {**candidates.channel_items, "merged": candidates.items}
    rows = {}
    for name, top in lists.items():
        row = {}
        for cut in ns:
            result = ranking_metrics(top, relevant, cut, ("recall",))
            row[f"recall@{cut}"] = result.mean[f"recall@{cut}"]
            row["users"] = result.mean["users"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def candidates_to_frame(candidates: Candidates, train: Interactions) -> pd.DataFrame:
    """``candidates.frame`` with raw ``user_id`` and ``item_id`` columns added in front."""
    frame = candidates.frame.copy()
    frame.insert(0, ITEM, train.items.to_ids(frame[ITEM_INDEX].to_numpy()))
    frame.insert(0, USER, train.users.to_ids(frame[USER_INDEX].to_numpy()))
    return frame
