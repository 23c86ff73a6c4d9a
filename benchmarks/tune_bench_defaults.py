"""Choose the benchmark models' defaults on validation data (never on the test split).

    python benchmarks/tune_bench_defaults.py --dataset movielens-100k --data-dir ../shared/data/ml-100k \\
        --protocol random-75-25 --models ease,als,bpr

The benchmark's split is made first (same seed as ``python -m recsys_utils.bench``); its *training*
part is split again under the same protocol (another seed) into fit and validation parts. Each
model's grid is scored on that validation part and the best setting printed next to the current
default in :data:`recsys_utils.bench.MODELS`. The defaults in ``MODELS`` were set from this
script's output on MovieLens 100K.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.bench import MODELS, BenchData, load_bench_data, prepare, score_model, split_frames  # noqa: E402
from recsys_utils.seed import seed_everything  # noqa: E402

#: small grids around sensible values; each model's first key is the main knob
GRIDS: dict[str, dict[str, list]] = {
    "itemknn": {"k": [50, 100, 200], "shrinkage": [0.0, 10.0, 50.0]},
    "als": {"factors": [64, 128], "regularization": [0.1, 1.0, 10.0], "alpha": [1.0, 2.0, 5.0]},
    "bpr": {"lr": [2e-3, 5e-3, 1e-2], "l2": [1e-5, 1e-4], "epochs": [40, 80]},
    "ease": {"l2": [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0]},
    "mf": {"dim": [32, 64], "lr": [1e-3, 2e-3, 5e-3], "epochs": [10, 20]},
    "neumf": {"lr": [1e-3, 2e-3, 5e-3], "epochs": [10, 20]},
    "multvae": {"epochs": [40, 60, 100]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--protocol", default="random-75-25")
    parser.add_argument("--models", default="ease,als,itemknn,bpr")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    data = load_bench_data(args.dataset, args.data_dir, seed=args.seed)
    train_frame, _ = split_frames(data, args.protocol, args.seed)  # the test part is never used here
    inner = BenchData(f"{data.name} (training part)", frame=train_frame.reset_index(drop=True))
    prepared = prepare(inner, args.protocol, seed=args.seed + 1)
    metric = "ndcg@10"
    print(f"validation: {prepared.train.nnz:,} fit rows, {prepared.test.nnz:,} validation rows; metric {metric}")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        grid = GRIDS.get(name, {})
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
