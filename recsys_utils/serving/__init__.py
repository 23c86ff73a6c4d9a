"""Serving: the recall → rank → re-rank pipeline, bandit exploration, real-time updates and privacy."""
