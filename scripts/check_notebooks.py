"""Check that committed notebooks are clean: no outputs, no execution counts, a course header.

    python scripts/check_notebooks.py            # check notebooks/ (exit 1 listing offenders)
    python scripts/check_notebooks.py --strip    # remove outputs and counts in place, then check
    python scripts/check_notebooks.py PATH ...   # notebooks or folders other than notebooks/

Executed copies live in build/notebooks/ (make course); the committed ones stay output-free so
diffs show only what a person changed. Each notebook's metadata must carry a ``recsys`` object
with ``title`` (text), ``learn`` (text or list of texts) and ``datasets`` (a list of dataset
names); the README's notebook table is generated from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsys_utils.course import _known_datasets  # noqa: E402

REQUIRED_KEYS = ("title", "learn", "datasets")


def find_notebooks(paths: list[Path]) -> list[Path]:
    """Every ``.ipynb`` in ``paths`` (folders searched recursively, checkpoints skipped), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.exists():
            found.add(path)
        else:
            raise SystemExit(f"check_notebooks: {path} is neither a folder nor a notebook")
    return sorted(found)


def strip(nb: nbformat.NotebookNode) -> bool:
    """Remove outputs, execution counts and per-cell timing metadata; True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs"):
                cell.outputs = []
                changed = True
            if cell.get("execution_count") is not None:
                cell.execution_count = None
                changed = True
        if "execution" in cell.get("metadata", {}):
            del cell.metadata["execution"]
            changed = True
    return changed


def problems(nb: nbformat.NotebookNode, known: tuple[str, ...] | None) -> list[str]:
    """What is wrong with one notebook, as short phrases."""
    found = []
    outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    counts = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and c.get("execution_count") is not None]
    timing = [i for i, c in enumerate(nb.cells) if "execution" in c.get("metadata", {})]
    if outputs:
        found.append(f"outputs in cells {_cells(outputs)}")
    if counts:
        found.append(f"execution counts in cells {_cells(counts)}")
    if timing:
        found.append(f"execution timing metadata in cells {_cells(timing)}")
    header = nb.metadata.get("recsys")
    if not isinstance(header, dict):
        found.append("no metadata.recsys (needs title, learn, datasets)")
        return found
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        found.append(f"metadata.recsys lacks {', '.join(missing)}")
    if "title" in header and not (isinstance(header["title"], str) and header["title"].strip()):
        found.append("metadata.recsys.title must be non-empty text")
    learn = header.get("learn")
    if "learn" in header and not (
        (isinstance(learn, str) and learn.strip())
        or (isinstance(learn, list) and learn and all(isinstance(x, str) and x.strip() for x in learn))
    ):
        found.append("metadata.recsys.learn must be non-empty text or a list of texts")
    datasets = header.get("datasets")
    if "datasets" in header:
        if not (isinstance(datasets, list) and datasets and all(isinstance(d, str) for d in datasets)):
            found.append("metadata.recsys.datasets must be a non-empty list of dataset names")
        elif known is not None and (unknown := [d for d in datasets if d not in known]):
            found.append(f"metadata.recsys.datasets has unknown {unknown} (known: {', '.join(known)})")
    return found


def _cells(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:8])
    return shown + (f" (+{len(indices) - 8} more)" if len(indices) > 8 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or folders (default: notebooks/)")
    parser.add_argument("--strip", action="store_true", help="remove outputs and execution counts in place")
    args = parser.parse_args(argv)

    default = ROOT / "notebooks"
    notebooks = find_notebooks(args.paths or ([default] if default.is_dir() else []))
    if not notebooks:
        print("check_notebooks: no notebooks found")
        return 0
    known = _known_datasets()
    offenders = 0
    dirty = False  # outputs, counts or timing left in some notebook
    for path in notebooks:
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        try:
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # a broken file is an offender, reported by name
            print(f"{shown}: not a valid notebook ({type(exc).__name__}: {exc})")
            offenders += 1
            continue
        if args.strip and strip(nb):
            nbformat.write(nb, path)
            print(f"{shown}: stripped")
        issues = problems(nb, known)
        dirty = dirty or any(issue.startswith(("outputs", "execution")) for issue in issues)
        if issues:
            offenders += 1
            print(f"{shown}: " + "; ".join(issues))
    if offenders:
        hint = " (run `make strip` to remove outputs)" if dirty else ""
        print(f"check_notebooks: {offenders} of {len(notebooks)} notebooks need fixing{hint}")
        return 1
    print(f"check_notebooks: {len(notebooks)} notebooks clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
