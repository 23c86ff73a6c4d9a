"""Search sessions of the marketplace: typed queries, their true intent and the clicked result.

Some sessions start with a search. The user's intent is a leaf category drawn from their true
category taste (a Gumbel-max draw, so a softmax over ``taste``) and one of that leaf's product
nouns; the query holds the noun's words, sometimes an adjective and sometimes a brand of the top
category (price-sensitive users name cheap brands). The items that match the intent are the
leaf's items with that noun in the title. The click is drawn from the world's choice model (a
multinomial logit over the true utility, Train 2009 ch. 3) restricted to the matching items that
are on sale, with a bonus for items that carry a word the user typed (a stated preference).

:func:`search_utility` is the truth of a search: the utility of every item for (user, query,
moment), ``-inf`` outside the intent; :func:`search_relevance` turns it into graded relevance
(0-3 by quartile of utility among the matching items) for NDCG (Järvelin & Kekäläinen 2002).
:func:`make_raw_search_log` writes the queries the way a search server logs them (mixed case,
stray spaces, typos, empty queries) with a truth table of the defects.

Everything draws from its own generator ``np.random.default_rng([seed, 24])``, so the world's
other tables are unchanged. The truth is evaluated at the search's hour (one utility call per
distinct hour).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.world_truth import utility

#: generator key of the search sessions (``default_rng([seed, SEARCH_STREAM])``)
SEARCH_STREAM = 24
SEARCH_RATE = 0.2  # share of sessions that start with a search
ADJECTIVE_RATE = 0.35  # share of queries naming an adjective
BRAND_RATE = 0.15  # share of queries naming a brand
ATTRIBUTE_BONUS = 1.0  # extra utility of an item carrying a word the user typed
QUERY_COLUMNS = ["search_id", USER, TIMESTAMP, "query", "intent_category", "intent_noun",
                 "query_adjective", "query_brand", "n_matching", "clicked_item_id"]


def _title_parts(world) -> pd.DataFrame:
    """Noun and adjective of every item, read back from its title and its leaf's vocabulary."""
    items = world.items
    nouns = np.empty(len(items), dtype=object)
    adjectives = np.empty(len(items), dtype=object)
    adjective_set = set(tx.ADJECTIVES)
    for i, (title, category, brand) in enumerate(zip(items["title"], items["category"], items["brand"],
                                                     strict=True)):
        top, leaf = category.split(" > ")
        rest = title[len(brand) + 1:]
        first = rest.split(" ", 1)[0]
        adjectives[i] = first if first in adjective_set else ""
        nouns[i] = next(n for n in sorted(tx.TAXONOMY[top][leaf][1], key=len, reverse=True)
                        if n in rest)
    return pd.DataFrame({"noun": nouns, "adjective": adjectives})


def _search_starts(world, rng: np.random.Generator) -> pd.DataFrame:
    """Sessions that start with a search: the user and a moment a few seconds before the session."""
    sessions = (world.interactions.groupby("session_id", sort=True)
                .agg(user_id=(USER, "first"), start=(TIMESTAMP, "min")).reset_index())
    chosen = sessions[rng.random(len(sessions)) < SEARCH_RATE].reset_index(drop=True)
    lead = pd.to_timedelta(np.round(rng.uniform(2.0, 30.0, len(chosen)), 3), unit="s")
    at = (chosen["start"] - lead).clip(lower=world.start)
    return pd.DataFrame({USER: chosen[USER].to_numpy(), TIMESTAMP: at})


def _intents(world, users: np.ndarray, rng: np.random.Generator, parts: pd.DataFrame) -> dict:
    """Intent leaf (softmax of taste), noun, adjective and brand words of each search."""
    lat = world.latent
    leaves = tx.leaf_names()
    tops = tx.top_names()
    gumbel = -np.log(-np.log(rng.random((len(users), len(leaves)))))
    leaf = np.argmax(lat.taste[users] + gumbel, axis=1)
    noun_slot = rng.integers(0, 3, len(users))
    noun = np.array([tx.TAXONOMY[leaves[k].split(" > ")[0]][leaves[k].split(" > ")[1]][1][s]
                     for k, s in zip(leaf, noun_slot, strict=True)], dtype=object)
    use_adj = rng.random(len(users)) < ADJECTIVE_RATE
    adjective = np.where(use_adj, np.asarray(tx.ADJECTIVES, dtype=object)[
        rng.integers(0, len(tx.ADJECTIVES), len(users))], "")
    # brand: cheaper tiers for price-sensitive users (a softmax over -beta * log tier multiplier)
    log_tier = np.log(np.asarray(tx.BRAND_TIERS))
    brand_gumbel = -np.log(-np.log(rng.random((len(users), len(log_tier)))))
    slot = np.argmax(-lat.price_sensitivity[users, None] * log_tier[None, :] + brand_gumbel, axis=1)
    use_brand = rng.random(len(users)) < BRAND_RATE
    top = lat.leaf_top[leaf]
    brand = np.array([tx.BRANDS[tops[t]][b] if on else "" for t, b, on in zip(top, slot, use_brand, strict=True)],
                     dtype=object)
    return {"leaf": leaf, "noun": noun, "adjective": adjective, "brand": brand}


def _query_text(intent: dict) -> np.ndarray:
    words = [" ".join(w for w in (b, a, n) if w) for b, a, n in
             zip(intent["brand"], intent["adjective"], intent["noun"], strict=True)]
    return np.asarray([w.lower() for w in words], dtype=object)


def _matching(world, parts: pd.DataFrame, leaf: np.ndarray, noun: np.ndarray) -> np.ndarray:
    """Boolean (n_searches, n_items): the items of the intent leaf whose title has the intent noun."""
    codes, _ = pd.factorize(np.concatenate([parts["noun"].to_numpy().astype(str), noun.astype(str)]))
    n_items = len(parts)
    item_key = world.latent.item_leaf.astype(np.int64) * (codes.max() + 1) + codes[:n_items]
    search_key = leaf.astype(np.int64) * (codes.max() + 1) + codes[n_items:]
    return item_key[None, :] == search_key[:, None]


def search_utility(world, searches: pd.DataFrame) -> np.ndarray:
    """True utility of every item for each search's (user, query, hour); ``-inf`` outside the intent.

    The world's utility (:func:`~recsys_utils.data.world_truth.utility`) at the search's hour, plus
    :data:`ATTRIBUTE_BONUS` for each typed adjective/brand the item carries, on the items of the
    intent leaf with the intent noun that are on sale; every other item gets ``-inf``.
    """
    missing = [c for c in (USER, TIMESTAMP, "intent_category", "intent_noun", "query_adjective", "query_brand")
               if c not in searches.columns]
    if missing:
        raise ValueError(f"search_utility: searches lack the columns {missing} (use world.searches)")
    parts = _title_parts(world)
    leaf_index = pd.Index(tx.leaf_names()).get_indexer(searches["intent_category"].to_numpy())
    if (leaf_index < 0).any():
        raise ValueError("search_utility: an intent_category is not a leaf of the taxonomy")
    users = world.user_positions(searches[USER].to_numpy())
    hours, group = np.unique(searches[TIMESTAMP].dt.floor("h").to_numpy(), return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(hours) + 1))
    out = np.empty((len(searches), len(world.items)))
    for h, hour in enumerate(hours):  # one utility call per distinct hour, all its searches at once
        rows = order[bounds[h]:bounds[h + 1]]
        out[rows] = utility(world.latent, users[rows], np.arange(len(world.items)), world.seconds(hour),
                            world.config, available_only=True)
    for column, item_words in (("query_adjective", parts["adjective"]), ("query_brand", world.items["brand"])):
        typed = searches[column].to_numpy().astype(str)
        codes, vocab = pd.factorize(np.concatenate([item_words.to_numpy().astype(str), typed]))
        item_code, typed_code = codes[: len(item_words)], codes[len(item_words):]
        typed_code = np.where(typed == "", -2, typed_code)
        out += ATTRIBUTE_BONUS * (item_code[None, :] == typed_code[:, None])
    match = _matching(world, parts, leaf_index, searches["intent_noun"].to_numpy())
    out[~match] = -np.inf
    return out


def search_relevance(world, searches: pd.DataFrame, grades: int = 4) -> np.ndarray:
    """Graded relevance (0 to ``grades - 1``) of every item for each search, from the true utility.

    Matching items on sale are graded by quantile of their true utility within the search (the top
    quarter gets 3, ... the bottom quarter 0 with the default 4 grades); every other item gets 0.
    """
    u = search_utility(world, searches)
    finite = np.isfinite(u)
    filled = np.where(finite, u, np.inf)
    rank = np.argsort(np.argsort(filled, axis=1), axis=1)  # 0 = worst matching item
    n = finite.sum(axis=1, keepdims=True)
    grade = np.floor(rank * grades / np.maximum(n, 1)).clip(0, grades - 1)
    return np.where(finite, grade, 0.0)


def make_searches(world) -> pd.DataFrame:
    """The search sessions of a world (see the module docstring); one row per search, time-ordered."""
    rng = np.random.default_rng([world.config.seed, SEARCH_STREAM])
    starts = _search_starts(world, rng)
    users = world.user_positions(starts[USER].to_numpy())
    parts = _title_parts(world)
    intent = _intents(world, users, rng, parts)
    frame = starts.assign(query=_query_text(intent), intent_category=np.asarray(tx.leaf_names(), dtype=object)[
        intent["leaf"]], intent_noun=intent["noun"], query_adjective=intent["adjective"],
        query_brand=intent["brand"])
    u = search_utility(world, frame)
    finite = np.isfinite(u)
    u[finite] -= np.log(-np.log(rng.random(int(finite.sum()))))  # Gumbel-max = a multinomial logit draw
    choice = np.argmax(u, axis=1)
    has = finite.any(axis=1)
    clicked = np.where(has, world.items[ITEM].to_numpy()[choice], -1)
    frame = frame.assign(n_matching=finite.sum(axis=1), clicked_item_id=clicked)
    frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    frame.insert(0, "search_id", np.arange(1, len(frame) + 1))
    return frame[QUERY_COLUMNS]


@dataclass
class RawSearchLog:
    """The search server's log (``log``: ``log_id, uid, ts, q``) and the truth of its defects."""

    log: pd.DataFrame
    truth: pd.DataFrame


def _typo(word: str, position: int) -> str:
    if len(word) < 4:
        return word
    p = 1 + position % (len(word) - 2)
    return word[:p] + word[p + 1] + word[p] + word[p + 2:]


def make_raw_search_log(world, searches: pd.DataFrame) -> RawSearchLog:
    """Queries as typed: mixed case and stray spaces (fix), typos (fix), empty queries (drop).

    Each ``log_id`` is one search (``search_id``); ``truth`` has one row per defect with
    ``log_id, reason, action`` and, for typos, the clean query in ``clean``.
    """
    rng = np.random.default_rng([world.config.seed, SEARCH_STREAM, 1])
    n = len(searches)
    clean = searches["query"].to_numpy().astype(str)
    typed = clean.astype(object).copy()
    kind = rng.random((n, 4))
    case = kind[:, 0] < 0.3
    space = kind[:, 1] < 0.15
    typo = kind[:, 2] < 0.04
    empty = kind[:, 3] < 0.02
    pos = rng.integers(0, 1_000, n)
    for i in np.flatnonzero(typo):  # a few hundred strings
        words = typed[i].split(" ")
        w = pos[i] % len(words)
        words[w] = _typo(words[w], pos[i])
        typed[i] = " ".join(words)
    typo &= typed != clean
    styles = rng.integers(0, 3, n)
    for i in np.flatnonzero(case):
        typed[i] = typed[i].title() if styles[i] == 0 else typed[i].upper() if styles[i] == 1 else typed[i].capitalize()
    for i in np.flatnonzero(space):
        typed[i] = "  " + re.sub(" ", "   ", typed[i]) + " "
    typed[empty] = np.where(styles[empty] == 0, "", "   ")
    log = pd.DataFrame({"log_id": searches["search_id"].to_numpy(), "uid": searches[USER].astype(str).to_numpy(),
                        "ts": searches[TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3].to_numpy(),
                        "q": typed})
    reasons = [("empty", "drop", empty), ("typo", "fix", typo & ~empty), ("case", "fix", case & ~empty),
               ("whitespace", "fix", space & ~empty)]
    truth = pd.concat([pd.DataFrame({"log_id": log["log_id"].to_numpy()[mask], "reason": r, "action": a,
                                     "clean": clean[mask]}) for r, a, mask in reasons], ignore_index=True)
    return RawSearchLog(log, truth.sort_values(["log_id", "reason"]).reset_index(drop=True))


__all__ = ["ATTRIBUTE_BONUS", "QUERY_COLUMNS", "RawSearchLog", "make_raw_search_log", "make_searches",
           "search_relevance", "search_utility"]
