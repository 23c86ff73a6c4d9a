"""Choose the next-item models' bench settings on the VALIDATION item (never the test item).

    python benchmarks/tune_sequential.py --data FILE.txt [--models markov,sasrec] [--grid small]

The bench command's leave-one-out split is made (:func:`recsys_utils.cli.bench_sequential.split_sequences`);
each setting is fitted on the training sequences (the neural models early-stop on the validation
item, as in the bench) and its validation NDCG@10 under full ranking printed (candidates: the items
not in the validation history, the validation target included). The best per model is what
``benchmarks/settings/sequential.toml`` holds; the test item is never looked at here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.cli.bench_sequential import SEQUENTIAL_MODELS, rank_targets, split_sequences  # noqa: E402
from recsys_utils.cli.bench_settings import default_settings  # noqa: E402
from recsys_utils.core.seed import seed_everything  # noqa: E402
from recsys_utils.data.sequence_files import read_sequence_file  # noqa: E402
from recsys_utils.models.sequential import history_matrix  # noqa: E402

#: small grids (a 2-core CPU): each a product of the listed values on top of the settings file
GRIDS: dict[str, dict[str, list]] = {
    "markov": {"window": [1, 2, 3], "decay": [0.3, 0.6]},
    "gru4rec": {"lr": [1e-3, 2e-3]},
    "sasrec": {"loss": ["ce", "gbce", "bce"]},
    "caser": {"lr": [1e-3, 2e-3]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a 'user item' sequence file")
    parser.add_argument("--models", default="markov,sasrec")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    frame = read_sequence_file(args.data).frame
    settings, origin = default_settings("sequential")
    max_len = max([int(s.get("max_len", 50)) for s in settings.values()] + [50])
    split = split_sequences(frame, max_len=max_len)
    task = split.validation
    seen = history_matrix(task.histories, split.train.n_items)
    seen = (seen + sp.csr_matrix((np.ones(len(task)), (np.arange(len(task)), task.targets)), shape=seen.shape)) > 0
    seen = sp.csr_matrix(seen, dtype=np.float32)
    print(f"{args.data}: {len(task)} validation users; base settings from {origin}")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        grid = GRIDS.get(name, {})
        keys = list(grid)
        best = (-1.0, None)
        for values in itertools.product(*(grid[k] for k in keys)):
            setting = {**settings.get(name, {}), **dict(zip(keys, values, strict=True))}
            if name not in ("markov", "popularity"):
                setting.setdefault("seed", args.seed)
            seed_everything(args.seed)
            started = time.perf_counter()
            model = SEQUENTIAL_MODELS[name](**setting).fit(split.train, validation=task)
            ranks = rank_targets(model.score_next, task.histories, task.targets, seen)
            ndcg = float(np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
            shown = dict(zip(keys, values, strict=True))
            print(f"  {name:<8} {shown} validation ndcg@10={ndcg:.4f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
            if ndcg > best[0]:
                best = (ndcg, shown)
        print(f"BEST {name}: {best[1]} validation ndcg@10={best[0]:.4f}", flush=True)


if __name__ == "__main__":
    main()
