"""Execute the course notebooks in order and keep what they produce.

    python scripts/run_course.py                              # every notebooks/NN_*.ipynb
    python scripts/run_course.py --only 00_quickstart,03_collaborative_filtering
    RECSYS_DATASET=movielens-100k python scripts/run_course.py   # only the notebooks that claim it

Each notebook runs in a fresh ``python3`` kernel with ``notebooks/`` as its working directory.
Executed copies go to ``build/notebooks/NAME.ipynb`` and HTML to ``build/html/NAME.html``; the
wall-clock seconds of each notebook go to ``build/results.json`` beside the results the notebook
recorded itself. A failing notebook does not stop the others, but the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from course_notebooks import skip_reason  # noqa: E402

from recsys_utils.core.paths import ROOT_ENV  # noqa: E402
from recsys_utils.course import DATASET_ENV, DEFAULT_DATASET, build_dir, load_results, record_seconds, reset_results  # noqa: E402

NOTEBOOK_DIR = ROOT / "notebooks"
PATTERN = "[0-9][0-9]_*.ipynb"
CELL_TIMEOUT = 1200


def select(only: str | None) -> list[Path]:
    """The course notebooks in order, or the comma-separated subset ``only`` (error on unknown names)."""
    notebooks = sorted(NOTEBOOK_DIR.glob(PATTERN))
    if not only:
        return notebooks
    by_name = {path.stem: path for path in notebooks}
    wanted = [name.strip().removesuffix(".ipynb") for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise SystemExit(f"run_course: no notebook named {', '.join(unknown)}; "
                         f"choose from {', '.join(by_name) or '(none yet)'}")
    return [by_name[name] for name in sorted(set(wanted))]


def run_one(path: Path, out: Path, timeout: int) -> tuple[str, float]:
    """Execute one notebook; write its executed copy and HTML; return (status, seconds)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        startup_timeout=180,
        resources={"metadata": {"path": str(path.parent)}},
    )
    status = "ok"
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as exc:  # a cell error, a timeout or a dead kernel: one line, and go on
        status = "FAILED"
        print(f"--- {path.name} failed: {_one_line(exc)}", flush=True)
    seconds = time.perf_counter() - start

    nbformat.write(nb, out / "notebooks" / path.name)
    try:
        body, _ = HTMLExporter().from_notebook_node(nb)
        (out / "html" / f"{path.stem}.html").write_text(body, encoding="utf-8")
    except Exception as exc:  # HTML is a convenience; its failure is reported, not fatal
        print(f"--- {path.name}: HTML export failed ({type(exc).__name__}: {exc})", flush=True)
    return status, seconds


def _one_line(exc: Exception) -> str:
    """The error's last line (``AssertionError: ...``) and the failing cell, without the traceback."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    error = next((line for line in reversed(lines) if ("Error" in line or "Exception" in line) and ":" in line),
                 lines[-1] if lines else type(exc).__name__)
    return f"{error[:300]} (the executed copy shows the cell)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated names, e.g. 00_quickstart,03_collaborative_filtering")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT,
                        help="seconds per cell (default %(default)s)")
    args = parser.parse_args(argv)

    notebooks = select(args.only)
    if not notebooks:
        print(f"run_course: no notebooks matching {NOTEBOOK_DIR.relative_to(ROOT)}/{PATTERN}")
        return 0
    # Kernels inherit this environment: they find the project and use the same dataset and hash seed.
    os.environ[ROOT_ENV] = str(ROOT)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    dataset = os.environ.get(DATASET_ENV, "").strip() or DEFAULT_DATASET

    skipped = {path.stem: reason for path in notebooks if (reason := skip_reason(path, dataset))}
    for name, reason in skipped.items():
        print(f"run_course: {name} {reason}", flush=True)
    notebooks = [path for path in notebooks if path.stem not in skipped]

    out = build_dir()
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "html").mkdir(parents=True, exist_ok=True)
    # Stale results must not survive a rerun: a full run starts afresh, a partial one forgets its notebooks.
    reset_results(None if not args.only else [path.stem for path in notebooks])

    print(f"run_course: {len(notebooks)} notebooks, dataset {dataset}, results in {out}", flush=True)
    rows = []
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.stem} ...", flush=True)
        status, seconds = run_one(path, out, args.timeout)
        if status == "ok":
            record_seconds(path.stem, seconds)
        print(f"[{i}/{len(notebooks)}] {path.stem}: {status} in {seconds:.1f} s", flush=True)
        rows.append((path.stem, status, seconds))

    results = load_results()["notebooks"]
    width = max(len("notebook"), *(len(name) for name, _, _ in rows))
    print()
    print(f"{'notebook':<{width}}  {'status':<6}  {'seconds':>8}  {'results':>7}")
    for name, status, seconds in rows:
        count = len(results.get(name, {}).get("results", {}))
        print(f"{name:<{width}}  {status:<6}  {seconds:>8.1f}  {count:>7}")
    for name, reason in skipped.items():
        print(f"{name:<{width}}  {reason}")
    failed = [name for name, status, _ in rows if status != "ok"]
    if failed:
        print(f"\nrun_course: {len(failed)} failed: {', '.join(failed)} "
              f"(executed copies with the error are in {out / 'notebooks'})")
        return 1
    print(f"\nrun_course: all {len(rows)} notebooks ran; HTML in {out / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
