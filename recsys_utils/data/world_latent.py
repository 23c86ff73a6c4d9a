"""The marketplace's knobs and its hidden state: who the users and items are, before anyone shops.

:class:`WorldConfig` holds the size and behaviour knobs; :func:`make_items` draws the catalogue
(category leaves of uneven size, brands, prices around each leaf's typical price, taste vectors,
long-tail appeal, launch dates, promotions) and :func:`make_users` the members (segments with
correlated demographics, category tastes, personal taste vectors with a slow drift, price
sensitivity, log-normal activity, peak hours and devices, signup dates). :func:`make_latent`
runs both and gathers the hidden parts into a :class:`Latent`. The draws come from one
generator in a fixed order, so a seed gives the same world.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, ITEM, PRICE, TITLE, USER
from recsys_utils.data import taxonomy as tx

SECONDS_PER_WEEK = 7 * 24 * 3600
#: the default promotion week; a period of this many weeks or fewer has no promotion
DEFAULT_PROMO_WEEK = 5


@dataclass(frozen=True)
class WorldConfig:
    """Size and behaviour knobs of the marketplace; the defaults are the course's dataset.

    Every setting is checked when the config is made (:func:`validate_config`): a wrong type or a
    value outside its range (:data:`INT_RANGES`, :data:`REAL_RANGES`, ``promo_week`` within the
    period) is an error naming the setting and the allowed range.
    """

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
    promo_week: int = 5  # the week (0 = the first) with the promotion: 0 to n_weeks - 1, or the default 5
    promo_share: float = 0.12
    review_rate: float = 0.35
    complement_rate: float = 1.0  # scales the complementary follow-up table (0 = no follow-ups)

    def __post_init__(self) -> None:
        validate_config(self)


#: whole-number settings: (smallest, largest) allowed; ``n_items`` needs one item per category leaf
INT_RANGES = {"n_users": (1, 5_000_000), "n_items": (len(tx.leaf_names()), 1_000_000), "n_weeks": (1, 520),
              "seed": (0, 2**63 - 1), "embedding_dim": (1, 512)}
#: real-valued settings: (low, high, low included, high included)
REAL_RANGES = {"sessions_per_week": (0.0, 50.0, False, True), "activity_sigma": (0.0, 3.0, True, True),
               "session_continue": (0.0, 1.0, True, False), "same_category": (0.0, 1.0, True, True),
               "share_new_users": (0.0, 1.0, True, True), "share_new_items": (0.0, 1.0, True, True),
               "promo_share": (0.0, 1.0, True, True), "review_rate": (0.0, 1.0, True, True),
               "complement_rate": (0.0, 5.0, True, True)}


def _bad(name: str, value, problem: str) -> str:
    return f"WorldConfig: {name} = {value!r} {problem}"


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(_bad(name, value, f"is not a whole number; use an int from {low:,} to {high:,}"))
    if not low <= value <= high:
        raise ValueError(_bad(name, value, f"is out of range; it must be at least {low:,} and at most {high:,}"
                              + (" (one item per category leaf)" if name == "n_items" else "")))


def _check_real(name: str, value, low: float, high: float, closed_low: bool, closed_high: bool) -> None:
    lo = f"from {low:g}" if closed_low else f"above {low:g}"
    hi = f"up to {high:g}" if closed_high else f"below {high:g}"
    allowed = f"between {low:g} and {high:g}" if closed_low and closed_high else f"{lo}, {hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(_bad(name, value, f"is not a number; use a number {allowed}"))
    inside = (low <= value if closed_low else low < value) and (value <= high if closed_high else value < high)
    if not inside:  # also NaN, which compares false with everything
        raise ValueError(_bad(name, value, f"is out of range; it must be {allowed}"))


def validate_config(config: WorldConfig) -> None:
    """Check every setting's type and range and the settings that depend on each other.

    Raises ``TypeError`` / ``ValueError`` naming the setting, its value and the allowed range, so a
    nonsense world (no users, a share of 2, a promotion after the last week) is never generated.
    """
    for name, (low, high) in INT_RANGES.items():
        _check_int(name, getattr(config, name), low, high)
    for name, bounds in REAL_RANGES.items():
        _check_real(name, getattr(config, name), *bounds)
    _check_int("promo_week", config.promo_week, 0, INT_RANGES["n_weeks"][1])
    if config.promo_week > config.n_weeks - 1 and config.promo_week != DEFAULT_PROMO_WEEK:
        raise ValueError(_bad("promo_week", config.promo_week, f"is out of range; it must be between 0 and "
                              f"{config.n_weeks - 1} (n_weeks - 1), counting weeks from 0 (the default "
                              f"{DEFAULT_PROMO_WEEK} is also accepted for a shorter period, which then has no "
                              "promotion week)"))
    try:
        start = pd.Timestamp(config.start) if isinstance(config.start, str) else None
    except ValueError:
        start = None
    if start is None or pd.isna(start):
        raise ValueError(_bad("start", config.start, "is not a date; use a date string such as '2024-03-04'"))


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




def make_items(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """The catalogue and the items' hidden parts: leaf, taste vector, appeal, launch, promotion."""
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


def make_users(config: WorldConfig, rng: np.random.Generator, item_parts: dict) -> tuple[pd.DataFrame, dict]:
    """Members and their hidden parts: segment, tastes, drift, price sensitivity, activity, habits."""
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



def make_latent(config: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, Latent]:
    """Items, users and the :class:`Latent` state that generates their behaviour (items drawn first)."""
    items, item_parts = make_items(config, rng)
    users, user_parts = make_users(config, rng, item_parts)
    lat = Latent(
        **{k: v for k, v in {**item_parts, **user_parts}.items() if k in Latent.__dataclass_fields__}
    )
    return items, users, lat


__all__ = ["SECONDS_PER_WEEK", "Latent", "WorldConfig", "make_items", "make_latent", "make_users", "validate_config"]
