"""How seconds and peak memory grow with the data: the marketplace at growing sizes, step by step.

A benchmark script, not a test. For each size (users; items are a third of the users, so events
grow in proportion) it measures, each step in its own Python process so that its peak memory is its
own (peak resident set minus the resident set once its inputs are loaded):

    generate   the marketplace world (recsys_utils.data.world)
    split      leave-last-out split and the train/test matrices
    als        ALS fit (dim 64, 5 sweeps)
    ease       EASE fit (its n_items x n_items Gram matrix: skipped when that would not fit)
    itemknn    item-kNN fit (k = 100)
    topk       top-10 for every user from ALS factors, seen items excluded
    metrics    HR/NDCG/recall@10 of those lists against the held-out items

then fits ``seconds ~ events^b`` (and the same for memory) per step on log-log axes, extrapolates
where each step's memory would pass the machine's RAM, and writes

    docs/scaling.md     the table, the exponents and where each method stops fitting one machine
    docs/scaling.png    seconds and memory against events, log-log
    build/bench.json    "scaling": {step: {"seconds_exponent", "memory_exponent", ...}} (other keys kept)

    nice -n 10 python benchmarks/bench_scaling.py                 # 2k, 6k, 20k, 30k users (~10-20 min)
    python benchmarks/bench_scaling.py --users 6000,60000,600000  # on a machine with more cores and memory

A step's process is stopped after ``--step-timeout`` seconds; if the generator or the split is
stopped (or fails), the larger sizes are skipped and the page says where the run stopped.

World generation builds each week's users x items tables (choice probabilities, the utilities it
standardises) for blocks of users (:mod:`recsys_utils.data.world_behaviour`), so its memory grows
with the events; it used to hold them for all users at once, which grew like events^1.8 and would
have passed 24 GiB near 60k users. Its time still grows like users x items (each visit is a choice
over the whole catalogue), which is what bounds the sizes on a 2-core machine.

What does not fit one machine goes to the Spark path (notebook 18, ``recsys_utils.scale``): ALS
and the metrics there are distributed; EASE has no distributed form (its inverse is dense).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("generate", "split", "als", "ease", "itemknn", "topk", "metrics")
GIB = 2.0 ** 30


def _rss() -> float:
    """Current resident set in bytes (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def _load_split(folder: Path):
    import scipy.sparse as sp

    from recsys_utils.data.interactions import IdIndex, Interactions

    train = sp.load_npz(folder / "train.npz").tocsr()
    test = sp.load_npz(folder / "test.npz").tocsr()
    users, items = IdIndex(np.arange(train.shape[0])), IdIndex(np.arange(train.shape[1]))
    return Interactions(train, users, items), test


def _run_step(step: str, users: int, folder: Path) -> dict:
    """Inside the child process: load the inputs, then time and measure one step."""
    import pandas as pd
    import scipy.sparse as sp

    from recsys_utils.core.metrics import ranking_metrics
    from recsys_utils.models.als import ALS
    from recsys_utils.models.ease import EASE
    from recsys_utils.models.neighbors import ItemKNN

    inputs = None
    if step == "split":
        inputs = pd.read_pickle(folder / "events.pkl")
    elif step != "generate":
        inputs = _load_split(folder)
    if step in ("topk", "metrics"):
        model = ALS(dim=64, epochs=1, device="cpu").fit(inputs[0])
        top = model.recommend_indices(np.arange(inputs[0].n_users), k=10) if step == "metrics" else None
    base = _rss()
    started = time.perf_counter()
    out: dict = {}
    if step == "generate":
        from recsys_utils.data.world import WorldConfig, generate

        world = generate(WorldConfig(n_users=users, n_items=max(300, users // 3), seed=42))
        frame = world.interactions[["user_id", "item_id", "timestamp"]]
        out["events"] = len(frame)
    elif step == "split":
        from recsys_utils.data.interactions import IdIndex, Interactions
        from recsys_utils.data.splits import leave_last_out

        split = leave_last_out(inputs, n_test=1)
        index_u, index_i = IdIndex(np.sort(inputs["user_id"].unique())), IdIndex(np.sort(inputs["item_id"].unique()))
        train = Interactions.from_frame(split.train, index_u, index_i, weight=None, binary=True).matrix
        test = Interactions.from_frame(split.test, index_u, index_i, weight=None, binary=True).matrix
    elif step == "als":
        ALS(dim=64, epochs=5, device="cpu").fit(inputs[0])
    elif step == "ease":
        EASE(l2=500.0).fit(inputs[0])
    elif step == "itemknn":
        ItemKNN(k=100).fit(inputs[0])
    elif step == "topk":
        model.recommend_indices(np.arange(inputs[0].n_users), k=10)
    elif step == "metrics":
        out["ndcg@10"] = ranking_metrics(top, inputs[1], 10, ("hr", "ndcg", "recall")).mean["ndcg@10"]
    out.update(seconds=time.perf_counter() - started, memory=max(0.0, _peak() - base))
    if step == "generate":
        frame.to_pickle(folder / "events.pkl")
    elif step == "split":
        sp.save_npz(folder / "train.npz", train.tocsr())
        sp.save_npz(folder / "test.npz", test.tocsr())
    return out


def measure(users: int, folder: Path, memory_budget: float, step_timeout: float = 600.0) -> dict[str, dict]:
    """Every step at one size, each in a fresh process stopped after ``step_timeout`` seconds."""
    results: dict[str, dict] = {}
    for step in STEPS:
        if step == "ease":
            import scipy.sparse as sp

            n_items = sp.load_npz(folder / "train.npz").shape[1]
            need = 3 * 8.0 * n_items ** 2  # Gram matrix, its inverse and the weights, float64
            if need > memory_budget:
                results[step] = {"skipped": f"needs about {need / GIB:.0f} GiB for {n_items:,} items"}
                print(f"  {step:<9} skipped: {results[step]['skipped']}", flush=True)
                continue
        command = [sys.executable, __file__, "--child", step, "--users", str(users), "--folder", str(folder)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=step_timeout)
        except subprocess.TimeoutExpired:
            results[step] = {"failed": f"stopped after {step_timeout:.0f} s"}
            print(f"  {step:<9} {results[step]['failed']}", flush=True)
            if step in ("generate", "split"):  # the later steps need its output
                break
            continue
        if done.returncode != 0:
            results[step] = {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
            if step in ("generate", "split"):
                print(f"  {step:<9} {results[step]['failed']}", flush=True)
                break
        else:
            results[step] = json.loads(done.stdout.strip().splitlines()[-1])
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results[step].items()}
        print(f"  {step:<9} {shown}", flush=True)
    return results


def fit_exponents(sizes: list[int], table: dict[int, dict[str, dict]], memory_limit: float) -> dict[str, dict]:
    """Least-squares slopes of log seconds and log memory against log events, and where memory runs out."""
    events = {n: table[n]["generate"]["events"] for n in sizes}
    out: dict[str, dict] = {}
    for step in STEPS:
        points = [(events[n], table[n][step]) for n in sizes if "seconds" in table[n].get(step, {})]
        if len(points) < 2:
            out[step] = {"points": len(points)}
            continue
        x = np.log([p[0] for p in points])
        entry: dict = {"points": len(points)}
        for key in ("seconds", "memory"):  # below 8 MiB or 1 ms the readings are noise: floored
            y = np.log([max(p[1][key], 8 * 2.0 ** 20 if key == "memory" else 1e-3) for p in points])
            slope, intercept = np.polyfit(x, y, 1)
            entry[f"{key}_exponent"] = round(float(slope), 2)
            if key == "memory" and slope > 0.05 and points[-1][1]["memory"] > 64 * 2.0 ** 20:
                entry["events_at_memory_limit"] = float(np.exp((np.log(memory_limit) - intercept) / slope))
        out[step] = entry
    return out


def write_docs(sizes: list[int], table: dict, exponents: dict, memory_limit: float, docs: Path) -> None:
    """docs/scaling.md and docs/scaling.png (generated; do not edit by hand)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = {n: table[n]["generate"]["events"] for n in sizes}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for step in STEPS:
        points = [(events[n], table[n][step]) for n in sizes if "seconds" in table[n].get(step, {})]
        if not points:
            continue
        label = f"{step} (b={exponents[step].get('seconds_exponent', '-')})"
        axes[0].loglog([p[0] for p in points], [p[1]["seconds"] for p in points], "o-", label=label)
        axes[1].loglog([p[0] for p in points], [max(p[1]["memory"], 1e6) / GIB for p in points], "o-",
                       label=f"{step} (b={exponents[step].get('memory_exponent', '-')})")
    for axis, what in zip(axes, ("seconds", "peak memory above inputs (GiB)"), strict=True):
        axis.set_xlabel("events")
        axis.set_ylabel(what)
        axis.legend(fontsize=7)
        axis.grid(True, which="both", alpha=0.3)
    figure.suptitle("Marketplace scaling: cost ~ events^b")
    figure.tight_layout()
    figure.savefig(docs / "scaling.png", dpi=110)
    lines = ["# Scaling on one machine", "",
             "Generated by `benchmarks/bench_scaling.py` (do not edit by hand). Each step runs in its own process;",
             "memory is its peak resident set above its loaded inputs. `b` is the fitted exponent of",
             "cost ~ events^b on log-log axes.", "",
             f"Machine: {table['machine']}; threads (OMP_NUM_THREADS): {table['threads']}; load average at start "
             f"{table['load_average']}; the run took {table.get('wall_minutes', '?')} min"
             f"{'; stopped at ' + table['stopped'] if 'stopped' in table else ''}.", "",
             "| users | events | " + " | ".join(f"{s} s / MiB" for s in STEPS) + " |",
             "|---|---|" + "---|" * len(STEPS)]
    for n in sizes:
        cells = []
        for step in STEPS:
            r = table[n].get(step, {})
            cells.append(f"{r['seconds']:.2f} / {r['memory'] / 2 ** 20:.0f}" if "seconds" in r else
                         r.get("skipped", r.get("failed", "-")))
        lines.append(f"| {n:,} | {events[n]:,} | " + " | ".join(cells) + " |")
    lines += ["", "| step | seconds exponent | memory exponent | memory reaches "
              f"{memory_limit / GIB:.0f} GiB at about (events) |", "|---|---|---|---|"]
    for step in STEPS:
        e = exponents[step]
        limit = e.get("events_at_memory_limit")
        lines.append(f"| {step} | {e.get('seconds_exponent', '-')} | {e.get('memory_exponent', '-')} | "
                     f"{f'{limit:.2g}' if limit else '-'} |")
    ease_items = int(np.sqrt(memory_limit / 24.0))
    lines += ["", "Where a method stops fitting one machine: EASE needs a dense n_items x n_items Gram matrix and",
              "its inverse (about 24 n_items^2 bytes in float64) whatever the number of events, so it stops near",
              f"{ease_items:,} items in {memory_limit / GIB:.0f} GiB; the other steps stop where the last column",
              "of the exponent table says (an extrapolation of the fitted memory exponent: read it as an order",
              "of magnitude). Past these limits use the Spark path (notebook 18, `recsys_utils.scale`): ALS,",
              "top-k and the metrics are distributed there; EASE has no distributed form.", ""]
    (docs / "scaling.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="2000,6000,20000,30000", help="comma-separated sizes")
    parser.add_argument("--step-timeout", type=float, default=600.0,
                        help="seconds before a step's process is stopped (its size then stops there)")
    parser.add_argument("--memory-gib", type=float, default=24.0, help="the machine's RAM, for the limits")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench.json"))
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_step(args.child, int(args.users), Path(args.folder))))
        return
    sizes = [int(s) for s in args.users.split(",")]
    memory_limit = args.memory_gib * GIB
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_cf import machine, merge_json

    table: dict = {"machine": machine(), "load_average": [round(x, 2) for x in os.getloadavg()],
                   "threads": os.environ.get("OMP_NUM_THREADS", "all cores")}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            print(f"== {n:,} users", flush=True)
            folder = Path(tmp) / str(n)
            folder.mkdir()
            table[n] = measure(n, folder, memory_limit / 3, args.step_timeout)
            if "events" not in table[n].get("generate", {}):  # larger worlds would not do better
                print(f"  generation did not finish at {n:,} users: larger sizes skipped", flush=True)
                table["stopped"] = f"{n:,} users: generate {table[n]['generate'].get('failed', 'failed')}"
                break
    sizes = [n for n in sizes if "events" in table.get(n, {}).get("generate", {})]
    table["wall_minutes"] = round((time.perf_counter() - started) / 60.0, 1)
    exponents = fit_exponents(sizes, table, memory_limit)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    write_docs(sizes, table, exponents, memory_limit, docs)
    merge_json(args.json, {"scaling": {"users": sizes, "events": [table[n]["generate"]["events"] for n in sizes],
                                       "exponents": exponents, "machine": table["machine"],
                                       "threads": table["threads"],
                                       "load_average": table["load_average"]}})
    print(json.dumps(exponents, indent=2))
    print(f"written {docs / 'scaling.md'}, {docs / 'scaling.png'} and {args.json}")


if __name__ == "__main__":
    main()
