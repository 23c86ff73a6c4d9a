"""Item attribute modelling (物品属性建模): one tidy row of features per item, plus attribute similarity.

:func:`item_features` gives category, brand, price (log, relative to the category, price band),
freshness (age at the cut-off) and popularity counted only from events strictly before ``at``.
:func:`title_tfidf` vectorises titles (TF-IDF, Salton & Buckley 1988; scikit-learn's
``TfidfVectorizer``); :func:`attribute_matrix` stacks TF-IDF, category/genre, brand and price-band
one-hots into one L2-normalised sparse matrix whose dot products are cosine similarities, and
:func:`similar_items` returns the nearest neighbours of an item by those attributes (the basis
of content-based recommendation, Pazzani & Billsus 2007).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, TITLE, USER, VIEW
from recsys_utils.features.profile import DAY, cutoff, relative_log_price

#: labels of price bands, cheapest first (used when ``n_bands`` is 5)
BAND_LABELS = ("very_low", "low", "mid", "high", "very_high")


def _check_items(items: pd.DataFrame, where: str) -> None:
    if not isinstance(items, pd.DataFrame):
        raise TypeError(f"{where}: items must be a DataFrame, got {type(items).__name__}")
    if ITEM not in items.columns:
        raise KeyError(f"{where}: the item table has no '{ITEM}' column; columns are {list(items.columns)}")
    if items[ITEM].duplicated().any():
        dup = items[ITEM][items[ITEM].duplicated()].iloc[0]
        raise ValueError(f"{where}: item_id {dup} appears more than once in the item table")


def price_bands(items: pd.DataFrame, n_bands: int = 5, within: str | None = CATEGORY,
                closed: str = "right") -> pd.Series:
    """Price band 0 (cheapest) .. ``n_bands - 1`` of each item, by price quantile within its ``within`` group.

    Quantiles inside a category make a 30-yuan lipstick and a 3,000-yuan phone comparable: each is
    "cheap" or "dear" for what it is. Band ``b`` holds percentile ranks in ``(b/n, (b+1)/n]``
    (``closed="right"``) or ``[b/n, (b+1)/n)`` (``closed="left"``; they differ only on the edges).
    Items without a price get band ``-1``. Indexed by ``item_id``.
    """
    _check_items(items, "price_bands")
    if PRICE not in items.columns:
        raise KeyError("price_bands: the item table has no 'price' column")
    if n_bands < 2:
        raise ValueError(f"price_bands: n_bands must be at least 2, got {n_bands}")
    if closed not in ("right", "left"):
        raise ValueError(f"price_bands: closed must be 'right' or 'left', got {closed!r}")
    price = pd.to_numeric(items[PRICE], errors="coerce")
    group = items[within] if within is not None and within in items.columns else pd.Series(0, index=items.index)
    pct = price.groupby(group.to_numpy()).rank(pct=True, method="average")
    band = np.floor(pct.to_numpy() * n_bands - (1e-9 if closed == "right" else 0.0)).clip(0, n_bands - 1)
    band = np.where(price.notna().to_numpy(), band, -1).astype(np.int64)
    return pd.Series(band, index=items[ITEM].to_numpy(), name="price_band")


#: tokens of two or more letters (digits and year suffixes dropped)
LETTER_TOKENS = r"(?u)\b[^\W\d_]{2,}\b"
#: scikit-learn's default tokens: two or more word characters, digits included
WORD_TOKENS = r"(?u)\b\w\w+\b"


def title_tfidf(items: pd.DataFrame, max_features: int | None = 2000, min_df: int = 2,
                ngram_range: tuple[int, int] = (1, 1), token_pattern: str = LETTER_TOKENS, dtype=np.float32):
    """TF-IDF of item titles: ``(matrix (n_items, n_terms) CSR, vectorizer)``; rows in ``items`` order.

    Tokens follow ``token_pattern`` (default letters only: digits and year suffixes are dropped),
    terms in fewer than ``min_df`` titles are ignored, ``max_features=None`` keeps every term. The
    fitted ``sklearn`` vectorizer gives the vocabulary (``get_feature_names_out()``) and transforms new titles.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    _check_items(items, "title_tfidf")
    if TITLE not in items.columns:
        raise KeyError("title_tfidf: the item table has no 'title' column")
    titles = items[TITLE].fillna("").astype(str)
    min_df = min(min_df, max(1, len(items)))
    vectorizer = TfidfVectorizer(max_features=max_features, min_df=min_df, ngram_range=ngram_range,
                                 token_pattern=token_pattern, sublinear_tf=True)
    matrix = vectorizer.fit_transform(titles.to_numpy())
    return sp.csr_matrix(matrix, dtype=dtype), vectorizer


def _one_hot(values: pd.Series, prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """One-hot (or multi-hot for ``"A|B"`` strings) CSR matrix of a categorical column."""
    text = values.astype(object).where(values.notna(), "unknown").astype(str)
    if text.str.contains("|", regex=False).any():
        dummies = text.str.get_dummies(sep="|")
        return sp.csr_matrix(dummies.to_numpy(np.float32)), [f"{prefix}{c}" for c in dummies.columns]
    codes, uniques = pd.factorize(text, sort=True)
    matrix = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)),
                           shape=(len(codes), len(uniques)))
    return matrix, [f"{prefix}{u}" for u in uniques]


#: attribute blocks of :func:`attribute_matrix` and their default weights
ATTRIBUTE_WEIGHTS = {"title": 1.0, "category": 1.0, "top_category": 0.0, "brand": 0.5, "price_band": 0.5}


def attribute_matrix(items: pd.DataFrame, weights: dict[str, float] | None = None, max_features: int | None = 2000,
                     token_pattern: str = LETTER_TOKENS, n_price_bands: int = 5, band_closed: str = "right",
                     dtype=np.float32) -> tuple[sp.csr_matrix, list[str]]:
    """Items x attributes (rows L2-normalised): title TF-IDF, category/genres, top category, brand, price band.

    The package's one item-attribute matrix (content-based recommenders use it through
    :func:`recsys_utils.models.hybrid.item_content_matrix`). Each block is L2-normalised per row
    and scaled by ``weights`` (keys of :data:`ATTRIBUTE_WEIGHTS`; defaults: title 1, category 1,
    top category 0 (off), brand 0.5, price band 0.5) before the whole row is normalised again, so
    the dot product of two rows is a weighted cosine similarity. ``category`` means ``genres``
    (multi-hot) when the table has them; the price band is the table's ``price_band`` column if it
    has one, else :func:`price_bands` (``n_price_bands``, ``band_closed``). Title options go to
    :func:`title_tfidf`. Returns ``(matrix, column names)`` in ``dtype``.
    """
    from sklearn.preprocessing import normalize

    _check_items(items, "attribute_matrix")
    unknown = set(weights or {}) - set(ATTRIBUTE_WEIGHTS)
    if unknown:
        raise KeyError(f"attribute_matrix: unknown weight(s) {sorted(unknown)}; known: {list(ATTRIBUTE_WEIGHTS)}")
    weights = {**ATTRIBUTE_WEIGHTS, **(weights or {})}
    blocks, names = [], []
    if TITLE in items.columns and weights["title"] > 0:
        tfidf, vectorizer = title_tfidf(items, max_features=max_features, token_pattern=token_pattern, dtype=dtype)
        blocks.append(weights["title"] * normalize(tfidf))
        names += [f"title__{t}" for t in vectorizer.get_feature_names_out()]
    category = "genres" if "genres" in items.columns else CATEGORY
    for key, column in (("category", category), ("top_category", "top_category"), ("brand", BRAND)):
        if column in items.columns and weights[key] > 0:
            matrix, cols = _one_hot(items[column], f"{key}__")
            blocks.append(weights[key] * normalize(matrix.astype(dtype)))
            names += cols
    if weights["price_band"] > 0 and ("price_band" in items.columns or PRICE in items.columns):
        bands = items["price_band"] if "price_band" in items.columns else price_bands(
            items, n_price_bands, closed=band_closed)
        matrix, cols = _one_hot(pd.Series(np.asarray(bands)), "price_band__")
        blocks.append(weights["price_band"] * matrix.astype(dtype))
        names += cols
    if not blocks:
        raise ValueError("attribute_matrix: the item table has none of title, category, genres, brand, price")
    return sp.csr_matrix(normalize(sp.hstack(blocks).tocsr()), dtype=dtype), names


def similar_items(items: pd.DataFrame, item_id, k: int = 5, matrix: sp.csr_matrix | None = None) -> pd.DataFrame:
    """The ``k`` items most similar to ``item_id`` by attributes (cosine), itself excluded.

    Returns the neighbours' rows of ``items`` with a ``similarity`` column, most similar first.
    Pass a precomputed :func:`attribute_matrix` as ``matrix`` to avoid rebuilding it.
    """
    _check_items(items, "similar_items")
    where = np.flatnonzero(items[ITEM].to_numpy() == item_id)
    if not len(where):
        raise KeyError(f"similar_items: item_id {item_id} is not in the item table")
    matrix = attribute_matrix(items)[0] if matrix is None else matrix
    if matrix.shape[0] != len(items):
        raise ValueError(f"similar_items: matrix has {matrix.shape[0]} rows but items has {len(items)}")
    sims = np.asarray((matrix @ matrix[where[0]].T).todense()).ravel()
    sims[where[0]] = -np.inf
    k = min(k, len(items) - 1)
    top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    top = top[np.argsort(-sims[top], kind="stable")]
    return items.iloc[top].assign(similarity=sims[top]).reset_index(drop=True)


def item_features(items: pd.DataFrame, interactions: pd.DataFrame | None = None, at=None,
                  n_price_bands: int = 5, new_days: float = 14.0, recent_days: float = 7.0) -> pd.DataFrame:
    """A tidy item feature table indexed by ``item_id`` (every catalogue item, one row each).

    - attributes: ``category``, ``top_category``, ``brand``, ``genres`` (those present, categorical)
    - price: ``price``, ``log_price``, ``rel_price`` (log price minus the category median),
      ``price_band`` (0..n-1, quantile within the category; see :func:`price_bands`)
    - freshness: ``age_days`` at ``at`` (from ``launch_time``; negative = not launched yet),
      ``is_new`` (launched less than ``new_days`` before ``at``), ``available``
    - popularity from ``interactions`` strictly before ``at`` (no leakage): ``n_events``,
      ``n_users``, ``n_purchases``, ``n_views``, ``conversion``, ``recent_events`` (the last
      ``recent_days``), ``log_popularity``, ``popularity_pct`` (percentile rank, 1 = most popular),
      ``days_since_first_event``; ``mean_rating`` and ``n_ratings`` where there are ratings.

    ``at`` defaults to just after the last interaction (or now, without interactions).
    """
    _check_items(items, "item_features")
    out = pd.DataFrame(index=pd.Index(items[ITEM].to_numpy(), name=ITEM))
    for column in (CATEGORY, "top_category", BRAND, "genres"):
        if column in items.columns:
            out[column] = pd.Categorical(items[column].to_numpy())
    if PRICE in items.columns:
        price = pd.to_numeric(items[PRICE], errors="coerce").to_numpy(np.float64)
        out[PRICE] = price
        out["log_price"] = np.log(np.clip(price, 0.01, None))
        out["rel_price"] = relative_log_price(items).to_numpy()
        out["price_band"] = price_bands(items, n_price_bands).to_numpy()

    past = None
    if interactions is not None:
        for column in (USER, ITEM, TIMESTAMP):
            if column not in interactions.columns:
                raise KeyError(f"item_features: interactions lack column '{column}'")
        past, at = cutoff(interactions, at)
    at = pd.Timestamp.now() if at is None else pd.Timestamp(at)

    if "launch_time" in items.columns:
        launch = pd.to_datetime(items["launch_time"]).to_numpy()
        age = (at - pd.DatetimeIndex(launch)) / DAY
        out["age_days"] = np.asarray(age, dtype=np.float64)
        out["is_new"] = ((out["age_days"] >= 0) & (out["age_days"] < new_days)).astype(np.float64)
        out["available"] = (~(out["age_days"] < 0)).astype(np.float64)

    if past is not None:
        item = past[ITEM]
        out["n_events"] = item.value_counts().reindex(out.index, fill_value=0).astype(np.float64)
        out["n_users"] = past.groupby(ITEM)[USER].nunique().reindex(out.index, fill_value=0).astype(np.float64)
        if EVENT in past.columns:
            counts = past.groupby([ITEM, EVENT]).size().unstack(fill_value=0)
            for event, name in ((PURCHASE, "n_purchases"), (VIEW, "n_views")):
                if event in counts.columns:
                    out[name] = counts[event].reindex(out.index, fill_value=0).astype(np.float64)
            if "n_purchases" in out and "n_views" in out:
                out["conversion"] = out["n_purchases"] / out["n_views"].clip(lower=1)
        time = pd.to_datetime(past[TIMESTAMP])
        recent = time >= at - pd.Timedelta(days=recent_days)
        out["recent_events"] = item[recent.to_numpy()].value_counts().reindex(out.index, fill_value=0).astype(
            np.float64)
        out["log_popularity"] = np.log1p(out["n_events"])
        out["popularity_pct"] = out["n_events"].rank(pct=True, method="average")
        first = time.groupby(item.to_numpy()).min().reindex(out.index)
        out["days_since_first_event"] = ((at - first) / DAY).astype(np.float64)
        if "age_days" not in out:
            out["age_days"] = out["days_since_first_event"]
        if "rating" in past.columns:
            ratings = pd.to_numeric(past["rating"], errors="coerce")
            grouped = ratings.groupby(item.to_numpy())
            out["n_ratings"] = grouped.count().reindex(out.index, fill_value=0).astype(np.float64)
            out["mean_rating"] = grouped.mean().reindex(out.index)
    return out
