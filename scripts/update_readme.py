"""Regenerate the README's generated regions from the notebooks and build/results.json.

    python scripts/update_readme.py          # rewrite README.md in place
    python scripts/update_readme.py --check  # exit 1 if README.md is out of date

Two regions are generated, each between marker comments that stay in the file:

* ``<!-- BEGIN notebooks -->`` ... ``<!-- END notebooks -->``: one row per notebook from its
  ``metadata.recsys`` (title, learn, datasets) and its measured run time in results.json;
* ``<!-- BEGIN results -->`` ... ``<!-- END results -->``: the results each notebook recorded
  with ``recsys_utils.course.record``, plus the dataset and library versions of that run.

No number in these regions is typed by hand: run ``make course`` (or ``make readme`` after it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsys_utils.course import load_results  # noqa: E402

NOTEBOOK_DIR = ROOT / "notebooks"
PATTERN = "[0-9][0-9]_*.ipynb"
REGIONS = ("notebooks", "results")


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|").strip()


def fmt(value: object) -> str:
    """Floats with 4 significant digits (0.05123, 1.000, 1.235e+04); everything else as recorded."""
    if isinstance(value, float):
        return f"{value:#.4g}".rstrip(".")
    return str(value)


def notebook_headers(folder: Path) -> list[tuple[str, dict]]:
    """(name, metadata.recsys) of every course notebook, in order."""
    headers = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except json.JSONDecodeError as exc:
            raise SystemExit(f"update_readme: {path} is not valid JSON ({exc})") from exc
        header = meta.get("recsys")
        if not isinstance(header, dict):
            raise SystemExit(f"update_readme: {path} has no metadata.recsys "
                             "(run scripts/check_notebooks.py for what it needs)")
        headers.append((path.stem, header))
    return headers


def notebooks_table(headers: list[tuple[str, dict]], results: dict) -> str:
    if not headers:
        return "_No notebooks yet._"
    runs = results.get("notebooks", {})
    lines = ["| # | notebook | what you learn | datasets | CPU minutes |", "|---|---|---|---|---:|"]
    for name, header in headers:
        number = name.split("_", 1)[0]
        title = cell(header.get("title", name))
        learn = header.get("learn", "")
        learn = "; ".join(learn) if isinstance(learn, list) else learn
        datasets = ", ".join(str(d) for d in header.get("datasets", []))
        seconds = runs.get(name, {}).get("seconds")
        minutes = f"{seconds / 60:.1f}" if isinstance(seconds, (int, float)) else "not run"
        lines.append(f"| {number} | [{title}](notebooks/{name}.ipynb) | {cell(learn)} | {cell(datasets)} "
                     f"| {minutes} |")
    lines.append("")
    lines.append("_CPU minutes: wall-clock time of the last `make course` run (see the results below "
                 "for its dataset and versions)._")
    return "\n".join(lines)


def results_section(headers: list[tuple[str, dict]], results: dict) -> str:
    # Only notebooks that ran to the end under `make course` (the runner records their seconds).
    runs = {name: entry for name, entry in sorted(results.get("notebooks", {}).items())
            if entry.get("results") and "seconds" in entry}
    if not runs:
        return "_No results yet: run `make course`._"
    titles = dict(headers)
    versions = results.get("versions", {})
    about = [f"dataset `{results.get('dataset')}`"]
    about += [f"{package} {version}" for package, version in versions.items()]
    parts = [f"Recorded by the last `make course` run: {' · '.join(about)}."]
    for name, entry in runs.items():
        title = titles.get(name, {}).get("title")
        parts.append(f"**{cell(title)}** (`{name}`)" if title else f"**`{name}`**")
        rows = ["| result | value |", "|---|---:|"]
        rows += [f"| {cell(key)} | {cell(fmt(value))} |" for key, value in entry["results"].items()]
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def replace_region(text: str, region: str, body: str, source: Path) -> str:
    begin, end = f"<!-- BEGIN {region} -->", f"<!-- END {region} -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < 0 or stop < start:
        raise SystemExit(f"update_readme: {source} needs the markers '{begin}' and '{end}', in that order")
    return text[: start + len(begin)] + "\n" + body.strip() + "\n" + text[stop:]


def render(readme_text: str, readme: Path, notebooks: Path, results: dict) -> str:
    headers = notebook_headers(notebooks)
    bodies = {"notebooks": notebooks_table(headers, results), "results": results_section(headers, results)}
    for region in REGIONS:
        readme_text = replace_region(readme_text, region, bodies[region], readme)
    return readme_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR)
    parser.add_argument("--results", type=Path, default=None,
                        help="results.json (default: $RECSYS_BUILD_DIR or build/)")
    args = parser.parse_args(argv)

    current = args.readme.read_text(encoding="utf-8")
    updated = render(current, args.readme, args.notebooks, load_results(args.results))
    if args.check:
        if updated != current:
            print(f"update_readme: {args.readme} is out of date; run `make readme`")
            return 1
        print(f"update_readme: {args.readme} is up to date")
        return 0
    if updated == current:
        print(f"update_readme: {args.readme} already up to date")
        return 0
    fd, tmp = tempfile.mkstemp(prefix=".README.", suffix=".tmp", dir=args.readme.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(updated)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.readme)
    print(f"update_readme: rewrote the generated regions of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
