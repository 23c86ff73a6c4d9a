"""The simulated marketplace: the course's embedded default dataset, with its ground truth kept.

Users with latent tastes over a category tree, price sensitivity, heavy-tailed activity, a
segment and correlated demographics, time-of-day and device habits and a slow taste drift
browse items (category, brand, price, title, launch date, long-tail appeal) in sessions over
several weeks: views, favourites, add-to-cart and purchases, with a purchase funnel, sequential
dependence inside sessions (people stay in a category), weekly seasonality, a promotion week,
reviews, and new users and items arriving over time.

Every choice is a draw from a known model (a multinomial logit over the available items), so
the truth is available to the lessons: :meth:`Marketplace.preference` gives the true utility of
any user for any item at any time, :meth:`Marketplace.oracle` ranks by it, and
:class:`~recsys_utils.simulation.simulator.Simulator` answers "what would users do with these
recommendations". :mod:`recsys_utils.data.raw_sources` derives the messy company tables from
the clean events, with a truth table of every injected defect.

Generation is vectorised (a flat cumulative-probability table sampled with one
``searchsorted`` per step) and deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import (
    CART,
    CATEGORY,
    EVENT,
    FAVORITE,
    ITEM,
    PRICE,
    PURCHASE,
    RATING,
    SEGMENT,
    SESSION,
    TIMESTAMP,
    TITLE,
    USER,
    VIEW,
)
from recsys_utils.data import taxonomy as tx

SECONDS_PER_WEEK = 7 * 24 * 3600


@dataclass(frozen=True)
class WorldConfig:
    """Size and behaviour knobs of the marketplace; the defaults are the course's dataset."""

    n_users: int = 6000
    n_items: int = 2000
    n_weeks: int = 8
    start: str = "2024-03-04"  # a Monday
    seed: int = 42
    embedding_dim: int = 8
    sessions_per_week: float = 0.75  # median user; activity is log-normal around it
    activity_sigma: float = 1.0
    session_continue: float = 0.78  # probability that a session goes on after each view
    same_category: float = 0.6  # probability that the next view stays in the previous category
    share_new_users: float = 0.3
    share_new_items: float = 0.25
    promo_week: int = 5
    promo_share: float = 0.12
    review_rate: float = 0.35


@dataclass
class Latent:
    """The hidden state that generates behaviour (what a real shop never sees)."""

    segment: np.ndarray  # (n_users,) segment index
    taste: np.ndarray  # (n_users, n_leaves) category taste
    embedding: np.ndarray  # (n_users, d) personal taste within categories
    drift: np.ndarray  # (n_users, d) change of embedding over the whole period
    price_sensitivity: np.ndarray  # (n_users,)
    activity: np.ndarray  # (n_users,) expected sessions per week
    peak_hour: np.ndarray  # (n_users,)
    device_probs: np.ndarray  # (n_users, 3)
    signup_seconds: np.ndarray  # (n_users,) seconds from start (negative: before start)
    item_leaf: np.ndarray  # (n_items,) leaf index, items sorted by leaf
    item_embedding: np.ndarray  # (n_items, d)
    appeal: np.ndarray  # (n_items,) long-tail popularity
    relative_price: np.ndarray  # (n_items,) log price minus the leaf's log typical price
    launch_seconds: np.ndarray  # (n_items,) seconds from start (negative: before start)
    promo: np.ndarray  # (n_items,) bool, discounted in the promotion week
    leaf_bounds: np.ndarray  # (n_leaves + 1,) item index range of each leaf
    leaf_top: np.ndarray  # (n_leaves,) top category of each leaf


# weights of the utility's parts; a multinomial logit over available items draws each view
TASTE_WEIGHT = 1.0
EMBEDDING_WEIGHT = 1.0
APPEAL_WEIGHT = 1.0
FRESH_BOOST = 0.8  # extra appeal of an item in its first two weeks
PROMO_BOOST = 0.6  # extra appeal of a discounted item, scaled up for price-sensitive users
VIEWED_Z = 2.0  # typical standardised utility of an item a user chooses to view
WEEKDAY_TRAFFIC = np.array([1.0, 1.0, 1.0, 1.05, 1.15, 1.45, 1.35])  # Monday first


class Marketplace:
    """A generated marketplace: clean tables, raw company sources and the ground truth.

    Attributes (all DataFrames in the course vocabulary):

    - ``users``: member data (``user_id, signup_time, age, gender, city, city_tier, member_level``)
    - ``items``: catalogue (``item_id, title, category, top_category, brand, price, launch_time``)
    - ``interactions``: clean events (``user_id, item_id, timestamp, event, session_id, device,
      quantity, price``), cancelled orders removed, time-ordered
    - ``reviews``: ``user_id, item_id, timestamp, rating`` (1-5) for some purchases
    - ``user_truth``: what generated each user (``segment``, price sensitivity, activity, ...)
    - ``raw``: the four messy sources and their truth table (built on first access)
    """

    def __init__(
        self,
        config: WorldConfig,
        latent: Latent,
        users: pd.DataFrame,
        items: pd.DataFrame,
        interactions: pd.DataFrame,
        reviews: pd.DataFrame,
        cancelled: pd.DataFrame,
    ) -> None:
        self.config = config
        self.latent = latent
        self.users = users
        self.items = items
        self.interactions = interactions
        self.reviews = reviews
        self.cancelled = cancelled
        self.start = pd.Timestamp(config.start)
        self.end = self.start + pd.Timedelta(weeks=config.n_weeks)
        self._user_pos = pd.Index(users[USER].to_numpy())
        self._item_pos = pd.Index(items[ITEM].to_numpy())

    def __repr__(self) -> str:
        return (
            f"Marketplace(users={len(self.users)}, items={len(self.items)}, "
            f"events={len(self.interactions)}, {self.start.date()} to {self.end.date()})"
        )

    @cached_property
    def user_truth(self) -> pd.DataFrame:
        lat = self.latent
        return pd.DataFrame(
            {
                USER: self.users[USER].to_numpy(),
                SEGMENT: np.asarray(list(tx.SEGMENTS))[lat.segment],
                "price_sensitivity": lat.price_sensitivity,
                "sessions_per_week": lat.activity,
                "peak_hour": lat.peak_hour,
            }
        )

    @cached_property
    def raw(self):
        """The raw company sources with injected dirt (see :mod:`recsys_utils.data.raw_sources`)."""
        from recsys_utils.data.raw_sources import make_raw_sources

        return make_raw_sources(self)

    # ----------------------------------------------------------------------------- the truth
    def user_positions(self, user_ids) -> np.ndarray:
        pos = self._user_pos.get_indexer(np.asarray(user_ids))
        if (pos < 0).any():
            raise KeyError(f"Marketplace: {int((pos < 0).sum())} unknown user ids")
        return pos

    def item_positions(self, item_ids) -> np.ndarray:
        pos = self._item_pos.get_indexer(np.asarray(item_ids))
        if (pos < 0).any():
            raise KeyError(f"Marketplace: {int((pos < 0).sum())} unknown item ids")
        return pos

    def seconds(self, at) -> float:
        """Seconds since the start of the world for a timestamp (or ``None`` = the end)."""
        at = self.end if at is None else pd.Timestamp(at)
        return (at - self.start).total_seconds()

    def preference(self, user_ids, item_ids=None, at=None, available_only: bool = True) -> np.ndarray:
        """True utility of users (rows) for items (columns) at time ``at`` (default: the end).

        Items not launched by ``at`` get ``-inf`` when ``available_only``. This is the model that
        generated the data: a learner can never see it in a real shop.
        """
        users = self.user_positions(user_ids)
        items = np.arange(len(self.items)) if item_ids is None else self.item_positions(item_ids)
        return utility(self.latent, users, items, self.seconds(at), self.config, available_only)

    def pair_preference(self, user_ids, item_ids, at=None) -> np.ndarray:
        """True utility for aligned (user, item) pairs."""
        users = self.user_positions(user_ids)
        items = self.item_positions(item_ids)
        return pair_utility(self.latent, users, items, self.seconds(at), self.config)


# --------------------------------------------------------------------------------- utility
def _time_terms(lat: Latent, items: np.ndarray, seconds: float, config: WorldConfig) -> np.ndarray:
    """Per-item appeal at a moment: base appeal + freshness + promotion."""
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


# ------------------------------------------------------------------------------ generation
def _make_items(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    leaves = tx.leaf_names()
    tops = tx.top_names()
    leaf_top = np.array([tops.index(name.split(" > ")[0]) for name in leaves])
    n_leaves = len(leaves)
    # leaf sizes: uneven, like a real catalogue
    leaf_share = rng.dirichlet(np.full(n_leaves, 4.0))
    leaf = np.sort(rng.choice(n_leaves, size=config.n_items, p=leaf_share))
    leaf = np.sort(np.concatenate([np.arange(n_leaves), leaf[: config.n_items - n_leaves]]))
    bounds = np.searchsorted(leaf, np.arange(n_leaves + 1))
    top = leaf_top[leaf]

    brand_slot = rng.integers(0, len(tx.BRAND_TIERS), size=config.n_items)
    brand = np.array([tx.BRANDS[tops[t]][b] for t, b in zip(top, brand_slot, strict=True)], dtype=object)
    typical = np.array(
        [tx.TAXONOMY[tops[leaf_top[i]]][name.split(" > ")[1]][0] for i, name in enumerate(leaves)]
    )
    log_rel = np.log(np.asarray(tx.BRAND_TIERS))[brand_slot] + rng.normal(0.0, 0.3, config.n_items)
    price = np.round(typical[leaf] * np.exp(log_rel), 0) - 0.01
    price = np.maximum(price, 0.99)

    # item taste vectors: a leaf centroid plus individual variation
    d = config.embedding_dim
    centroids = rng.normal(0.0, 0.6, (n_leaves, d))
    item_embedding = (centroids[leaf] + rng.normal(0.0, 0.8, (config.n_items, d))) / np.sqrt(d)
    # appeal: long-tail popularity, better brands slightly more appealing
    appeal = rng.normal(0.0, 1.1, config.n_items) + 0.15 * (brand_slot - 2.5) / 2.5

    launch = np.full(config.n_items, -SECONDS_PER_WEEK * 52.0)
    new = rng.random(config.n_items) < config.share_new_items
    launch[new] = rng.uniform(0, (config.n_weeks - 0.5) * SECONDS_PER_WEEK, int(new.sum()))
    launch[~new] = -rng.uniform(1, 104, int((~new).sum())) * SECONDS_PER_WEEK
    promo = rng.random(config.n_items) < config.promo_share

    adjective = np.asarray(tx.ADJECTIVES, dtype=object)[rng.integers(0, len(tx.ADJECTIVES), config.n_items)]
    suffix = np.asarray(tx.MODEL_SUFFIXES, dtype=object)[
        rng.integers(0, len(tx.MODEL_SUFFIXES), config.n_items)
    ]
    noun_pick = rng.integers(0, 3, config.n_items)
    titles = []
    for i in range(config.n_items):  # one string per item: titles are built once, not per event
        top_name, leaf_name = leaves[leaf[i]].split(" > ")
        nouns = tx.TAXONOMY[top_name][leaf_name][1]
        titles.append(f"{brand[i]} {adjective[i]} {nouns[noun_pick[i] % len(nouns)]} {suffix[i]}".strip())

    item_ids = 200001 + rng.permutation(config.n_items)
    start = pd.Timestamp(config.start)
    items = pd.DataFrame(
        {
            ITEM: item_ids,
            TITLE: titles,
            CATEGORY: np.asarray(leaves, dtype=object)[leaf],
            "top_category": np.asarray(tops, dtype=object)[top],
            "brand": brand,
            PRICE: price,
            "launch_time": start + pd.to_timedelta(np.round(launch), unit="s"),
        }
    )
    parts = dict(
        item_leaf=leaf,
        item_embedding=item_embedding,
        appeal=appeal,
        relative_price=np.log(price / typical[leaf]),
        launch_seconds=launch,
        promo=promo,
        leaf_bounds=bounds,
        leaf_top=leaf_top,
        centroids=centroids,
    )
    return items, parts


def _make_users(config: WorldConfig, rng: np.random.Generator, item_parts: dict) -> tuple[pd.DataFrame, dict]:
    names = list(tx.SEGMENTS)
    specs = [tx.SEGMENTS[s] for s in names]
    shares = np.array([s["share"] for s in specs])
    n = config.n_users
    segment = rng.choice(len(names), size=n, p=shares / shares.sum())
    tops = tx.top_names()
    n_leaves = len(item_parts["leaf_top"])

    seg_top = np.zeros((len(names), len(tops)))
    for k, spec in enumerate(specs):
        for top_name, weight in spec["tops"].items():
            seg_top[k, tops.index(top_name)] = weight
    user_top = 1.6 * seg_top[segment] + rng.normal(0.0, 0.6, (n, len(tops)))
    taste = user_top[:, item_parts["leaf_top"]] + rng.normal(0.0, 0.7, (n, n_leaves))
    taste -= taste.mean(axis=1, keepdims=True)

    d = config.embedding_dim
    seg_centre = rng.normal(0.0, 0.7, (len(names), d))
    embedding = seg_centre[segment] + rng.normal(0.0, 1.0, (n, d))
    drift = rng.normal(0.0, 0.5, (n, d))

    spec_arr = {
        key: np.array([s[key] for s in specs]) for key in ("price_sensitivity", "activity", "peak_hour")
    }
    price_sensitivity = spec_arr["price_sensitivity"][segment] + rng.normal(0.0, 0.4, n)
    activity = config.sessions_per_week * np.exp(
        spec_arr["activity"][segment] + rng.normal(0.0, config.activity_sigma, n)
    )
    peak_hour = (spec_arr["peak_hour"][segment] + rng.normal(0.0, 1.5, n)) % 24
    device_probs = (
        rng.dirichlet(np.ones(3) * 2, n) * 0.4 + 0.6 * np.array([s["devices"] for s in specs])[segment]
    )

    horizon = config.n_weeks * SECONDS_PER_WEEK
    new = rng.random(n) < config.share_new_users
    signup = -rng.uniform(1, 730, n) * 86400.0
    signup[new] = rng.uniform(0, horizon - 3 * 86400, int(new.sum()))

    age_mu = np.array([s["age"][0] for s in specs])[segment]
    age_sd = np.array([s["age"][1] for s in specs])[segment]
    age = np.clip(np.round(rng.normal(age_mu, age_sd)), 16, 80).astype(int)
    female = rng.random(n) < np.array([s["female"] for s in specs])[segment]
    tier_probs = np.array([s["city_tiers"] for s in specs])[segment]
    tier = (rng.random(n)[:, None] > np.cumsum(tier_probs, axis=1)).sum(axis=1)
    city = np.array(tx.CITIES, dtype=object)[tier, rng.integers(0, 4, n)]
    spend_rank = np.argsort(np.argsort(activity * np.exp(-0.3 * price_sensitivity))) / n
    level = np.asarray(tx.MEMBER_LEVELS, dtype=object)[np.minimum((spend_rank * 4).astype(int), 3)]

    start = pd.Timestamp(config.start)
    users = pd.DataFrame(
        {
            USER: 10001 + np.arange(n),
            "signup_time": start + pd.to_timedelta(np.round(signup), unit="s"),
            "age": age,
            "gender": np.where(female, "F", "M"),
            "city": city,
            "city_tier": tier + 1,
            "member_level": level,
        }
    )
    parts = dict(
        segment=segment,
        taste=taste,
        embedding=embedding,
        drift=drift,
        price_sensitivity=price_sensitivity,
        activity=activity,
        peak_hour=peak_hour,
        device_probs=device_probs,
        signup_seconds=signup,
    )
    return users, parts


def _sample_rows(
    cdf_flat: np.ndarray,
    n_cols: int,
    rows: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one column per row from row-wise CDFs stored flat (``cdf + row``), within [lo, hi)."""
    target = rows + lo + rng.random(len(rows)) * (hi - lo)
    flat = np.searchsorted(cdf_flat, target, side="right")
    flat = np.minimum(flat, (rows + 1) * n_cols - 1)
    return flat - rows * n_cols


def _simulate_week(
    week: int, lat: Latent, config: WorldConfig, rng: np.random.Generator, traffic: float
) -> dict[str, np.ndarray]:
    """Sessions and views of one week for every active user."""
    week_start = week * SECONDS_PER_WEEK
    n_users = len(lat.activity)
    active = lat.signup_seconds < week_start + SECONDS_PER_WEEK
    n_sessions = rng.poisson(lat.activity * traffic * active)
    users = np.repeat(np.arange(n_users), n_sessions)
    # when: weekday seasonality and each user's peak hour
    day = rng.choice(7, size=len(users), p=WEEKDAY_TRAFFIC / WEEKDAY_TRAFFIC.sum())
    hour = (lat.peak_hour[users] + rng.normal(0.0, 2.5, len(users))) % 24
    start = week_start + day * 86400.0 + hour * 3600.0
    start = np.maximum(start, lat.signup_seconds[users] + 60.0)
    keep = start < week_start + SECONDS_PER_WEEK
    users, start = users[keep], start[keep]
    device = (rng.random(len(users))[:, None] > np.cumsum(lat.device_probs[users], axis=1)).sum(axis=1)
    device = np.minimum(device, 2)
    length = np.minimum(rng.geometric(1.0 - config.session_continue, len(users)), 40)

    # the choice model of this week, for the users who come
    active_users, local = np.unique(users, return_inverse=True)
    n_items = len(lat.appeal)
    mid = week_start + SECONDS_PER_WEEK / 2
    u = utility(lat, active_users, np.arange(n_items), mid, config, available_only=False)
    # an item launched during the week becomes available from the next week on
    u[:, lat.launch_seconds > week_start] = -np.inf
    u -= u.max(axis=1, keepdims=True)
    p = np.exp(u)
    p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0
    cdf_flat = (cdf + np.arange(len(active_users))[:, None]).ravel()
    cdf_excl = cdf - p

    n_sess = len(users)
    session_items = np.full((n_sess, int(length.max(initial=1))), -1, dtype=np.int64)
    prev = _sample_rows(cdf_flat, n_items, local, np.zeros(n_sess), np.ones(n_sess), rng)
    session_items[:, 0] = prev
    bounds = lat.leaf_bounds
    for step in range(1, session_items.shape[1]):
        alive = np.flatnonzero(length > step)
        if len(alive) == 0:
            break
        rows = local[alive]
        leaf = lat.item_leaf[prev[alive]]
        lo = cdf_excl[rows, bounds[leaf]]
        hi = cdf[rows, bounds[leaf + 1] - 1]
        stay = (rng.random(len(alive)) < config.same_category) & (hi - lo > 1e-9)
        lo = np.where(stay, lo, 0.0)
        hi = np.where(stay, hi, 1.0)
        nxt = _sample_rows(cdf_flat, n_items, rows, lo, hi, rng)
        session_items[alive, step] = nxt
        prev[alive] = nxt

    # one row per view, with time gaps of about 40 s between views
    sess_idx, step_idx = np.nonzero(session_items >= 0)
    items = session_items[sess_idx, step_idx]
    gaps = rng.exponential(40.0, (n_sess, session_items.shape[1])) + 3.0
    offsets = np.cumsum(gaps, axis=1) - gaps[:, :1]
    time = start[sess_idx] + offsets[sess_idx, step_idx]
    return dict(
        user=users[sess_idx],
        item=items,
        time=time,
        session=sess_idx,
        device=device[sess_idx],
        step=step_idx,
        week=np.full(len(items), week),
    )


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
        FAVORITE: _sigmoid(-2.9 + offsets["favorite"] + 0.9 * zc),
        CART: _sigmoid(-2.3 + offsets["cart"] + 1.1 * zc),
        PURCHASE: _sigmoid(-0.3 + offsets["buy"] - 0.7 * beta * rel_price + 0.3 * zc),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _funnel(views: dict, lat: Latent, config: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Favourites, carts and purchases that follow each view, per segment."""
    z = np.empty(len(views["item"]))
    for week in np.unique(views["week"]):  # one standardisation per week (8 iterations)
        mask = views["week"] == week
        z[mask] = standardised_utility(
            lat, views["user"][mask], views["item"][mask], (week + 0.5) * SECONDS_PER_WEEK, config
        )
    probs = funnel_probabilities(lat, views["user"], views["item"], z)
    fav = rng.random(len(z)) < probs[FAVORITE]
    cart = rng.random(len(z)) < probs[CART]
    buy = cart & (rng.random(len(z)) < probs[PURCHASE])

    base = pd.DataFrame(
        {
            USER: views["user"],
            ITEM: views["item"],
            "t": views["time"],
            SESSION: views["session"],
            "device": views["device"],
            "z": z,
        }
    )
    frames = [base.assign(**{EVENT: VIEW})]
    frames.append(base[fav].assign(**{EVENT: FAVORITE, "t": base["t"][fav] + rng.uniform(2, 15, fav.sum())}))
    cart_time = base["t"][cart] + rng.uniform(5, 30, cart.sum())
    frames.append(base[cart].assign(**{EVENT: CART, "t": cart_time}))
    frames.append(
        base[buy].assign(**{EVENT: PURCHASE, "t": cart_time[buy[cart]] + rng.uniform(30, 240, buy.sum())})
    )
    return pd.concat(frames, ignore_index=True)


def generate(config: WorldConfig | None = None, **overrides) -> Marketplace:
    """Generate the marketplace for ``config`` (or the default config with ``overrides``)."""
    config = WorldConfig(**overrides) if config is None else dataclasses.replace(config, **overrides)
    rng = np.random.default_rng(config.seed)
    items, item_parts = _make_items(config, rng)
    users, user_parts = _make_users(config, rng, item_parts)
    lat = Latent(
        **{k: v for k, v in {**item_parts, **user_parts}.items() if k in Latent.__dataclass_fields__}
    )

    weekly = [
        _simulate_week(w, lat, config, rng, traffic=1.35 if w == config.promo_week else 1.0)
        for w in range(config.n_weeks)
    ]
    views = {key: np.concatenate([w[key] for w in weekly]) for key in weekly[0]}
    # session ids unique over the whole period
    offsets = np.cumsum([0] + [int(w["session"].max(initial=-1)) + 1 for w in weekly[:-1]])
    views["session"] = views["session"] + np.repeat(offsets, [len(w["item"]) for w in weekly])
    events = _funnel(views, lat, config, rng)
    horizon = config.n_weeks * SECONDS_PER_WEEK
    events = events[events["t"] < horizon]

    top_of_item = lat.leaf_top[lat.item_leaf]
    consumable = np.isin(np.asarray(tx.top_names())[top_of_item], tx.CONSUMABLE_TOPS)
    n = len(events)
    quantity = np.ones(n, dtype=np.int64)
    is_buy = (events[EVENT] == PURCHASE).to_numpy()
    extra = rng.poisson(0.6, n) * consumable[events[ITEM].to_numpy()]
    quantity[is_buy] += extra[is_buy]
    paid = items[PRICE].to_numpy()[events[ITEM].to_numpy()]
    in_promo = lat.promo[events[ITEM].to_numpy()] & ((events["t"] // SECONDS_PER_WEEK) == config.promo_week)
    paid = np.where(in_promo, np.round(paid * 0.75, 2), paid)

    start = pd.Timestamp(config.start)
    events = events.assign(quantity=np.where(is_buy, quantity, 0), price=np.where(is_buy, paid, np.nan))
    events = events.sort_values(["t", USER], kind="stable").reset_index(drop=True)
    # orders: one per purchase session; some are cancelled and leave the clean view
    events["order_id"] = np.where(events[EVENT] == PURCHASE, 7_000_000 + events[SESSION], -1)
    buy_rows = np.flatnonzero(events[EVENT].to_numpy() == PURCHASE)
    cancel_orders = np.unique(events["order_id"].to_numpy()[buy_rows])
    cancel_orders = cancel_orders[rng.random(len(cancel_orders)) < 0.04]
    cancelled_mask = np.isin(events["order_id"].to_numpy(), cancel_orders) & (events[EVENT] == PURCHASE)
    cancelled = events[cancelled_mask].copy()
    events = events[~cancelled_mask].reset_index(drop=True)

    device_names = np.asarray(tx.DEVICES, dtype=object)
    interactions = pd.DataFrame(
        {
            USER: users[USER].to_numpy()[events[USER].to_numpy()],
            ITEM: items[ITEM].to_numpy()[events[ITEM].to_numpy()],
            TIMESTAMP: start + pd.to_timedelta(np.round(events["t"].to_numpy(), 3), unit="s"),
            EVENT: events[EVENT].to_numpy(),
            SESSION: events[SESSION].to_numpy() + 1,
            "device": device_names[events["device"].to_numpy()],
            "quantity": events["quantity"].to_numpy(),
            PRICE: events[PRICE].to_numpy(),
            "order_id": events["order_id"].to_numpy(),
        }
    )
    cancelled_frame = pd.DataFrame(
        {
            USER: users[USER].to_numpy()[cancelled[USER].to_numpy()],
            ITEM: items[ITEM].to_numpy()[cancelled[ITEM].to_numpy()],
            TIMESTAMP: start + pd.to_timedelta(np.round(cancelled["t"].to_numpy(), 3), unit="s"),
            EVENT: PURCHASE,
            SESSION: cancelled[SESSION].to_numpy() + 1,
            "device": device_names[cancelled["device"].to_numpy()],
            "quantity": cancelled["quantity"].to_numpy(),
            PRICE: cancelled[PRICE].to_numpy(),
            "order_id": cancelled["order_id"].to_numpy(),
        }
    )

    # reviews of some purchases, a few days later, driven by the true utility
    buys = events[events[EVENT] == PURCHASE]
    write = rng.random(len(buys)) < config.review_rate
    buys = buys[write]
    rating = np.clip(
        np.round(3.7 + 0.8 * (buys["z"].to_numpy() - VIEWED_Z) + rng.normal(0, 0.7, len(buys))), 1, 5
    )
    review_t = buys["t"].to_numpy() + rng.uniform(1, 6, len(buys)) * 86400
    ok = review_t < horizon
    reviews = (
        pd.DataFrame(
            {
                USER: users[USER].to_numpy()[buys[USER].to_numpy()[ok]],
                ITEM: items[ITEM].to_numpy()[buys[ITEM].to_numpy()[ok]],
                TIMESTAMP: start + pd.to_timedelta(np.round(review_t[ok]), unit="s"),
                RATING: rating[ok].astype(np.int64),
            }
        )
        .sort_values(TIMESTAMP, kind="stable")
        .reset_index(drop=True)
    )

    return Marketplace(config, lat, users, items, interactions, reviews, cancelled_frame)


_CACHE: dict[WorldConfig, Marketplace] = {}


def load_marketplace(config: WorldConfig | None = None, **overrides) -> Marketplace:
    """The marketplace for a config, generated once per process and then reused."""
    config = config or WorldConfig(**overrides)
    if config not in _CACHE:
        _CACHE[config] = generate(config)
    return _CACHE[config]


__all__ = ["Marketplace", "WorldConfig", "generate", "load_marketplace", "Latent"]
