"""Run every notebook under nbval on every dataset its metadata claims (``make test``'s last step).

    python scripts/run_notebook_tests.py                 # marketplace, then each real dataset found here
    python scripts/run_notebook_tests.py --dataset online-retail

The marketplace is generated, so its run always happens. A real dataset runs when its files are in
a local-copy folder (``$RECSYS_DATA_SOURCE_DIR`` or ``../shared/data`` beside the checkout);
otherwise its run is skipped with one line saying so, and the exit status is unaffected. Results,
and each notebook's wall time, go to a scratch build folder per dataset (``build/nbval/<dataset>``),
never over the course's ``build/results.json``; ``update_readme.py --results`` can read them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from course_notebooks import ROOT, claims, local_copy, notebooks

DATASETS = ("marketplace", "movielens-100k", "online-retail")


def run(dataset: str, extra: list[str]) -> tuple[str, float]:
    chosen = [nb for nb in notebooks() if dataset in claims(nb)]
    if not chosen:
        return "no notebook claims it", 0.0
    if local_copy(dataset) is None:
        print(f"run_notebook_tests: {dataset}: skipped, its files are not here (put them in ../shared/data "
              "or set RECSYS_DATA_SOURCE_DIR)", flush=True)
        return "skipped (no files)", 0.0
    build = ROOT / "build" / "nbval" / dataset
    env = {**os.environ, "RECSYS_DATASET": dataset, "MPLBACKEND": "Agg", "RECSYS_BUILD_DIR": str(build)}
    print(f"run_notebook_tests: {dataset}: {len(chosen)} notebooks", flush=True)
    failed, total = [], 0.0
    for nb in chosen:  # one pytest per notebook, so each notebook's wall time is recorded beside its results
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-cell-timeout=1200",
                               "-p", "no:cacheprovider", *extra, str(nb.relative_to(ROOT))],
                              cwd=ROOT, env=env, check=False)
        seconds = time.perf_counter() - started
        total += seconds
        if done.returncode == 0:
            subprocess.run([sys.executable, "-c", "import sys; from recsys_utils.course import record_seconds; "
                            "record_seconds(sys.argv[1], float(sys.argv[2]))", nb.stem, f"{seconds:.1f}"],
                           cwd=ROOT, env=env, check=True)
        else:
            failed.append(nb.stem)
        print(f"run_notebook_tests: {dataset}: {nb.stem} {'passed' if done.returncode == 0 else 'FAILED'} "
              f"in {seconds:.0f} s", flush=True)
    return ("passed" if not failed else f"FAILED: {', '.join(failed)}"), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, action="append", help="default: all of them")
    args, extra = parser.parse_known_args(argv)
    rows = [(dataset, *run(dataset, extra)) for dataset in (args.dataset or DATASETS)]
    print("\n".join(f"run_notebook_tests: {d:<15} {status:<40} {s:7.0f} s" for d, status, s in rows))
    return 1 if any(status.startswith("FAILED") for _, status, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
