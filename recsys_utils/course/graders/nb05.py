"""Graders of notebook 05 (05 · Deep models: MLP on ids, NCF, DeepFM and Mult-VAE — against tuned simple baselines)."""

from __future__ import annotations

from recsys_utils.course.graders.registry import grader  # noqa: F401
