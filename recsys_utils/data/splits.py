"""Train / validation / test splitters: random, global temporal and per-user leave-last-out.

Splitters take a DataFrame in the course vocabulary and return a :class:`DataSplit` of
DataFrames; inputs are never modified. :meth:`DataSplit.to_interactions` turns the parts into
:class:`~recsys_utils.data.interactions.Interactions` matrices that share one user and one item
index, so a model trained on ``train`` can be scored against ``test`` cell for cell.

The course's main protocol is the *global temporal* split: everything before a cut-off trains,
everything after tests, as in production where a model only ever knows the past. A random split
lets the model train on the future of the very users it is tested on and inflates metrics
(notebook 01 measures by how much); leave-last-out holds out each user's latest event (the
protocol of sequential models and of the NCF paper) but mixes time periods across users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions


@dataclass(frozen=True)
class DataSplit:
    """Parts of one split as DataFrames (``validation`` may be empty)."""

    train: pd.DataFrame
    test: pd.DataFrame
    validation: pd.DataFrame | None = None
    name: str = "split"

    def sizes(self) -> dict[str, int]:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        return {key: (0 if part is None else len(part)) for key, part in parts.items()}

    def to_interactions(
        self, users: IdIndex | None = None, items: IdIndex | None = None, weight="auto", binary: bool = False
    ) -> MatrixSplit:
        """Matrices of the parts over one shared index (default: every id in any part)."""
        frames = [f for f in (self.train, self.validation, self.test) if f is not None]
        if users is None:
            users = IdIndex(np.concatenate([f[USER].to_numpy() for f in frames]), USER)
        if items is None:
            items = IdIndex(np.concatenate([f[ITEM].to_numpy() for f in frames]), ITEM)

        def build(frame):
            return Interactions.from_frame(frame, users, items, weight=weight, binary=binary)

        validation = None if self.validation is None else build(self.validation)
        return MatrixSplit(train=build(self.train), test=build(self.test), validation=validation)


@dataclass(frozen=True)
class MatrixSplit:
    """Train / validation / test :class:`Interactions` sharing their user and item indexes."""

    train: Interactions
    test: Interactions
    validation: Interactions | None = None

    def train_and_validation(self) -> Interactions:
        """Train plus validation in one matrix (to refit after choosing hyperparameters)."""
        if self.validation is None:
            return self.train
        return Interactions(self.train.matrix + self.validation.matrix, self.train.users, self.train.items)


def _check_frame(frame: pd.DataFrame, needs_time: bool, where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where}: expected a DataFrame, got {type(frame).__name__}")
    required = [USER, ITEM] + ([TIMESTAMP] if needs_time else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}; columns are {list(frame.columns)}")
    if len(frame) == 0:
        raise ValueError(f"{where}: the frame is empty")


def random_split(
    frame: pd.DataFrame, test_fraction: float = 0.2, validation_fraction: float = 0.0, seed: int = 42
) -> DataSplit:
    """Assign each row to train / validation / test at random (ignores time: leaks the future)."""
    _check_frame(frame, needs_time=False, where="random_split")
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1 - test_fraction:
        raise ValueError(
            "random_split: need 0 < test_fraction < 1 and 0 <= validation_fraction < 1 - test_fraction"
        )
    draw = np.random.default_rng(seed).random(len(frame))
    test = draw < test_fraction
    validation = (draw >= test_fraction) & (draw < test_fraction + validation_fraction)
    train = ~(test | validation)
    return DataSplit(frame[train], frame[test], frame[validation] if validation_fraction else None, "random")


def stratified_split(frame: pd.DataFrame, test_fraction: float = 0.25, by: str = ITEM, seed: int = 42) -> DataSplit:
    """Random split stratified by ``by``: each group keeps ``1 - test_fraction`` of its rows in train.

    The protocol of microsoft/recommenders' MovieLens benchmark (``python_stratified_split`` with
    ``filter_by="item"``, ratio 0.75): rows are shuffled within each group and the first
    ``round((1 - test_fraction) * group size)`` of them train, so every group (at least two rows)
    appears on both sides. Like :func:`random_split`, it ignores time.
    """
    _check_frame(frame, needs_time=False, where="stratified_split")
    if by not in frame.columns:
        raise KeyError(f"stratified_split: missing column '{by}' (columns are {list(frame.columns)})")
    if not 0 < test_fraction < 1:
        raise ValueError(f"stratified_split: need 0 < test_fraction < 1, got {test_fraction}")
    groups = pd.factorize(frame[by])[0]
    draw = np.random.default_rng(seed).random(len(frame))
    order = np.lexsort((draw, groups))
    counts = np.bincount(groups)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(len(frame), dtype=np.int64)
    position[order] = np.arange(len(frame)) - first[groups[order]]
    n_train = np.round((1.0 - test_fraction) * counts).astype(np.int64)
    train = position < n_train[groups]
    return DataSplit(frame[train], frame[~train], None, f"stratified_by_{by}")


def temporal_split(
    frame: pd.DataFrame,
    test_start=None,
    validation_start=None,
    test_days: float | None = None,
    validation_days: float | None = None,
) -> DataSplit:
    """Global temporal split: rows before ``validation_start`` train, then validation, then test.

    Give the cut-offs as timestamps, or as ``test_days`` / ``validation_days`` counted back from
    the last timestamp. Every training row is older than every validation row, and every
    validation row older than every test row.
    """
    _check_frame(frame, needs_time=True, where="temporal_split")
    time = pd.to_datetime(frame[TIMESTAMP])
    end = time.max()
    if test_start is None:
        if test_days is None:
            raise ValueError("temporal_split: give test_start or test_days")
        test_start = end - pd.Timedelta(days=test_days)
    test_start = pd.Timestamp(test_start)
    if validation_start is None and validation_days is not None:
        validation_start = test_start - pd.Timedelta(days=validation_days)
    validation_start = test_start if validation_start is None else pd.Timestamp(validation_start)
    if validation_start > test_start:
        raise ValueError("temporal_split: validation_start must not be after test_start")
    train = time < validation_start
    validation = (time >= validation_start) & (time < test_start)
    test = time >= test_start
    if not train.any() or not test.any():
        raise ValueError(
            f"temporal_split: empty train or test for cut-offs {validation_start} / {test_start} "
            f"(data spans {time.min()} to {end})"
        )
    has_validation = validation_start < test_start
    return DataSplit(
        frame[train.to_numpy()],
        frame[test.to_numpy()],
        frame[validation.to_numpy()] if has_validation else None,
        "temporal",
    )


def leave_last_out(
    frame: pd.DataFrame, n_test: int = 1, n_validation: int = 0, min_train: int = 1
) -> DataSplit:
    """Hold out each user's latest ``n_test`` rows (and the ``n_validation`` before them).

    Users with fewer than ``min_train + n_test + n_validation`` rows stay wholly in train.
    Ties in time are broken by the original row order.
    """
    _check_frame(frame, needs_time=True, where="leave_last_out")
    order = np.lexsort(
        (np.arange(len(frame)), pd.to_datetime(frame[TIMESTAMP]).to_numpy(), pd.factorize(frame[USER])[0])
    )
    users_sorted = pd.factorize(frame[USER])[0][order]
    counts = np.bincount(users_sorted)
    # position of each row counted from the user's last row (0 = latest)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_from_end = (first + counts)[users_sorted] - 1 - np.arange(len(order))
    eligible = counts[users_sorted] >= min_train + n_test + n_validation
    test_sorted = eligible & (rank_from_end < n_test)
    validation_sorted = eligible & (rank_from_end >= n_test) & (rank_from_end < n_test + n_validation)
    test = np.zeros(len(frame), dtype=bool)
    validation = np.zeros(len(frame), dtype=bool)
    test[order] = test_sorted
    validation[order] = validation_sorted
    train = ~(test | validation)
    return DataSplit(frame[train], frame[test], frame[validation] if n_validation else None, "leave_last_out")
