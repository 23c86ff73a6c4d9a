"""Complementary follow-up purchases of the marketplace: a phone brings earbuds, a frying pan olive oil.

A small hand-written table (:data:`COMPLEMENT_TABLE`) says which leaf category complements which,
with a strength: the chance that a purchase in the source leaf is followed, within a few days,
by a visit in which the same user views, carts and buys an item of the target leaf. The relation
is directional (earbuds do not call for a phone). The item of the target leaf is drawn from the
user's multinomial logit restricted to that leaf (the world's own utility,
:func:`~recsys_utils.data.world_truth.utility`), so personal taste still decides which one.

The follow-ups are drawn after everything else, from their own generator
``np.random.default_rng([seed, 23])``, and added to the events: every other table and every
other event of a seed is unchanged, and ``WorldConfig(complement_rate=0)`` gives the world as it
was without them. The relation is kept as truth (:func:`complement_frame`,
:func:`complement_strength`) so that lessons can score "frequently bought together" against it
(McAuley et al. 2015, *Inferring networks of substitutable and complementary products*).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CART, EVENT, ITEM, PRICE, PURCHASE, SESSION, USER, VIEW
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.world_behaviour import PROMO_DISCOUNT, sample_rows
from recsys_utils.data.world_latent import SECONDS_PER_WEEK, Latent, WorldConfig
from recsys_utils.data.world_truth import utility

#: the follow-up generator's own stream: ``np.random.default_rng([config.seed, COMPLEMENT_STREAM])``
COMPLEMENT_STREAM = 23
#: follow-up visits come this many days after the purchase (uniform)
FOLLOWUP_DAYS = (0.5, 4.0)

#: (source leaf, target leaf, strength): P(a purchase in the source leaf brings a follow-up purchase
#: in the target leaf) at ``complement_rate = 1``
COMPLEMENT_TABLE: tuple[tuple[str, str, float], ...] = (
    ("Electronics > Phones", "Electronics > Audio", 0.35),
    ("Electronics > Phones", "Electronics > Smart Home", 0.15),
    ("Electronics > Computers", "Electronics > Audio", 0.20),
    ("Electronics > Computers", "Books & Media > Video Games", 0.12),
    ("Home & Kitchen > Cookware", "Grocery > Pantry", 0.30),
    ("Home & Kitchen > Appliances", "Grocery > Pantry", 0.15),
    ("Home & Kitchen > Appliances", "Home & Kitchen > Cookware", 0.15),
    ("Home & Kitchen > Bedding", "Home & Kitchen > Storage", 0.15),
    ("Fashion > Womenswear", "Fashion > Shoes", 0.15),
    ("Fashion > Menswear", "Fashion > Shoes", 0.15),
    ("Fashion > Shoes", "Fashion > Bags", 0.10),
    ("Beauty > Skincare", "Beauty > Makeup", 0.12),
    ("Beauty > Haircare", "Beauty > Fragrance", 0.08),
    ("Sports & Outdoors > Running", "Sports & Outdoors > Fitness", 0.25),
    ("Sports & Outdoors > Running", "Grocery > Beverages", 0.10),
    ("Sports & Outdoors > Cycling", "Sports & Outdoors > Camping", 0.20),
    ("Sports & Outdoors > Camping", "Grocery > Snacks", 0.12),
    ("Toys & Kids > Baby Care", "Toys & Kids > Kids Clothing", 0.25),
    ("Toys & Kids > Building Toys", "Toys & Kids > Games & Puzzles", 0.15),
    ("Books & Media > Video Games", "Electronics > Audio", 0.20),
    ("Books & Media > Non-fiction", "Grocery > Pantry", 0.10),
    ("Books & Media > Music", "Electronics > Audio", 0.12),
)


def complement_matrix(rate: float = 1.0) -> np.ndarray:
    """Strengths as a (n_leaves, n_leaves) matrix: row = source leaf, column = target leaf, capped at 1."""
    leaves = tx.leaf_names()
    matrix = np.zeros((len(leaves), len(leaves)))
    for source, target, strength in COMPLEMENT_TABLE:
        matrix[leaves.index(source), leaves.index(target)] = strength
    return np.minimum(matrix * float(rate), 1.0)


def complement_frame(rate: float = 1.0) -> pd.DataFrame:
    """The true relation as a table: ``source_category, target_category, strength`` (leaf names)."""
    leaves = np.asarray(tx.leaf_names(), dtype=object)
    matrix = complement_matrix(rate)
    src, tgt = np.nonzero(matrix)
    return pd.DataFrame({"source_category": leaves[src], "target_category": leaves[tgt],
                         "strength": matrix[src, tgt]})


def complement_strength(world, source_items, target_items) -> np.ndarray:
    """True strength of "target is a follow-up of source" for aligned item-id arrays (0 = not complementary).

    Reads the world's hidden truth: for scoring recommendations, never for building them.
    """
    src = world.latent.item_leaf[world.item_positions(np.asarray(source_items).ravel())]
    tgt = world.latent.item_leaf[world.item_positions(np.asarray(target_items).ravel())]
    matrix = complement_matrix(world.config.complement_rate)
    return matrix[src, tgt].reshape(np.shape(target_items))


def is_complementary(world, source_items, target_items) -> np.ndarray:
    """Whether each target item is truly complementary to its source item (aligned arrays or broadcast)."""
    source_items, target_items = np.broadcast_arrays(np.asarray(source_items), np.asarray(target_items))
    return complement_strength(world, source_items, target_items) > 0


def _choose_in_leaf(lat: Latent, config: WorldConfig, users: np.ndarray, leaves: np.ndarray, t: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """One item of each row's leaf from the user's logit over that leaf's available items (-1: none)."""
    chosen = np.full(len(users), -1, dtype=np.int64)
    week = (t // SECONDS_PER_WEEK).astype(np.int64)
    n_items = len(lat.appeal)
    for w in np.unique(week):  # one choice model per week, as in the sessions (at most n_weeks passes)
        rows = np.flatnonzero(week == w)
        active, local = np.unique(users[rows], return_inverse=True)
        u = utility(lat, active, np.arange(n_items), (w + 0.5) * SECONDS_PER_WEEK, config, available_only=False)
        u[:, lat.launch_seconds > w * SECONDS_PER_WEEK] = -np.inf
        u -= u.max(axis=1, keepdims=True)
        p = np.exp(u)
        p /= p.sum(axis=1, keepdims=True)
        cdf = np.cumsum(p, axis=1)
        cdf_excl = cdf - p
        lo = cdf_excl[local, lat.leaf_bounds[leaves[rows]]]
        hi = cdf[local, lat.leaf_bounds[leaves[rows] + 1] - 1]
        cdf_flat = (cdf + np.arange(len(active))[:, None]).ravel()
        pick = sample_rows(cdf_flat, n_items, local, lo, hi, rng)
        ok = (hi - lo > 1e-12) & (lat.item_leaf[pick] == leaves[rows])
        chosen[rows[ok]] = pick[ok]
    return chosen


def _visit_events(user, item, t0, session, lat: Latent, items: pd.DataFrame, config: WorldConfig,
                  rng: np.random.Generator) -> pd.DataFrame:
    """A view, an add-to-cart and a purchase per follow-up visit, with device, quantity and paid price."""
    n = len(user)
    device = np.minimum((rng.random(n)[:, None] > np.cumsum(lat.device_probs[user], axis=1)).sum(axis=1), 2)
    t_cart = t0 + rng.uniform(5, 30, n)
    t_buy = t_cart + rng.uniform(30, 240, n)
    consumable = np.isin(np.asarray(tx.top_names())[lat.leaf_top[lat.item_leaf[item]]], tx.CONSUMABLE_TOPS)
    quantity = 1 + rng.poisson(0.6, n) * consumable
    paid = items[PRICE].to_numpy()[item]
    in_promo = lat.promo[item] & ((t_buy // SECONDS_PER_WEEK) == config.promo_week)
    paid = np.where(in_promo, np.round(paid * PROMO_DISCOUNT, 2), paid)
    base = {USER: user, ITEM: item, SESSION: session, "device": device, "z": np.full(n, np.nan)}
    frames = [
        pd.DataFrame({**base, "t": t0, EVENT: VIEW, "quantity": 0, PRICE: np.nan, "order_id": -1}),
        pd.DataFrame({**base, "t": t_cart, EVENT: CART, "quantity": 0, PRICE: np.nan, "order_id": -1}),
        pd.DataFrame({**base, "t": t_buy, EVENT: PURCHASE, "quantity": quantity, PRICE: paid,
                      "order_id": 7_000_000 + session}),
    ]
    return pd.concat(frames, ignore_index=True)


def add_followups(events: pd.DataFrame, lat: Latent, items: pd.DataFrame, config: WorldConfig) -> pd.DataFrame:
    """The events with complementary follow-up visits added (own generator; old rows unchanged, re-sorted).

    Each purchase of an item in leaf A brings, with probability ``complement_rate * strength(A, B)``
    for every complementary leaf B, a visit 0.5-4 days later (before the world's end) in which the
    user views, carts and buys an item of B chosen by the user's logit within B. The new sessions
    are numbered after the last existing one.
    """
    matrix = complement_matrix(config.complement_rate)
    buys = events[events[EVENT].to_numpy() == PURCHASE]
    if not matrix.any() or buys.empty:
        return events
    rng = np.random.default_rng([config.seed, COMPLEMENT_STREAM])
    src_leaf = lat.item_leaf[buys[ITEM].to_numpy()]
    row, target = np.nonzero(matrix[src_leaf] > 0)
    hit = rng.random(len(row)) < matrix[src_leaf[row], target]
    row, target = row[hit], target[hit]
    user = buys[USER].to_numpy()[row]
    t0 = buys["t"].to_numpy()[row] + rng.uniform(*FOLLOWUP_DAYS, len(row)) * 86400.0
    inside = t0 + 300.0 < config.n_weeks * SECONDS_PER_WEEK  # the whole visit before the world's end
    user, target, t0 = user[inside], target[inside], t0[inside]
    item = _choose_in_leaf(lat, config, user, target, t0, rng)
    keep = item >= 0
    user, item, t0 = user[keep], item[keep], t0[keep]
    session = int(events[SESSION].max()) + 1 + np.arange(len(user))
    visits = _visit_events(user, item, t0, session, lat, items, config, rng)
    combined = pd.concat([events, visits[events.columns]], ignore_index=True)
    return combined.sort_values(["t", USER], kind="stable").reset_index(drop=True)


__all__ = ["COMPLEMENT_STREAM", "COMPLEMENT_TABLE", "add_followups", "complement_frame", "complement_matrix",
           "complement_strength", "is_complementary"]
