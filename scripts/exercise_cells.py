"""Authoring helpers: build the tagged cells of a graded exercise and of a questionnaire.

    from exercise_cells import exercise_cell, check_cell, questions_cell, answers_cell

``exercise_cell(exercise_id, source, wrong)`` -- ``source`` holds the stub's signature and docstring
with the solution between ``### BEGIN SOLUTION`` / ``### END SOLUTION``; ``wrong`` is a plausible
wrong answer that replaces the solution region in ``tests/test_exercises.py`` (the check must fail
on it). ``check_cell(exercise_id, names)`` calls ``check(exercise_id, *names)``.
``questions_cell(text)`` / ``answers_cell(text)``: the questionnaire and its answers (answers are
removed from the learner edition by ``make learner``).
"""

from __future__ import annotations

import nbformat


def _nbgrader(grade_id: str, solution: bool, grade: bool, points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def exercise_cell(exercise_id: str, source: str, wrong: str) -> nbformat.NotebookNode:
    """A code cell tagged ``exercise`` (an nbgrader solution cell) with its plausible wrong answer."""
    if "### BEGIN SOLUTION" not in source or "### END SOLUTION" not in source:
        raise ValueError(f"exercise {exercise_id}: the solution must sit between ### BEGIN/END SOLUTION")
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata = {"tags": ["exercise"], "nbgrader": _nbgrader(f"exercise_{exercise_id}", True, False),
                     "recsys": {"exercise": exercise_id, "wrong": wrong.strip("\n")}}
    return cell


def check_cell(exercise_id: str, names: str) -> nbformat.NotebookNode:
    """A locked, graded code cell tagged ``check`` that grades ``names`` (comma-separated)."""
    source = (f"from recsys_utils.course.exercises import check\n\n"
              f"check({exercise_id!r}, {names})")
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata = {"tags": ["check"], "nbgrader": _nbgrader(f"check_{exercise_id}", False, True, 1),
                     "recsys": {"exercise": exercise_id}}
    return cell


def questions_cell(text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
    cell.metadata = {"tags": ["questions"]}
    return cell


def answers_cell(text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text.strip("\n"))
    cell.metadata = {"tags": ["answers"], "nbgrader": _nbgrader("answers", True, False)}
    return cell
