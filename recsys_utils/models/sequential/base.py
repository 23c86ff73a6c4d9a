"""The next-item protocol (:class:`SequentialRecommender`) and full-catalogue next-item evaluation."""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.core.topk import top_k
from recsys_utils.core.vocabulary import USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.sequences import PAD, NextItemTask, Sequences
from recsys_utils.models.base import Recommender


def _check_histories(histories: np.ndarray, n_items: int, where: str) -> np.ndarray:
    histories = np.asarray(histories)
    if histories.ndim != 2:
        raise ValueError(f"{where}: histories must be 2-D (rows x positions), got shape {histories.shape}")
    if histories.size and not np.issubdtype(histories.dtype, np.integer):
        raise ValueError(f"{where}: histories must hold integer item indices, got {histories.dtype}")
    histories = histories.astype(np.int64, copy=False)
    if histories.size and (histories.min() < PAD or histories.max() >= n_items):
        raise ValueError(f"{where}: item indices must lie in [0, {n_items}) with {PAD} as padding; "
                         f"found {histories.min()}..{histories.max()}")
    return histories


def history_matrix(histories: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary ``(n, n_items)`` matrix of the items present in each history row."""
    rows, cols = np.nonzero(histories != PAD)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, histories[rows, cols])), shape=(histories.shape[0], n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class SequentialRecommender(Recommender):
    """Base class of next-item models: implement :meth:`_fit` and :meth:`score_next`.

    A :class:`~recsys_utils.models.base.Recommender` whose training data are
    :class:`~recsys_utils.data.sequences.Sequences` (``train_type``): ``fit(sequences,
    validation=None)`` learns, ``score_next(histories)`` / ``recommend_next(histories, k)`` score
    any histories, and the protocol's ``score(user_indices)`` / ``recommend(user_ids, k)`` score the
    next item after each *training* row's history (user index = row of the fitted ``Sequences``,
    user id = its key). ``train_`` is the training histories as an
    :class:`~recsys_utils.data.interactions.Interactions` (rows = keys, columns = the item index),
    so ``recommend(..., exclude_seen=True)`` leaves out the items already in a history.
    """

    name: str = "sequential"
    #: the training data ``fit`` accepts
    train_type = Sequences

    def __init__(self) -> None:
        super().__init__()
        self.n_items_: int | None = None
        self.fit_seconds_: float | None = None
        self.sequences_: Sequences | None = None

    def fit(self, train: Sequences, validation: NextItemTask | None = None) -> SequentialRecommender:
        """Learn from training sequences (and early-stop on ``validation`` where the model can)."""
        if not isinstance(train, Sequences):
            raise TypeError(f"{type(self).__name__}.fit expects Sequences, got {type(train).__name__}")
        if validation is not None and not isinstance(validation, NextItemTask):
            raise TypeError(f"{type(self).__name__}.fit: validation must be a NextItemTask, "
                            f"got {type(validation).__name__}")
        started = time.perf_counter()
        self.n_items_ = train.n_items
        self.sequences_ = train
        self.train_ = _as_interactions(train)
        self._fit(train, validation)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    @abstractmethod
    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        """Model-specific training."""

    @abstractmethod
    def score_next(self, histories: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_items)`` of every item being the next one after each history row."""

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """The protocol's scores: :meth:`score_next` of the training histories of ``user_indices``."""
        self._check_fitted()
        return self.score_next(self.sequences_.items[np.asarray(user_indices, dtype=np.int64)])

    def _n_items(self) -> int:
        """The catalogue size, or a ``RuntimeError`` before fitting (or :meth:`init` for the networks)."""
        if self.n_items_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(sequences) first")
        return self.n_items_

    def recommend_next(self, histories: np.ndarray, k: int = 10, exclude_history: bool = False,
                       batch_size: int = 2048) -> np.ndarray:
        """Top-``k`` next-item indices per history row, best first (``-1`` pads short lists)."""
        n_items = self._n_items()
        histories = _check_histories(histories, n_items, f"{type(self).__name__}.recommend_next")
        out = np.empty((histories.shape[0], min(k, n_items)), dtype=np.int64)
        for start in range(0, histories.shape[0], batch_size):
            block = histories[start:start + batch_size]
            exclude = history_matrix(block, n_items) if exclude_history else None
            out[start:start + len(block)] = top_k(self.score_next(block), k, exclude)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _as_interactions(sequences: Sequences) -> Interactions:
    """The training histories as a binary users x items matrix; rows are the keys (row numbers when
    the keys are not unique)."""
    keys = np.asarray(sequences.keys)
    if len(pd.unique(keys)) != len(keys):
        keys = np.arange(len(keys))
    return Interactions(history_matrix(sequences.items, sequences.n_items), IdIndex(keys, USER),
                        sequences.item_index)


@dataclass
class NextItemEvaluation:
    """Mean metrics (``summary``) and one row per evaluated history (``per_user``)."""

    model: str
    summary: dict[str, float]
    per_user: pd.DataFrame
    top_items: np.ndarray

    def __getitem__(self, key: str) -> float:
        return self.summary[key]


def evaluate_next_item(model: SequentialRecommender, task: NextItemTask, k: int | tuple[int, ...] = 10,
                       exclude_history: bool = False, metrics: tuple[str, ...] = ("hr", "ndcg", "mrr"),
                       name: str | None = None) -> NextItemEvaluation:
    """Full-catalogue next-item metrics of a fitted model on a :class:`NextItemTask`.

    The relevant matrix has one cell per row (the target); the top ``max(k)`` lists come from
    :meth:`SequentialRecommender.recommend_next` and are scored with
    :func:`~recsys_utils.core.metrics.ranking_metrics`. ``per_user`` holds the metrics,
    the row's ``key`` (user or session id) and its ``history_length`` (before truncation).
    """
    ks = (k,) if np.isscalar(k) else tuple(k)
    n_items = model._n_items()
    started = time.perf_counter()
    top = model.recommend_next(task.histories, max(ks), exclude_history=exclude_history)
    seconds = time.perf_counter() - started
    n = len(task)
    relevant = sp.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), task.targets)), shape=(n, n_items))
    per_user = pd.DataFrame({"key": task.keys, "history_length": task.full_lengths})
    summary: dict[str, float] = {}
    for cut in ks:
        result = ranking_metrics(top, relevant, cut, metrics)
        for column in result.per_user:
            per_user[column] = result.per_user[column].to_numpy()
        summary.update({key: value for key, value in result.mean.items() if key != "users"})
    summary["users"] = n
    summary["score_seconds"] = seconds
    return NextItemEvaluation(name or getattr(model, "name", type(model).__name__), summary, per_user, top)


def compare_next_item(models: dict[str, SequentialRecommender], task: NextItemTask, k=10,
                      exclude_history: bool = False) -> pd.DataFrame:
    """One row per (fitted) model: the metrics of :func:`evaluate_next_item` plus ``fit_seconds``."""
    rows = {}
    for label, model in models.items():
        result = evaluate_next_item(model, task, k=k, exclude_history=exclude_history, name=label)
        rows[label] = {**result.summary, "fit_seconds": model.fit_seconds_}
    return pd.DataFrame.from_dict(rows, orient="index")
