"""Evaluation: protocols over the core metrics (full and sampled ranking), slices, significance and
the quality of generated data."""
