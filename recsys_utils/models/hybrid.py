"""Cold start (冷启动): content-based and hybrid scoring for new items, popularity by group for new users.

A collaborative model knows an item only through the users who touched it, so an item launched
after the training cut-off has no signal at all, and a user with no history has no row. Three
remedies, each a :class:`~recsys_utils.models.base.Recommender`:

- :class:`ContentRecommender` (基于内容的推荐): items are vectors of their attributes (TF-IDF of
  the title, one-hot category, top category, brand and price band; :func:`item_content_matrix`);
  a user is the weighted mean of the vectors of the items in their history; the score is the
  cosine of the two (Pazzani & Billsus 2007). It scores a brand-new item as well as an old one.
- :class:`AttributeHybrid` (混合推荐): learns a ridge map from item attributes to a factor
  model's item factors on the warm items (Gantner et al. 2010, "Learning attribute-to-feature
  mappings for cold-start recommendations", ICDM), so a new item gets predicted factors and is
  scored by ``user factors · predicted factors``, blended with the content score.
- :class:`GroupPopularity`: the most popular items among training users of the same group
  (segment, demographics), shrunk towards global popularity; for users with no history.

:func:`restrict_items` wraps any model so it only ranks a subset of items (the cold items), which
is how the cold-item lesson measures models with the ordinary protocol.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, ITEM, TITLE, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.features.items import ATTRIBUTE_WEIGHTS, WORD_TOKENS, attribute_matrix
from recsys_utils.models.base import Recommender

#: attribute columns used when present, with their weight in the item vector
CONTENT_FIELDS = {TITLE: 1.0, CATEGORY: 1.0, "top_category": 0.5, BRAND: 0.7, "price_band": 0.5}


def _ordered_items(items: pd.DataFrame, item_index: IdIndex, where: str) -> pd.DataFrame:
    if ITEM not in items.columns:
        raise KeyError(f"{where}: the item table has no '{ITEM}' column; columns are {list(items.columns)}")
    table = items.drop_duplicates(ITEM).set_index(ITEM)
    missing = ~pd.Index(item_index.ids).isin(table.index)
    if missing.any():
        raise KeyError(f"{where}: {int(missing.sum())} item ids of the index are not in the item table, "
                       f"e.g. {list(item_index.ids[missing][:5])}")
    return table.loc[item_index.ids]


def _l2_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix)


def item_content_matrix(items: pd.DataFrame, item_index: IdIndex, fields: dict[str, float] | None = None,
                        n_price_bands: int = 5) -> sp.csr_matrix:
    """Attribute vectors of the items in ``item_index`` order: an L2-normalised sparse matrix (float64).

    :func:`recsys_utils.features.items.attribute_matrix` on the items of the index, with this
    module's weights ``fields`` (default :data:`CONTENT_FIELDS`: TF-IDF of every ``title`` word,
    digits included; one-hot ``category``, ``top_category`` and ``brand``; one-hot ``price_band``,
    the price quantile within the category). Columns missing from ``items`` are skipped; an
    error names item ids of the index missing from the table.
    """
    fields = CONTENT_FIELDS if fields is None else fields
    table = _ordered_items(items, item_index, "item_content_matrix").reset_index()
    weights = {"title" if column == TITLE else column: weight for column, weight in fields.items()}
    unknown = set(weights) - set(ATTRIBUTE_WEIGHTS)
    if unknown:
        raise KeyError(f"item_content_matrix: unknown field(s) {sorted(unknown)}; known: {list(ATTRIBUTE_WEIGHTS)}")
    weights = {key: float(weights.get(key, 0.0)) for key in ATTRIBUTE_WEIGHTS}
    try:
        matrix, _ = attribute_matrix(table, weights, max_features=None, token_pattern=WORD_TOKENS,
                                     n_price_bands=n_price_bands, band_closed="left", dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"item_content_matrix: none of the columns {list(fields)} is in the item table "
                         f"({error})") from None
    return matrix


class ContentRecommender(Recommender):
    """Content-based scores: cosine of the user's mean attribute vector and each item's vector.

    ``item_features`` is an ``(n_items, d)`` matrix in the training index's item order
    (:func:`item_content_matrix`). The user vector is ``x_u F`` with the training weights
    ``x_u`` (``binary=True``: each item once). Users with no history score 0 everywhere.
    """

    name = "content"

    def __init__(self, item_features: sp.spmatrix | np.ndarray, binary: bool = False) -> None:
        super().__init__()
        self.item_features = _l2_rows(item_features)
        self.binary = binary

    def _fit(self, train: Interactions) -> None:
        if self.item_features.shape[0] != train.n_items:
            raise ValueError(f"ContentRecommender: item_features has {self.item_features.shape[0]} rows, "
                             f"the training matrix {train.n_items} items")
        x = train.binary() if self.binary else train.matrix
        self.user_profiles_ = _l2_rows(x @ self.item_features)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        profiles = self.user_profiles_[np.asarray(user_indices)]
        return np.asarray((profiles @ self.item_features.T).toarray(), dtype=np.float32)


def _standardise_rows(scores: np.ndarray) -> np.ndarray:
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.maximum(std, 1e-9)


class AttributeHybrid(Recommender):
    """A factor model with attribute-predicted factors for items it has not seen, blended with content.

    ``factor_model`` (fitted or not) must expose ``user_factors_`` and ``item_factors_`` after
    fitting (ALS, BPR, MF). Items with fewer than ``min_count`` training users get factors
    predicted from ``item_features`` by ridge regression fitted on the other items (Gantner et
    al. 2010). The score is ``(1 - content_weight) * z(CF) + content_weight * z(content)`` with
    ``z`` a per-user standardisation over the catalogue.
    """

    name = "hybrid"

    def __init__(self, factor_model: Recommender, item_features, content_weight: float = 0.5,
                 l2: float = 1.0, min_count: int = 1, refit: bool = True) -> None:
        super().__init__()
        if not 0.0 <= content_weight <= 1.0:
            raise ValueError(f"AttributeHybrid: content_weight must lie in [0, 1], got {content_weight}")
        self.factor_model = factor_model
        self.content = ContentRecommender(item_features)
        self.content_weight = content_weight
        self.l2 = l2
        self.min_count = min_count
        self.refit = refit

    def _fit(self, train: Interactions) -> None:
        from sklearn.linear_model import Ridge

        if self.refit:
            self.factor_model.fit(train)
        for attr in ("user_factors_", "item_factors_"):
            if not hasattr(self.factor_model, attr):
                raise TypeError(f"AttributeHybrid: {type(self.factor_model).__name__} has no {attr} "
                                "(use a factor model such as ALS)")
        self.content.fit(train)
        features = self.content.item_features
        warm = train.item_counts() >= self.min_count
        if not warm.any():
            raise ValueError("AttributeHybrid: no item has enough training users to learn the attribute map")
        factors = np.asarray(self.factor_model.item_factors_, dtype=np.float64)
        self.mapping_ = Ridge(alpha=self.l2).fit(features[warm], factors[warm])
        item_factors = factors.copy()
        if not warm.all():  # Ridge.predict refuses an empty input
            item_factors[~warm] = self.mapping_.predict(features[~warm])
        self.item_factors_ = item_factors.astype(np.float32)
        self.user_factors_ = np.asarray(self.factor_model.user_factors_, dtype=np.float32)
        self.cold_items_ = np.flatnonzero(~warm)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_indices)
        cf = _standardise_rows(self.user_factors_[users] @ self.item_factors_.T)
        if self.content_weight == 0:
            return cf
        content = _standardise_rows(self.content.score(users))
        return ((1.0 - self.content_weight) * cf + self.content_weight * content).astype(np.float32)


class GroupPopularity(Recommender):
    """Popularity within the user's group (e.g. gender x age band x city tier), shrunk to the global one.

    ``score(u, i) = (c_gi + m p_i) / (n_g + m)`` with ``c_gi`` the number of training users of
    group ``g`` who touched item ``i``, ``n_g`` the group's training users, ``p_i`` the global
    share of users who touched ``i`` and ``m = shrinkage``. ``users`` is the member table
    (``user_id`` plus the ``columns``); numeric columns listed in ``bins`` are cut into bands
    first. Users missing from the table fall into one "unknown" group.
    """

    name = "group-popularity"

    def __init__(self, users: pd.DataFrame, columns: tuple[str, ...] = ("gender", "age", "city_tier"),
                 bins: dict[str, list[float]] | None = None, shrinkage: float = 20.0) -> None:
        super().__init__()
        if USER not in users.columns:
            raise KeyError(f"GroupPopularity: the user table has no '{USER}' column")
        missing = [c for c in columns if c not in users.columns]
        if missing:
            raise KeyError(f"GroupPopularity: user table lacks column(s) {missing}; columns are {list(users.columns)}")
        self.users = users
        self.columns = tuple(columns)
        self.bins = {"age": [0, 25, 35, 45, 200]} if bins is None else bins
        self.shrinkage = shrinkage

    def groups(self, user_index: IdIndex) -> np.ndarray:
        """Group code of every user in ``user_index`` order (``-1``: not in the member table)."""
        table = self.users.drop_duplicates(USER).set_index(USER).reindex(user_index.ids)
        parts = []
        for column in self.columns:
            values = table[column]
            if column in self.bins:
                number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
                band = np.digitize(number, np.asarray(self.bins[column], dtype=np.float64))
                values = pd.Series(np.where(np.isnan(number), -1, band))
            parts.append(values.astype(str).to_numpy())
        key = pd.Series(["|".join(row) for row in zip(*parts, strict=True)])
        codes, _ = pd.factorize(key)
        codes[table[list(self.columns)].isna().all(axis=1).to_numpy()] = -1
        return codes

    def _fit(self, train: Interactions) -> None:
        codes = self.groups(train.users)
        self.group_of_user_ = codes
        known = codes >= 0
        n_groups = int(codes.max()) + 1 if known.any() else 0
        has_history = train.user_counts() > 0
        rows = np.flatnonzero(known & has_history)
        membership = sp.csr_matrix((np.ones(len(rows)), (codes[rows], rows)), shape=(n_groups, train.n_users))
        counts = np.asarray((membership @ train.binary()).toarray())
        group_size = np.asarray(membership.sum(axis=1)).ravel()
        global_share = train.item_counts() / max(1, int(has_history.sum()))
        m = self.shrinkage
        self.group_scores_ = ((counts + m * global_share[None, :]) / (group_size[:, None] + m)).astype(np.float32)
        self.global_scores_ = global_share.astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        codes = self.group_of_user_[np.asarray(user_indices)]
        table = np.vstack([self.group_scores_, self.global_scores_[None, :]])
        return table[np.where(codes >= 0, codes, len(table) - 1)].copy()


class _Restricted(Recommender):
    """``model``'s scores with every item outside ``allowed`` set to ``-inf``."""

    def __init__(self, model: Recommender, allowed: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.allowed = np.asarray(allowed, dtype=bool)
        self.name = getattr(model, "name", type(model).__name__)

    def _fit(self, train: Interactions) -> None:
        self.model.fit(train)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        scores = np.array(self.model.score(user_indices), dtype=np.float32)
        scores[:, ~self.allowed] = -np.inf
        return scores


def restrict_items(model: Recommender, allowed: np.ndarray) -> Recommender:
    """Wrap a *fitted* ``model`` so it ranks only the items where the boolean mask ``allowed`` is true."""
    allowed = np.asarray(allowed, dtype=bool)
    train = model._check_fitted()
    if allowed.shape != (train.n_items,):
        raise ValueError(f"restrict_items: mask has shape {allowed.shape}, expected ({train.n_items},)")
    wrapped = _Restricted(model, allowed)
    wrapped.train_ = train
    return wrapped


def restrict_matrix(interactions: Interactions, allowed: np.ndarray) -> Interactions:
    """``interactions`` with every column outside the boolean mask ``allowed`` emptied."""
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape != (interactions.n_items,):
        raise ValueError(f"restrict_matrix: mask has shape {allowed.shape}, expected ({interactions.n_items},)")
    matrix = sp.csr_matrix(interactions.matrix @ sp.diags(allowed.astype(np.float32)))
    matrix.eliminate_zeros()
    return Interactions(matrix, interactions.users, interactions.items)


class CategoryPopularity(Recommender):
    """Non-personalised baseline for new items: each item scores its category's mean users per item.

    An item with no interactions yet inherits the popularity of its category (``item_categories``
    in the training index's item order), which is the best a popularity model can do for it.
    """

    name = "category-popularity"

    def __init__(self, item_categories) -> None:
        super().__init__()
        self.item_categories = np.asarray(item_categories)

    def _fit(self, train: Interactions) -> None:
        if len(self.item_categories) != train.n_items:
            raise ValueError(f"CategoryPopularity: {len(self.item_categories)} categories for {train.n_items} items")
        codes, _ = pd.factorize(pd.Series(self.item_categories).astype(object).fillna("unknown"))
        counts = train.item_counts().astype(np.float64)
        warm = counts > 0
        total = np.bincount(codes[warm], weights=counts[warm], minlength=codes.max() + 1)
        size = np.bincount(codes[warm], minlength=codes.max() + 1)
        self.item_scores_ = (total / np.maximum(size, 1))[codes].astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.item_scores_, (len(user_indices), len(self.item_scores_))).copy()
