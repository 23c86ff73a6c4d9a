"""Core: the column vocabulary, seeding, top-k, device choice, paths, atomic io and the metrics.

Imports nothing else of the package: every other layer builds on it.
"""
