"""Speed of one training epoch of the course's torch models on a MovieLens-1M-sized problem (a script).

    python benchmarks/bench_neural.py [--threads 2]

A synthetic implicit matrix the size of MovieLens 1M (6,040 users x 3,706 items, 1,000,209
interactions, long-tailed item popularity and user activity) and 6,000 sequences of 50 steps.
Each model is fitted for one epoch (no validation); the figure is the wall time of that fit,
printed with its ratio to the target of issue 5 (below 1 = faster than the target):

    BPR-MF in torch <= 3 s, NeuMF with 4 negatives per positive <= 15 s, Mult-VAE <= 4 s,
    GRU4Rec on 6,000 sequences of 50 steps <= 15 s.

Timings depend on the machine and its load; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.core.seed import seed_everything  # noqa: E402
from recsys_utils.data.interactions import IdIndex, Interactions  # noqa: E402
from recsys_utils.data.sequences import Sequences  # noqa: E402

N_USERS, N_ITEMS, NNZ = 6040, 3706, 1_000_209
TARGETS = {"bpr (torch, Adam)": 3.0, "bpr (torch, SGD)": 3.0, "neumf (4 negatives)": 15.0, "multvae": 4.0,
           "gru4rec": 15.0}


def ml1m_sized(seed: int = 0) -> Interactions:
    """Long-tailed synthetic implicit data with MovieLens 1M's shape and number of interactions."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    item_p /= item_p.sum()
    activity = rng.lognormal(0, 1.0, N_USERS)
    counts = np.maximum(20, np.round(activity / activity.sum() * NNZ * 1.15)).astype(np.int64)
    users = np.repeat(np.arange(N_USERS), counts)
    items = rng.choice(N_ITEMS, size=users.size, p=item_p)
    matrix = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(N_USERS, N_ITEMS))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    keep = np.sort(rng.choice(matrix.nnz, size=min(NNZ, matrix.nnz), replace=False))
    coo = matrix.tocoo()
    matrix = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)
    return Interactions(matrix, IdIndex(np.arange(N_USERS)), IdIndex(np.arange(N_ITEMS)))


def sequences(seed: int = 0, n: int = 6000, length: int = 50) -> Sequences:
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    item_p /= item_p.sum()
    return Sequences.from_array(rng.choice(N_ITEMS, size=(n, length), p=item_p), N_ITEMS)


def timed(build, data) -> float:
    seed_everything(0)
    model = build()
    started = time.perf_counter()
    model.fit(data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from recsys_utils.models.autoencoders import MultVAE
    from recsys_utils.models.bpr import BPR
    from recsys_utils.models.bpr_torch import TorchBPR
    from recsys_utils.models.neural import NeuMF
    from recsys_utils.models.sequential import GRU4Rec

    train = ml1m_sized()
    print(f"data: {train.n_users:,} users x {train.n_items:,} items, {train.nnz:,} interactions; "
          f"{args.threads} torch threads")
    runs = {
        "bpr (torch, Adam)": (lambda: TorchBPR(dim=64, epochs=1, batch_size=8192), train),
        "bpr (torch, SGD)": (lambda: BPR(dim=64, epochs=1, batch_size=8192, num_threads=args.threads), train),
        "neumf (4 negatives)": (lambda: NeuMF(epochs=1, batch_size=8192, n_negatives=4), train),
        "multvae": (lambda: MultVAE(epochs=1, batch_size=500), train),
        "gru4rec": (lambda: GRU4Rec(dim=64, epochs=1, batch_size=256), sequences()),
    }
    print(f"{'model':<22}{'epoch s':>10}{'target s':>10}{'ratio':>8}")
    for name, (build, data) in runs.items():
        seconds = timed(build, data)
        print(f"{name:<22}{seconds:>10.2f}{TARGETS[name]:>10.1f}{seconds / TARGETS[name]:>8.2f}")


if __name__ == "__main__":
    main()
