"""Graders of notebook 06 (06 · Sequential models: what comes next?)."""

from __future__ import annotations

from recsys_utils.course.graders.registry import grader  # noqa: F401
