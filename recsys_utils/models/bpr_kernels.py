"""BPR's SGD epoch compiled with numba: one triple at a time, Hogwild across threads (Recht et al. 2011).

:class:`recsys_utils.models.bpr.BPR` runs this on the CPU. Each of ``n_threads`` workers draws its
share of the epoch's triples with its own xorshift generator seeded from ``(seed, epoch, worker)``
(one worker: the same numbers on every run): a stored interaction ``(u, i)`` uniformly, then an
item ``j`` uniformly, redrawn up to ``max_redraws`` times while ``u`` has interacted with it
(binary search in the user's sorted CSR row). :func:`sgd_update` applies the update of
:meth:`BPR._step <recsys_utils.models.bpr.BPR._step>` to that one triple, in place. Workers
share the factor matrices without locks, like ``implicit``'s BPR: with two or more workers the
result depends on thread timing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_MULT = np.uint64(0x2545F4914F6CDD1D)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _next(state: np.ndarray) -> np.uint64:
    """xorshift64* step on ``state[0]`` (Vigna 2016); returns 64 random bits."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * _MULT


@numba.njit(cache=True, inline="always")
def _below(state: np.ndarray, n: int) -> int:
    """A uniform integer in ``[0, n)`` (the top 32 bits times ``n``: no modulo bias worth noting)."""
    return int(((_next(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@numba.njit(cache=True, inline="always")
def _contains(indices: np.ndarray, start: int, stop: int, item: int) -> bool:
    """Whether the sorted ``indices[start:stop]`` holds ``item`` (binary search)."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < stop and indices[lo] == item


@numba.njit(cache=True, fastmath=True, inline="always")
def sgd_update(p: np.ndarray, q: np.ndarray, u: int, i: int, j: int, lr: float, reg: float) -> float:
    """BPR's ascent step on one triple ``(u, i, j)`` in place; returns ``-ln sigma(x_uij)``.

    The item bias is ``q``'s last column and ``p``'s last column is a constant 1 (never updated),
    so ``x_uij = p_u . (q_i - q_j)`` includes ``b_i - b_j`` and one row holds all of an item's
    numbers (one cache line fewer per triple, as in ``implicit``).
    """
    last = p.shape[1] - 1
    x = p[u, last] * (q[i, last] - q[j, last])
    for f in range(last):
        x += p[u, f] * (q[i, f] - q[j, f])
    e = math.exp(x)
    g = 1.0 / (1.0 + e)  # sigma(-x)
    for f in range(last):
        pu, qi, qj = p[u, f], q[i, f], q[j, f]
        p[u, f] = pu + lr * (g * (qi - qj) - reg * pu)
        q[i, f] = qi + lr * (g * pu - reg * qi)
        q[j, f] = qj + lr * (-g * pu - reg * qj)
    bi, bj = q[i, last], q[j, last]
    q[i, last] = bi + lr * (g - reg * bi)
    q[j, last] = bj + lr * (-g - reg * bj)
    return math.log1p(e) - x  # -ln sigma(x) = ln(1 + e^x) - x


@numba.njit(cache=True, parallel=True, fastmath=True)
def bpr_epoch(indptr: np.ndarray, indices: np.ndarray, user_of: np.ndarray, p: np.ndarray, q: np.ndarray,
              lr: float, reg: float, seed: int, n_workers: int, max_redraws: int) -> float:
    """One epoch of ``len(indices)`` triples split over ``n_workers``; the summed loss.

    ``p`` is ``(n_users, dim + 1)`` with a last column of ones, ``q`` ``(n_items, dim + 1)`` with the
    item biases last (see :func:`sgd_update`).
    """
    nnz = indices.shape[0]
    n_items = q.shape[0]
    per = (nnz + n_workers - 1) // n_workers
    losses = np.zeros(n_workers)
    for worker in numba.prange(n_workers):
        state = np.empty(1, dtype=np.uint64)
        state[0] = (np.uint64(seed) + np.uint64(worker + 1)) * _GOLDEN | np.uint64(1)
        for _ in range(4):
            _next(state)
        total = 0.0
        for _ in range(per * worker, min(per * (worker + 1), nnz)):
            k = _below(state, nnz)
            u, i = user_of[k], indices[k]
            j = _below(state, n_items)
            for _redraw in range(max_redraws):
                if not _contains(indices, indptr[u], indptr[u + 1], j):
                    break
                j = _below(state, n_items)
            total += sgd_update(p, q, u, i, j, lr, reg)
        losses[worker] = total
    return losses.sum()
