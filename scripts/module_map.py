"""Write CONTRIBUTING.md's module map: every module of recsys_utils by layer, from its docstring.

    python scripts/module_map.py          # rewrite the map between its markers
    python scripts/module_map.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "recsys_utils"
LAYERS = ("core", "data", "features", "models", "evaluation", "simulation", "pipeline", "tuning", "cli", "course")
BEGIN, END = "<!-- BEGIN module map -->", "<!-- END module map -->"


def modules() -> list[tuple[str, str]]:
    """(dotted name without the package prefix, first docstring sentence) for every module, by layer."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        found.append((".".join(parts), first))
    order = {layer: n for n, layer in enumerate(LAYERS)}
    return sorted(found, key=lambda m: (order.get(m[0].split(".")[0], len(LAYERS)), m[0]))


def table() -> str:
    rows = ["| layer | module | job |", "|---|---|---|"]
    for name, doc in modules():
        rows.append(f"| {name.split('.')[0]} | `{name}` | {doc.replace('|', '/')} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    path = ROOT / "CONTRIBUTING.md"
    text = path.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    updated = text[:start] + "\n" + table() + "\n" + text[stop:]
    if args.check:
        print("module map up to date" if updated == text else "module map out of date: run scripts/module_map.py")
        return int(updated != text)
    path.write_text(updated, encoding="utf-8")
    print(f"module_map: {len(modules())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
