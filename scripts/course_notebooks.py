"""Which notebooks run on which dataset, and whether a real dataset's files are here.

Each notebook's metadata ``recsys.datasets`` lists the datasets it runs on (``make test`` runs every
listed pair) and ``recsys.needs`` says in one line what it needs that the others lack (shown when
it is skipped). Real files are looked for where the loaders look for a local copy:
``$RECSYS_DATA_SOURCE_DIR`` or ``../shared/data`` beside the checkout (see
:func:`recsys_utils.data.source_files.source_dirs`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsys_utils.data.source_files import source_dirs  # noqa: E402

NOTEBOOK_DIR = ROOT / "notebooks"
PATTERN = "[0-9][0-9]_*.ipynb"
#: a file that shows the dataset is present in a local-copy folder
LOCAL_FILES = {"movielens-100k": ("ml-100k/u.data",), "movielens-1m": ("ml-1m/ratings.dat",),
               "online-retail": ("online-retail/online_retail.csv.gz", "online-retail/Online Retail.xlsx")}


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob(PATTERN))


def header(path: Path) -> dict:
    return nbformat.read(path, as_version=4).metadata.get("recsys", {})


def claims(path: Path) -> list[str]:
    """The datasets the notebook says it runs on."""
    return list(header(path).get("datasets", []))


def skip_reason(path: Path, dataset: str) -> str | None:
    """``None`` when the notebook runs on ``dataset``, else one line saying what it needs."""
    if dataset in claims(path):
        return None
    return f"skipped (needs {header(path).get('needs', 'one of ' + ', '.join(claims(path)))})"


def local_copy(dataset: str) -> Path | None:
    """The local-copy file of a real dataset, or ``None`` (the marketplace is generated: always here)."""
    if dataset == "marketplace":
        return ROOT
    for folder in source_dirs():
        for name in LOCAL_FILES.get(dataset, ()):
            if (folder / name).is_file():
                return folder / name
    return None


if __name__ == "__main__":  # python scripts/course_notebooks.py DATASET -> the notebooks claiming it
    for nb in notebooks():
        if sys.argv[1] in claims(nb):
            print(nb.relative_to(ROOT))
