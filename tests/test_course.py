"""recsys_utils.course (setup, record, results.json) and recsys_utils.core.seed."""

from __future__ import annotations

import json
import math
import random
import threading
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch

from recsys_utils import course
from recsys_utils.core import paths
from recsys_utils.core.seed import make_rng, seed_everything

FAKE_DATASETS = ("marketplace", "movielens-100k", "movielens-1m", "online-retail")
REAL_KNOWN_DATASETS = course._known_datasets
PANDAS_OPTIONS = ("display.max_columns", "display.width", "display.precision")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A scratch build dir, no current context, no dataset env, a known dataset registry; the
    process-wide settings that setup() changes are put back afterwards for the other tests."""
    monkeypatch.setenv(course.BUILD_ENV, str(tmp_path / "build"))
    monkeypatch.delenv(course.DATASET_ENV, raising=False)
    monkeypatch.setattr(course, "_CURRENT", None)
    monkeypatch.setattr(course, "_known_datasets", lambda: FAKE_DATASETS)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    rc = dict(mpl.rcParams)
    options = {name: pd.get_option(name) for name in PANDAS_OPTIONS}
    yield tmp_path / "build"
    torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    mpl.rcParams.update(rc)
    for name, value in options.items():
        pd.set_option(name, value)


def _read(build: Path) -> dict:
    return json.loads((build / "results.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- record


def test_record_before_setup_is_an_error():
    with pytest.raises(RuntimeError, match="setup"):
        course.record("ndcg@10/popularity", 0.1)


def test_results_file_has_the_documented_shape(isolated):
    ctx = course.setup("00_quickstart.ipynb", seed=1)
    assert ctx.notebook == "00_quickstart"
    value = np.float32(0.25)
    assert course.record("ndcg@10/popularity", value) is value  # returned for inline use
    course.record("users", np.int64(7))
    course.record("best", "ease")
    ctx.record("auc", torch.tensor(0.75))
    course.record_seconds("00_quickstart", 12.34)

    data = _read(isolated)
    assert set(data) == {"notebooks", "dataset", "versions"}
    assert data["dataset"] == "marketplace"
    assert {"python", "torch", "numpy", "pandas"} <= set(data["versions"])
    assert data["versions"]["torch"] == torch.__version__
    entry = data["notebooks"]["00_quickstart"]
    assert entry == {"seconds": 12.3, "results": {"ndcg@10/popularity": 0.25, "users": 7,
                                                  "best": "ease", "auc": 0.75}}
    assert type(entry["results"]["users"]) is int
    assert course.load_results(isolated / "results.json") == data
    assert course.load_results() == data  # default path follows RECSYS_BUILD_DIR


def test_other_notebooks_entries_are_kept_and_a_rerun_replaces_its_own(isolated):
    course.setup("01_a")
    course.record("x", 1.0)
    course.record("stale", 2.0)
    course.record_seconds("01_a", 3.0)
    course.setup("02_b")
    course.record("y", 2.0)
    course.setup("01_a")  # running a notebook again starts its results afresh
    course.record("x", 1.5)

    notebooks = _read(isolated)["notebooks"]
    assert notebooks["02_b"]["results"] == {"y": 2.0}
    assert notebooks["01_a"]["results"] == {"x": 1.5}
    assert notebooks["01_a"]["seconds"] == 3.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -math.inf, np.float64("nan"), np.float32("inf")])
def test_nan_and_inf_are_rejected_naming_the_key(isolated, bad):
    course.setup("00_quickstart")
    course.record("fine", 1.0)
    before = _read(isolated)
    with pytest.raises(ValueError, match="ndcg@10/broken"):
        course.record("ndcg@10/broken", bad)
    assert _read(isolated) == before


@pytest.mark.parametrize("bad", [[0.1], {"a": 1}, None, np.array([1.0, 2.0]), torch.ones(3)])
def test_values_that_are_not_one_number_are_rejected(isolated, bad):
    course.setup("00_quickstart")
    with pytest.raises(TypeError, match="metric"):
        course.record("metric", bad)


def test_bad_names_and_seconds_are_rejected(isolated):
    course.setup("00_quickstart")
    with pytest.raises(ValueError, match="non-empty"):
        course.record("", 1.0)
    with pytest.raises(ValueError, match="00_quickstart"):
        course.record_seconds("00_quickstart", -1.0)


def test_writes_are_atomic(isolated, monkeypatch):
    course.setup("00_quickstart")
    course.record("kept", 1.0)
    before = (isolated / "results.json").read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(course.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        course.record("lost", 2.0)
    assert (isolated / "results.json").read_bytes() == before  # the old file is intact
    assert [p.name for p in isolated.iterdir() if p.name.endswith(".tmp")] == []  # no debris


def test_concurrent_records_all_survive(isolated):
    contexts = [course.setup(f"0{i}_nb") for i in range(4)]

    def work(ctx):
        for j in range(20):
            ctx.record(f"r{j}", j)

    threads = [threading.Thread(target=work, args=(ctx,)) for ctx in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    notebooks = _read(isolated)["notebooks"]
    assert all(len(notebooks[ctx.notebook]["results"]) == 20 for ctx in contexts)


def test_corrupt_results_file_gives_a_clear_error(isolated):
    isolated.mkdir(parents=True)
    (isolated / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="results.json"):
        course.load_results()


def test_missing_results_file_reads_as_empty(isolated):
    assert course.load_results() == {"notebooks": {}, "dataset": None, "versions": {}}


# --------------------------------------------------------------------------- seeding


def _draws():
    return random.random(), np.random.rand(4), torch.rand(4)


def test_same_seed_same_random_numbers():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    second = _draws()
    seed_everything(124)
    other = _draws()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])
    assert first[0] != other[0]
    assert not np.array_equal(first[1], other[1])
    assert not torch.equal(first[2], other[2])
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_setup_seeds_everything():
    course.setup("00_quickstart", seed=5)
    first = _draws()
    course.setup("00_quickstart", seed=5)
    second = _draws()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])


def test_make_rng_is_independent_and_reproducible():
    a, b = make_rng(9), make_rng(9)
    np.testing.assert_array_equal(a.random(5), b.random(5))
    assert isinstance(a, np.random.Generator)
    assert not np.array_equal(make_rng(9).random(5), make_rng(10).random(5))


@pytest.mark.parametrize(
    "bad, error", [(-1, ValueError), (2**32, ValueError), ("1", TypeError), (1.5, TypeError)]
)
def test_bad_seeds_are_rejected(bad, error):
    with pytest.raises(error):
        seed_everything(bad)


# --------------------------------------------------------------------------- datasets and paths


def test_dataset_default_env_and_argument(isolated, monkeypatch):
    assert course.setup("00_quickstart").dataset == "marketplace"
    monkeypatch.setenv(course.DATASET_ENV, "movielens-100k")
    ctx = course.setup("00_quickstart")
    assert ctx.dataset == "movielens-100k"
    assert _read(isolated)["dataset"] == "movielens-100k"
    assert course.setup("00_quickstart", dataset="online-retail").dataset == "online-retail"


def test_switching_dataset_drops_results_of_the_other_dataset(isolated, monkeypatch):
    course.setup("01_a")
    course.record("x", 1.0)
    monkeypatch.setenv(course.DATASET_ENV, "movielens-1m")
    course.setup("02_b")
    data = _read(isolated)
    assert data["dataset"] == "movielens-1m"
    assert set(data["notebooks"]) == {"02_b"}


def test_unknown_dataset_lists_the_choices(monkeypatch):
    monkeypatch.setenv(course.DATASET_ENV, "movielens-20m")
    with pytest.raises(ValueError, match="movielens-20m") as info:
        course.setup("00_quickstart")
    message = str(info.value)
    assert "RECSYS_DATASET" in message
    assert all(name in message for name in FAKE_DATASETS)
    assert course._CURRENT is None  # nothing half set up


def test_the_real_dataset_registry(monkeypatch):
    monkeypatch.setattr(course, "_known_datasets", REAL_KNOWN_DATASETS)
    from recsys_utils.data import datasets

    names = course._known_datasets()
    assert "marketplace" in names
    assert set(names) == set(datasets.DATASETS)
    with pytest.raises(ValueError, match="marketplace"):
        course._choose_dataset("no-such-dataset")


def test_load_passes_dataset_seed_and_data_dir(monkeypatch):
    calls = []
    monkeypatch.setattr(course, "load_dataset", lambda name, **kw: calls.append((name, kw)) or "data")
    ctx = course.setup("00_quickstart", seed=3, dataset="movielens-100k")
    assert ctx.load(sample=10) == "data"
    assert calls == [("movielens-100k", {"seed": 3, "data_dir": ctx.root / "data", "sample": 10})]


def test_context_fields(isolated, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    ctx = course.setup("00_quickstart", seed=11)
    assert ctx.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert (ctx.root, ctx.data_dir, ctx.build_dir) == (tmp_path, tmp_path / "data", isolated)
    assert course.current_context() is ctx


def test_project_root_from_env_cwd_or_package(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    assert paths.project_root() == tmp_path.resolve()

    monkeypatch.delenv(paths.ROOT_ENV)
    project = tmp_path / "project"
    (project / "recsys_utils").mkdir(parents=True)
    (project / "pyproject.toml").write_text("", encoding="utf-8")
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    assert paths.project_root() == project.resolve()

    monkeypatch.chdir(tmp_path)  # nothing above: fall back to the folder holding the package
    assert paths.project_root() == Path(paths.__file__).resolve().parents[2]

    monkeypatch.delenv(course.BUILD_ENV)
    monkeypatch.setenv(paths.ROOT_ENV, str(project))
    assert course.build_dir() == project.resolve() / "build"


def test_setup_refuses_a_dataset_the_notebook_does_not_claim(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    meta = {"metadata": {"recsys": {"datasets": ["marketplace"], "needs": "the simulator's truth"}}, "cells": []}
    (tmp_path / "notebooks" / "07_gan.ipynb").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(course.DatasetNotSupported, match=r"07_gan does not run on 'movielens-100k': it needs "
                                                          r"the simulator's truth \(it runs on marketplace\)"):
        course.setup("07_gan", dataset="movielens-100k")
    assert course.setup("07_gan", dataset="marketplace").dataset == "marketplace"
    assert course.setup("no_metadata_notebook", dataset="movielens-100k").dataset == "movielens-100k"
