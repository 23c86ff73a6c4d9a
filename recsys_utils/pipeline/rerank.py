"""Re-ranking: business rules, diversity (maximal marginal relevance) and a sponsored slot.

All functions work on a batch of users at once: ``candidates`` is an ``(n_users, C)`` array of
item indices ordered best first (``-1`` pads short rows) and ``scores`` the matching relevance
scores. Loops run over list positions (``k`` of them), never over users.

References: J. Carbonell, J. Goldstein (1998). *The use of MMR, diversity-based reranking for
reordering documents and producing summaries.* SIGIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

PAD = -1


@dataclass
class BusinessRules:
    """What a shop refuses to show.

    ``blocked``: users x items matrix of items a user must not see again (e.g. bought in the last
    days); ``in_stock``: bool per item; ``item_category``: int code per item, with at most
    ``max_per_category`` items of one category in a list; ``item_price`` with a price guard rail:
    an item may cost at most ``max_price_ratio`` times the user's reference price
    (``user_price``, e.g. their median purchase price; NaN = no limit) and at least ``min_price``.
    """

    in_stock: np.ndarray
    item_category: np.ndarray
    max_per_category: int = 3
    blocked: sp.csr_matrix | None = None
    item_price: np.ndarray | None = None
    user_price: np.ndarray | None = None
    max_price_ratio: float = 3.0
    min_price: float = 0.01

    def allowed(self, user_indices: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Boolean mask of candidates passing the per-item rules (stock, blocked, price); pads are False."""
        user_indices = np.asarray(user_indices)
        valid = candidates >= 0
        items = np.where(valid, candidates, 0)
        ok = valid & self.in_stock[items]
        if self.blocked is not None:
            rows = self.blocked[user_indices]
            hit = sparse_lookup(rows, items)
            ok &= ~hit
        if self.item_price is not None:
            price = self.item_price[items]
            ok &= price >= self.min_price
            if self.user_price is not None:
                cap = self.max_price_ratio * self.user_price[user_indices][:, None]
                ok &= ~(price > cap)  # NaN caps allow everything
        return ok


def sparse_lookup(rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """``rows[r, items[r, j]] != 0`` for every cell, vectorised through sorted keys."""
    rows = sp.csr_matrix(rows)
    n_items = rows.shape[1]
    coo = rows.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    query = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + items
    if keys.size == 0:
        return np.zeros(items.shape, dtype=bool)
    position = np.searchsorted(keys, query).clip(max=keys.size - 1)
    return keys[position] == query


def cap_per_group(candidates: np.ndarray, keep: np.ndarray, group: np.ndarray, cap: int) -> np.ndarray:
    """``keep`` minus the candidates beyond the first ``cap`` kept ones of each group in each row."""
    n_rows, width = candidates.shape
    codes = np.where(keep, group[np.where(candidates >= 0, candidates, 0)], -1)
    n_groups = int(group.max()) + 2
    key = np.arange(n_rows)[:, None] * n_groups + (codes + 1)
    flat = key.ravel()
    order = np.lexsort((np.tile(np.arange(width), n_rows), flat))
    sorted_keys = flat[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(flat.size), 0))
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size) - group_start
    return keep & (rank.reshape(n_rows, width) < cap)


def first_k(candidates: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` kept candidates of each row, in order; ``-1`` pads rows with fewer."""
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(candidates, order, axis=1)
    kept = np.take_along_axis(keep, order, axis=1)
    out = np.where(kept, chosen, PAD)
    if out.shape[1] < k:
        out = np.hstack([out, np.full((out.shape[0], k - out.shape[1]), PAD)])
    return out


def apply_rules(user_indices: np.ndarray, candidates: np.ndarray, rules: BusinessRules, k: int) -> np.ndarray:
    """Top ``k`` of each row that pass every rule, in the candidates' order."""
    keep = rules.allowed(user_indices, candidates)
    keep = cap_per_group(candidates, keep, rules.item_category, rules.max_per_category)
    return first_k(candidates, keep, k)


def rule_violations(user_indices: np.ndarray, lists: np.ndarray, rules: BusinessRules) -> dict[str, int]:
    """How many returned items break each rule (all zero for a compliant list)."""
    valid = lists >= 0
    items = np.where(valid, lists, 0)
    out = {"out_of_stock": int((valid & ~rules.in_stock[items]).sum())}
    if rules.blocked is not None:
        out["blocked"] = int((valid & sparse_lookup(rules.blocked[np.asarray(user_indices)], items)).sum())
    if rules.item_price is not None:
        price = rules.item_price[items]
        bad = price < rules.min_price
        if rules.user_price is not None:
            bad |= price > rules.max_price_ratio * rules.user_price[np.asarray(user_indices)][:, None]
        out["price"] = int((valid & bad).sum())
    over = valid & ~cap_per_group(lists, valid, rules.item_category, rules.max_per_category)
    out["category_cap"] = int(over.sum())
    duplicates = np.sort(np.where(valid, lists, -np.arange(1, lists.shape[1] + 1)), axis=1)
    out["duplicates"] = int((duplicates[:, 1:] == duplicates[:, :-1]).sum())
    return out


def mmr(candidates: np.ndarray, scores: np.ndarray, item_vectors: np.ndarray, k: int,
        trade_off: float = 0.7, keep: np.ndarray | None = None) -> np.ndarray:
    """Maximal marginal relevance: greedily pick ``argmax λ·rel − (1−λ)·max cos(item, picked)``.

    ``trade_off`` λ = 1 returns the relevance order; lower values trade relevance for diversity.
    Relevance is min-max scaled per row so λ means the same for every user. Batched over users.
    """
    n_rows, width = candidates.shape
    valid = candidates >= 0 if keep is None else keep & (candidates >= 0)
    vectors = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    emb = vectors[np.where(candidates >= 0, candidates, 0)]  # (n, C, d)
    low = np.where(valid, scores, np.inf).min(axis=1)
    high = np.where(valid, scores, -np.inf).max(axis=1)
    low = np.where(np.isfinite(low), low, 0.0)
    span = np.where(high > low, high - low, 1.0)
    rel = np.where(valid, (scores - low[:, None]) / span[:, None], 0.0)
    max_sim = np.zeros((n_rows, width))
    available = valid.copy()
    out = np.full((n_rows, k), PAD, dtype=np.int64)
    rows = np.arange(n_rows)
    for position in range(k):
        value = trade_off * rel - (1 - trade_off) * max_sim
        value = np.where(available, value, -np.inf)
        pick = value.argmax(axis=1)
        ok = available[rows, pick]
        out[:, position] = np.where(ok, candidates[rows, pick], PAD)
        available[rows, pick] = False
        sim = np.einsum("ncd,nd->nc", emb, emb[rows, pick])
        max_sim = np.where(ok[:, None], np.maximum(max_sim, sim), max_sim)
    return out


def insert_sponsored(lists: np.ndarray, sponsored: np.ndarray, position: int) -> np.ndarray:
    """Put one sponsored item per row at ``position`` (0-based), shifting the rest down one place.

    If the sponsored item is already in the list it is moved there (no duplicates); list length
    is unchanged (the last organic item drops out).
    """
    n_rows, k = lists.shape
    if not 0 <= position < k:
        raise ValueError(f"insert_sponsored: position must be in [0, {k}), got {position}")
    sponsored = np.asarray(sponsored).reshape(-1)
    organic = np.where(lists == sponsored[:, None], PAD, lists)
    order = np.argsort(organic == PAD, axis=1, kind="stable")
    organic = np.take_along_axis(organic, order, axis=1)
    out = np.empty_like(lists)
    out[:, :position] = organic[:, :position]
    out[:, position] = sponsored
    out[:, position + 1:] = organic[:, position:k - 1]
    return out
