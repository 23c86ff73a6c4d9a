"""The truth of the marketplace: the utility that generated every choice, and the purchase funnel.

A user's utility for an item at a moment is a sum of parts (Train 2009, *Discrete Choice Methods
with Simulation*, ch. 3: the multinomial logit): category taste, the match of the user's drifting
taste vector with the item's, the item's appeal (long tail, a boost in its first two weeks),
minus price sensitivity times the item's relative price, plus a promotion boost in the promotion
week. Views are drawn from a softmax over these utilities; :func:`funnel_probabilities` turns a
viewed item's user-standardised utility into the chances of a favourite, an add-to-cart and a
purchase. The simulator and the oracle read the same functions, so the lessons can compare
models with the truth.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.core.vocabulary import CART, FAVORITE, PURCHASE
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.world_latent import SECONDS_PER_WEEK, Latent, WorldConfig

#: weights of the utility's parts; a multinomial logit over available items draws each view
TASTE_WEIGHT = 1.0
EMBEDDING_WEIGHT = 1.0
APPEAL_WEIGHT = 1.0
FRESH_BOOST = 0.8  # extra appeal of an item in its first two weeks
PROMO_BOOST = 0.6  # extra appeal of a discounted item, scaled up for price-sensitive users
VIEWED_Z = 2.0  # typical standardised utility of an item a user chooses to view


def _time_terms(lat: Latent, items: np.ndarray, seconds: float, config: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-item appeal at a moment (base appeal + freshness) and whether each item is on promotion."""
    age_weeks = (seconds - lat.launch_seconds[items]) / SECONDS_PER_WEEK
    fresh = FRESH_BOOST * np.clip(1.0 - age_weeks / 2.0, 0.0, 1.0) * (age_weeks >= 0)
    in_promo = int(seconds // SECONDS_PER_WEEK) == config.promo_week
    return APPEAL_WEIGHT * lat.appeal[items] + fresh, (lat.promo[items] & in_promo)


def utility(
    lat: Latent,
    users: np.ndarray,
    items: np.ndarray,
    seconds: float,
    config: WorldConfig,
    available_only: bool = True,
) -> np.ndarray:
    """Utility matrix (len(users), len(items)) at a moment; -inf for items not yet launched."""
    progress = np.clip(seconds / (config.n_weeks * SECONDS_PER_WEEK), 0.0, 1.0)
    emb = lat.embedding[users] + progress * lat.drift[users]
    item_terms, promo = _time_terms(lat, items, seconds, config)
    beta = lat.price_sensitivity[users]
    u = TASTE_WEIGHT * lat.taste[np.ix_(users, lat.item_leaf[items])]
    u += EMBEDDING_WEIGHT * (emb @ lat.item_embedding[items].T)
    u += item_terms[None, :]
    u -= beta[:, None] * lat.relative_price[items][None, :]
    if promo.any():
        u[:, promo] += PROMO_BOOST * (1.0 + np.clip(beta, 0.0, None))[:, None]
    if available_only:
        u[:, lat.launch_seconds[items] > seconds] = -np.inf
    return u.astype(np.float64)


def pair_utility(
    lat: Latent, users: np.ndarray, items: np.ndarray, seconds: float, config: WorldConfig
) -> np.ndarray:
    """Utility of aligned (user, item) pairs at a moment (ignores availability)."""
    progress = np.clip(seconds / (config.n_weeks * SECONDS_PER_WEEK), 0.0, 1.0)
    emb = lat.embedding[users] + progress * lat.drift[users]
    item_terms, promo = _time_terms(lat, items, seconds, config)
    beta = lat.price_sensitivity[users]
    u = TASTE_WEIGHT * lat.taste[users, lat.item_leaf[items]]
    u += EMBEDDING_WEIGHT * np.einsum("nd,nd->n", emb, lat.item_embedding[items])
    u += item_terms - beta * lat.relative_price[items]
    u += promo * PROMO_BOOST * (1.0 + np.clip(beta, 0.0, None))
    return u


def standardised_utility(
    lat: Latent, users: np.ndarray, items: np.ndarray, seconds: float, config: WorldConfig
) -> np.ndarray:
    """Pair utilities standardised by each user's mean and spread over the available catalogue."""
    unique, inverse = np.unique(users, return_inverse=True)
    full = utility(lat, unique, np.arange(len(lat.appeal)), seconds, config, available_only=True)
    finite = np.where(np.isfinite(full), full, np.nan)
    mean = np.nanmean(finite, axis=1)
    std = np.nanstd(finite, axis=1) + 1e-9
    return (pair_utility(lat, users, items, seconds, config) - mean[inverse]) / std[inverse]


def funnel_probabilities(lat: Latent, users: np.ndarray, items: np.ndarray, z: np.ndarray) -> dict:
    """P(favourite), P(add to cart) and P(purchase | cart) of a user looking at an item.

    ``z`` is the user-standardised true utility of the item; items people choose to look at sit
    around ``VIEWED_Z``, so the funnel is centred there. Segments shift each stage.
    """
    specs = [tx.SEGMENTS[s] for s in tx.SEGMENTS]
    seg = lat.segment[users]
    zc = z - VIEWED_Z
    beta = lat.price_sensitivity[users]
    rel_price = lat.relative_price[items]
    offsets = {key: np.array([s[key] for s in specs])[seg] for key in ("cart", "buy", "favorite")}
    return {
        FAVORITE: sigmoid(-2.9 + offsets["favorite"] + 0.9 * zc),
        CART: sigmoid(-2.3 + offsets["cart"] + 1.1 * zc),
        PURCHASE: sigmoid(-0.3 + offsets["buy"] - 0.7 * beta * rel_price + 0.3 * zc),
    }


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + np.exp(-x))


__all__ = ["VIEWED_Z", "funnel_probabilities", "pair_utility", "sigmoid", "standardised_utility", "utility"]
