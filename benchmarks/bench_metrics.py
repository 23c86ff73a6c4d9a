"""Benchmark of the evaluation metrics and the evaluate CLI (a script, not a test).

    python benchmarks/bench_metrics.py [--users 10000] [--items 10000] [--rows 1000000]

(a) a random users x items float32 score matrix with ~20 relevant items per user: top_k plus all
    six ranking metrics at k=10 plus coverage, novelty and Gini, against the target "all metrics
    for 10,000 x 10,000 in at most 1 s"; per_user_auc is timed separately.
(b) a 1,000,000-row PRED CSV and its TRUTH CSV, scored by ``python -m recsys_utils.cli.evaluate`` in
    a subprocess, end to end, against the 5 s target.
(c) a pandas groupby/merge reference of precision, recall and NDCG@k written the way
    microsoft/recommenders' ``python_evaluation`` computes them, timed on the data of (b); prints
    ours / reference and checks that both agree to 1e-9.

Every figure is printed with its ratio to the target (below 1 = faster than the target).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recsys_utils.cli.evaluate import evaluate_files, evaluate_frames  # noqa: E402
from recsys_utils.core.beyond_accuracy import catalog_coverage, gini_index, intra_list_diversity, novelty  # noqa: E402
from recsys_utils.core.metrics import per_user_auc, ranking_metrics  # noqa: E402
from recsys_utils.core.topk import top_k  # noqa: E402
from recsys_utils.core.vocabulary import ITEM, SCORE, USER  # noqa: E402

K = 10
METRICS_TARGET_S = 1.0
CLI_TARGET_S = 5.0


def timed(function: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def random_relevant(rng: np.random.Generator, n_users: int, n_items: int, per_user: int) -> sp.csr_matrix:
    """About ``per_user`` random relevant items per user (duplicates collapse)."""
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.integers(0, n_items, rows.size)
    matrix = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def bench_matrix(n_users: int, n_items: int, repeat: int) -> None:
    """(a) metrics on a dense score matrix."""
    rng = np.random.default_rng(0)
    scores = rng.random((n_users, n_items), dtype=np.float32)
    relevant = random_relevant(rng, n_users, n_items, 20)
    item_counts = np.asarray(relevant.sum(axis=0)).ravel()

    def all_metrics() -> dict:
        top = top_k(scores, K)
        out = ranking_metrics(top, relevant, K).mean
        out["coverage"] = catalog_coverage(top, n_items)
        out["novelty"] = novelty(top, item_counts, n_users)
        out["gini"] = gini_index(top, n_items)
        return out

    seconds, result = timed(all_metrics, repeat)
    top = top_k(scores, K)
    topk_s, _ = timed(lambda: top_k(scores, K), repeat)

    def batched_top_k() -> np.ndarray:
        return np.vstack([top_k(scores[i:i + 1000], K) for i in range(0, n_users, 1000)])

    batched_s, batched = timed(batched_top_k, repeat)
    assert np.array_equal(batched, top)
    metrics_s, _ = timed(lambda: ranking_metrics(top, relevant, K), repeat)
    auc_s, auc = timed(lambda: per_user_auc(scores, relevant), repeat)
    features = rng.standard_normal((n_items, 32))
    ild_s, ild = timed(lambda: intra_list_diversity(top, features), repeat)

    print(f"(a) {n_users:,} users x {n_items:,} items, k={K}, ~20 relevant per user (best of {repeat})")
    print(f"    top_k + 6 ranking metrics + coverage/novelty/gini: {seconds:.3f} s "
          f"(ratio to the {METRICS_TARGET_S:.1f} s target: {seconds / METRICS_TARGET_S:.2f})")
    print(f"      of which top_k {topk_s:.3f} s, ranking_metrics {metrics_s:.3f} s "
          f"(top_k called on batches of 1,000 rows instead: {batched_s:.3f} s)")
    print(f"    per_user_auc: {auc_s:.3f} s (ratio to {METRICS_TARGET_S:.1f} s: "
          f"{auc_s / METRICS_TARGET_S:.2f}); mean AUC {np.nanmean(auc):.4f} (random scores: ~0.5)")
    print(f"    intra_list_diversity (32 dense features): {ild_s:.3f} s; ILD {ild:.4f}")
    print("    values: " + ", ".join(f"{name}={value:.4f}" for name, value in result.items()
                                     if name != "users"))


def write_csvs(directory: Path, n_rows: int, per_user: int = 100, n_items: int = 50_000) -> tuple[Path, Path]:
    """A PRED file with ``per_user`` scored items per user and a TRUTH file with 10 items per user."""
    rng = np.random.default_rng(1)
    n_users = n_rows // per_user
    users = np.repeat(np.arange(n_users), per_user)
    # distinct items per user: a random offset plus a stride keeps pairs unique without a loop
    items = (rng.integers(0, n_items, n_users)[users] + np.tile(np.arange(per_user) * 7, n_users)) % n_items
    pred = pd.DataFrame({USER: users, ITEM: items, SCORE: rng.random(users.size)})
    truth_pick = rng.random(users.size) < 0.1  # ~10 of each user's candidates are relevant
    truth = pd.DataFrame({USER: users[truth_pick], ITEM: items[truth_pick]})
    extra = pd.DataFrame({USER: np.arange(n_users, n_users + 50), ITEM: np.arange(50)})  # truth-only
    truth = pd.concat([truth, extra], ignore_index=True)
    pred_path, truth_path = directory / "pred.csv", directory / "truth.csv"
    pred.to_csv(pred_path, index=False)
    truth.to_csv(truth_path, index=False)
    return pred_path, truth_path


def reference_metrics(pred: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """precision/recall/NDCG@k with pandas sort/groupby/merge, in the style of microsoft/recommenders.

    As there (``get_top_k_items`` and ``merge_ranking_true_pred``): sort by user and score,
    ``groupby.head(k)``, rank with ``cumcount``, merge with the truth to find hits, then
    aggregate hit counts per user. Averaged over every user in the truth, like ours.
    """
    top = pred.sort_values([USER, SCORE], ascending=[True, False]).groupby(USER, as_index=False).head(k)
    top = top.reset_index(drop=True)
    top["rank"] = top.groupby(USER, sort=False).cumcount() + 1
    hits = pd.merge(top, truth, on=[USER, ITEM])[[USER, ITEM, "rank"]]
    actual = truth.groupby(USER).size().rename("actual")
    hit_count = hits.groupby(USER).size().rename("hit")
    counts = pd.concat([actual, hit_count], axis=1).fillna({"hit": 0})
    n_users = len(actual)
    hits["dcg"] = 1.0 / np.log1p(hits["rank"])
    dcg = hits.groupby(USER)["dcg"].sum().reindex(counts.index, fill_value=0.0)
    idcg = counts["actual"].apply(lambda x: sum(1.0 / np.log1p(range(1, min(int(x), k) + 1))))
    return {
        f"precision@{k}": float((counts["hit"] / k).sum() / n_users),
        f"recall@{k}": float((counts["hit"] / counts["actual"]).sum() / n_users),
        f"ndcg@{k}": float((dcg / idcg).sum() / n_users),
    }


def bench_cli(n_rows: int) -> None:
    """(b) the CLI end to end and (c) the pandas reference on the same files."""
    with tempfile.TemporaryDirectory() as tmp:
        pred_path, truth_path = write_csvs(Path(tmp), n_rows)
        command = [sys.executable, "-m", "recsys_utils.cli.evaluate", "--pred", str(pred_path),
                   "--truth", str(truth_path), "--k", str(K)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        cli_s = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"CLI failed ({done.returncode}): {done.stderr}")
        print(f"(b) CLI on {n_rows:,} prediction rows, end to end (subprocess): {cli_s:.3f} s "
              f"(ratio to the {CLI_TARGET_S:.0f} s target: {cli_s / CLI_TARGET_S:.2f})")
        print(f"    stdout: {done.stdout.strip()}")
        print(f"    stderr: {done.stderr.strip()}")

        ours_s, ours = timed(lambda: evaluate_files(pred_path, truth_path, K))

        def reference() -> dict[str, float]:
            return reference_metrics(pd.read_csv(pred_path), pd.read_csv(truth_path), K)

        ref_s, ref = timed(reference)
        pred, truth = pd.read_csv(pred_path), pd.read_csv(truth_path)
        ours_mem_s, ours_mem = timed(lambda: evaluate_frames(pred, truth, K), 2)
        ref_mem_s, ref_mem = timed(lambda: reference_metrics(pred, truth, K), 2)
        print(f"(c) same files in-process, read + k={K} metrics: ours {ours_s:.3f} s, "
              f"pandas groupby reference {ref_s:.3f} s, ours/reference = {ours_s / ref_s:.2f}")
        print(f"    metrics only (frames in memory, best of 2): ours {ours_mem_s:.3f} s, "
              f"reference {ref_mem_s:.3f} s, ours/reference = {ours_mem_s / ref_mem_s:.2f}")
        worst = max(abs(a[name] - b[name]) for a, b in ((ours, ref), (ours_mem, ref_mem)) for name in ref)
        agree = worst <= 1e-9
        print(f"    precision/recall/ndcg agree to 1e-9: {agree} (largest difference {worst:.2e})")
        if not agree:
            raise SystemExit(f"disagreement: ours {ours} reference {ref}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs in (a)")
    args = parser.parse_args()
    bench_matrix(args.users, args.items, args.repeat)
    bench_cli(args.rows)


if __name__ == "__main__":
    main()
