"""Suite-wide pytest configuration: the ``slow`` marker for the tests listed below.

``make unit`` runs ``pytest -m "not slow"`` (under a minute on a 2-core machine); ``make test`` runs
everything. The marker is registered in pyproject.toml (``--strict-markers``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: The tests measured above ~1.5 s each by ``pytest -q tests --durations=40`` on a 2-core CPU
#: machine (seconds in the comments; the whole suite took 89 s, these 47 s of it); node ids relative
#: to tests/, without parameters (a listed test marks all of its parametrisations). Not listed:
#: test_world.py's first test, whose 6.7 s are the module-scoped ``world``/``events`` fixtures that
#: every test in that file shares (marking it would move that cost to the next test).
#: Re-measure and update this list when a test gets much slower or faster.
SLOW_TESTS: set[str] = {
    "test_synthetic.py::test_detection_auc_separates_and_not",  # 18.1
    "test_neural.py::test_neumf_with_pretrained_parts",  # 6.8
    "test_synthetic.py::test_quality_report_of_real_split_and_errors",  # 5.9
    "test_neural.py::test_deepfm_learns_the_segment_category_interaction",  # 4.3
    "test_sequential.py::test_sequence_models_learn_what_a_markov_chain_cannot",  # 2.0 + 1.4 + 0.9
    "test_sequential.py::test_early_stopping_restores_the_best_validation_epoch",  # 3.6
    "test_neural.py::test_regressor_beats_the_global_mean_and_stops_on_rmse",  # 2.1
    "test_world.py::test_segments_are_visible_in_behaviour",  # 2.0
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
