"""Graders of the course's exercises, one module per notebook, collected in :data:`GRADERS`.

A grader takes what the learner wrote (a function, an ``nn.Module`` class, ...) and raises
``AssertionError`` with a hint when it is wrong; it returns a short description of what it
verified. Each grader builds its own small fixture, so it is fast and never depends on the
notebook's state. Register one with :func:`grader`.
"""

from __future__ import annotations

from recsys_utils.course.graders import (
    nb00,  # noqa: F401  (registers its graders)
    nb01,  # noqa: F401  (registers its graders)
    nb02,  # noqa: F401  (registers its graders)
    nb03,  # noqa: F401  (registers its graders)
    nb04,  # noqa: F401  (registers its graders)
    nb05,  # noqa: F401  (registers its graders)
    nb06,  # noqa: F401  (registers its graders)
    nb07,  # noqa: F401  (registers its graders)
    nb08,  # noqa: F401  (registers its graders)
    nb09,  # noqa: F401  (registers its graders)
    nb10,  # noqa: F401  (registers its graders)
    nb11,  # noqa: F401  (registers its graders)
    nb12,  # noqa: F401  (registers its graders)
    nb13,  # noqa: F401  (registers its graders)
    nb14,  # noqa: F401  (registers its graders)
    nb15,  # noqa: F401  (registers its graders)
    nb16,  # noqa: F401  (registers its graders)
    nb17,  # noqa: F401  (registers its graders)
    nb18,  # noqa: F401  (registers its graders)
    nb19,  # noqa: F401  (registers its graders)
)
from recsys_utils.course.graders.registry import GRADERS, grader

__all__ = ["GRADERS", "grader"]
