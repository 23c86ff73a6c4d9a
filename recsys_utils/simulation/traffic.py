"""Simulated days of traffic against a running recommendation service, with changes of the world.

Each simulated day, ``visitors_per_day`` users drawn from a pool ask the service over HTTP for a list
(``GET /recommend``), the :class:`~recsys_utils.simulation.simulator.Simulator` answers with clicks and
purchases under the marketplace's truth, and the clicks and purchases go back as feedback
(``POST /events``), as a shop's front end would send them. Per day it returns the online metrics a
dashboard shows (CTR, purchases per visit, coverage, latency, fallback share) and the raw score
samples a drift detector needs. ``changes`` maps a day to a function run before that day's traffic:
a model reload, a broken feature feed, a shift of tastes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, PURCHASE, RANK, USER, VIEW
from recsys_utils.simulation.simulator import Simulator


@dataclass
class TrafficLog:
    """The days' online metrics (``daily``, one row per day) and per-day samples for drift detection:
    ``scores`` (the pipeline's ranker scores of the shown items) and ``shown`` (item ids shown)."""

    daily: pd.DataFrame
    scores: dict[int, np.ndarray] = field(default_factory=dict)
    shown: dict[int, np.ndarray] = field(default_factory=dict)


def _lists(client: httpx.Client, users: np.ndarray, k: int) -> tuple[pd.DataFrame, list[float], int, list[float]]:
    """Ask the service for each user's list: the shown (user, item, rank) rows, latencies, fallbacks, scores."""
    rows, latencies, scores, fallbacks = [], [], [], 0
    for user in users.tolist():
        begin = time.perf_counter()
        answer = client.get("/recommend", params={"user_id": user, "k": k})
        latencies.append(1e3 * (time.perf_counter() - begin))
        answer.raise_for_status()
        body = answer.json()
        fallbacks += body["source"] != "pipeline"
        rows += [(user, item, rank) for rank, item in enumerate(body["items"], start=1)]
        if body["source"] == "pipeline":
            scores += [s for s in body["scores"] if s is not None]
    return pd.DataFrame(rows, columns=[USER, ITEM, RANK]), latencies, fallbacks, scores


def _feedback(client: httpx.Client, shown: pd.DataFrame, seconds: float, batch: int = 400) -> None:
    """Post the day's clicks (as views) and purchases back to the service, in bounded batches."""
    events = [{"user_id": int(u), "item_id": int(i), "event": VIEW, "timestamp": seconds}
              for u, i in shown.loc[shown["clicked"], [USER, ITEM]].itertuples(index=False)]
    events += [{"user_id": int(u), "item_id": int(i), "event": PURCHASE, "timestamp": seconds}
               for u, i in shown.loc[shown["purchased"], [USER, ITEM]].itertuples(index=False)]
    for start in range(0, len(events), batch):
        client.post("/events", json={"events": events[start:start + batch]}).raise_for_status()


def simulate_traffic(base_url: str, simulator: Simulator, visitors: Sequence[int], start, days: int,
                     visitors_per_day: int = 200, k: int = 10, n_items: int | None = None,
                     changes: dict[int, Callable[[], None]] | None = None, seed: int = 0,
                     timeout: float = 10.0) -> TrafficLog:
    """Run ``days`` simulated days (day 1 starts at ``start``) of ``visitors_per_day`` visits each.

    ``visitors`` are world user ids (known to the model or not: unknown ones get the fallback);
    ``n_items`` (the catalogue size) turns distinct shown items into coverage.
    """
    visitors = np.asarray(visitors)
    if days < 1 or visitors_per_day < 1 or len(visitors) == 0:
        raise ValueError(f"simulate_traffic: need days >= 1, visitors_per_day >= 1 and a visitor pool, got "
                         f"{days}, {visitors_per_day}, {len(visitors)}")
    rng = np.random.default_rng(seed)
    changes = dict(changes or {})
    start = pd.Timestamp(start)
    log = TrafficLog(pd.DataFrame())
    rows = []
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for day in range(1, days + 1):
            if day in changes:
                changes[day]()
            at = start + pd.Timedelta(days=day - 1, hours=12)
            users = rng.choice(visitors, size=visitors_per_day, replace=True)
            shown, latencies, fallbacks, scores = _lists(client, users, k)
            shown = simulator.respond(shown, at=at)
            _feedback(client, shown, simulator.world.seconds(at))
            log.scores[day], log.shown[day] = np.asarray(scores), shown[ITEM].to_numpy()
            distinct = shown[ITEM].nunique()
            rows.append({"day": day, "visits": visitors_per_day, "impressions": len(shown),
                         "ctr": float(shown["clicked"].mean()) if len(shown) else np.nan,
                         "purchases_per_visit": float(shown["purchased"].sum()) / visitors_per_day,
                         "coverage": distinct / n_items if n_items else float(distinct),
                         "p95_ms": float(np.percentile(latencies, 95)), "fallback_share": fallbacks / visitors_per_day})
    log.daily = pd.DataFrame(rows).set_index("day")
    return log


def shift_tastes(world, share: float = 1.0, seed: int = 0) -> Callable[[], None]:
    """A taste shift: ``share`` of the users take over another user's category tastes and taste vector
    (a permutation among them, so the population's overall tastes stay about the same while each
    person's change). Changes ``world.latent`` in place; returns the function that undoes it."""
    if not 0 < share <= 1:
        raise ValueError(f"shift_tastes: share must be in (0, 1], got {share}")
    lat = world.latent
    rng = np.random.default_rng(seed)
    movers = np.flatnonzero(rng.random(len(lat.taste)) < share)
    target = rng.permutation(movers)
    saved = {name: getattr(lat, name).copy() for name in ("taste", "embedding", "drift")}
    for name in saved:
        getattr(lat, name)[movers] = saved[name][target]

    def undo() -> None:
        for name, values in saved.items():
            getattr(lat, name)[:] = values

    return undo
