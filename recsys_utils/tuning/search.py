"""Model tuning (模型调优) and model fusion (模型融合), always chosen on the validation split.

Hyperparameter search (超参数搜索): :func:`grid_search` and :func:`random_search` with a budget
(Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization", JMLR), and
:func:`optuna_search`, Optuna's TPE sampler (Bergstra et al. 2011) seeded, with median pruning of
unpromising trials (Akiba et al. 2019, "Optuna", KDD). Every search scores a configuration with
:func:`validation_score` (full-catalogue NDCG@k on the *validation* interactions); the test split
is never seen here, so the tuned model's test metric can be reported once, at the end. The model
to tune is a name of :mod:`recsys_utils.models.registry` (``grid_search("ease", {"l2": [...]},
...)``, with ``fixed`` settings and the search's ``seed``) or a factory ``build(**params)``.

Fusion: :class:`BlendRecommender` adds the members' per-user normalised scores with weights
(score blending; with ``normalise="rank"`` it is rank averaging, a Borda count); the weights are
picked on validation by :func:`blend_search`, which scores each member once and then ranks every
weight vector of a simplex grid without refitting (Burke 2002, "Hybrid Recommender Systems";
the Netflix Prize blends, Töscher, Jahrer & Bell 2009).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.core.topk import top_k
from recsys_utils.data.holdout import evaluation_users, relevant_matrix
from recsys_utils.data.interactions import Interactions
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import registry
from recsys_utils.models.base import Recommender

__all__ = [
    "BlendRecommender",
    "SearchResult",
    "blend_search",
    "grid_search",
    "model_factory",
    "normalise_scores",
    "optuna_search",
    "random_search",
    "simplex_grid",
    "validation_score",
]

NORMALISATIONS = ("zscore", "minmax", "rank", "none")


# --------------------------------------------------------------------------------------------
# score fusion
# --------------------------------------------------------------------------------------------


def normalise_scores(scores: np.ndarray, method: str = "zscore") -> np.ndarray:
    """Put each row of a score matrix on a common scale before blending.

    ``zscore``: ``(s - mean) / std`` per row (a constant row becomes 0); ``minmax``: mapped to
    ``[0, 1]`` per row; ``rank``: the item's rank in its row scaled to ``[0, 1]`` (1 = best; ties
    get their average rank), so a blend of ranks is a Borda count; ``none``: unchanged.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalise_scores: method must be one of {NORMALISATIONS}, got {method!r}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"normalise_scores: scores must be 2-D (users x items), got shape {s.shape}")
    if method == "none":
        return s
    if method == "zscore":
        sd = s.std(axis=1, keepdims=True)
        return np.divide(s - s.mean(axis=1, keepdims=True), sd, out=np.zeros_like(s), where=sd > 0)
    if method == "minmax":
        low, span = s.min(axis=1, keepdims=True), np.ptp(s, axis=1, keepdims=True)
        return np.divide(s - low, span, out=np.zeros_like(s), where=span > 0)
    from scipy.stats import rankdata

    return (rankdata(s, method="average", axis=1) - 1.0) / max(1, s.shape[1] - 1)


class BlendRecommender(Recommender):
    """Weighted sum of member models' normalised scores: ``s_ui = sum_m w_m norm(s^m_u)_i``.

    ``members`` maps a name to a :class:`Recommender`; ``weights`` (same order, default equal)
    may be negative (e.g. a popularity penalty). ``fit`` fits every member on the same train
    unless ``prefitted=True`` (members already fitted on that train).
    """

    name = "blend"

    def __init__(self, members: Mapping[str, Recommender], weights: Sequence[float] | None = None,
                 normalise: str = "zscore", prefitted: bool = False) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("BlendRecommender: give at least one member model")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"BlendRecommender: normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        self.members = dict(members)
        weights = np.ones(len(members)) / len(members) if weights is None else np.asarray(weights, dtype=float)
        if weights.shape != (len(members),) or not np.isfinite(weights).all():
            raise ValueError(f"BlendRecommender: need {len(members)} finite weights, got {weights.tolist()}")
        self.weights = weights
        self.normalise = normalise
        self.prefitted = prefitted

    def _fit(self, train: Interactions) -> None:
        for label, model in self.members.items():
            if self.prefitted:
                fitted = getattr(model, "train_", None)
                if fitted is None or fitted.matrix.shape != train.matrix.shape:
                    raise ValueError(f"BlendRecommender: member {label!r} is not fitted on this train matrix")
            else:
                model.fit(train)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        total = None
        for weight, model in zip(self.weights, self.members.values(), strict=True):
            part = weight * normalise_scores(model.score(user_indices), self.normalise)
            total = part if total is None else total + part
        return total.astype(np.float32)

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:+.2f}·{n}" for n, w in zip(self.members, self.weights, strict=True))
        return f"BlendRecommender({parts}, normalise={self.normalise!r})"


def simplex_grid(n_members: int, step: float = 0.1) -> np.ndarray:
    """Every weight vector of ``n_members`` non-negative multiples of ``step`` summing to 1."""
    if n_members < 1:
        raise ValueError(f"simplex_grid: n_members must be >= 1, got {n_members}")
    parts = round(1.0 / step)
    if parts < 1 or not np.isclose(parts * step, 1.0):
        raise ValueError(f"simplex_grid: 1 / step must be a whole number, got step={step}")
    points = [c for c in itertools.product(range(parts + 1), repeat=n_members) if sum(c) == parts]
    return np.asarray(points, dtype=np.float64) / parts


def blend_search(members: Mapping[str, Recommender], train: Interactions, validation: Interactions,
                 weights: np.ndarray | None = None, normalise: str = "zscore", k: int = 10,
                 metric: str = "ndcg", max_users: int | None = None, seed: int = 0
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """Choose blend weights on validation: members (fitted on ``train``) are scored once.

    ``weights`` is a ``(n_candidates, n_members)`` array (default :func:`simplex_grid` with step
    0.1). Returns the best weight vector and a table of every candidate's ``metric@k`` (one row
    per candidate, weights as columns), best first. Warm validation users, seen items excluded,
    as in :func:`~recsys_utils.evaluation.protocol.evaluate`; ``max_users`` takes a fixed sample.
    """
    names = list(members)
    weights = simplex_grid(len(names)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=float))
    if weights.shape[1] != len(names):
        raise ValueError(f"blend_search: weights have {weights.shape[1]} columns for {len(names)} members")
    relevant = relevant_matrix(train, validation)
    users, _ = evaluation_users(train, relevant, "warm")
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    parts = np.stack([normalise_scores(members[n].score(users), normalise) for n in names])
    exclude, rel = train.matrix[users], relevant[users]
    values = np.empty(len(weights))
    for row, w in enumerate(weights):  # one loop step per candidate weight vector, not per user
        top = top_k(np.tensordot(w, parts, axes=1), k, exclude)
        values[row] = ranking_metrics(top, rel, k, (metric,)).mean[f"{metric}@{k}"]
    table = pd.DataFrame(weights, columns=names)
    table[f"{metric}@{k}"] = values
    table = table.sort_values(f"{metric}@{k}", ascending=False, kind="stable")
    return weights[int(table.index[0])], table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# hyperparameter search
# --------------------------------------------------------------------------------------------


#: what the searches tune: a registered model name or a factory ``build(**params) -> Recommender``
ModelSource = str | Callable[..., Recommender]


def model_factory(model: ModelSource, fixed: Mapping[str, Any] | None = None,
                  seed: int | None = None) -> Callable[..., Recommender]:
    """``build(**params)`` for a registered name (``registry.create(name, seed=seed, **fixed,
    **params)``; ``seed`` only where the model takes one) or a factory (``fixed`` added to its
    keywords; ``seed`` is left to the factory). Tried parameters override ``fixed`` ones."""
    fixed = dict(fixed or {})
    if isinstance(model, str):
        registry.model_class(model)  # an unknown name fails here, listing the registered ones
        return lambda **params: registry.create(model, seed=seed, **{**fixed, **params})
    if not callable(model):
        raise TypeError(f"expected a registered model name ({registry.names()}) or a factory "
                        f"build(**params), got {type(model).__name__}")
    return (lambda **params: model(**{**fixed, **params})) if fixed else model


def validation_score(model: Recommender | str, train: Interactions, validation: Interactions, k: int = 10,
                     metric: str = "ndcg", params: Mapping[str, Any] | None = None) -> float:
    """``metric@k`` of a fitted model on the validation interactions (full catalogue, warm users).

    ``model`` may be a registered name: it is built with ``params`` and fitted on ``train`` first.
    """
    if isinstance(model, str):
        model = registry.create(model, **dict(params or {})).fit(train)
    elif params:
        raise ValueError("validation_score: params only apply to a model given by name")
    return float(evaluate(model, train, validation, k=k, metrics=(metric,))[f"{metric}@{k}"])


@dataclass
class SearchResult:
    """Every trial of a search (one row each: params, ``value``, ``seconds``) and the best one."""

    method: str
    trials: pd.DataFrame
    best_params: dict[str, Any]
    best_value: float

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def best_so_far(self) -> np.ndarray:
        """Running maximum of the trial values (the search's progress curve)."""
        return np.fmax.accumulate(self.trials["value"].to_numpy(dtype=float))


def _fit_and_score(build: Callable[..., Recommender], params: dict, train: Interactions,
                   validation: Interactions, k: int, metric: str) -> tuple[float, float]:
    started = time.perf_counter()
    value = validation_score(build(**params).fit(train), train, validation, k, metric)
    return value, time.perf_counter() - started


def _result(method: str, rows: list[dict], names: Sequence[str]) -> SearchResult:
    trials = pd.DataFrame(rows)
    if trials.empty:
        raise ValueError(f"{method}: no trial was run")
    finite = trials["value"].notna()
    if not finite.any():
        raise ValueError(f"{method}: every trial failed or was pruned")
    best = int(trials.loc[finite, "value"].idxmax())
    params = {name: rows[best][name] for name in names}  # the values as tried (types kept)
    return SearchResult(method, trials, params, float(trials.loc[best, "value"]))


def _check_space(space: Mapping[str, Any], where: str) -> None:
    if not space:
        raise ValueError(f"{where}: the search space is empty")


def grid_search(model: ModelSource, space: Mapping[str, Sequence], train: Interactions,
                validation: Interactions, k: int = 10, metric: str = "ndcg", budget: int | None = None,
                seed: int = 0, fixed: Mapping[str, Any] | None = None) -> SearchResult:
    """Try every combination of ``space`` (a dict of value lists) on the model of
    :func:`model_factory` (a registered name or ``build(**params)``, plus ``fixed`` settings).

    With a ``budget`` smaller than the grid, a seeded random subset of the combinations is tried
    (a grid is exhaustive only when it fits the budget). ``seed`` seeds that subset and a model
    given by name.
    """
    _check_space(space, "grid_search")
    build = model_factory(model, fixed, seed)
    names = list(space)
    combos = list(itertools.product(*(list(space[n]) for n in names)))
    if budget is not None and budget < len(combos):
        pick = np.sort(np.random.default_rng(seed).choice(len(combos), budget, replace=False))
        combos = [combos[i] for i in pick]
    rows = []
    for combo in combos:
        params = dict(zip(names, combo, strict=True))
        value, seconds = _fit_and_score(build, params, train, validation, k, metric)
        rows.append({**params, "value": value, "seconds": seconds})
    return _result("grid_search", rows, names)


def _draw(spec, rng: np.random.Generator):
    """One value of a random-search dimension: a list (uniform choice among its values), or a
    tuple ``("log", lo, hi)`` (log-uniform), ``("int", lo, hi)`` (inclusive) or ``("uniform", lo, hi)``."""
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("log", "int", "uniform"):
        kind, low, high = spec
        if kind == "log":
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if kind == "int":
            return int(rng.integers(low, high + 1))
        return float(rng.uniform(low, high))
    if isinstance(spec, list) and len(spec) > 0:
        value = spec[int(rng.integers(len(spec)))]
        return value.item() if hasattr(value, "item") else value
    raise ValueError(f"random_search: cannot draw from {spec!r}; use a list or ('log'|'int'|'uniform', lo, hi)")


def random_search(model: ModelSource, space: Mapping[str, Any], train: Interactions,
                  validation: Interactions, n_trials: int = 10, k: int = 10, metric: str = "ndcg",
                  seed: int = 0, fixed: Mapping[str, Any] | None = None) -> SearchResult:
    """``n_trials`` configurations drawn independently from ``space`` (seeded; see :func:`_draw`)
    for the model of :func:`model_factory` (a registered name or ``build(**params)``, plus
    ``fixed`` settings); ``seed`` seeds the draws and a model given by name."""
    _check_space(space, "random_search")
    if n_trials < 1:
        raise ValueError(f"random_search: n_trials must be >= 1, got {n_trials}")
    build = model_factory(model, fixed, seed)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_trials):
        params = {name: _draw(spec, rng) for name, spec in space.items()}
        value, seconds = _fit_and_score(build, params, train, validation, k, metric)
        rows.append({**params, "value": value, "seconds": seconds})
    return _result("random_search", rows, list(space))


def _objective_for(name: str, train: Interactions | None, validation: Interactions | None,
                   fixed: Mapping[str, Any] | None, seed: int, k: int, metric: str) -> Callable[[dict, Any], float]:
    """The objective of a registered model: fit ``name`` with the trial's params, score on validation."""
    if train is None or validation is None:
        raise ValueError(f"optuna_search: tuning the registered model {name!r} needs train= and validation=")
    build = model_factory(name, fixed, seed)

    def objective(params: dict, report: Callable[[int, float], None]) -> float:
        return validation_score(build(**params).fit(train), train, validation, k, metric)

    return objective


def optuna_search(objective: Callable[[dict, Callable[[int, float], None]], float] | str,
                  suggest: Callable[[Any], dict], n_trials: int = 20, seed: int = 0,
                  pruning: bool = True, n_startup_trials: int = 5, n_warmup_steps: int = 2,
                  train: Interactions | None = None, validation: Interactions | None = None,
                  fixed: Mapping[str, Any] | None = None, k: int = 10, metric: str = "ndcg") -> SearchResult:
    """Optuna's TPE sampler (seeded) with a median pruner, maximising ``objective``.

    ``suggest(trial) -> params`` draws a configuration with ``trial.suggest_*``;
    ``objective(params, report) -> validation value`` trains and may call ``report(step, value)``
    after each epoch: with ``pruning`` a trial whose intermediate value falls below the median of
    earlier trials at that step is stopped (its row has ``state == "PRUNED"`` and no value).
    ``objective`` may instead be a registered model name: each trial then fits
    ``registry.create(name, seed=seed, **fixed, **params)`` on ``train`` and returns its
    :func:`validation_score` (``metric@k`` on ``validation``; no intermediate reports).
    """
    import optuna

    if isinstance(objective, str):
        objective = _objective_for(objective, train, validation, fixed, seed, k, metric)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
              if pruning else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=pruner)
    names: list[str] = []

    def run(trial) -> float:
        params = suggest(trial)
        for name in params:
            if name not in names:
                names.append(name)

        def report(step: int, value: float) -> None:
            trial.report(float(value), int(step))
            if trial.should_prune():
                raise optuna.TrialPruned()

        return float(objective(params, report))

    study.optimize(run, n_trials=n_trials)
    rows = []
    for trial in study.trials:
        done = trial.state == optuna.trial.TrialState.COMPLETE
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        rows.append({**trial.params, "value": trial.value if done else np.nan, "seconds": seconds,
                     "steps": len(trial.intermediate_values), "state": trial.state.name})
    return _result("optuna_search", rows, names)
