"""The one container for implicit feedback: a CSR user x item matrix plus the id maps both ways.

Models only ever see integer indices; :class:`Interactions` maps raw ids to indices when it is
built and maps indices back to raw ids when results are reported. Several containers built
with the same :class:`IdIndex` objects (a train, a validation and a test matrix, say) share
their row and column meaning, so they can be compared cell for cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import EVENT, EVENT_WEIGHTS, ITEM, TIMESTAMP, USER, WEIGHT


class IdIndex:
    """A bijection between raw ids (any hashable values) and the integers ``0..n-1``."""

    def __init__(self, ids: Iterable, name: str = "id") -> None:
        values = pd.Index(pd.unique(pd.Series(np.asarray(ids))))
        if values.hasnans:
            raise ValueError(f"{name}: missing values cannot be ids")
        self._index = values
        self.name = name

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"IdIndex({self.name}, n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in index order (``ids[i]`` is the raw id of index ``i``)."""
        return self._index.to_numpy()

    def to_index(self, ids, missing: str = "raise") -> np.ndarray:
        """Map raw ids to indices; ``missing='raise'`` errors on unknown ids, ``'ignore'`` gives -1."""
        positions = self._index.get_indexer(pd.Index(np.asarray(ids)))
        if missing == "raise" and (positions < 0).any():
            unknown = pd.Index(np.asarray(ids))[positions < 0][:5].tolist()
            raise KeyError(f"{self.name}: {int((positions < 0).sum())} unknown ids, e.g. {unknown}")
        return positions.astype(np.int64)

    def to_ids(self, indices) -> np.ndarray:
        """Map indices back to raw ids."""
        return self._index.to_numpy()[np.asarray(indices, dtype=np.int64)]

    def __contains__(self, raw_id) -> bool:
        return raw_id in self._index


@dataclass(frozen=True)
class Interactions:
    """Implicit feedback as a CSR matrix (users x items) plus the id maps both ways.

    ``matrix[u, i]`` is the summed weight of user ``u``'s events on item ``i``. Build it with
    :meth:`from_frame`; pass the ``users`` and ``items`` indexes of another container to share
    its rows and columns (for train and test matrices of one split).
    """

    matrix: sp.csr_matrix
    users: IdIndex
    items: IdIndex

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        users: IdIndex | None = None,
        items: IdIndex | None = None,
        weight: str | dict | None = "auto",
        binary: bool = False,
        drop_unknown: bool = False,
    ) -> Interactions:
        """Aggregate a DataFrame in the course vocabulary into a CSR matrix.

        ``weight`` chooses the value of each row: ``"auto"`` (the default: :data:`EVENT_WEIGHTS`
        of the ``event`` column when there is one, else 1), the name of a numeric column, a
        mapping from the ``event`` column to weights, or ``None`` for 1 per row. Repeated
        (user, item) pairs are summed; ``binary`` turns every stored value into 1. Rows with
        ids missing from given ``users``/``items`` raise, unless ``drop_unknown`` is set.
        """
        for column in (USER, ITEM):
            if column not in frame.columns:
                raise KeyError(
                    f"Interactions.from_frame: missing column '{column}' (columns are {list(frame.columns)})"
                )
        users = users if users is not None else IdIndex(frame[USER].to_numpy(), USER)
        items = items if items is not None else IdIndex(frame[ITEM].to_numpy(), ITEM)
        missing = "ignore" if drop_unknown else "raise"
        rows = users.to_index(frame[USER].to_numpy(), missing=missing)
        cols = items.to_index(frame[ITEM].to_numpy(), missing=missing)
        values = _row_weights(frame, weight)
        keep = (rows >= 0) & (cols >= 0)
        matrix = sp.csr_matrix(
            (values[keep], (rows[keep], cols[keep])), shape=(len(users), len(items)), dtype=np.float32
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        if binary:
            matrix.data[:] = 1.0
        return cls(matrix, users, items)

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_users * self.n_items)

    def binary(self) -> sp.csr_matrix:
        """The matrix with every stored value set to 1 (who interacted with what)."""
        out = self.matrix.copy()
        out.data[:] = 1.0
        return out

    def user_counts(self) -> np.ndarray:
        """Number of distinct items per user."""
        return np.diff(self.matrix.indptr)

    def item_counts(self) -> np.ndarray:
        """Number of distinct users per item."""
        return np.bincount(self.matrix.indices, minlength=self.n_items)

    def active_users(self) -> np.ndarray:
        """Indices of users with at least one interaction."""
        return np.flatnonzero(self.user_counts() > 0)

    def to_frame(self) -> pd.DataFrame:
        """The stored cells as a DataFrame with raw ids (``user_id, item_id, weight``)."""
        coo = self.matrix.tocoo()
        return pd.DataFrame(
            {USER: self.users.to_ids(coo.row), ITEM: self.items.to_ids(coo.col), WEIGHT: coo.data}
        )

    def __repr__(self) -> str:
        return (
            f"Interactions(users={self.n_users}, items={self.n_items}, nnz={self.nnz}, "
            f"density={self.density:.4%})"
        )


def _row_weights(frame: pd.DataFrame, weight: str | dict | None) -> np.ndarray:
    if isinstance(weight, str) and weight == "auto":
        weight = EVENT_WEIGHTS if EVENT in frame.columns else None
    if weight is None:
        return np.ones(len(frame), dtype=np.float32)
    if isinstance(weight, str):
        if weight not in frame.columns:
            raise KeyError(f"Interactions.from_frame: weight column '{weight}' not in the frame")
        values = pd.to_numeric(frame[weight], errors="coerce").to_numpy(dtype=np.float32)
        if np.isnan(values).any():
            bad = int(np.flatnonzero(np.isnan(values))[0])
            raise ValueError(f"Interactions.from_frame: non-numeric weight in column '{weight}' at row {bad}")
        return values
    mapped = frame[EVENT].map(weight)
    if mapped.isna().any():
        unknown = sorted(frame.loc[mapped.isna(), EVENT].astype(str).unique())[:5]
        raise ValueError(f"Interactions.from_frame: no weight for events {unknown}")
    return mapped.to_numpy(dtype=np.float32)


def shared_index(*frames: pd.DataFrame) -> tuple[IdIndex, IdIndex]:
    """User and item indexes covering every id in ``frames`` (for matrices of one split)."""
    users = IdIndex(np.concatenate([f[USER].to_numpy() for f in frames]), USER)
    items = IdIndex(np.concatenate([f[ITEM].to_numpy() for f in frames]), ITEM)
    return users, items


def sort_by_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable sort by timestamp (then user) without touching the input."""
    if TIMESTAMP not in frame.columns:
        raise KeyError(f"missing column '{TIMESTAMP}'")
    return frame.sort_values([TIMESTAMP, USER], kind="stable")
