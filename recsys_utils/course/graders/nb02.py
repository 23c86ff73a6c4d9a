"""Graders of notebook 02 (02 · User profiling, item attributes and context features)."""

from __future__ import annotations

from recsys_utils.course.graders.registry import grader  # noqa: F401
