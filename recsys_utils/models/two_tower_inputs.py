"""Inputs of the two-tower model as integer codes: item attributes, member fields and recent histories.

Every categorical field becomes codes ``1..n`` with ``0`` for "unknown / padding", so an
``nn.Embedding(n + 1, d)`` row 0 serves every missing value. Item fields: category, top
category, brand and price band (price quantile within the category,
:func:`recsys_utils.features.items.price_bands`), plus the title's word tokens (padded to a fixed
length). Member fields: gender, age band, city tier and member level. These are known before any
interaction, so they are leak-free at any cut-off and give a brand-new item (or member) a vector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, ITEM, TITLE, USER
from recsys_utils.data.interactions import IdIndex
from recsys_utils.features.items import price_bands

#: item attribute columns encoded when present (price_band is derived from price)
ITEM_FIELDS = (CATEGORY, "top_category", BRAND, "price_band")
#: member columns encoded when present (age is cut into bands)
USER_FIELDS = ("gender", "age", "city_tier", "member_level")
AGE_BANDS = (0, 18, 25, 30, 35, 40, 50, 60, 200)
_TOKEN = re.compile(r"(?u)\b[^\W\d_]{2,}\b")


@dataclass
class CodedFields:
    """``codes`` ``(n_rows, n_fields)`` int64 (0 = unknown) and each field's embedding size."""

    codes: np.ndarray
    names: list[str]
    sizes: list[int]


def _codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Codes 1..n of the distinct non-missing values (0 for missing) and ``n + 1``."""
    codes, uniques = pd.factorize(values.astype(object), sort=True)
    return (codes + 1).astype(np.int64), len(uniques) + 1


def _table(frame: pd.DataFrame | None, key: str, index: IdIndex, where: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    if key not in frame.columns:
        raise KeyError(f"{where}: the table has no '{key}' column; columns are {list(frame.columns)}")
    return frame.drop_duplicates(key).set_index(key).reindex(index.ids)


def item_fields(items: pd.DataFrame | None, index: IdIndex, n_price_bands: int = 5) -> CodedFields:
    """Item attribute codes in ``index`` order (items missing from the table get 0 everywhere)."""
    table = _table(items, ITEM, index, "item_fields")
    columns, names, sizes = [], [], []
    if table is not None:
        if "price" in table.columns and "price_band" not in table.columns:
            bands = price_bands(table.reset_index().dropna(subset=[ITEM]), n_bands=n_price_bands)
            table = table.assign(price_band=bands.reindex(table.index).where(lambda b: b >= 0))
        for name in ITEM_FIELDS:
            if name in table.columns:
                codes, size = _codes(table[name])
                columns.append(codes)
                names.append(name)
                sizes.append(size)
    codes = np.stack(columns, axis=1) if columns else np.zeros((len(index), 0), dtype=np.int64)
    return CodedFields(codes, names, sizes)


def title_tokens(items: pd.DataFrame | None, index: IdIndex, max_tokens: int = 8, min_count: int = 2,
                 ) -> tuple[np.ndarray, int]:
    """Title word ids ``(n_items, max_tokens)`` (0 pads; words in fewer than ``min_count`` titles dropped)
    and the vocabulary size (padding included)."""
    table = _table(items, ITEM, index, "title_tokens")
    if table is None or TITLE not in table.columns or max_tokens < 1:
        return np.zeros((len(index), 1), dtype=np.int64), 1
    words = [_TOKEN.findall(str(title).lower()) if isinstance(title, str) else [] for title in table[TITLE]]
    counts = pd.Series([w for row in words for w in set(row)], dtype=object).value_counts()
    vocab = {word: i + 1 for i, word in enumerate(sorted(counts.index[counts >= min_count]))}
    out = np.zeros((len(index), max_tokens), dtype=np.int64)
    for row, tokens in enumerate(words):  # one pass over the titles of the catalogue
        ids = [vocab[w] for w in tokens if w in vocab][:max_tokens]
        out[row, :len(ids)] = ids
    return out, len(vocab) + 1


def user_fields(users: pd.DataFrame | None, index: IdIndex) -> CodedFields:
    """Member field codes in ``index`` order (users missing from the member table get 0)."""
    table = _table(users, USER, index, "user_fields")
    columns, names, sizes = [], [], []
    if table is not None:
        for name in USER_FIELDS:
            if name not in table.columns:
                continue
            values = table[name]
            if name == "age":
                values = pd.cut(pd.to_numeric(values, errors="coerce"), AGE_BANDS, right=False).astype(object)
            codes, size = _codes(values)
            columns.append(codes)
            names.append(name)
            sizes.append(size)
    codes = np.stack(columns, axis=1) if columns else np.zeros((len(index), 0), dtype=np.int64)
    return CodedFields(codes, names, sizes)


def top_history(matrix: sp.spmatrix, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``length`` heaviest items of ``matrix`` (ties: lower index first), vectorised.

    Returns ``(items, weights)``, both ``(n_users, length)``; pads are item ``-1`` with weight 0.
    Fit on a recent window with recency weights, it is the user's recent history.
    """
    if length < 1:
        raise ValueError(f"top_history: length must be >= 1, got {length}")
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    order = np.lexsort((csr.indices, -csr.data, rows))
    rank = np.arange(len(order)) - csr.indptr[rows[order]]
    keep = order[rank < length]
    items = np.full((csr.shape[0], length), -1, dtype=np.int64)
    weights = np.zeros((csr.shape[0], length), dtype=np.float32)
    position = rank[rank < length]
    items[rows[keep], position] = csr.indices[keep]
    weights[rows[keep], position] = csr.data[keep]
    return items, weights
