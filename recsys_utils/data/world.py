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

The parts live in their own modules: the knobs and the hidden state in
:mod:`~recsys_utils.data.world_latent`, the utility and the funnel (the truth) in
:mod:`~recsys_utils.data.world_truth`, sessions, orders and reviews in
:mod:`~recsys_utils.data.world_behaviour`; this module puts them together.

Generation is vectorised (a flat cumulative-probability table sampled with one
``searchsorted`` per step) and deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, SEGMENT, USER
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.raw_sources import RawSources, make_raw_sources
from recsys_utils.data.world_behaviour import (
    add_orders,
    cancel_orders,
    course_events,
    simulate_events,
    write_reviews,
)
from recsys_utils.data.world_complements import add_followups, complement_frame
from recsys_utils.data.world_images import render_thumbnails
from recsys_utils.data.world_latent import Latent, WorldConfig, make_latent
from recsys_utils.data.world_search import RawSearchLog, make_raw_search_log, make_searches
from recsys_utils.data.world_truth import pair_utility, utility


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
    - ``thumbnails``: a 32 x 32 RGB picture per item drawn from its hidden style (built on first
      access; :mod:`recsys_utils.data.world_images`, whose ``style_r2`` measures what they carry)
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
        """What generated each user: segment, price sensitivity, sessions per week, peak hour."""
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
    def raw(self) -> RawSources:
        """The raw company sources with injected dirt (see :mod:`recsys_utils.data.raw_sources`)."""
        return make_raw_sources(self)

    @cached_property
    def searches(self) -> pd.DataFrame:
        """Search sessions: ``search_id, user_id, timestamp, query, intent_category, ..., clicked_item_id``."""
        return make_searches(self)

    @cached_property
    def raw_search_log(self) -> RawSearchLog:
        """The search server's raw query log (typed queries with defects) and its truth table."""
        return make_raw_search_log(self, self.searches)

    @cached_property
    def thumbnails(self) -> np.ndarray:
        """32 x 32 RGB item pictures (uint8, items in table order) drawn from each item's hidden style."""
        return render_thumbnails(self.latent, self.config)

    # ----------------------------------------------------------------------------- the truth
    @cached_property
    def complements(self) -> pd.DataFrame:
        """The true complementary relation: ``source_category, target_category, strength`` (directional)."""
        return complement_frame(self.config.complement_rate)

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


def generate(config: WorldConfig | None = None, **overrides) -> Marketplace:
    """Generate the marketplace for ``config`` (or the default config with ``overrides``).

    One random generator, seeded by ``config.seed``, draws the items, the users, the sessions, the
    funnel, the orders and the reviews in this order, so a seed always gives the same world. The
    settings are checked when the config is made (:func:`~recsys_utils.data.world_latent.validate_config`);
    valid settings that still produce no event at all (one quiet user) are an error, never an empty world.
    """
    config = WorldConfig(**overrides) if config is None else dataclasses.replace(config, **overrides)
    rng = np.random.default_rng(config.seed)
    items, users, lat = make_latent(config, rng)
    events = add_orders(simulate_events(lat, config, rng), lat, items, config, rng)
    events, cancelled = cancel_orders(events, rng)
    interactions = course_events(events, users, items, config)
    if interactions.empty:
        raise ValueError(f"WorldConfig: these settings generate no events at all ({config}); raise n_users, "
                         "n_weeks or sessions_per_week")
    cancelled_frame = course_events(cancelled, users, items, config)
    reviews = write_reviews(events, users, items, config, rng)
    if config.complement_rate > 0:  # follow-ups drawn last, from their own generator
        interactions = course_events(add_followups(events, lat, items, config), users, items, config)
    return Marketplace(config, lat, users, items, interactions, reviews, cancelled_frame)


_CACHE: dict[WorldConfig, Marketplace] = {}


def load_marketplace(config: WorldConfig | None = None, **overrides) -> Marketplace:
    """The marketplace for a config, generated once per process and then reused."""
    config = config or WorldConfig(**overrides)
    if config not in _CACHE:
        _CACHE[config] = generate(config)
    return _CACHE[config]


__all__ = ["Latent", "Marketplace", "WorldConfig", "generate", "load_marketplace"]
