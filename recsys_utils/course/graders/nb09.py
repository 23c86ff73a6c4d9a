"""Graders of notebook 09 (09 · Optimisation and tuning)."""

from __future__ import annotations

from recsys_utils.course.graders.registry import grader  # noqa: F401
