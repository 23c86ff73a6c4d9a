"""Off-policy evaluation: what a new policy would have earned, judged only from the logs of an old one.

A log holds, for each visit ``i``, the action the logging policy ``π₀`` took, its propensity
``π₀(a_i | x_i)`` and the reward. The estimators below are pure numpy functions over such a log:

* direct method (DM): the mean over visits of ``Σ_a π(a|x_i) q̂(x_i, a)`` with a reward model ``q̂``
  (Beygelzimer & Langford 2009); biased when ``q̂`` is wrong, low variance;
* inverse propensity scoring (IPS): ``mean_i w_i r_i`` with ``w_i = π(a_i|x_i) / π₀(a_i|x_i)``
  (Horvitz & Thompson 1952; Precup et al. 2000); unbiased when ``π₀ > 0`` wherever ``π > 0``,
  high variance when the policies differ. Clipping the weights at ``M`` (Ionides 2008; Bottou et al.
  2013) trades a downward bias for less variance;
* self-normalised IPS (SNIPS): ``Σ w_i r_i / Σ w_i`` (Swaminathan & Joachims 2015), slightly
  biased, consistent, far less variable;
* doubly robust (DR): ``mean_i [Σ_a π(a|x_i) q̂(x_i, a) + w_i (r_i - q̂(x_i, a_i))]``
  (Dudík, Langford & Li 2011): unbiased when the propensities are right, low variance when ``q̂``
  is good.

**Slates.** With 2-D arrays (visits × positions), ``a_ik`` is the item logged at position ``k``
and the propensities are *marginal*: the probability that the policy puts that item at that
position. The estimators then sum over positions: the position-based (independent-IPS)
estimators of Li, Kim & Zitouni (2018), unbiased when a click at a position depends only on the
item and the position (the position-based click model; the course's simulator is one:
examination ``1/log2(k+1)`` times attraction). This is the special case of the pseudo-inverse
estimator of Swaminathan et al. (2017) for rewards additive over slots that are observed slot by
slot; it needs no propensity of the whole slate, whose weights explode with the slate's length.
:func:`plackett_luce_marginals` gives those marginals exactly for a softmax (Plackett-Luce) slate
policy. :func:`effective_sample_size` says how many visits the weighted log is worth (Kong 1992).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

#: largest number of ordered prefixes :func:`plackett_luce_marginals` enumerates
MAX_PREFIXES = 200_000


def _as_2d(name: str, values, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``values`` as a float (visits, positions) array; 1-D input is one position per visit."""
    out = np.asarray(values, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"off-policy: {name} must be 1-D (visits) or 2-D (visits x positions), got shape {out.shape}")
    if shape is not None and out.shape != shape:
        raise ValueError(f"off-policy: {name} has shape {out.shape}, expected {shape} like the rewards")
    if not np.isfinite(out).all():
        row = int(np.argwhere(~np.isfinite(out))[0, 0])
        raise ValueError(f"off-policy: {name} has NaN or infinite values (row {row})")
    return out


def importance_weights(target_prob, logging_prob, clip: float | None = None) -> np.ndarray:
    """``π(a|x) / π₀(a|x)``, clipped at ``clip`` when given, in the shape of ``logging_prob``."""
    return _weights(target_prob, logging_prob, clip).reshape(np.shape(logging_prob))


def _weights(target_prob, logging_prob, clip: float | None) -> np.ndarray:
    """:func:`importance_weights` as a (visits, positions) array, with the checks."""
    logging = _as_2d("logging_prob", logging_prob)
    target = _as_2d("target_prob", target_prob, logging.shape)
    if (logging <= 0).any() or (logging > 1).any():
        row = int(np.argwhere((logging <= 0) | (logging > 1))[0, 0])
        raise ValueError(f"off-policy: logging_prob must be in (0, 1] (a logged action had a chance); row {row} is not")
    if (target < 0).any() or (target > 1).any():
        raise ValueError("off-policy: target_prob must be probabilities in [0, 1]")
    if clip is not None and not clip > 0:
        raise ValueError(f"off-policy: clip must be > 0 or None, got {clip!r}")
    weights = target / logging
    return np.minimum(weights, clip) if clip is not None else weights


def direct_method(target_reward_hat) -> float:
    """DM: the mean over visits of the reward model's value of the target policy.

    ``target_reward_hat[i, k] = Σ_a π(a at k | x_i) q̂(x_i, a, k)``, computed by the caller from its
    reward model (1-D for one action per visit). Beygelzimer & Langford (2009).
    """
    return float(_as_2d("target_reward_hat", target_reward_hat).sum(axis=1).mean())


def ips(rewards, target_prob, logging_prob, clip: float | None = None) -> float:
    """Inverse propensity scoring: ``mean_i Σ_k w_ik r_ik`` (Horvitz & Thompson 1952)."""
    weights = _weights(target_prob, logging_prob, clip)
    r = _as_2d("rewards", rewards, weights.shape)
    return float((weights * r).sum(axis=1).mean())


def snips(rewards, target_prob, logging_prob, clip: float | None = None) -> float:
    """Self-normalised IPS, position by position: ``Σ_k Σ_i w_ik r_ik / Σ_i w_ik``
    (Swaminathan & Joachims 2015). A position whose weights are all zero contributes 0."""
    weights = _weights(target_prob, logging_prob, clip)
    r = _as_2d("rewards", rewards, weights.shape)
    total = weights.sum(axis=0)
    per_position = np.divide((weights * r).sum(axis=0), total, out=np.zeros(len(total)), where=total > 0)
    return float(per_position.sum())


def doubly_robust(rewards, target_prob, logging_prob, logged_reward_hat, target_reward_hat,
                  clip: float | None = None) -> float:
    """Doubly robust: DM plus the importance-weighted residual of the reward model
    (Dudík, Langford & Li 2011).

    ``logged_reward_hat[i, k] = q̂(x_i, a_ik, k)`` (the model at the logged action);
    ``target_reward_hat`` as in :func:`direct_method`. Equals IPS when ``q̂ = 0`` and DM when every
    weight is one.
    """
    weights = _weights(target_prob, logging_prob, clip)
    r = _as_2d("rewards", rewards, weights.shape)
    q_logged = _as_2d("logged_reward_hat", logged_reward_hat, weights.shape)
    q_target = _as_2d("target_reward_hat", target_reward_hat, weights.shape)
    return float((q_target + weights * (r - q_logged)).sum(axis=1).mean())


def effective_sample_size(weights) -> float:
    """Kish's effective sample size of importance weights, ``(Σ w)² / Σ w²`` (Kong 1992).

    Equals ``n`` when every weight is equal; a handful when a few visits carry the estimate. With
    2-D weights (visits x positions) each position gets its own ESS and the mean is returned (in visits).
    """
    w = _as_2d("weights", weights)
    if (w < 0).any():
        raise ValueError("effective_sample_size: weights must be >= 0")
    square = (w**2).sum(axis=0)
    per_position = np.divide(w.sum(axis=0) ** 2, square, out=np.zeros(w.shape[1]), where=square > 0)
    return float(per_position.mean())


def softmax(scores, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (a policy's probabilities over candidates)."""
    if not temperature > 0:
        raise ValueError(f"softmax: temperature must be > 0, got {temperature!r}")
    s = np.asarray(scores, dtype=np.float64) / temperature
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def sample_plackett_luce(scores, k: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    """Draw slates of ``k`` candidates without replacement from ``softmax(scores / temperature)``.

    The Gumbel top-k trick (Yellott 1977; Kool et al. 2019): the top ``k`` of ``score/τ + Gumbel``
    noise is a Plackett-Luce sample. ``scores`` is (..., candidates); returns (..., k) indices.
    """
    s = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= s.shape[-1]:
        raise ValueError(f"sample_plackett_luce: k must be in 1..{s.shape[-1]} (the candidates), got {k}")
    noisy = s / temperature + rng.gumbel(size=s.shape)
    top = np.argpartition(-noisy, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(noisy, top, axis=-1), axis=-1)
    return np.take_along_axis(top, order, axis=-1)


def plackett_luce_marginals(scores, k: int, temperature: float = 1.0) -> np.ndarray:
    """Exact ``P(candidate a at position j)`` of a Plackett-Luce (softmax without replacement) slate.

    ``scores`` is (n, A); returns (n, A, k). Position ``j`` sums, over every ordered prefix of ``j``
    candidates, the prefix's probability times ``w_a / (W - w(prefix))`` (Plackett 1975; Luce
    1959). The enumeration grows like ``A^(k-1)``: it refuses beyond :data:`MAX_PREFIXES` prefixes.
    """
    p = softmax(scores, temperature)
    if p.ndim != 2:
        raise ValueError(f"plackett_luce_marginals: scores must be (n, candidates), got shape {p.shape}")
    n, a = p.shape
    if not 1 <= k <= a:
        raise ValueError(f"plackett_luce_marginals: k must be in 1..{a} (the candidates), got {k}")
    if math.perm(a, k - 1) > MAX_PREFIXES:
        raise ValueError(f"plackett_luce_marginals: {math.perm(a, k - 1):,} prefixes for {a} candidates and k={k}; "
                         f"use fewer candidates or a shorter slate (at most {MAX_PREFIXES:,})")
    out = np.zeros((n, a, k))
    for j in range(k):
        prefixes = np.array(list(itertools.permutations(range(a), j)), dtype=np.int64).reshape(math.perm(a, j), j)
        prob = np.ones((n, len(prefixes)))
        used = np.zeros((n, len(prefixes)))
        for step in range(j):
            w = p[:, prefixes[:, step]]
            prob *= w / np.maximum(1.0 - used, 1e-300)
            used += w
        blocked = np.zeros((len(prefixes), a), dtype=bool)
        if j:
            blocked[np.arange(len(prefixes))[:, None], prefixes] = True
        nxt = np.where(blocked[None], 0.0, p[:, None, :]) / np.maximum(1.0 - used, 1e-300)[:, :, None]
        out[:, :, j] = np.einsum("np,npa->na", prob, nxt)
    return out


def top_k_marginals(scores, k: int) -> np.ndarray:
    """Marginals (n, A, k) of the deterministic policy that shows the top ``k`` by ``scores``."""
    s = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= s.shape[-1]:
        raise ValueError(f"top_k_marginals: k must be in 1..{s.shape[-1]}, got {k}")
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    out = np.zeros((*s.shape, k))
    rows = np.arange(len(s))[:, None]
    out[rows, order, np.arange(k)[None, :]] = 1.0
    return out


def policy_divergence(target_marginals, logging_marginals) -> float:
    """Mean over contexts and positions of KL(π ‖ π₀) between the per-position marginals (nats).

    Infinite when the target puts mass where the logging policy never acts (no support: no
    unbiased estimate exists).
    """
    pe = np.asarray(target_marginals, dtype=np.float64)
    p0 = np.asarray(logging_marginals, dtype=np.float64)
    if pe.shape != p0.shape:
        raise ValueError(f"policy_divergence: shapes differ, {pe.shape} and {p0.shape}")
    if ((pe > 0) & (p0 <= 0)).any():
        return math.inf
    terms = np.where(pe > 0, pe * np.log(np.where(pe > 0, pe, 1.0) / np.where(p0 > 0, p0, 1.0)), 0.0)
    return float(terms.sum(axis=-2).mean())


__all__ = [
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "importance_weights",
    "ips",
    "plackett_luce_marginals",
    "policy_divergence",
    "sample_plackett_luce",
    "snips",
    "softmax",
    "top_k_marginals",
]
