"""Command-line tools: ``recsys-evaluate`` (score a prediction file) and ``recsys-bench`` (published protocols)."""
