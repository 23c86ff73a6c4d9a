"""Speed of the course's collaborative-filtering models against the ``implicit`` library.

A benchmark script, not a test: it prints timings and ratios (ours / implicit's; lower is better).

    OMP_NUM_THREADS=2 python benchmarks/bench_cf.py            # MovieLens-1M-sized random matrix
    python benchmarks/bench_cf.py --users 2000 --items 1000 --nnz 100000   # a quick run

Targets (issue 17): ALS per iteration, a BPR epoch and batched top-10 for all users at most 1x, 1.5x
and 1x implicit's time at equal factors and threads. The ratios, the thread count, the machine
and the load average go into ``build/bench.json`` (``--json``; other keys there are kept), from
which ``scripts/update_readme.py`` makes the README's performance table. ``implicit``
is a benchmark-only extra: ``pip install -r requirements-bench.txt``. Run it on a quiet machine: when
other processes hold the cores, torch's OpenMP threads spin-wait and multi-threaded timings say more
about the load than about the code (compare with ``--threads 1``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: implicit's advice

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def random_matrix(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """A user x item count matrix with long-tailed item popularity and user activity."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    user_p = 1.0 / np.arange(1, n_users + 1) ** 0.5
    users = rng.choice(n_users, size=int(nnz * 1.2), p=user_p / user_p.sum())
    items = rng.choice(n_items, size=int(nnz * 1.2), p=item_p / item_p.sum())
    matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    return matrix


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``fn()`` in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def machine() -> str:
    """The CPU model and core count, for the performance table."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"


def merge_json(path: str, section: dict) -> None:
    """Write ``section``'s keys into the JSON object at ``path`` (created if missing), keeping the others."""
    out = Path(path)
    data = json.loads(out.read_text()) if out.is_file() else {}
    data.update(section)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--nnz", type=int, default=1_000_209)
    parser.add_argument("--dim", type=int, default=64, help="embedding size (implicit's factors)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
                        help="threads for both libraries (default: OMP_NUM_THREADS, else the core count)")
    parser.add_argument("--epochs", type=int, default=5, help="ALS sweeps / BPR epochs (implicit's iterations)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="build/bench.json", help="merge the ratios into this JSON file")
    args = parser.parse_args()
    load_before = os.getloadavg()

    import torch
    from threadpoolctl import threadpool_limits

    from recsys_utils.data.interactions import IdIndex, Interactions
    from recsys_utils.models.als import ALS
    from recsys_utils.models.bpr import BPR

    torch.set_num_threads(args.threads)
    matrix = random_matrix(args.users, args.items, args.nnz)
    train = Interactions(matrix, IdIndex(np.arange(args.users), "user_id"), IdIndex(np.arange(args.items), "item_id"))
    print(f"matrix {matrix.shape[0]:,} x {matrix.shape[1]:,}, nnz {matrix.nnz:,}; dim {args.dim}; "
          f"{args.threads} threads; torch {torch.__version__}", flush=True)

    try:
        import implicit
        from implicit.cpu.als import AlternatingLeastSquares as ImplicitALS
        from implicit.cpu.bpr import BayesianPersonalizedRanking as ImplicitBPR
    except ImportError:
        implicit = None
        print("implicit is not installed (pip install -r requirements-bench.txt): printing our timings only")

    rows = []

    # ALS: seconds per iteration (fit with n iterations, divided by n)
    n_it = args.epochs
    ours = best_of(lambda: ALS(dim=args.dim, epochs=n_it, device="cpu",
                               num_threads=args.threads).fit(train), args.repeats) / n_it
    theirs = np.nan
    if implicit is not None:
        def fit_implicit_als():
            ImplicitALS(factors=args.dim, iterations=n_it, num_threads=args.threads,
                        calculate_training_loss=False, random_state=0).fit(matrix, show_progress=False)
        theirs = best_of(fit_implicit_als, args.repeats) / n_it
    rows.append(("ALS iteration", ours, theirs, 1.0))
    print(f"ALS iteration: ours {ours:.3f} s, implicit {theirs:.3f} s", flush=True)

    # BPR: seconds per epoch
    BPR(dim=args.dim, epochs=1, num_threads=args.threads).fit(train)  # compile the numba kernel first
    ours = best_of(lambda: BPR(dim=args.dim, epochs=n_it, num_threads=args.threads).fit(train),
                   args.repeats) / n_it
    theirs = np.nan
    if implicit is not None:
        def fit_implicit_bpr():
            ImplicitBPR(factors=args.dim, iterations=n_it, num_threads=args.threads,
                        random_state=0).fit(matrix, show_progress=False)
        theirs = best_of(fit_implicit_bpr, args.repeats) / n_it
    rows.append(("BPR epoch", ours, theirs, 1.5))
    print(f"BPR epoch: ours {ours:.3f} s, implicit {theirs:.3f} s", flush=True)

    # top-10 for every user with seen items excluded, from the same factors
    als = ALS(dim=args.dim, epochs=2, device="cpu").fit(train)
    users = np.arange(args.users)
    with threadpool_limits(args.threads):
        ours = best_of(lambda: als.recommend_indices(users, k=10, exclude_seen=True), args.repeats)
    theirs = np.nan
    if implicit is not None:
        reference = ImplicitALS(factors=args.dim, iterations=1, num_threads=args.threads, random_state=0)
        reference.fit(matrix, show_progress=False)
        reference.user_factors = als.user_factors_
        reference.item_factors = als.item_factors_
        theirs = best_of(lambda: reference.recommend(users, matrix, N=10, filter_already_liked_items=True),
                         args.repeats)
        ids, _ = reference.recommend(users, matrix, N=10, filter_already_liked_items=True)
        mine = als.recommend_indices(users, k=10, exclude_seen=True)
        agree = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids[:500], mine[:500], strict=True)]))
        print(f"top-10 agreement with implicit on the same factors (first 500 users): {agree:.3f}")
    rows.append(("top-10, all users", ours, theirs, 1.0))

    print(f"\n{'task':<20}{'ours (s)':>12}{'implicit (s)':>14}{'ratio':>8}{'target':>8}")
    for task, mine, ref, target in rows:
        ratio = mine / ref if ref == ref else np.nan
        flag = "" if ratio != ratio else ("  ok" if ratio <= target else "  SLOWER THAN TARGET")
        print(f"{task:<20}{mine:>12.4f}{ref:>14.4f}{ratio:>8.2f}{target:>7.1f}x{flag}")
    write_ratios(args, rows, matrix.nnz, load_before, {"torch": torch.__version__,
                                                      "implicit": getattr(implicit, "__version__", None)})


def write_ratios(args: argparse.Namespace, rows: list, nnz: int, load_before: tuple, versions: dict) -> None:
    """Merge the ratios (ours / implicit), seconds, threads, machine and load average into ``args.json``."""
    keys = ("als_iteration", "bpr_epoch", "topk_all_users")
    load_after = os.getloadavg()
    merge_json(args.json, {
        "ratios": {key: round(mine / ref, 3) if ref == ref else None
                   for key, (_, mine, ref, _) in zip(keys, rows, strict=True)},
        "seconds": {key: {"ours": round(mine, 4), "implicit": round(ref, 4) if ref == ref else None}
                    for key, (_, mine, ref, _) in zip(keys, rows, strict=True)},
        "targets": {key: target for key, (*_, target) in zip(keys, rows, strict=True)},
        "threads": args.threads, "machine": machine(),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "matrix": {"users": args.users, "items": args.items, "nnz": int(nnz), "factors": args.dim},
        "versions": versions,
    })
    print(f"ratios written to {args.json}")


if __name__ == "__main__":
    main()
