"""Behaviour of the marketplace's users: sessions of views, the purchase funnel, orders and reviews.

Each week every active user comes back a Poisson number of times (more on weekends and in the
promotion week) at their habitual hour; a session is a chain of views drawn from the week's
multinomial logit over available items (:mod:`recsys_utils.data.world_truth`), staying in the
previous item's category with probability ``same_category`` and going on with probability
``session_continue``. Sampling is vectorised: one flat cumulative-probability table and one
``searchsorted`` per step for all sessions. Every view may lead to a favourite, an add-to-cart
and a purchase (:func:`~recsys_utils.data.world_truth.funnel_probabilities`); purchases get
quantities and paid prices, some orders are cancelled, and some purchases are reviewed.

The dense users x items tables of a week (choice probabilities, utilities to standardise) are
built for blocks of users (about 32 MiB each), so memory grows with the events rather than with
users x items; the walk's uniform draws are made up front in the order the walk uses them, so any
block size gives the same world, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import (
    CART,
    EVENT,
    FAVORITE,
    ITEM,
    PRICE,
    PURCHASE,
    RATING,
    SESSION,
    TIMESTAMP,
    USER,
    VIEW,
)
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.world_latent import SECONDS_PER_WEEK, Latent, WorldConfig
from recsys_utils.data.world_truth import VIEWED_Z, funnel_probabilities, standardised_utility, utility

WEEKDAY_TRAFFIC = np.array([1.0, 1.0, 1.0, 1.05, 1.15, 1.45, 1.35])  # Monday first
PROMO_TRAFFIC = 1.35  # more sessions in the promotion week
PROMO_DISCOUNT = 0.75  # price paid for a discounted item, as a share of the list price
CANCEL_SHARE = 0.04  # share of orders cancelled later


def sample_rows(
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


#: float64 cells per user block of the weekly choice tables (p and its cumulative sums): ~32 MiB each
_BLOCK_CELLS = 4_000_000


def _user_blocks(n_users: int, n_items: int) -> list[slice]:
    """Consecutive blocks of the week's active users, small enough that ``rows x n_items`` stays bounded.

    No block holds a single user unless there is only one: numpy multiplies a one-row matrix with
    a different BLAS routine (gemv), whose last bits can differ from the matrix product's.
    """
    if n_users <= 0:
        return []  # a week with no active user
    rows = max(2, _BLOCK_CELLS // max(n_items, 1))
    starts = list(range(0, n_users, rows))
    if len(starts) > 1 and n_users - starts[-1] == 1:
        starts.pop()  # the last user joins the block before
    return [slice(start, stop) for start, stop in zip(starts, starts[1:] + [n_users], strict=True)]


def _view_blocks(users: np.ndarray, n_items: int) -> list[np.ndarray]:
    """Positions of ``users`` grouped in blocks of whole users, as many per block as :func:`_user_blocks` allows."""
    order = np.argsort(users, kind="stable")
    first = np.flatnonzero(np.r_[True, np.diff(users[order]) != 0])  # where each user's run starts
    starts = np.r_[first, len(users)]
    return [order[starts[b.start]:starts[b.stop]] for b in _user_blocks(len(first), n_items)]


def _draw_uniforms(length: np.ndarray, max_steps: int, local: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Every uniform draw of the session walks, in the order the walk makes them.

    Step 0 draws one number per session; each later step draws, for the sessions still going
    (``length > step``, known up front), one number for staying in the category and one for the
    item. Drawing them before the walk lets the walk run block by block of users; each step also
    keeps its sessions' user rows (sorted, so a block's sessions are one slice).
    """
    first = rng.random(len(length))
    steps = []
    for step in range(1, max_steps):
        alive = np.flatnonzero(length > step)
        if len(alive) == 0:
            break
        stay = rng.random(len(alive))
        steps.append((alive, local[alive], stay, rng.random(len(alive))))
    return first, steps


def _search_block(cdf_flat: np.ndarray, first_row: int, n_cols: int, rows: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """:func:`sample_rows` with given draws on the block of rows from ``first_row`` (same arithmetic)."""
    target = rows + lo + draws * (hi - lo)
    flat = np.searchsorted(cdf_flat, target, side="right") + first_row * n_cols
    flat = np.minimum(flat, (rows + 1) * n_cols - 1)
    return flat - rows * n_cols


def _sample_sessions(block: slice, active_users: np.ndarray, local: np.ndarray,
                     first_draws: np.ndarray, step_draws: list, session_items: np.ndarray, week_start: float,
                     lat: Latent, config: WorldConfig) -> None:
    """Walk the sessions of one block of active users (rows of ``local`` are sorted by user)."""
    n_items = len(lat.appeal)
    mid = week_start + SECONDS_PER_WEEK / 2
    u = utility(lat, active_users[block], np.arange(n_items), mid, config, available_only=False)
    # an item launched during the week becomes available from the next week on
    u[:, lat.launch_seconds > week_start] = -np.inf
    u -= u.max(axis=1, keepdims=True)
    p = np.exp(u, out=u)
    p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0
    cdf_flat = (cdf + np.arange(block.start, block.stop)[:, None]).ravel()
    sessions = slice(*np.searchsorted(local, [block.start, block.stop]))
    rows = local[sessions]
    zeros, ones = np.zeros(len(rows)), np.ones(len(rows))
    session_items[sessions, 0] = _search_block(cdf_flat, block.start, n_items, rows, zeros, ones,
                                               first_draws[sessions])
    bounds = lat.leaf_bounds
    for step, (alive, alive_rows, stay_draws, item_draws) in enumerate(step_draws, start=1):
        part = slice(*np.searchsorted(alive_rows, [block.start, block.stop]))
        alive, rows = alive[part], alive_rows[part]
        if len(alive) == 0:
            continue
        leaf = lat.item_leaf[session_items[alive, step - 1]]
        in_block = rows - block.start
        lo = cdf[in_block, bounds[leaf]] - p[in_block, bounds[leaf]]
        hi = cdf[in_block, bounds[leaf + 1] - 1]
        stay = (stay_draws[part] < config.same_category) & (hi - lo > 1e-9)
        lo = np.where(stay, lo, 0.0)
        hi = np.where(stay, hi, 1.0)
        session_items[alive, step] = _search_block(cdf_flat, block.start, n_items, rows, lo, hi, item_draws[part])


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

    # the choice model of this week, for the users who come, in blocks of users (memory ~ events)
    active_users, local = np.unique(users, return_inverse=True)
    n_sess = len(users)
    session_items = np.full((n_sess, int(length.max(initial=1))), -1, dtype=np.int64)
    first_draws, step_draws = _draw_uniforms(length, session_items.shape[1], local, rng)
    for block in _user_blocks(len(active_users), len(lat.appeal)):
        _sample_sessions(block, active_users, local, first_draws, step_draws, session_items, week_start, lat, config)

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


def funnel_events(views: dict, lat: Latent, config: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Favourites, carts and purchases that follow each view, per segment."""
    z = np.empty(len(views["item"]))
    for week in np.unique(views["week"]):  # one standardisation per week, by blocks of users
        week_rows = np.flatnonzero(views["week"] == week)
        for rows in _view_blocks(views["user"][week_rows], len(lat.appeal)):
            rows = week_rows[rows]
            z[rows] = standardised_utility(
                lat, views["user"][rows], views["item"][rows], (week + 0.5) * SECONDS_PER_WEEK, config
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


def simulate_events(lat: Latent, config: WorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Views of every week and the funnel events that follow them, before the horizon.

    Users and items are positions, times ``t`` seconds from the start; session ids are unique
    over the whole period.
    """
    weekly = [
        _simulate_week(w, lat, config, rng, traffic=PROMO_TRAFFIC if w == config.promo_week else 1.0)
        for w in range(config.n_weeks)
    ]
    views = {key: np.concatenate([w[key] for w in weekly]) for key in weekly[0]}
    offsets = np.cumsum([0] + [int(w["session"].max(initial=-1)) + 1 for w in weekly[:-1]])
    views["session"] = views["session"] + np.repeat(offsets, [len(w["item"]) for w in weekly])
    events = funnel_events(views, lat, config, rng)
    horizon = config.n_weeks * SECONDS_PER_WEEK
    return events[events["t"] < horizon]


def add_orders(
    events: pd.DataFrame, lat: Latent, items: pd.DataFrame, config: WorldConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Quantities (more for consumables) and paid prices of purchases, time order, one order id per session."""
    top_of_item = lat.leaf_top[lat.item_leaf]
    consumable = np.isin(np.asarray(tx.top_names())[top_of_item], tx.CONSUMABLE_TOPS)
    n = len(events)
    quantity = np.ones(n, dtype=np.int64)
    is_buy = (events[EVENT] == PURCHASE).to_numpy()
    extra = rng.poisson(0.6, n) * consumable[events[ITEM].to_numpy()]
    quantity[is_buy] += extra[is_buy]
    paid = items[PRICE].to_numpy()[events[ITEM].to_numpy()]
    in_promo = lat.promo[events[ITEM].to_numpy()] & ((events["t"] // SECONDS_PER_WEEK) == config.promo_week)
    paid = np.where(in_promo, np.round(paid * PROMO_DISCOUNT, 2), paid)
    events = events.assign(quantity=np.where(is_buy, quantity, 0), price=np.where(is_buy, paid, np.nan))
    events = events.sort_values(["t", USER], kind="stable").reset_index(drop=True)
    events["order_id"] = np.where(events[EVENT] == PURCHASE, 7_000_000 + events[SESSION], -1)
    return events


def cancel_orders(events: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cancel a share of the orders: (events without their purchases, the cancelled purchases)."""
    buy_rows = np.flatnonzero(events[EVENT].to_numpy() == PURCHASE)
    orders = np.unique(events["order_id"].to_numpy()[buy_rows])
    orders = orders[rng.random(len(orders)) < CANCEL_SHARE]
    cancelled = np.isin(events["order_id"].to_numpy(), orders) & (events[EVENT] == PURCHASE)
    return events[~cancelled].reset_index(drop=True), events[cancelled].copy()


def course_events(events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, config: WorldConfig
                  ) -> pd.DataFrame:
    """Events by position and seconds as the course's table: ids, timestamps, 1-based sessions, devices."""
    start = pd.Timestamp(config.start)
    device_names = np.asarray(tx.DEVICES, dtype=object)
    return pd.DataFrame(
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


def write_reviews(events: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, config: WorldConfig,
                  rng: np.random.Generator) -> pd.DataFrame:
    """Reviews of some purchases a few days later, rated by the true (standardised) utility."""
    start = pd.Timestamp(config.start)
    horizon = config.n_weeks * SECONDS_PER_WEEK
    buys = events[events[EVENT] == PURCHASE]
    write = rng.random(len(buys)) < config.review_rate
    buys = buys[write]
    rating = np.clip(
        np.round(3.7 + 0.8 * (buys["z"].to_numpy() - VIEWED_Z) + rng.normal(0, 0.7, len(buys))), 1, 5
    )
    review_t = buys["t"].to_numpy() + rng.uniform(1, 6, len(buys)) * 86400
    ok = review_t < horizon
    return (
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


__all__ = ["add_orders", "cancel_orders", "course_events", "funnel_events", "sample_rows", "simulate_events",
           "write_reviews"]
