"""An impression log with the truth: slates shown to users, the simulator's true click and purchase
probabilities of every impression, realised click / add-to-cart / purchase labels, and leak-free features.

Real CTR and CVR data are *impressions*: what a production ranker showed, which of it was clicked, and
which clicks turned into purchases. The marketplace logs only what users did, so this module replays a
period: every session of the period is a slate request (its user, device and start time); a production
policy (any fitted :class:`~recsys_utils.models.base.Recommender`) fills ``k`` positions with its top
items among those launched by then, and a share ``explore`` of positions shows a random launched item
instead (exploration keeps the log from seeing only the policy's favourites). Each impression then gets
the truth of :class:`~recsys_utils.simulation.simulator.Simulator` at the end of the request's day:

* ``p_click`` = examination at the position x attraction of the item (the simulator's click model);
* ``p_cart`` = P(add to cart | click) and ``p_buy`` = P(purchase | cart) from
  :func:`~recsys_utils.data.world_truth.funnel_probabilities`;
* ``p_cvr`` = ``p_cart * p_buy``: the true purchase-given-click probability (what a CVR model estimates),
  and ``p_ctcvr`` = ``p_click * p_cvr`` (= the simulator's ``p_purchase``).

Labels are drawn down the funnel (``clicked`` → ``carted`` → ``purchased``), seeded. Features of the
impressions come from :mod:`recsys_utils.simulation.impression_features`. Ma et al. (2018, "Entire Space
Multi-Task Model", SIGIR) describe exactly this impression → click → purchase log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.topk import top_k
from recsys_utils.core.vocabulary import ITEM, RANK, TIMESTAMP, USER
from recsys_utils.models.base import Recommender
from recsys_utils.simulation.simulator import shown_ranks, true_funnel

__all__ = ["TRUTH_COLUMNS", "impression_log", "impression_truth", "slate_requests"]

DEVICE = "device"
SESSION = "session_id"
SLATE = "slate_id"
#: the truth columns :func:`impression_truth` adds
TRUTH_COLUMNS = ("p_click", "p_cart", "p_buy", "p_cvr", "p_ctcvr")


def slate_requests(events: pd.DataFrame, start, end, max_requests: int | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """One slate request per session that starts in ``[start, end)``: ``user_id, timestamp[, device]``
    of the session's first event (``max_requests`` keeps a seeded random subset, in time order)."""
    missing = [c for c in (USER, TIMESTAMP, SESSION) if c not in events.columns]
    if missing:
        raise KeyError(f"slate_requests: events lack column(s) {missing} (columns: {list(events.columns)})")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if not start < end:
        raise ValueError(f"slate_requests: start {start} must be before end {end}")
    keep = [c for c in (USER, TIMESTAMP, DEVICE, SESSION) if c in events.columns]
    first = events[keep].sort_values(TIMESTAMP, kind="stable").drop_duplicates(SESSION)
    time = pd.to_datetime(first[TIMESTAMP])
    out = first[((time >= start) & (time < end)).to_numpy()].drop(columns=SESSION)
    if len(out) == 0:
        raise ValueError(f"slate_requests: no session starts between {start} and {end}")
    if max_requests is not None and len(out) > max_requests:
        out = out.sample(n=max_requests, random_state=seed).sort_values(TIMESTAMP, kind="stable")
    return out.reset_index(drop=True)


def _slates(policy: Recommender, requests: pd.DataFrame, launch: np.ndarray, k: int, explore: float,
            rng: np.random.Generator) -> np.ndarray:
    """``(n_requests, k)`` item indices of the policy's catalogue: its top-k among the items launched
    by each request's time, each position replaced by a random launched item with probability ``explore``."""
    train = policy.train_
    users = train.users.to_index(requests[USER].to_numpy(), missing="ignore")
    req_time = pd.to_datetime(requests[TIMESTAMP]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    out = np.empty((len(requests), k), dtype=np.int64)
    popularity = np.asarray(train.matrix.sum(axis=0)).ravel().astype(np.float32)
    for begin in range(0, len(requests), 1024):
        rows = slice(begin, begin + 1024)
        known = users[rows] >= 0
        scores = np.tile(popularity, (len(known), 1))  # users the policy never saw get the popular items
        if known.any():
            scores[known] = policy.score(users[rows][known])
        unavailable = launch[None, :] > req_time[rows, None]
        scores = np.where(unavailable, -np.inf, scores)
        out[rows] = top_k(scores, k)
        # exploration: a uniform draw among launched items (a draw already in the slate keeps the policy's item)
        weights = (~unavailable).astype(np.float64)
        cdf = np.cumsum(weights, axis=1)
        draws = (cdf < rng.random(len(weights))[:, None] * cdf[:, -1:]).sum(axis=1)
        swap = rng.random((len(weights), k)) < explore
        position = rng.integers(0, k, len(weights))
        swap &= np.arange(k)[None, :] == position[:, None]  # at most one explored item per slate
        fresh = ~(out[rows] == draws[:, None]).any(axis=1)
        out[rows] = np.where(swap & fresh[:, None], draws[:, None], out[rows])
    return out


def impression_log(world, policy: Recommender, requests: pd.DataFrame, k: int = 10, explore: float = 0.3,
                   seed: int = 0) -> pd.DataFrame:
    """Impressions of ``policy``'s slates for ``requests`` (from :func:`slate_requests`), with the truth
    (:func:`impression_truth`) and drawn labels ``clicked, carted, purchased``.

    ``explore`` is the probability that a slate shows one random launched item at a random position.
    Returns one row per impression: ``slate_id, user_id, item_id, rank, timestamp[, device]``, the truth
    columns :data:`TRUTH_COLUMNS` and the labels (0/1 integers), ordered by slate and rank.
    """
    if k < 1:
        raise ValueError(f"impression_log: k must be >= 1, got {k}")
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"impression_log: explore must lie in [0, 1], got {explore}")
    if getattr(policy, "train_", None) is None:
        raise ValueError("impression_log: the policy is not fitted; call policy.fit(history) first")
    missing = [c for c in (USER, TIMESTAMP) if c not in requests.columns]
    if missing:
        raise KeyError(f"impression_log: requests lack column(s) {missing} (columns: {list(requests.columns)})")
    item_ids = policy.train_.items.ids
    k = min(k, len(item_ids))
    launch = pd.to_datetime(world.items.set_index(ITEM)["launch_time"].reindex(item_ids)).to_numpy()
    launch = launch.astype("datetime64[ns]").astype(np.int64)
    rng = np.random.default_rng(seed)
    slates = _slates(policy, requests, launch, k, explore, rng)
    n = len(requests)
    frame = requests.loc[np.repeat(np.arange(n), k)].reset_index(drop=True)
    frame.insert(0, SLATE, np.repeat(np.arange(n), k))
    frame[ITEM] = item_ids[slates.ravel()]
    frame[RANK] = np.tile(np.arange(1, k + 1), n)
    frame = impression_truth(world, frame)
    draws = rng.random((3, len(frame)))
    clicked = draws[0] < frame["p_click"].to_numpy()
    carted = clicked & (draws[1] < frame["p_cart"].to_numpy())
    frame["clicked"] = clicked.astype(np.int8)
    frame["carted"] = carted.astype(np.int8)
    frame["purchased"] = (carted & (draws[2] < frame["p_buy"].to_numpy())).astype(np.int8)
    return frame


def impression_truth(world, impressions: pd.DataFrame) -> pd.DataFrame:
    """Add the true :data:`TRUTH_COLUMNS` to ``user_id, item_id, rank, timestamp`` rows, evaluated at the
    last second of each row's day (the same click model and funnel as :meth:`Simulator.expected` then)."""
    if TIMESTAMP not in impressions.columns:
        raise KeyError(f"impression_truth: rows lack column(s) {[TIMESTAMP]} (columns: {list(impressions.columns)})")
    ranks = shown_ranks(impressions, "impression_truth")
    users = world.user_positions(impressions[USER].to_numpy())
    items = world.item_positions(impressions[ITEM].to_numpy())
    days = pd.to_datetime(impressions[TIMESTAMP]).dt.floor("D").to_numpy()
    out = {name: np.zeros(len(impressions)) for name in TRUTH_COLUMNS}
    for day in np.unique(days):  # one truth per day: the world's time terms move daily
        rows = np.flatnonzero(days == day)
        seconds = world.seconds(pd.Timestamp(day) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))
        for name, values in true_funnel(world, users[rows], items[rows], ranks[rows], seconds).items():
            out[name][rows] = values
    out["p_cvr"] = out["p_cart"] * out["p_buy"]
    out["p_ctcvr"] = out["p_click"] * out["p_cvr"]
    result = impressions.copy()
    for name in TRUTH_COLUMNS:
        result[name] = out[name]
    return result
