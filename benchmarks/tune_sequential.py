"""Choose the next-item models' bench settings on the VALIDATION item (never the test item).

    nice -n 10 python benchmarks/tune_sequential.py --data FILE.txt --models sasrec,gru4rec --minutes 15
    nice -n 10 python benchmarks/tune_sequential.py --data marketplace --models sasrec --minutes 15

``--data`` is a ``user item`` sequence file (``benchmarks/write_formats.py`` writes MovieLens in it) or
a dataset name of the bench command (``marketplace``). The bench command's leave-one-out split is
made (:func:`recsys_utils.cli.bench_sequential.split_sequences`); each setting is fitted on the
training sequences (the neural models early-stop on the validation item, as in the bench, so the
number of epochs is chosen there) and scored by validation NDCG@10 under full ranking (candidates:
the items not in the validation history, the validation target included). The test item is never
looked at here.

The search is coordinate-wise, so that it ends in minutes on a 2-core CPU: starting from the
settings file, each knob in :data:`GRIDS` is tried in turn with the others held at the best found so
far (one fit per value instead of one per combination). ``--minutes`` caps the whole run: a knob not
reached in time keeps its current value and is reported as untried. The best setting per model is
printed as a TOML table; copy it into ``benchmarks/settings/sequential.toml`` with how it was chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.cli.bench_data import load_bench_data  # noqa: E402
from recsys_utils.cli.bench_sequential import SEQUENTIAL_MODELS, rank_targets, split_sequences  # noqa: E402
from recsys_utils.cli.bench_settings import default_settings  # noqa: E402
from recsys_utils.core.seed import seed_everything  # noqa: E402
from recsys_utils.data.sequence_files import read_sequence_file  # noqa: E402
from recsys_utils.models.sequential import history_matrix  # noqa: E402

#: knobs tried one at a time, in this order (the first value of each list need not be the default)
GRIDS: dict[str, dict[str, list]] = {
    "markov": {"window": [1, 2, 3], "decay": [0.3, 0.6]},
    "sasrec": {"loss": ["ce", "gbce"], "lr": [1e-3, 3e-3], "dropout": [0.2, 0.5], "max_len": [50, 100],
               "dim": [32, 64]},
    "gru4rec": {"lr": [1e-3, 2e-3, 5e-3], "dropout": [0.2, 0.5], "max_len": [50, 100], "dim": [32, 64]},
    "caser": {"lr": [1e-3, 2e-3, 5e-3], "max_len": [50, 100], "dim": [32, 64]},
}


def validation_ndcg(name: str, setting: dict, split, seen: sp.csr_matrix, seed: int) -> tuple[float, int, float]:
    """Validation NDCG@10 (full ranking), the epoch kept by early stopping and the fit seconds."""
    kwargs = {k: v for k, v in setting.items() if k != "about"}
    if name not in ("markov", "popularity"):
        kwargs.setdefault("seed", seed)
    seed_everything(seed)
    started = time.perf_counter()
    model = SEQUENTIAL_MODELS[name](**kwargs).fit(split.train, validation=split.validation)
    seconds = time.perf_counter() - started
    task = split.validation
    ranks = rank_targets(model.score_next, task.histories, task.targets, seen)
    ndcg = float(np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    history = getattr(model, "history_", None)
    best_epoch = int(getattr(history, "best_epoch", 0) or 0) if history is not None else 0
    return ndcg, best_epoch, seconds


def tune(name: str, base: dict, split, seen: sp.csr_matrix, seed: int, deadline: float, log) -> dict:
    """Coordinate-wise search over ``GRIDS[name]`` from ``base``; returns the best setting and its trail."""
    best = dict(base)
    cache: dict[str, tuple[float, int, float]] = {}

    def score(setting: dict) -> float:
        key = json.dumps({k: v for k, v in setting.items() if k != "about"}, sort_keys=True)
        if key not in cache:
            cache[key] = validation_ndcg(name, setting, split, seen, seed)
            ndcg, epoch, seconds = cache[key]
            log(json.dumps({"model": name, "setting": json.loads(key), "validation_ndcg@10": round(ndcg, 4),
                            "best_epoch": epoch, "fit_seconds": round(seconds, 1)}))
        return cache[key][0]

    best_score = score(best)
    untried = []
    for knob, values in GRIDS.get(name, {}).items():
        for value in values:
            if best.get(knob) == value:
                continue
            if time.perf_counter() > deadline:
                untried.append(f"{knob}={value}")
                continue
            candidate = {**best, knob: value}
            value_score = score(candidate)
            if value_score > best_score:
                best, best_score = candidate, value_score
    return {"best": best, "validation_ndcg@10": round(best_score, 4), "fits": len(cache), "untried": untried}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a 'user item' sequence file, or 'marketplace'")
    parser.add_argument("--models", default="markov,sasrec")
    parser.add_argument("--minutes", type=float, default=15.0, help="time cap for the whole search")
    parser.add_argument("--set", default="", help="overrides of the base settings, e.g. epochs=10,max_len=50 "
                        "(a cheaper search on a slow machine; report them with the result)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (pair.split("=", 1) for pair in args.set.split(",") if pair)}
    deadline = time.perf_counter() + 60.0 * args.minutes
    path = Path(args.data)
    frame = read_sequence_file(path).frame if path.is_file() else load_bench_data(args.data, seed=args.seed).frame
    settings, origin = default_settings("sequential")
    max_len = max([int(v) for grid in GRIDS.values() for v in grid.get("max_len", [])]
                  + [int(s.get("max_len", 50)) for s in settings.values()])
    split = split_sequences(frame, max_len=max_len)
    task = split.validation
    seen = history_matrix(task.histories, split.train.n_items)
    seen = (seen + sp.csr_matrix((np.ones(len(task)), (np.arange(len(task)), task.targets)), shape=seen.shape)) > 0
    seen = sp.csr_matrix(seen, dtype=np.float32)
    log = lambda line: print(line, flush=True)  # noqa: E731
    log(f"# {args.data}: {len(task)} validation users x {split.train.n_items} items; base settings from {origin}"
        f"{'; overrides ' + json.dumps(overrides) if overrides else ''}")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        base = {**settings.get(name, {}), **(overrides if name not in ("markov", "popularity") else {})}
        result = tune(name, base, split, seen, args.seed, deadline, log)
        log(f"# BEST {name}: validation ndcg@10={result['validation_ndcg@10']} after {result['fits']} fits; "
            f"untried (time cap): {', '.join(result['untried']) or 'none'}")
        log(f"[{name}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in result["best"].items() if k != "about"))


if __name__ == "__main__":
    main()
