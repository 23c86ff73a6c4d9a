"""Graders of notebook 07 (07 · GAN-generated data: generate interactions, measure their quality, use them honestly)."""

from __future__ import annotations

from recsys_utils.course.graders.registry import grader  # noqa: F401
