"""Scaling series: the course's ALS (numpy/torch) against MLlib's ALS (Spark, local mode) on generated
marketplaces of growing size, with wall time and peak memory. A benchmark script, not a test.

    python benchmarks/bench_spark_scaling.py                       # 2k and 6k users (a few minutes)
    python benchmarks/bench_spark_scaling.py --users 6000,60000,300000 --json build/bench_spark.json

For each size a world is generated (``n_users`` users, items scaled with them, 4 weeks), its clean
interactions become the training matrix, and each engine fits ALS (32 factors, 10 sweeps) and produces
everyone's top 10 without seen items. Wall time is end to end for the engine (Spark: the hand-off, the
fit and the top-k, after one untimed warm-up fit; the JVM start is reported once, apart); memory is the
peak resident set of the Python process (numpy) and of the JVM (Spark), read from /proc. Results go to stdout and, with
``--json``, under ``scaling/<engine>/<n_users>/...`` keys (other keys of the file are kept). Run it on a
quiet machine and report the load average with the numbers (it is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

from recsys_utils.data.interactions import Interactions
from recsys_utils.data.world import generate
from recsys_utils.models.als import ALS
from recsys_utils.scale.spark_als import spark_als_topk
from recsys_utils.scale.spark_session import jvm_pid, local_spark

DIM, EPOCHS, L2, ALPHA = 32, 10, 30.0, 1.0


def _peak_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a process in MB; this process by default."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def world_matrix(n_users: int, seed: int) -> Interactions:
    """Training interactions of a generated marketplace with ``n_users`` users."""
    world = generate(n_users=n_users, n_items=max(500, n_users // 3), n_weeks=4, seed=seed)
    return Interactions.from_frame(world.interactions)


def run(sizes: list[int], seed: int) -> dict[str, float]:
    results: dict[str, float] = {}
    data = {}
    for n in sizes:
        started = time.perf_counter()
        data[n] = world_matrix(n, seed)
        print(f"world {n:>7} users: {data[n].nnz:,} interactions ({time.perf_counter() - started:.0f} s to generate)")
    for n, train in data.items():
        started = time.perf_counter()
        model = ALS(dim=DIM, epochs=EPOCHS, l2=L2, alpha=ALPHA, device="cpu").fit(train)
        model.recommend_indices(train.active_users(), k=10)
        results[f"scaling/numpy/{n}/seconds"] = time.perf_counter() - started
        results[f"scaling/numpy/{n}/peak_mb"] = _peak_mb()
        print(f"numpy {n:>7}: {results[f'scaling/numpy/{n}/seconds']:.1f} s")
    started = time.perf_counter()
    with local_spark("bench-spark-scaling") as spark:
        results["scaling/spark/startup_seconds"] = time.perf_counter() - started
        smallest = data[min(data)]  # warm-up, not timed: the JVM compiles Spark's code paths on first use
        spark_als_topk(spark, smallest, k=10, dim=DIM, l2=L2, alpha=ALPHA, epochs=2, seed=seed)
        for n, train in data.items():
            started = time.perf_counter()
            spark_als_topk(spark, train, k=10, dim=DIM, l2=L2, alpha=ALPHA, epochs=EPOCHS, seed=seed)
            results[f"scaling/spark/{n}/seconds"] = time.perf_counter() - started
            results[f"scaling/spark/{n}/peak_mb"] = _peak_mb(jvm_pid(spark))
            print(f"spark {n:>7}: {results[f'scaling/spark/{n}/seconds']:.1f} s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="2000,6000", help="comma-separated world sizes (users)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="merge the results into this JSON file")
    args = parser.parse_args()
    try:
        sizes = [int(x) for x in args.users.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--users must be comma-separated integers, got {args.users!r}")
    if not sizes or min(sizes) < 100:
        parser.error(f"--users needs sizes of at least 100 users, got {args.users!r}")
    results = run(sizes, args.seed)
    results["scaling/machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(json.dumps(results, indent=2))
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text()) if path.exists() else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**old, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
