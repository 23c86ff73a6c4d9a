"""Pipeline: recall, ranking, re-ranking, serving, real-time updates and privacy, built on the models and evaluation."""
