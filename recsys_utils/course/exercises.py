"""Graded exercises: one ``check`` call per exercise, backed by a grader in :mod:`recsys_utils.course.graders`.

A notebook's exercise is a cell tagged ``exercise`` whose solution sits between nbgrader's
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers (the learner edition, built by
``make learner`` with nbgrader's ``ClearSolutions``, replaces it by ``raise NotImplementedError()``);
the next cell, tagged ``check``, calls::

    from recsys_utils.course.exercises import check
    check("03.2", als_half_step)

A grader tests the learner's code on its own small fixture against the package (same weights,
outputs equal to 1e-5) or against autograd, so an exercise never depends on later cells and
a check fails on the empty stub and on a plausible wrong answer (``tests/test_exercises.py``
proves both for every exercise).
"""

from __future__ import annotations

from collections.abc import Callable

from recsys_utils.course.graders import GRADERS


class ExerciseNotDone(AssertionError):
    """The learner's stub still raises ``NotImplementedError``."""


def check(exercise: str, *answers: object) -> str:
    """Grade ``answers`` for ``exercise`` (e.g. ``"03.2"``); prints and returns a short verdict.

    Raises :class:`AssertionError` with a hint when the answer is wrong and
    :class:`ExerciseNotDone` while the stub is untouched.
    """
    grader: Callable[..., str] | None = GRADERS.get(exercise)
    if grader is None:
        raise KeyError(f"no grader for exercise {exercise!r}; known: {sorted(GRADERS)}")
    try:
        detail = grader(*answers)
    except NotImplementedError:
        raise ExerciseNotDone(f"exercise {exercise}: not done yet - write your code in the exercise cell "
                              "above, run it, then run this check again") from None
    except AssertionError as error:
        raise AssertionError(f"exercise {exercise}: not yet right - {error}") from None
    verdict = f"exercise {exercise} passed" + (f": {detail}" if detail else "")
    print(verdict)
    return verdict
