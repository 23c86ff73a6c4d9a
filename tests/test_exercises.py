"""Every graded exercise: its check passes on the solution and fails on the empty stub and on a
plausible wrong answer; every notebook has its exercises and a questionnaire with answers.

Exercise cells are self-contained (imports and definitions only), so each is executed here on its
own, without running the notebook: the grader builds its own fixture.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.preprocessors import ClearSolutions

from recsys_utils.course.exercises import ExerciseNotDone

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r"([ \t]*)### BEGIN SOLUTION\n.*?### END SOLUTION[^\n]*", re.S)
MIN_EXERCISES, MIN_QUESTIONS = 4, 10
sys.path.insert(0, str(ROOT / "scripts"))
from make_learner import learner_edition  # noqa: E402


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _exercises() -> list[tuple[str, str, str, str]]:
    """(id, exercise source, wrong replacement, check source) for every exercise of every notebook."""
    found = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cells = nb.cells
        for i, cell in enumerate(cells):
            if "exercise" not in _tags(cell):
                continue
            exercise_id = cell.metadata.get("recsys", {}).get("exercise", f"{path.stem}[{i}]")
            check = next((c for c in cells[i + 1:] if c.cell_type == "code"), None)
            found.append((exercise_id, cell.source, cell.metadata.get("recsys", {}).get("wrong"),
                          check.source if check is not None and "check" in _tags(check) else None))
    return found


EXERCISES = _exercises()


def _stub(source: str) -> str:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "x",
                                 "schema_version": 3}
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb, _ = ClearSolutions().preprocess(nb, {"language": "python"})
    return nb.cells[0].source


def _wrong(source: str, wrong: str) -> str:
    def replace(match: re.Match) -> str:
        indent = match.group(1)
        return "\n".join(indent + line if line.strip() else line for line in wrong.splitlines())

    return SOLUTION.sub(replace, source, count=1)


def _run(exercise: str, check: str) -> None:
    namespace: dict = {"__name__": "__exercise__"}
    exec(compile(exercise, "<exercise>", "exec"), namespace)  # noqa: S102 - the course's own cells
    exec(compile(check, "<check>", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("exercise_id, source, wrong, check", EXERCISES, ids=[e[0] for e in EXERCISES])
def test_check_passes_on_the_solution_and_fails_on_stub_and_wrong_answer(exercise_id, source, wrong, check):
    assert check is not None, f"exercise {exercise_id}: the next code cell must be its check (tag 'check')"
    assert SOLUTION.search(source), f"exercise {exercise_id}: no ### BEGIN/END SOLUTION region"
    assert wrong, f"exercise {exercise_id}: metadata.recsys.wrong (a plausible wrong answer) is missing"
    _run(source, check)
    with pytest.raises(ExerciseNotDone):
        _run(_stub(source), check)
    with pytest.raises(AssertionError) as wrong_answer:
        _run(_wrong(source, wrong), check)
    assert not isinstance(wrong_answer.value, ExerciseNotDone)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_graded_exercises_and_a_questionnaire(path):
    nb = nbformat.read(path, as_version=4)
    exercises = [c for c in nb.cells if "exercise" in _tags(c)]
    checks = [c for c in nb.cells if "check" in _tags(c)]
    needed = 2 if path.stem.startswith("00_") else MIN_EXERCISES
    assert len(exercises) >= needed and len(checks) == len(exercises), (len(exercises), len(checks))
    questions = [c for c in nb.cells if "questions" in _tags(c)]
    answers = [c for c in nb.cells if "answers" in _tags(c)]
    assert len(questions) == 1 and len(answers) == 1, "one cell tagged 'questions' and one tagged 'answers'"
    numbered = re.compile(r"^\s*(\d+)\.\s", re.M)
    n_questions = len(numbered.findall(questions[0].source.split("Further research")[0]))
    n_answers = len(numbered.findall(answers[0].source))
    assert n_questions >= MIN_QUESTIONS and n_answers >= n_questions, (n_questions, n_answers)
    assert "Further research" in questions[0].source
    assert not [c for c in nb.cells if "solution" in _tags(c)], "solutions live inside exercise cells now"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_learner_edition_keeps_stubs_and_checks_and_drops_every_solution(path):
    nb = nbformat.read(path, as_version=4)
    edition = learner_edition(nb)
    assert len(edition.cells) == len(nb.cells)
    for original, learner in zip(nb.cells, edition.cells, strict=True):
        if "exercise" in _tags(original):
            assert "raise NotImplementedError()" in learner.source and "BEGIN SOLUTION" not in learner.source
        elif "answers" in _tags(original):
            assert learner.source == "YOUR ANSWER HERE"
        else:
            assert learner.source == original.source
