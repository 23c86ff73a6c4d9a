"""Benchmark command: run the course's models on a dataset under a published protocol.

    recsys-bench --dataset movielens-100k --data-dir ../shared/data/ml-100k \
        --protocol random-75-25 --models popularity,itemknn,als,bpr,ease,mf,neumf,multvae --out ml100k.json

prints a table and writes one JSON object ``{model: {metric: value, "fit_seconds": s}}``.

Protocols (all treat every interaction as implicit feedback):

``random-75-25``
    microsoft/recommenders' MovieLens benchmark: a random split stratified by item (75% of each
    item's rows train, 25% test), full-catalogue ranking of the items a user has not interacted with
    in train, Precision/Recall/NDCG/MAP@10 with binary relevance. Note: recommenders' "MAP" divides
    by the number of relevant items; ours is MAP@k (divided by min(|relevant|, k)), reported as
    ``map@10``; the other three metrics are defined alike.
``leave-last-out-full``
    Each user's latest interaction is held out and ranked against the full catalogue (seen items
    excluded): HR@10, NDCG@10, MRR@10.
``leave-last-out-sampled``
    The NCF protocol (He et al. 2017): the held-out item against 99 sampled items the user never
    interacted with; HR@10 and NDCG@10 *of the sampled ranking*. Kept to reproduce papers; sampled
    metrics can rank models differently from full ones (Krichene & Rendle 2020). For ``--dataset ncf``
    the given negatives are used.

``leave-one-out-full`` / ``leave-one-out-sampled``
    The next-item protocols of the sequential papers (SASRec, gSASRec): last item test,
    second-last validation, the test input includes the validation item; the target is ranked
    against every item the user never touched, or against ``--negatives N`` of them drawn
    uniformly or by popularity (``--negative-sampling``). Models: popularity, markov, gru4rec,
    caser, sasrec (:mod:`recsys_utils.cli.bench_sequential`).

Datasets: ``movielens-100k``, ``movielens-1m``, ``online-retail`` (``--data-dir`` is the unpacked
folder or the cache folder), ``marketplace`` (generated; ``--data-dir`` unused) and ``ncf``: the
files of He et al. 2017, ``DIR/NAME.train.rating``, ``NAME.test.rating``, ``NAME.test.negative``,
selected with ``--name`` (e.g. ``--name ml-1m``), and ``sequences``: a plain ``user item`` file in
time order (``--data-dir`` the file, or its folder with ``--name``).

Tuned settings are data: ``benchmarks/settings/ncf.toml`` for ``--dataset ncf`` and
``benchmarks/settings/sequential.toml`` for the leave-one-out protocols
(:mod:`recsys_utils.cli.bench_settings`); ``--settings FILE`` replaces them.

The models' default hyperparameters (:data:`MODELS`) were chosen on a validation split carved out
of the *training* part of MovieLens 100K under ``random-75-25`` (``benchmarks/tune_bench_defaults.py``;
its output is recorded in that script's docstring), never on a test split. With them, MovieLens 100K
(seed 42; JSON in ``benchmarks/results/``) gives:

    model       random-75-25: P@10   R@10   NDCG@10  MAP@10  | leave-last-out-sampled: HR@10  NDCG@10
    ease                      0.414  0.220  0.478    0.339   |                         0.651  0.390
    als                       0.403  0.221  0.463    0.318   |                         0.668  0.397
    bpr                       0.392  0.202  0.443    0.306   |                         0.649  0.376
    multvae                   0.375  0.206  0.431    0.287   |                         0.643  0.370
    itemknn                   0.334  0.178  0.396    0.263   |                         0.506  0.283
    mf                        0.336  0.186  0.383    0.236   |                         0.636  0.368
    neumf                     0.337  0.172  0.381    0.253   |                         0.593  0.334
    popularity                0.228  0.115  0.252    0.136   |                         0.416  0.229

microsoft/recommenders' best published NDCG@10 on the random 75/25 protocol is 0.4687 (BiVAE), BPR 0.445.

On the NCF protocol with ``benchmarks/settings/ncf.toml`` (mf, als, ease tuned on a validation split
of the training file; NeuMF by the paper's published recipe), MovieLens 100K written in the NCF
format by ``benchmarks/write_formats.py`` (seed 0; ``benchmarks/results/ml-100k_ncf.json``) gives
HR@10 / NDCG@10: als 0.668 / 0.396, mf 0.664 / 0.391, ease 0.658 / 0.391, neumf 0.650 / 0.372,
popularity 0.406 / 0.227 -- the tuned dot-product models match or beat NeuMF, as Rendle, Krichene,
Zhang & Anderson (2020) found on MovieLens 1M (MF 0.7294 / 0.4523 against NeuMF's 0.730 / 0.447;
a reference, not reproduced here: MovieLens 1M is not on the course machines).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.cli.bench_data import DATASETS, BenchData, BenchInputError, load_bench_data
from recsys_utils.cli.bench_sequential import SAMPLING, SEQUENTIAL_MODELS, SEQUENTIAL_PROTOCOLS, run_sequential
from recsys_utils.cli.bench_settings import default_settings, load_settings
from recsys_utils.core.io import atomic_write
from recsys_utils.core.seed import seed_everything
from recsys_utils.core.vocabulary import ITEM, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.splits import leave_last_out, stratified_split
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.evaluation.sampled import SampledProtocol, evaluate_sampled, sampled_protocol
from recsys_utils.models import registry
from recsys_utils.models.base import Recommender
from recsys_utils.scale.engines import ENGINES, on_engine

PROTOCOLS = ("random-75-25", "leave-last-out-full", "leave-last-out-sampled")


K = 10


N_NEGATIVES = 99


@dataclass(frozen=True)
class ModelSpec:
    """A registered model (:mod:`recsys_utils.models.registry`) with its benchmark defaults."""

    name: str
    defaults: dict = field(default_factory=dict)
    about: str = ""

    def build(self, seed: int, **overrides) -> Recommender:
        kwargs = {**self.defaults, **overrides}
        return registry.create(self.name, seed=seed, **kwargs)


#: model name -> class and defaults (chosen on validation data, see the module docstring and
#: ``benchmarks/tune_bench_defaults.py``). "mf" is the implicit-feedback ranking MF: a dot-product
#: model p_u . q_i with a learned weight per factor (GMF, He et al. 2017) trained with the log loss on
#: sampled negatives -- the pointwise counterpart of BPR's pairwise loss. ``mf.ExplicitMF`` fits
#: rating values and is not a ranking model, so it is not in the benchmark.
MODELS: dict[str, ModelSpec] = {
    "popularity": ModelSpec("popularity", {},
                            "most interacted items"),
    "itemknn": ModelSpec("itemknn", {"k": 200, "shrink": 10.0},
                         "item-based kNN, cosine with shrinkage (Sarwar et al. 2001)"),
    "als": ModelSpec("als",
                     {"dim": 64, "l2": 30.0, "alpha": 5.0, "epochs": 15},
                     "implicit ALS with confidence weights (Hu et al. 2008), CG solver"),
    "bpr": ModelSpec("bpr",
                     {"dim": 200, "lr": 0.01, "l2": 1e-2, "epochs": 100, "batch_size": 1024},
                     "BPR-MF, SGD on sampled triples (Rendle et al. 2009)"),
    "ease": ModelSpec("ease", {"l2": 500.0}, "EASE (Steck 2019)"),
    "mf": ModelSpec("mf", {"dim": 64, "epochs": 20, "lr": 5e-3},
                    "dot-product MF (GMF), log loss on sampled negatives (He et al. 2017)"),
    "neumf": ModelSpec("neumf", {"epochs": 20, "lr": 1e-3},
                       "NeuMF (He et al. 2017)"),
    "multvae": ModelSpec("multvae", {"epochs": 100},
                         "Mult-VAE (Liang et al. 2018)"),
}


@dataclass
class Prepared:
    """Train and test matrices on one index, plus the sampled protocol's candidates when it is used."""

    train: Interactions
    test: Interactions
    sampled: SampledProtocol | None = None
    sampling: str = ""  # how the negatives were chosen, written into the JSON


def split_frames(data: BenchData, protocol: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames of ``data`` under ``protocol``."""
    if data.train is not None:
        if protocol == "random-75-25":
            raise BenchInputError("--protocol random-75-25 needs a full dataset; ncf files come pre-split "
                                  "(use leave-last-out-sampled or leave-last-out-full)")
        return data.train, data.test
    if protocol == "random-75-25":
        split = stratified_split(data.frame, test_fraction=0.25, by=ITEM, seed=seed)
    else:
        split = leave_last_out(data.frame, n_test=1)
    return split.train, split.test


def prepare(data: BenchData, protocol: str, seed: int = 42) -> Prepared:
    """Split ``data`` under ``protocol`` and build the matrices (and negatives) the models see."""
    if protocol not in PROTOCOLS:
        raise BenchInputError(f"--protocol: unknown {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    train_frame, test_frame = split_frames(data, protocol, seed)
    both = pd.concat([train_frame, test_frame], ignore_index=True)
    users = IdIndex(np.sort(both[USER].unique()), USER)
    items = IdIndex(np.sort(both[ITEM].unique()), ITEM)
    if data.negatives is not None:  # ncf ids are 0-based: keep every id in range as a column
        items = IdIndex(np.arange(max(int(both[ITEM].max()), int(data.negatives.max())) + 1), ITEM)
    train = Interactions.from_frame(train_frame, users, items, weight=None, binary=True)
    test = Interactions.from_frame(test_frame, users, items, weight=None, binary=True)
    if protocol != "leave-last-out-sampled":
        return Prepared(train, test)
    if data.negatives is None:
        protocol_rows = sampled_protocol(train, test, n_negatives=N_NEGATIVES, users="all", exclude_seen=False,
                                         seed=seed)
        return Prepared(train, test, protocol_rows, f"{N_NEGATIVES} items drawn uniformly among those the user "
                                                    "never interacted with (evaluation.sampled)")
    return Prepared(train, test, _given_negatives(data, train, test, users, items), "given by the NCF file")


def _given_negatives(data: BenchData, train: Interactions, test: Interactions, users: IdIndex,
                     items: IdIndex) -> SampledProtocol:
    """The NCF file's negatives as a :class:`SampledProtocol` (``-1`` marks a collapsed duplicate)."""
    given = data.negatives
    negatives = np.where(given >= 0, items.to_index(np.where(given >= 0, given, given.max()).ravel())
                         .reshape(given.shape), -1)
    blocked = sp.csr_matrix(((train.binary() + test.binary()) > 0).astype(np.float32))
    return SampledProtocol(users.to_index(data.test[USER].to_numpy()), items.to_index(data.test[ITEM].to_numpy()),
                           negatives.astype(np.int64), blocked, train.n_items, seed=-1)


def _sampled_scores(model: Recommender, prepared: Prepared) -> dict[str, float]:
    result = evaluate_sampled(model, prepared.sampled, K).summary
    negatives = prepared.sampled.negatives
    candidates = 1 + (negatives >= 0).sum(axis=1)
    return {f"hr@{K}": result[f"sampled_hr@{K}"], f"ndcg@{K}": result[f"sampled_ndcg@{K}"],
            "users": int(result["rows"]), "candidates_mean": float(candidates.mean()),
            "candidates_min": int(candidates.min()), "negative_sampling": prepared.sampling}


def score_model(model: Recommender, prepared: Prepared, protocol: str) -> dict[str, float]:
    """Metrics of a fitted model under ``protocol`` on ``prepared``."""
    if protocol == "leave-last-out-sampled":
        return _sampled_scores(model, prepared)
    metrics = ("precision", "recall", "ndcg", "map") if protocol == "random-75-25" else ("hr", "ndcg", "mrr")
    result = evaluate(model, prepared.train, prepared.test, k=K, metrics=metrics)
    keep = [f"{m}@{K}" for m in metrics] + [f"coverage@{K}", "users"]
    return {key: result.summary[key] for key in keep}


#: protocols that share one split: a model fitted for one can be scored under the other
SAME_SPLIT = {"leave-last-out-full": "leave-last-out-sampled", "leave-last-out-sampled": "leave-last-out-full"}


def run_benchmark(data: BenchData, protocol: str, models: list[str], seed: int = 42,
                  log: Callable[[str], None] | None = print, also: tuple[str, ...] = (),
                  overrides: dict[str, dict] | None = None, engine: str = "numpy") -> dict[str, dict]:
    """Fit and score each model; ``{model: {metric: value, "fit_seconds": s}}``.

    ``engine="spark"`` trains ALS with Spark MLlib in local mode (:mod:`recsys_utils.scale.engines`).

    ``overrides`` maps a model name to constructor arguments replacing its defaults (e.g. fewer
    epochs for a quick run); the command line passes the settings file's tables (ncf.toml).

    ``also`` names protocols sharing ``protocol``'s split (the two leave-last-out ones): the same
    fitted model is scored under them too, under the key ``"also": {protocol: {metric: value}}``.
    """
    unknown = [m for m in [*models, *(overrides or {})] if m not in MODELS]
    if unknown:
        raise BenchInputError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    for other in also:
        if SAME_SPLIT.get(protocol) != other:
            raise BenchInputError(f"protocol {other!r} does not share the split of {protocol!r}")
    prepared = prepare(data, "leave-last-out-sampled" if "leave-last-out-sampled" in also else protocol, seed)
    if log:
        log(f"bench: {data.name} | {protocol} | train {prepared.train.nnz:,} interactions, "
            f"{prepared.train.n_users:,} users x {prepared.train.n_items:,} items | test {prepared.test.nnz:,}")
    results: dict[str, dict[str, float]] = {}
    for name in models:
        seed_everything(seed)
        model = on_engine(MODELS[name].build(seed, **(overrides or {}).get(name, {})), engine)
        started = time.perf_counter()
        model.fit(prepared.train)
        fit_seconds = time.perf_counter() - started
        results[name] = {**score_model(model, prepared, protocol), "fit_seconds": round(fit_seconds, 3)}
        if also:
            results[name]["also"] = {other: score_model(model, prepared, other) for other in also}
        if log:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in results[name].items()
                              if isinstance(v, float) and k not in ("candidates_mean",))
            log(f"  {name:<11} {shown}")
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help=", ".join(DATASETS))
    parser.add_argument("--data-dir", help="the unpacked archive, a cache folder, or the folder of the ncf files")
    parser.add_argument("--name", help="file prefix for --dataset ncf (e.g. ml-1m)")
    parser.add_argument("--protocol", required=True, help=", ".join(PROTOCOLS + SEQUENTIAL_PROTOCOLS))
    parser.add_argument("--models", default="popularity,itemknn,als,bpr,ease,mf,neumf,multvae",
                        help="comma-separated: " + ", ".join(MODELS) + "; under the leave-one-out protocols: "
                        + ", ".join(SEQUENTIAL_MODELS))
    parser.add_argument("--out", help="write the JSON object here as well")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--negatives", type=int, default=100, help="leave-one-out-sampled: negatives per user")
    parser.add_argument("--negative-sampling", default="uniform", help=", ".join(SAMPLING))
    parser.add_argument("--settings", help="TOML file of model arguments (default: benchmarks/settings/)")
    parser.add_argument("--engine", choices=ENGINES, default="numpy",
                        help="numpy (the course's models) or spark (MLlib ALS in local mode; --models als)")
    return parser


def _check_args(args: argparse.Namespace) -> list[str]:
    """Validate the options before any work; returns the model names."""
    if args.seed < 0:
        raise BenchInputError(f"--seed must be a non-negative integer, got {args.seed}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise BenchInputError(f"--models {args.models!r} names no model; choose from {', '.join(MODELS)}")
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise BenchInputError(f"--out {out} is a folder; give a file name such as {out / 'bench.json'}")
        if out.parent.exists() and not out.parent.is_dir():
            raise BenchInputError(f"--out {out}: {out.parent} is not a folder")
    return models


def _run(args: argparse.Namespace, data: BenchData, models: list[str], log: Callable[[str], None]) -> dict:
    """Dispatch to the next-item protocols or :func:`run_benchmark`, with the tuned settings."""
    sequential = args.protocol in SEQUENTIAL_PROTOCOLS
    kind = "sequential" if sequential else "ncf" if data.negatives is not None else ""
    settings, origin = (load_settings(args.settings), args.settings) if args.settings else \
        default_settings(kind) if kind else ({}, "")
    if origin:
        log(f"bench: settings from {origin}")
    if sequential:
        if data.frame is None:
            raise BenchInputError(f"--protocol {args.protocol} needs whole histories; --dataset ncf comes pre-split")
        if args.models == _parser().get_default("models"):
            models = list(SEQUENTIAL_MODELS)
        return run_sequential(data.frame, args.protocol, models, settings, args.negatives,
                              args.negative_sampling, args.seed, log=log)
    overrides = {name: value for name, value in settings.items() if name in models}
    return run_benchmark(data, args.protocol, models, args.seed, log=log, overrides=overrides, engine=args.engine)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    try:
        models = _check_args(args)
        data = load_bench_data(args.dataset, args.data_dir, args.name, args.seed)
        log(f"bench: data from {data.source or data.name}")
        for key, value in data.notes.items():
            log(f"bench: {key.replace('_', ' ')}: {value}")
        results = _run(args, data, models, log)
    except (BenchInputError, FileNotFoundError, KeyError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # loader format errors name the file and line
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with atomic_write(args.out, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
