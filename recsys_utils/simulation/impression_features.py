"""Leak-free features of logged impressions: field codes, the behaviour sequence and the ranker's columns.

Every feature of an impression period comes from the events strictly before the period starts
(``at``), never from the period itself:

* :func:`impression_features` gives the categorical field codes of the CTR models
  (:class:`~recsys_utils.models.ctr.CTRFeatures`: user profile, context of the request, item attributes)
  plus the slate position, and the user's **behaviour sequence** -- the item-id and category codes of
  the last ``seq_len`` distinct items the user looked at before ``at``, most recent first, ``0`` =
  padding -- that DIN attends over (Zhou et al. 2018);
* :func:`ranker_columns` gives the LightGBM ranker's dense columns
  (:data:`~recsys_utils.features.pairs.RANKER_COLUMNS` of the one pair-feature builder) plus ``position``.

The encoders (vocabularies and quantile bins) are fitted once on the training history and reused for
later periods (:meth:`CTRFeatures.refresh`), as a production model keeps its encoders between retrains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, ITEM, RANK, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex
from recsys_utils.features.pairs import RANKER_COLUMNS, build_feature_tables, pair_features
from recsys_utils.models.ctr import CTRFeatures

__all__ = ["ImpressionFeatures", "behaviour_sequences", "impression_features", "ranker_columns"]

POSITION = "position"


@dataclass
class ImpressionFeatures:
    """Model inputs of an impression period: ``codes`` ``(n, n_fields)`` (field order :attr:`fields`,
    vocabulary sizes :attr:`sizes`; the slate position is the last field), ``sequence`` ``(n, seq_len, 2)``
    (item-id code, category code; 0 = padding) and the indexes of the item-id and category fields
    (``item_field``, ``category_field``) whose codes the sequence shares."""

    codes: np.ndarray
    sequence: np.ndarray
    fields: list[str]
    sizes: list[int]
    n_user_side: int
    item_field: int
    category_field: int

    def __len__(self) -> int:
        return len(self.codes)

    def rows(self, mask) -> ImpressionFeatures:
        """The same features for a subset of rows (a boolean mask or index array)."""
        return ImpressionFeatures(self.codes[mask], self.sequence[mask], self.fields, self.sizes,
                                  self.n_user_side, self.item_field, self.category_field)


def _history_before(events: pd.DataFrame, at) -> pd.DataFrame:
    for column in (USER, ITEM, TIMESTAMP):
        if column not in events.columns:
            raise KeyError(f"impression features: events lack column '{column}' (columns: {list(events.columns)})")
    past = events[(pd.to_datetime(events[TIMESTAMP]) < pd.Timestamp(at)).to_numpy()]
    if len(past) == 0:
        raise ValueError(f"impression features: no events before {pd.Timestamp(at)}")
    return past


def behaviour_sequences(history: pd.DataFrame, user_ids, seq_len: int) -> np.ndarray:
    """``(len(user_ids), seq_len)`` item ids (object array; ``None`` = padding): each user's last
    ``seq_len`` distinct items of ``history``, most recent first."""
    if seq_len < 1:
        raise ValueError(f"behaviour_sequences: seq_len must be >= 1, got {seq_len}")
    recent = history.sort_values(TIMESTAMP, ascending=False, kind="stable").drop_duplicates([USER, ITEM])
    recent = recent.assign(_pos=recent.groupby(USER, sort=False).cumcount())
    recent = recent[recent["_pos"] < seq_len]
    users = pd.Index(pd.unique(np.asarray(user_ids)))
    rows = users.get_indexer(recent[USER].to_numpy())
    keep = rows >= 0
    table = np.full((len(users), seq_len), None, dtype=object)
    table[rows[keep], recent["_pos"].to_numpy()[keep]] = recent[ITEM].to_numpy()[keep]
    return table[users.get_indexer(np.asarray(user_ids))]


def impression_features(log: pd.DataFrame, events: pd.DataFrame, at, encoders: CTRFeatures,
                        seq_len: int = 20, max_position: int = 20) -> ImpressionFeatures:
    """Field codes and behaviour sequences of the impressions ``log`` with every feature from
    ``events`` strictly before ``at`` (the period start). ``encoders`` is a fitted :class:`CTRFeatures`
    (fitted on the training history; its tables are rebuilt here from the events before ``at``)."""
    missing = [c for c in (USER, ITEM, RANK) if c not in log.columns]
    if missing:
        raise KeyError(f"impression_features: the log lacks column(s) {missing} (columns: {list(log.columns)})")
    if len(log) and pd.to_datetime(log[TIMESTAMP]).min() < pd.Timestamp(at):
        raise ValueError(f"impression_features: the log has impressions before at={pd.Timestamp(at)}; "
                         "features would leak the period")
    features = encoders.refresh(_history_before(events, at))
    fields = features.fields
    for name in ("item_id", "category"):
        if name not in fields:
            raise ValueError(f"impression_features: the encoders have no '{name}' field (fields: {fields})")
    position = np.clip(pd.to_numeric(log[RANK]).to_numpy(dtype=np.int64), 1, max_position)
    codes = np.concatenate([features.encode(log), position[:, None]], axis=1)
    item_field, category_field = fields.index("item_id"), fields.index("category")
    offset = features.n_user_side
    history = _history_before(events, at)
    sequence_ids = behaviour_sequences(history, log[USER].to_numpy(), seq_len)
    flat = sequence_ids.ravel()
    present = np.array([value is not None for value in flat])
    sequence = np.zeros((len(flat), 2), dtype=np.int64)
    if present.any():
        item_codes = features.encode_items(flat[present].astype(np.asarray(log[ITEM]).dtype))
        sequence[present] = item_codes[:, [item_field - offset, category_field - offset]]
    sequence[sequence[:, 0] == 0] = 0  # an item the encoders do not know is padding too
    return ImpressionFeatures(codes, sequence.reshape(len(log), seq_len, 2), fields + [POSITION],
                              features.sizes + [max_position + 1], features.n_user_side, item_field, category_field)


def ranker_columns(log: pd.DataFrame, events: pd.DataFrame, at, items: pd.DataFrame,
                   users: pd.DataFrame | None = None) -> pd.DataFrame:
    """The LightGBM ranker's columns (:data:`RANKER_COLUMNS`) of the impressions, from the events before
    ``at``, plus the slate ``position``."""
    history = _history_before(events, at)
    user_index = IdIndex(pd.concat([pd.Series(history[USER].to_numpy()), pd.Series(log[USER].to_numpy())]), USER)
    item_index = IdIndex(items[ITEM].to_numpy(), ITEM)
    if CATEGORY not in items.columns:
        raise KeyError(f"ranker_columns: the item table has no '{CATEGORY}' column")
    tables = build_feature_tables(history, items.drop_duplicates(ITEM), users, at=pd.Timestamp(at),
                                  user_index=user_index, item_index=item_index)
    out = pair_features(tables, user_index.to_index(log[USER].to_numpy()), item_index.to_index(log[ITEM].to_numpy()),
                        RANKER_COLUMNS)
    out[POSITION] = pd.to_numeric(log[RANK]).to_numpy()
    return out
