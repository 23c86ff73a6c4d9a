"""Suite-wide pytest configuration: the ``slow`` marker for the tests listed below.

``make unit`` runs ``pytest -m "not slow"`` (under a minute on a 2-core machine); ``make test`` runs
everything. The marker is registered in pyproject.toml (``--strict-markers``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: The tests measured above ~1.5 s each by ``pytest -q tests --durations=40`` (setup + call) on a
#: 2-core CPU machine; node ids relative to tests/, without parameters (a listed test marks all
#: of its parametrisations). Re-measure and update this list when a test gets much slower or faster.
SLOW_TESTS: set[str] = set()


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
