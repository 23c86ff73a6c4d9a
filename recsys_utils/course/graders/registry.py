"""The registry the grader modules add to (kept apart so grader modules import no package ``__init__``)."""

from __future__ import annotations

from collections.abc import Callable

GRADERS: dict[str, Callable[..., str]] = {}


def grader(exercise: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register the decorated function as the grader of ``exercise`` (``"NN.k"``)."""

    def register(function: Callable[..., str]) -> Callable[..., str]:
        if exercise in GRADERS:
            raise ValueError(f"exercise {exercise} has two graders")
        GRADERS[exercise] = function
        return function

    return register
