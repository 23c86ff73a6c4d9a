"""What the recommendation service holds: the loaded model (swapped atomically) and the real-time state.

:class:`LoadedModel` is one saved :class:`~recsys_utils.pipeline.serving.ServingPipeline`, read only
through its safe loader (:func:`~recsys_utils.pipeline.serving_file.read_pipeline_file`: no
unpickling, every array checked), with what a request needs precomputed: id maps, business rules,
item vectors for ``/similar``. It is never modified after loading, so a request that took a
reference to it finishes on it even while a reload installs another one.

:class:`Realtime` is the part that follows the stream of ``POST /events``: decayed item
popularity (:class:`~recsys_utils.pipeline.realtime.DecayedPopularity`) for the fallback, and the
recent items of unknown users, folded in through the pipeline's item-item or factor channel
(a session-based fold-in, as :meth:`recsys_utils.models.als.ALS.fold_in` does for ALS).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from recsys_utils.pipeline.realtime import DecayedPopularity
from recsys_utils.pipeline.rerank import BusinessRules, cap_per_group, first_k
from recsys_utils.pipeline.serving import ServingPipeline


def file_digest(path: str | Path, length: int = 12) -> str:
    """The first ``length`` hex digits of the file's SHA-256: a version when the file names none."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def _id_map(meta: dict, key: str, n: int) -> tuple[np.ndarray, dict[int, int]]:
    """External ids (``meta[key]``, a list of ints) or ``0..n-1``, and the id -> index map."""
    ids = meta.get(key)
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"the model's meta {key!r} holds {ids.size} ids, the matrices {n}")
    return ids, {int(v): i for i, v in enumerate(ids)}


class LoadedModel:
    """A saved pipeline ready to serve (see the module docstring); ``version`` names it."""

    def __init__(self, path: str | Path, max_per_category: int | None = 3,
                 sponsored: tuple[int, ...] = (), sponsored_position: int = 2) -> None:
        self.path = Path(path)
        self.pipeline = ServingPipeline.load(self.path)  # the safe loader: PipelineFormatError otherwise
        if self.pipeline.ranker is None:
            raise ValueError(f"{self.path}: the pipeline has no fitted ranker; fit_ranker before saving it")
        meta = self.pipeline.meta
        self.version = str(meta.get("model_version") or file_digest(self.path))
        self.run = str(meta.get("run", ""))
        self.loaded_at = time.time()
        n_users, n_items = self.pipeline.history.shape
        self.user_ids, self.user_index = _id_map(meta, "user_ids", n_users)
        self.item_ids, self.item_index = _id_map(meta, "item_ids", n_items)
        self.has_history = np.diff(self.pipeline.history.indptr) > 0  # the others are served by the fallback
        self.rules = None
        if max_per_category is not None:
            self.rules = BusinessRules(in_stock=np.ones(n_items, dtype=bool), item_category=self.pipeline.item_category,
                                       max_per_category=max_per_category)
        self.sponsored = np.array([self.item_index[i] for i in sponsored if i in self.item_index], dtype=np.int64)
        self.sponsored_position = sponsored_position
        self.popularity = np.diff(self.pipeline.history.tocsc().indptr).astype(np.float64)
        self._similar = self._similarity_source()

    @property
    def n_items(self) -> int:
        return int(self.pipeline.history.shape[1])

    def _similarity_source(self) -> tuple[str, np.ndarray]:
        """Item-item weights (EASE, kNN) if the pipeline has them, else unit-normalised item factors."""
        for channel in self.pipeline.channels:
            if channel.kind == "item_item":
                return "item_item", channel.arrays["weights"]
        for channel in self.pipeline.channels:
            if channel.kind == "factors":
                factors = channel.arrays["item_factors"].astype(np.float64)
                return "factors", factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-12)
        return "popularity", self.popularity

    def known(self, user_id: int) -> int | None:
        """The user's index if the model has a history for them, else ``None`` (a fallback user)."""
        user = self.user_index.get(user_id)
        return user if user is not None and self.has_history[user] else None

    def recommend(self, user: int, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The pipeline's list for a known user index: items, ranker scores (NaN for the advert), the advert (-1)."""
        candidates, scores = self.pipeline.rank(np.array([user]))
        sponsored = None
        if len(self.sponsored):
            sponsored = self.sponsored[[user % len(self.sponsored)]]
        lists = self.pipeline.rerank(np.array([user]), candidates, scores, k=k, rules=self.rules,
                                     sponsored=sponsored, sponsored_position=self.sponsored_position)[0]
        lists = lists[lists >= 0]
        lookup = dict(zip(candidates[0].tolist(), scores[0].tolist(), strict=True))
        advert = int(sponsored[0]) if sponsored is not None and sponsored[0] in lists else -1
        item_scores = np.array([np.nan if item == advert else lookup.get(item, np.nan) for item in lists.tolist()])
        return lists, item_scores, advert

    def top_items(self, scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of one score vector under the category cap, ``exclude`` removed."""
        scores = np.asarray(scores, dtype=np.float64).copy()
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        width = min(self.n_items, 5 * k + 50)
        order = np.argsort(-scores, kind="stable")[:width][None, :]
        keep = np.isfinite(scores[order])
        if self.rules is not None:
            keep = cap_per_group(order, keep, self.rules.item_category, self.rules.max_per_category)
        items = first_k(order, keep, k)[0]
        items = items[items >= 0]
        return items, scores[items]

    def fold_in(self, session: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Scores of every item for an unknown user from their recent items (item-item or factor channel)."""
        kind, source = self._similar
        if kind == "item_item":
            return weights @ source[session]
        if kind == "factors":
            v = source[session]  # least squares on the unit item vectors, ridge 1.0 (ALS.fold_in)
            u = np.linalg.solve(v.T @ (v * weights[:, None]) + np.eye(v.shape[1]), v.T @ weights)
            return source @ u
        return self.popularity.copy()

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item`` (item-item weights or cosine of factors), itself excluded."""
        kind, source = self._similar
        if kind == "item_item":
            scores = np.asarray(source[item], dtype=np.float64) + np.asarray(source[:, item], dtype=np.float64)
        elif kind == "factors":
            scores = source @ source[item]
        else:
            scores = source.copy()
        scores[item] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return order, scores[order]


class Realtime:
    """Decayed popularity and unknown users' recent items, updated by ``POST /events`` (thread-safe)."""

    def __init__(self, n_items: int, initial: np.ndarray, half_life_hours: float = 24.0,
                 max_users: int = 10_000, max_items: int = 20) -> None:
        self.popularity = DecayedPopularity(n_items, half_life_hours)
        self.popularity.counts = np.asarray(initial, dtype=np.float64).copy()
        self.sessions: OrderedDict[int, list[tuple[int, float]]] = OrderedDict()
        self.max_users, self.max_items = max_users, max_items
        self.lock = threading.Lock()

    def add(self, items: np.ndarray, seconds: np.ndarray, weights: np.ndarray, unknown_users: list[int],
            unknown_items: list[int], unknown_weights: list[float]) -> None:
        """One batch: popularity for every event (late events count as now), sessions of unknown users."""
        with self.lock:
            clock = self.popularity.clock
            if clock is not None:
                seconds = np.maximum(seconds, clock)
            self.popularity.update(items, seconds, weights)
            for user, item, weight in zip(unknown_users, unknown_items, unknown_weights, strict=True):
                session = self.sessions.pop(user, [])
                session.append((item, weight))
                self.sessions[user] = session[-self.max_items:]
                while len(self.sessions) > self.max_users:
                    self.sessions.popitem(last=False)

    def session(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            pairs = list(self.sessions.get(user, []))
        return (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.float64))

    def counts(self) -> np.ndarray:
        with self.lock:
            return self.popularity.counts.copy()
