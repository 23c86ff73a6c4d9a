"""The one model protocol every recommender in the course speaks.

Protocol
--------
* ``fit(train: Interactions) -> self`` -- learn from a user x item matrix (torch models also take
  ``validation`` for early stopping);
* ``score(user_indices) -> (n, n_items) array`` -- a score for every item, higher is better;
* ``recommend_indices(user_indices, k, exclude_seen=True) -> (n, k) item indices`` (``-1`` pads);
* ``recommend(user_ids, k, exclude_seen=True) -> DataFrame`` with ``user_id, item_id, score, rank``.

Evaluation, the serving pipeline, the tuning helpers and the benchmark treat classic and neural
models alike through it; :mod:`recsys_utils.models.registry` builds any of them by name.

Knob names
----------
The same setting has the same constructor keyword in every model: ``dim`` the embedding (latent
factor) size, ``l2`` the L2 penalty λ (``user_l2`` / ``item_l2`` where the two sides differ),
``lr`` the learning rate, ``epochs`` the passes over the data (ALS sweeps, bias updates), and
``seed`` the random seed. Fitted state ends in ``_`` (``user_factors_``, ``item_factors_``).
``repr(model)`` shows the constructor's knobs.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from recsys_utils.core.topk import top_k
from recsys_utils.core.vocabulary import ITEM, RANK, SCORE, USER
from recsys_utils.data.interactions import Interactions

#: users scored at once when a model ranks the whole catalogue for many users
DEFAULT_BATCH = 2048


class Recommender(ABC):
    """Base class: subclasses implement :meth:`_fit` and :meth:`score`."""

    name: str = "recommender"

    def __init__(self) -> None:
        self.train_: Interactions | None = None

    def fit(self, train: Interactions) -> Recommender:
        """Learn from ``train`` and return ``self``."""
        if not isinstance(train, Interactions):
            raise TypeError(f"{type(self).__name__}.fit expects Interactions, got {type(train).__name__}")
        self.train_ = train
        self._fit(train)
        return self

    @abstractmethod
    def _fit(self, train: Interactions) -> None:
        """Model-specific training."""

    @abstractmethod
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Scores of every item for each user index: an array of shape ``(len(user_indices), n_items)``."""

    def _check_fitted(self) -> Interactions:
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")
        return self.train_

    def recommend_indices(
        self, user_indices, k: int = 10, exclude_seen: bool = True, batch_size: int = DEFAULT_BATCH
    ) -> np.ndarray:
        """Top-``k`` item indices for each user index (``-1`` pads short lists), in batches."""
        train = self._check_fitted()
        user_indices = np.asarray(user_indices, dtype=np.int64)
        out = np.empty((len(user_indices), min(k, train.n_items)), dtype=np.int64)
        for start in range(0, len(user_indices), batch_size):
            batch = user_indices[start : start + batch_size]
            scores = self.score(batch)
            exclude = train.matrix[batch] if exclude_seen else None
            out[start : start + len(batch)] = top_k(scores, k, exclude)
        return out

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` recommendations for raw user ids: ``user_id, item_id, score, rank`` (rank 1 = best)."""
        train = self._check_fitted()
        user_ids = np.atleast_1d(np.asarray(user_ids))
        users = train.users.to_index(user_ids)
        rows, items, scores = [], [], []
        for start in range(0, len(users), DEFAULT_BATCH):
            batch = users[start : start + DEFAULT_BATCH]
            batch_scores = self.score(batch)
            exclude = train.matrix[batch] if exclude_seen else None
            top = top_k(batch_scores, k, exclude)
            row = np.repeat(np.arange(start, start + len(batch)), top.shape[1])
            flat = top.ravel()
            valid = flat >= 0
            rows.append(row[valid])
            items.append(flat[valid])
            scores.append(batch_scores[row[valid] - start, flat[valid]])
        rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        items = np.concatenate(items) if items else np.empty(0, dtype=np.int64)
        frame = pd.DataFrame(
            {
                USER: user_ids[rows],
                ITEM: train.items.to_ids(items),
                SCORE: np.concatenate(scores) if scores else np.empty(0),
            }
        )
        frame[RANK] = frame.groupby(USER, sort=False).cumcount() + 1
        return frame

    def __repr__(self) -> str:
        """``Name(knob=value, ...)``: the constructor's simple-valued settings, see :func:`knobs`."""
        shown = ", ".join(f"{name}={value!r}" for name, value in knobs(self).items())
        return f"{type(self).__name__}({shown})"


#: constructor settings that say how to run a model, not what it is: left out of ``repr``
RUN_SETTINGS = frozenset({"device", "progress", "validation", "checkpoint_dir", "num_threads", "on_epoch"})
_SIMPLE = (bool, int, float, str, np.bool_, np.integer, np.floating)


def constructor_parameters(cls: type) -> list[str]:
    """Keyword names ``cls(...)`` takes: its ``__init__`` and, through ``**kwargs``, its bases'."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def knobs(model: Recommender) -> dict[str, object]:
    """The model's constructor settings with simple values (numbers, strings, tuples of them),
    in signature order, without data arguments, ``None`` values and :data:`RUN_SETTINGS`."""
    out = {}
    for name in constructor_parameters(type(model)):
        value = getattr(model, name, None)
        simple = isinstance(value, _SIMPLE) or (isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value))
        if simple and name not in RUN_SETTINGS:
            out[name] = value.item() if isinstance(value, np.generic) else value
    return out
