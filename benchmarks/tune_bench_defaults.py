"""Choose the benchmark models' defaults on validation data (never on the test split).

    python benchmarks/tune_bench_defaults.py --dataset movielens-100k --data-dir ../shared/data/ml-100k \\
        --protocol random-75-25 --models ease,als,bpr

The benchmark's split is made first (same seed as ``python -m recsys_utils.cli.bench``); its *training*
part is split again under the same protocol (another seed) into fit and validation parts. Each
model's grid is scored on that validation part and the best setting printed next to the current
default in :data:`recsys_utils.cli.bench.MODELS`. The defaults in ``MODELS`` were set from this
script's output on MovieLens 100K under ``random-75-25`` (seed 42; 56,371 fit rows, 18,695
validation rows; validation NDCG@10, lower than test NDCG@10 because the fit part is smaller and
each user has fewer held-out items). Output of 2026-11-23 (OMP_NUM_THREADS=1, shared 2-core CPU):

    ease     l2=100 0.2562 | 200 0.2677 | 300 0.2728 | 500 0.2758 | 1000 0.2740      -> l2=500
    itemknn  k=50: shrink 0 0.2356, 10 0.2333, 50 0.2283 | k=100: 0.2304, 0.2282, 0.2320
             k=200: 0.2368, 0.2369, 0.2356                                           -> k=200, shrink=10
    als      (15 sweeps) dim=64: l2 1/10/30/100 x alpha 0.5/1/5:
             l2 1: 0.2165 0.2176 0.2101 | l2 10: 0.2511 0.2502 0.2319
             l2 30: 0.2473 0.2620 0.2743 | l2 100: 0.1538 0.1547 0.2400
             dim=128 best 0.2737 (l2 30, alpha 5)                                    -> 64, l2 30, alpha 5
    bpr      dim=200: lr 0.01 l2 1e-3: 60 ep 0.2321, 100 ep 0.2529 | lr 0.01 l2 1e-2: 60 ep 0.2346,
             100 ep 0.2597 | lr 0.05 l2 1e-3 100 ep 0.2125 | lr 0.05 l2 1e-2 100 ep 0.2547
             (dim=64, lr 0.05, l2 1e-3, 40 ep: 0.2234)                               -> 200, lr 0.01, l2 1e-2, 100 ep
    mf (GMF) dim=64, 20 epochs: lr 1e-3 0.1644 | lr 5e-3 0.2241                       -> lr 5e-3
    neumf    20 epochs: lr 1e-3 0.2135 | lr 5e-3 0.2008                              -> lr 1e-3
    multvae  60 epochs 0.2578 | 100 epochs 0.2611                                    -> 100 epochs
    (popularity 0.1653)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.cli.bench import MODELS, BenchData, load_bench_data, prepare, score_model, split_frames  # noqa: E402
from recsys_utils.core.seed import seed_everything  # noqa: E402

#: small grids around sensible values; each model's first key is the main knob
GRIDS: dict[str, dict[str, list]] = {
    "itemknn": {"k": [50, 100, 200], "shrink": [0.0, 10.0, 50.0]},
    "als": {"dim": [64, 128], "l2": [1.0, 10.0, 30.0, 100.0], "alpha": [0.5, 1.0, 5.0]},
    "bpr": {"dim": [200], "lr": [0.01, 0.05], "l2": [1e-3, 1e-2], "epochs": [60, 100]},
    "ease": {"l2": [100.0, 200.0, 300.0, 500.0, 1000.0]},
    "mf": {"dim": [64], "lr": [1e-3, 5e-3], "epochs": [20]},
    "neumf": {"lr": [1e-3, 5e-3], "epochs": [20]},
    "multvae": {"epochs": [60, 100]},
}

#: grids for the NCF protocol (``--dataset ncf --protocol leave-last-out-sampled``): the validation
#: item is each user's latest *training* interaction, ranked against 99 sampled items; the winners go
#: into benchmarks/settings/ncf.toml, which the bench command reads for ``--dataset ncf``
NCF_GRIDS: dict[str, dict[str, list]] = {
    "ease": {"l2": [50.0, 100.0, 200.0, 500.0]},
    "als": {"dim": [64, 128], "l2": [3.0, 10.0, 30.0], "alpha": [1.0, 5.0], "epochs": [15]},
    "mf": {"dim": [64, 128], "lr": [2e-3, 5e-3], "n_negatives": [4, 8], "epochs": [20]},
    "neumf": {"lr": [1e-3], "epochs": [20, 40]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--protocol", default="random-75-25")
    parser.add_argument("--models", default="ease,als,itemknn,bpr")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", help="file prefix for --dataset ncf (e.g. ml-1m); uses the NCF grids")
    args = parser.parse_args()
    data = load_bench_data(args.dataset, args.data_dir, args.name, seed=args.seed)
    grids = NCF_GRIDS if args.dataset == "ncf" else GRIDS
    train_frame, _ = split_frames(data, args.protocol, args.seed)  # the test part is never used here
    inner = BenchData(f"{data.name} (training part)", frame=train_frame.reset_index(drop=True))
    prepared = prepare(inner, args.protocol, seed=args.seed + 1)
    metric = "ndcg@10"
    print(f"validation: {prepared.train.nnz:,} fit rows, {prepared.test.nnz:,} validation rows; metric {metric}")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        grid = grids.get(name, {})
        keys = list(grid)
        best = (-1.0, None)
        for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            setting = dict(zip(keys, values, strict=True))
            seed_everything(args.seed)
            model = MODELS[name].build(args.seed, **setting)
            started = time.perf_counter()
            model.fit(prepared.train)
            value = score_model(model, prepared, args.protocol)[metric]
            print(f"  {name:<8} {setting} {metric}={value:.4f} ({time.perf_counter() - started:.1f} s)")
            if value > best[0]:
                best = (value, setting)
        print(f"BEST {name}: {best[1]} {metric}={best[0]:.4f} (current default {MODELS[name].defaults})")


if __name__ == "__main__":
    main()
