"""Benchmark command: run the course's models on a dataset under a published protocol.

    python -m recsys_utils.cli.bench --dataset movielens-100k --data-dir ../shared/data/ml-100k \\
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

Datasets: ``movielens-100k``, ``movielens-1m``, ``online-retail`` (``--data-dir`` is the unpacked
folder or the cache folder), ``marketplace`` (generated; ``--data-dir`` unused) and ``ncf``: the
files of He et al. 2017, ``DIR/NAME.train.rating``, ``NAME.test.rating``, ``NAME.test.negative``,
selected with ``--name`` (e.g. ``--name ml-1m``).

The models' default hyperparameters (:data:`MODELS`) were chosen on a validation split carved out
of the *training* part of MovieLens 100K under ``random-75-25`` (``benchmarks/tune_bench_defaults.py``;
its output is recorded in that script's docstring), never on a test split. With them, MovieLens 100K
(seed 42; JSON in ``benchmarks/results/``) gives:

    model       random-75-25: P@10   R@10   NDCG@10  MAP@10  | leave-last-out-sampled: HR@10  NDCG@10
    ease                      0.414  0.220  0.478    0.339   |                         0.651  0.390
    als                       0.403  0.221  0.463    0.318   |                         0.668  0.397
    bpr                       0.391  0.202  0.441    0.305   |                         0.661  0.381
    multvae                   0.375  0.206  0.431    0.287   |                         0.643  0.370
    itemknn                   0.334  0.178  0.396    0.263   |                         0.506  0.283
    mf                        0.336  0.186  0.383    0.236   |                         0.636  0.368
    neumf                     0.337  0.172  0.381    0.253   |                         0.593  0.334
    popularity                0.228  0.115  0.252    0.136   |                         0.416  0.229

microsoft/recommenders' best published NDCG@10 on the random 75/25 protocol is 0.4687 (BiVAE), BPR 0.445.
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

from recsys_utils.core.metrics import sampled_ranking_metrics
from recsys_utils.core.seed import seed_everything
from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.splits import leave_last_out, stratified_split
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import registry
from recsys_utils.models.base import Recommender

PROTOCOLS = ("random-75-25", "leave-last-out-full", "leave-last-out-sampled")
DATASETS = ("movielens-100k", "movielens-1m", "online-retail", "marketplace", "ncf")
K = 10
N_NEGATIVES = 99


class BenchInputError(ValueError):
    """Bad benchmark input; the message names the file and line (or the option) at fault."""


# ============================================================================ models


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
                     {"factors": 64, "regularization": 30.0, "alpha": 5.0, "iterations": 15},
                     "implicit ALS with confidence weights (Hu et al. 2008), CG solver"),
    "bpr": ModelSpec("bpr",
                     {"factors": 200, "learning_rate": 0.01, "regularization": 1e-2, "epochs": 100, "batch_size": 1024},
                     "BPR-MF, SGD on sampled triples (Rendle et al. 2009)"),
    "ease": ModelSpec("ease", {"l2": 500.0}, "EASE (Steck 2019)"),
    "mf": ModelSpec("mf", {"dim": 64, "epochs": 20, "lr": 5e-3},
                    "dot-product MF (GMF), log loss on sampled negatives (He et al. 2017)"),
    "neumf": ModelSpec("neumf", {"epochs": 20, "lr": 1e-3},
                       "NeuMF (He et al. 2017)"),
    "multvae": ModelSpec("multvae", {"epochs": 100},
                         "Mult-VAE (Liang et al. 2018)"),
}


# ============================================================================ data


@dataclass
class BenchData:
    """Interactions of a benchmark dataset, or a given train/test split with negatives (ncf)."""

    name: str
    frame: pd.DataFrame | None = None
    train: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    negatives: np.ndarray | None = None  # (n_test_rows, n_negatives) raw item ids, ncf only


def _parse_int_fields(path: Path, min_fields: int) -> list[list[str]]:
    lines = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchInputError(f"{path}: cannot read ({error})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) < min_fields:
            raise BenchInputError(f"{path}:{number}: expected at least {min_fields} tab-separated fields, "
                                  f"got {len(fields)}: {line[:80]!r}")
        lines.append((number, fields))
    if not lines:
        raise BenchInputError(f"{path}: empty file")
    return lines


def _ratings_file(path: Path) -> pd.DataFrame:
    rows = _parse_int_fields(path, 2)
    users, items, times = [], [], []
    for number, fields in rows:
        try:
            users.append(int(fields[0]))
            items.append(int(fields[1]))
            times.append(int(fields[3]) if len(fields) > 3 else 0)
        except ValueError:
            raise BenchInputError(f"{path}:{number}: user, item and timestamp must be integers: "
                                  f"{chr(9).join(fields)[:80]!r}") from None
        if users[-1] < 0 or items[-1] < 0:
            raise BenchInputError(f"{path}:{number}: negative id")
    return pd.DataFrame({USER: users, ITEM: items, TIMESTAMP: pd.to_datetime(times, unit="s")})


def read_ncf(folder: str | Path, name: str) -> BenchData:
    """The NCF benchmark files (He et al. 2017), validated line by line."""
    folder = Path(folder)
    train = _ratings_file(folder / f"{name}.train.rating")
    test = _ratings_file(folder / f"{name}.test.rating")
    negative_path = folder / f"{name}.test.negative"
    rows = _parse_int_fields(negative_path, 2)
    n_users, n_items = int(train[USER].max()) + 1, int(train[ITEM].max()) + 1
    for path, frame in ((folder / f"{name}.test.rating", test),):
        bad = (frame[USER] >= n_users) | (frame[ITEM] >= n_items)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise BenchInputError(f"{path}:{line}: user or item id out of the training range "
                                  f"(users < {n_users}, items < {n_items})")
    if len(rows) != len(test):
        raise BenchInputError(f"{negative_path}: {len(rows)} lines but {len(test)} test ratings")
    width = len(rows[0][1]) - 1
    negatives = np.empty((len(rows), width), dtype=np.int64)
    seen = Interactions.from_frame(train, IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items)),
                                   weight=None, binary=True).matrix
    for position, (number, fields) in enumerate(rows):
        head = fields[0].strip("()").split(",")
        try:
            user, item = int(head[0]), int(head[1])
            values = [int(v) for v in fields[1:]]
        except (ValueError, IndexError):
            raise BenchInputError(f"{negative_path}:{number}: expected '(user,item)' then integer item ids") from None
        if len(values) != width:
            raise BenchInputError(f"{negative_path}:{number}: {len(values)} negatives, the first line has {width}")
        if (user, item) != (test[USER].iat[position], test[ITEM].iat[position]):
            raise BenchInputError(f"{negative_path}:{number}: ({user},{item}) does not match line {position + 1} "
                                  f"of {name}.test.rating")
        negatives[position] = values
    out_of_range = (negatives < 0) | (negatives >= n_items)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range.any(axis=1))[0])
        raise BenchInputError(f"{negative_path}:{rows[row][0]}: negative item id out of range (items < {n_items})")
    users = test[USER].to_numpy()
    in_train = np.asarray(seen[np.repeat(users, width), negatives.ravel()]).reshape(negatives.shape) > 0
    is_positive = negatives == test[ITEM].to_numpy()[:, None]
    if (in_train | is_positive).any():
        row = int(np.flatnonzero((in_train | is_positive).any(axis=1))[0])
        raise BenchInputError(f"{negative_path}:{rows[row][0]}: a negative is one of the user's own items")
    return BenchData(name=f"ncf/{name}", train=train, test=test, negatives=negatives)


def load_bench_data(dataset: str, data_dir: str | Path | None = None, name: str | None = None,
                    seed: int = 42) -> BenchData:
    """The interactions of ``dataset`` in the course vocabulary (see the module docstring)."""
    if dataset not in DATASETS:
        raise BenchInputError(f"--dataset: unknown {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "ncf":
        if not name or data_dir is None:
            raise BenchInputError("--dataset ncf needs --data-dir DIR and --name NAME (e.g. ml-1m)")
        return read_ncf(data_dir, name)
    from recsys_utils.data.datasets import load_dataset

    kwargs: dict = {}
    if dataset != "marketplace":
        if data_dir is None:
            raise BenchInputError(f"--dataset {dataset} needs --data-dir (the unpacked folder or a cache folder)")
        folder = Path(data_dir)
        if not folder.exists():
            raise BenchInputError(f"--data-dir {folder}: no such folder")
        marker = {"movielens-100k": "u.data", "movielens-1m": "ratings.dat"}.get(dataset)
        kwargs = {"path": folder} if marker and (folder / marker).is_file() else {"data_dir": folder}
    data = load_dataset(dataset, seed=seed, **kwargs)
    frame = data.interactions[[USER, ITEM, TIMESTAMP]].reset_index(drop=True)
    return BenchData(name=dataset, frame=frame)


# ============================================================================ protocols


@dataclass
class Prepared:
    """Train and test matrices on one index, plus sampled negatives for the sampled protocol."""

    train: Interactions
    test: Interactions
    negatives: np.ndarray | None = None  # (n_test_users, N) item indices
    test_users: np.ndarray | None = None
    test_items: np.ndarray | None = None


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


def _sample_negatives(seen: sp.csr_matrix, users: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct items per user, uniformly among those the user never interacted with.

    Vectorised over blocks of users: random priorities for every item, seen items pushed to the
    end, the ``n`` smallest kept (a uniform sample without replacement).
    """
    n_items = seen.shape[1]
    if (n_items - np.diff(seen.indptr)[users] < n).any():
        raise BenchInputError(f"a user has fewer than {n} items they never interacted with")
    out = np.empty((len(users), n), dtype=np.int64)
    block = max(1, 20_000_000 // max(n_items, 1))
    for start in range(0, len(users), block):
        rows = users[start:start + block]
        priority = rng.random((len(rows), n_items))
        priority[seen[rows].toarray() > 0] = np.inf
        out[start:start + len(rows)] = np.argpartition(priority, n - 1, axis=1)[:, :n]
    return out


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
    test_users = users.to_index(test_frame[USER].to_numpy())
    test_items = items.to_index(test_frame[ITEM].to_numpy())
    if data.negatives is not None:
        negatives = items.to_index(data.negatives.ravel()).reshape(data.negatives.shape)
    else:
        seen = (train.binary() + test.binary()).tocsr()
        negatives = _sample_negatives(seen, test_users, N_NEGATIVES, np.random.default_rng(seed))
    return Prepared(train, test, negatives, test_users, test_items)


def _sampled_scores(model: Recommender, prepared: Prepared, batch_size: int = 1024) -> dict[str, float]:
    pos, neg = [], []
    for start in range(0, len(prepared.test_users), batch_size):
        users = prepared.test_users[start:start + batch_size]
        scores = np.asarray(model.score(users), dtype=np.float64)
        rows = np.arange(len(users))
        pos.append(scores[rows, prepared.test_items[start:start + batch_size]])
        neg.append(np.take_along_axis(scores, prepared.negatives[start:start + batch_size], axis=1))
    result = sampled_ranking_metrics(np.concatenate(pos), np.concatenate(neg), K)
    return {f"hr@{K}": result[f"sampled_hr@{K}"], f"ndcg@{K}": result[f"sampled_ndcg@{K}"], "users": result["users"]}


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
                  overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """Fit and score each model; ``{model: {metric: value, "fit_seconds": s}}``.

    ``overrides`` maps a model name to constructor arguments replacing its defaults (e.g. fewer
    epochs for a quick run); the command line always uses the documented defaults.

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
        model = MODELS[name].build(seed, **(overrides or {}).get(name, {}))
        started = time.perf_counter()
        model.fit(prepared.train)
        fit_seconds = time.perf_counter() - started
        results[name] = {**score_model(model, prepared, protocol), "fit_seconds": round(fit_seconds, 3)}
        if also:
            results[name]["also"] = {other: score_model(model, prepared, other) for other in also}
        if log:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in results[name].items() if k not in ("users", "also"))
            log(f"  {name:<11} {shown}")
    return results


# ============================================================================ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys_utils.cli.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help=", ".join(DATASETS))
    parser.add_argument("--data-dir", help="the unpacked archive, a cache folder, or the folder of the ncf files")
    parser.add_argument("--name", help="file prefix for --dataset ncf (e.g. ml-1m)")
    parser.add_argument("--protocol", required=True, help=", ".join(PROTOCOLS))
    parser.add_argument("--models", default="popularity,itemknn,als,bpr,ease,mf,neumf,multvae",
                        help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--out", help="write the JSON object here as well")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data = load_bench_data(args.dataset, args.data_dir, args.name, args.seed)
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        results = run_benchmark(data, args.protocol, models, args.seed, log=lambda s: print(s, file=sys.stderr))
    except (BenchInputError, FileNotFoundError, KeyError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # loader format errors name the file and line
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
