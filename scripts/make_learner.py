"""Write the learner edition of the course: every solution and answer removed, stubs and checks kept.

    python scripts/make_learner.py            # notebooks/*.ipynb -> build/learner/*.ipynb

The committed notebooks are the instructor edition (what CI runs). Solutions sit between nbgrader's
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers in cells tagged ``exercise``; answers are
markdown cells tagged ``answers``. nbgrader's own ``ClearSolutions`` preprocessor (the tool behind
``nbgrader generate_assignment``) replaces each solution region by ``raise NotImplementedError()``
and each answer by "YOUR ANSWER HERE"; outputs are cleared. We run that preprocessor directly
rather than ``generate_assignment``, which would also need nbgrader's course folder layout and
database for no benefit here. The script refuses to write an edition in which a solution marker
or a line of solution code survives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearOutput, ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


def solution_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Non-trivial lines inside solution regions and answer cells (what must not leak)."""
    lines: set[str] = set()
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "answers" in tags:
            lines.update(line.strip() for line in cell.source.splitlines() if len(line.strip()) > 20)
        inside = False
        for line in cell.source.splitlines():
            if MARKERS[0] in line:
                inside = True
            elif MARKERS[1] in line:
                inside = False
            elif inside and len(line.strip()) > 12 and not line.strip().startswith("#"):
                lines.add(line.strip())
    return lines


def learner_edition(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner edition of one instructor notebook (a new object; ``nb`` is not changed)."""
    out = nbformat.from_dict(nb)
    resources = {"language": "python"}
    out, _ = ClearSolutions(enforce_metadata=True).preprocess(out, resources)
    out, _ = ClearOutput().preprocess(out, resources)
    leaked = {line for line in solution_lines(nb)
              if any(line in cell.source for cell in out.cells)}
    if any(MARKERS[0] in cell.source for cell in out.cells) or leaked:
        raise SystemExit(f"make_learner: solution text survived: {sorted(leaked)[:3]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "learner")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in notebooks:
        edition = learner_edition(nbformat.read(path, as_version=4))
        nbformat.write(edition, args.out / path.name)
    print(f"make_learner: wrote {len(notebooks)} learner notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
