"""Suite-wide pytest configuration: the ``slow`` marker for the tests listed below.

``make unit`` runs ``pytest -m "not slow"`` (under a minute on a 2-core machine); ``make test`` runs
everything. The marker is registered in pyproject.toml (``--strict-markers``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: The tests that take more than ~1.5 s each on a 2-core CPU machine, measured with
#: ``pytest -q tests --durations=40`` and, because the machine was shared while this list was made,
#: with each test's CPU seconds (process + subprocesses, the comments; on an idle machine a test's
#: wall time is about its CPU time). The whole suite is ~64 CPU s, these ~27 s of it. Node ids are
#: relative to tests/, without parameters (a listed test marks all of its parametrisations).
#: Not listed: test_world.py's first test, whose ~4 s are the module-scoped ``world``/``events``
#: fixtures that every test in that file shares (marking it would move that cost to the next test).
#: Re-measure and update this list when a test gets much slower or faster.
SLOW_TESTS: set[str] = {
    "test_generative.py::test_gan_trains_samples_and_is_seeded",  # 8.8
    "test_cf_models.py::test_torch_bpr_learns_block_structure",  # 3.9
    "test_sequential.py::test_sequence_models_learn_what_a_markov_chain_cannot",  # 1.3 + 0.9 + 0.8
    "test_features.py::test_segment_users_finds_planted_clusters",  # 2.1
    "test_generative.py::test_gan_learns_the_planted_groups",  # 2.1
    "test_synthetic.py::test_detection_auc_separates_and_not",  # 1.5 (18 s wall in an earlier version)
    "test_cf_models.py::test_als_loss_decreases_and_matches_its_definition",  # 1.4
    "test_bench.py::test_cli_writes_json_and_rejects_bad_options",  # 1.4
    "test_cf_models.py::test_als_cholesky_solver_matches_many_cg_steps",  # 1.3
    "test_world.py::test_segments_are_visible_in_behaviour",  # 1.3
}


def _node_id(item: pytest.Item) -> str:
    """``test_file.py::test_name`` (class included, parameters dropped), relative to tests/."""
    path = Path(str(item.path)).resolve()
    try:
        relative = path.relative_to(TESTS).as_posix()
    except ValueError:  # collected from outside tests/ (e.g. notebooks under nbval)
        return ""
    name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"{relative}::{name.split('[', 1)[0]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _node_id(item) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
