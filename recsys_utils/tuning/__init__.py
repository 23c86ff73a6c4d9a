"""Tuning: hyper-parameter search, model fusion and the optimisation lessons."""
