"""The marketplace as an online environment: what users do with the recommendations they see.

A shown list is answered with the same behaviour model that generated the logs: a user examines
position ``r`` with probability ``1 / log2(r + 1)`` (position bias), clicks an examined item with
a probability that grows with its true (user-standardised) utility, and buys a clicked item with
the funnel's add-to-cart and purchase probabilities. :meth:`Simulator.expected` gives the exact
expectations (the truth an A/B test estimates); :meth:`Simulator.respond` draws outcomes, seeded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CART, ITEM, PURCHASE, RANK, USER
from recsys_utils.data.interactions import Interactions
from recsys_utils.data.world_truth import VIEWED_Z, funnel_probabilities, sigmoid, standardised_utility, utility
from recsys_utils.models.base import Recommender


class Simulator:
    """Clicks and purchases of marketplace users on recommendation lists, under the truth."""

    CLICK_BIAS = -1.6
    CLICK_SLOPE = 1.2

    def __init__(self, world, seed: int = 0) -> None:
        self.world = world
        self.rng = np.random.default_rng(seed)

    def expected(self, recommendations: pd.DataFrame, at=None) -> pd.DataFrame:
        """Add ``p_click`` and ``p_purchase`` (exact expectations) to a ``user_id, item_id, rank`` frame."""
        ranks = shown_ranks(recommendations, "Simulator")
        world = self.world
        users = world.user_positions(recommendations[USER].to_numpy())
        items = world.item_positions(recommendations[ITEM].to_numpy())
        truth = true_funnel(world, users, items, ranks, world.seconds(at))
        out = recommendations.copy()
        out["p_click"] = truth["p_click"]
        out["p_purchase"] = truth["p_click"] * truth["p_cart"] * truth["p_buy"]
        return out

    def respond(self, recommendations: pd.DataFrame, at=None) -> pd.DataFrame:
        """Draw clicks and purchases for the shown lists (``clicked``, ``purchased`` columns)."""
        out = self.expected(recommendations, at)
        draw = self.rng.random(len(out))
        out["clicked"] = draw < out["p_click"].to_numpy()
        buy_given_click = np.divide(
            out["p_purchase"].to_numpy(),
            out["p_click"].to_numpy(),
            out=np.zeros(len(out)),
            where=out["p_click"].to_numpy() > 0,
        )
        out["purchased"] = out["clicked"].to_numpy() & (self.rng.random(len(out)) < buy_given_click)
        return out


def shown_ranks(frame: pd.DataFrame, who: str) -> np.ndarray:
    """The ``rank`` column of a frame of shown items as floats, after checking its id and rank columns."""
    missing = [c for c in (USER, ITEM, RANK) if c not in frame.columns]
    if missing:
        raise KeyError(f"{who}: rows lack column(s) {missing} (columns: {list(frame.columns)})")
    ranks = pd.to_numeric(frame[RANK], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ranks) | (ranks < 1) | (ranks % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{who}: rank must be a whole number >= 1 (ranks start at 1); row {row} has "
                         f"{frame[RANK].iloc[row]!r}")
    return ranks


def true_funnel(world, users: np.ndarray, items: np.ndarray, ranks: np.ndarray, seconds: float) -> dict:
    """The truth of showing item ``items[n]`` at ``ranks[n]`` to user ``users[n]`` (positions) at ``seconds``:
    ``p_click`` (examination ``1 / log2(r + 1)`` times attraction), ``p_cart`` (add to cart given a click)
    and ``p_buy`` (purchase given a cart); all 0 for an item not launched yet (its utility is undefined)."""
    lat = world.latent
    z = standardised_utility(lat, users, items, seconds, world.config)
    attract = sigmoid(Simulator.CLICK_BIAS + Simulator.CLICK_SLOPE * (z - VIEWED_Z))
    launched = lat.launch_seconds[items] <= seconds
    funnel = funnel_probabilities(lat, users, items, z)
    return {"p_click": np.where(launched, attract / np.log2(ranks + 1.0), 0.0),
            "p_cart": np.where(launched, funnel[CART], 0.0),
            "p_buy": np.where(launched, funnel[PURCHASE], 0.0)}


class OracleRecommender(Recommender):
    """Ranks items by the marketplace's true utility at ``at``: the ceiling no model can pass.

    Items not launched by ``at`` are ranked last. Users and items of the training matrix must
    exist in the world.
    """

    name = "oracle"

    def __init__(self, world, at=None) -> None:
        super().__init__()
        self.world = world
        self.at = at

    def _fit(self, train: Interactions) -> None:
        self._users = self.world.user_positions(train.users.ids)
        self._items = self.world.item_positions(train.items.ids)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        world = self.world
        scores = utility(
            world.latent,
            self._users[np.asarray(user_indices)],
            self._items,
            world.seconds(self.at),
            world.config,
            available_only=True,
        )
        return np.where(np.isfinite(scores), scores, -1e6).astype(np.float32)
