"""Execute the learner edition (``make learner`` first) and report its checks.

    python scripts/run_learner_edition.py                  # every build/learner/*.ipynb, errors allowed
    python scripts/run_learner_edition.py --only 07_deep_retrieval,08_deep_ranking

Every ``check`` cell must report ``ExerciseNotDone`` (the stubs are empty) and no other cell may fail
(exercises are self-contained: nothing later depends on them). Exit status 1 otherwise. Results go
to a scratch build folder, never over the course's ``build/results.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    errors = [[o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"] for c in nb.cells]
    checks = [i for i, t in enumerate(tags) if "check" in t]
    not_done = [i for i in checks if "ExerciseNotDone" in errors[i]]
    others = [i for i, e in enumerate(errors) if e and i not in checks and "exercise" not in tags[i]]
    ok = len(not_done) == len(checks) and not others
    print(f"{path.stem}: {len(not_done)}/{len(checks)} checks report 'not done'; other failing cells: {others}; "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated notebook names (default: all)")
    only = {name.removesuffix(".ipynb") for name in parser.parse_args(argv).only.split(",") if name}
    notebooks = sorted((ROOT / "build" / "learner").glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = only - {path.stem for path in notebooks}
        if unknown:
            print(f"run_learner_edition: no learner notebook named {', '.join(sorted(unknown))}")
            return 1
        notebooks = [path for path in notebooks if path.stem in only]
    if not notebooks:
        print("run_learner_edition: no learner notebooks; run `make learner` first")
        return 1
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["RECSYS_BUILD_DIR"] = tempfile.mkdtemp(prefix="recsys-learner-")
    results = [run(path) for path in notebooks]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
