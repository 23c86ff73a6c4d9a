"""Notebook infrastructure: one setup call per notebook, and the results it records.

Every notebook starts with::

    from recsys_utils.course import setup, record
    ctx = setup("03_collaborative_filtering")
    data = ctx.load()
    ...
    record("ndcg@10/ease", ndcg)

:func:`setup` seeds everything, picks the dataset (argument, else ``$RECSYS_DATASET``, else the
simulated marketplace) and the device, and remembers the notebook. :func:`record` stores a
measured number under that notebook in ``build/results.json``, which is what the README's
tables are generated from (no number in the README is typed by hand). The file's shape::

    {"notebooks": {"00_quickstart": {"seconds": 12.3, "results": {"ndcg@10/popularity": 0.05}}},
     "dataset": "marketplace",
     "versions": {"python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6", ...}}

Environment variables: ``RECSYS_DATASET`` (dataset choice), ``RECSYS_ROOT`` (project root),
``RECSYS_BUILD_DIR`` (where ``results.json`` lives; tests point it at a temporary folder).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from recsys_utils.core.io import atomic_write_json
from recsys_utils.core.paths import project_root
from recsys_utils.core.seed import seed_everything
from recsys_utils.data.datasets import dataset_names, load_dataset

DEFAULT_DATASET = "marketplace"


DATASET_ENV = "RECSYS_DATASET"


BUILD_ENV = "RECSYS_BUILD_DIR"


RESULTS_FILE = "results.json"


#: libraries whose versions are recorded next to the results (python is always recorded)
VERSION_PACKAGES = ("torch", "numpy", "pandas", "scipy", "scikit-learn")


_CURRENT: CourseContext | None = None


def build_dir() -> Path:
    """Where results live: ``$RECSYS_BUILD_DIR`` if set, else ``<root>/build``."""
    env = os.environ.get(BUILD_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return project_root() / "build"


def results_path() -> Path:
    """``<build dir>/results.json``."""
    return build_dir() / RESULTS_FILE


@dataclass
class CourseContext:
    """What :func:`setup` decided for one notebook."""

    notebook: str
    seed: int
    dataset: str
    device: str
    root: Path
    data_dir: Path
    build_dir: Path

    @property
    def results_path(self) -> Path:
        return self.build_dir / RESULTS_FILE

    def load(self, **kwargs: Any) -> Any:
        """Load this notebook's dataset (seeded, cached under ``data_dir``).

        Calls ``recsys_utils.data.datasets.load_dataset(dataset, seed=..., data_dir=..., **kwargs)``.
        """

        return load_dataset(self.dataset, seed=self.seed, data_dir=self.data_dir, **kwargs)

    def record(self, name: str, value: Any) -> Any:
        """Record ``value`` under ``name`` for this notebook (see :func:`record`)."""
        clean = _clean_value(name, value)

        def update(data: dict) -> None:
            entry = data["notebooks"].setdefault(self.notebook, {})
            entry.setdefault("results", {})[name] = clean

        _update(self.build_dir, update)
        return value


def current_context() -> CourseContext:
    """The context of the last :func:`setup` call; error if there was none."""
    if _CURRENT is None:
        raise RuntimeError(
            "no course context: call recsys_utils.course.setup('<notebook name>') first "
            "(the notebook's setup cell)"
        )
    return _CURRENT


def setup(notebook: str, seed: int = 42, dataset: str | None = None) -> CourseContext:
    """Prepare a notebook: seed everything, choose dataset and device, set display defaults.

    ``dataset`` defaults to ``$RECSYS_DATASET``, else ``"marketplace"``. Records the dataset and
    the library versions in ``results.json`` and clears this notebook's earlier results (they are
    recorded again as its cells run), prints a one-line summary and returns the context.
    """
    global _CURRENT
    name = _notebook_name(notebook)
    chosen = _choose_dataset(dataset)
    _check_claim(name, chosen)
    seed_everything(seed)

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(_n_threads())
    _display_defaults()

    root = project_root()
    ctx = CourseContext(
        notebook=name,
        seed=int(seed),
        dataset=chosen,
        device=device,
        root=root,
        data_dir=root / "data",
        build_dir=build_dir(),
    )
    _CURRENT = ctx
    versions = library_versions()

    def update(data: dict) -> None:
        previous = data.get("dataset")
        if previous not in (None, chosen) and data["notebooks"]:
            print(f"[course] results in {ctx.results_path} were for dataset {previous!r}; "
                  f"starting afresh for {chosen!r}")
            data["notebooks"] = {}
        data["dataset"] = chosen
        data["versions"] = versions
        data["notebooks"].setdefault(name, {})["results"] = {}

    last = load_results(ctx.results_path)["notebooks"].get(name, {}).get("seconds")
    _update(ctx.build_dir, update)
    print(f"[course] {name} | dataset={chosen} | device={device} | seed={ctx.seed} | "
          f"torch {versions.get('torch', '?')}, numpy {versions.get('numpy', '?')}, "
          f"pandas {versions.get('pandas', '?')}")
    if last is not None:
        print(f"[course] measured CPU time of this notebook's last full run: {last / 60:.1f} min")
    return ctx


def notebook_header(name: str) -> dict:
    """The ``recsys`` metadata of ``notebooks/<name>.ipynb`` (empty if there is no such file)."""
    path = project_root() / "notebooks" / f"{name}.ipynb"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("recsys", {})


def _check_claim(name: str, dataset: str) -> None:
    """Refuse, in one line, a dataset the notebook does not run on (its metadata says which)."""
    header = notebook_header(name)
    claimed = header.get("datasets")
    if claimed and dataset not in claimed:
        needs = header.get("needs", "one of its datasets")
        raise DatasetNotSupported(f"{name} does not run on {dataset!r}: it needs {needs} "
                                  f"(it runs on {', '.join(claimed)})")


class DatasetNotSupported(RuntimeError):
    """A notebook was started on a dataset its metadata does not list."""


def record(name: str, value: float | int | str) -> Any:
    """Store ``value`` under ``name`` for the current notebook in ``results.json``; return ``value``.

    numpy scalars (and one-element numpy arrays or torch tensors) are stored as Python numbers;
    NaN and infinity are rejected. Other notebooks' entries are kept and the file is replaced
    atomically, so a crash never leaves it half written.
    """
    return current_context().record(name, value)


def record_seconds(notebook: str, seconds: float) -> float:
    """Store a notebook's wall-clock run time (used by ``scripts/run_course.py``)."""
    name = _notebook_name(notebook)
    value = _clean_value(f"{name}/seconds", seconds)
    if isinstance(value, (bool, str)) or value < 0:
        raise ValueError(f"record_seconds: seconds for {name!r} must be a number >= 0, got {seconds!r}")
    value = round(float(value), 1)

    def update(data: dict) -> None:
        entry = data["notebooks"].setdefault(name, {})
        entry["seconds"] = value
        entry.setdefault("results", {})

    _update(build_dir(), update)
    return value


def reset_results(notebooks: Iterable[str] | None = None) -> None:
    """Forget recorded results: of the named notebooks, or of every notebook when ``None``."""
    names = None if notebooks is None else {_notebook_name(n) for n in notebooks}

    def update(data: dict) -> None:
        if names is None:
            data["notebooks"] = {}
        else:
            for name in names:
                data["notebooks"].pop(name, None)

    _update(build_dir(), update)


def load_results(path: str | os.PathLike | None = None) -> dict:
    """Read ``results.json`` (default :func:`results_path`); an empty structure if it is missing."""
    path = Path(path) if path is not None else results_path()
    if not path.exists():
        return _empty_results()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it and run the notebooks again") from exc
    if not isinstance(data, dict) or not isinstance(data.get("notebooks", {}), dict):
        raise ValueError(f"{path}: expected an object with a 'notebooks' object, got {type(data).__name__}")
    out = _empty_results()
    out.update(data)
    return out


def library_versions() -> dict[str, str]:
    """Versions of python and of :data:`VERSION_PACKAGES` (those installed)."""
    versions = {"python": platform.python_version()}
    for package in VERSION_PACKAGES:
        if package == "torch":
            import torch

            versions["torch"] = str(torch.__version__)
            continue
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _empty_results() -> dict:
    return {"notebooks": {}, "dataset": None, "versions": {}}


def _notebook_name(notebook: str) -> str:
    if not isinstance(notebook, (str, os.PathLike)) or not str(notebook).strip():
        raise ValueError(f"notebook must be a non-empty name such as '00_quickstart', got {notebook!r}")
    name = Path(str(notebook).strip()).name
    return name[: -len(".ipynb")] if name.endswith(".ipynb") else name


def _known_datasets() -> tuple[str, ...]:
    """Names accepted by :func:`recsys_utils.data.datasets.load_dataset`."""
    return tuple(dataset_names())


def _choose_dataset(dataset: str | None) -> str:
    if dataset is not None:
        name, source = dataset, "the dataset argument"
    elif os.environ.get(DATASET_ENV, "").strip():
        name, source = os.environ[DATASET_ENV], f"${DATASET_ENV}"
    else:
        name, source = DEFAULT_DATASET, "the default"
    name = str(name).strip()
    choices = _known_datasets()
    if choices is not None and name not in choices:
        raise ValueError(f"unknown dataset {name!r} (from {source}); choose one of: {', '.join(choices)}")
    return name


def _n_threads() -> int:
    """Cores this process may use (capped by ``$OMP_NUM_THREADS`` when that is set), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return max(1, cores)


def _display_defaults() -> None:
    import matplotlib as mpl
    import pandas as pd

    mpl.rcParams.update({
        "figure.figsize": (7.0, 4.0),
        "figure.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    pd.set_option("display.max_columns", 50)
    pd.set_option("display.width", 120)
    pd.set_option("display.precision", 4)


def _clean_value(name: str, value: Any) -> float | int | str | bool:
    """A JSON-safe Python value for ``value``, or a clear error naming ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record: the result name must be a non-empty string, got {name!r}")
    if isinstance(value, np.ndarray) or type(value).__module__.split(".")[0] == "torch":
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            raise TypeError(f"record({name!r}): expected a single number, got an array of {size} values")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"record({name!r}): value is {value}; only finite numbers can be recorded")
        return value
    raise TypeError(f"record({name!r}): expected a float, int or str, got {type(value).__name__}")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock for a read-modify-write of the results file (no-op without fcntl)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace still protects the file itself
        yield
        return
    with open(folder / ".results.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _update(folder: Path, change: Callable[[dict], None]) -> dict:
    """Read ``results.json`` in ``folder``, apply ``change`` and write it back atomically."""
    path = folder / RESULTS_FILE
    with _locked(folder):
        data = load_results(path)
        change(data)
        atomic_write_json(path, data)  # strict JSON: a NaN result is refused, not written
    return data
