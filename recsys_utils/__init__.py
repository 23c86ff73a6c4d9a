"""recsys_utils: the tested package behind the course *Deep learning for e-commerce recommender systems*.

Data (the simulated marketplace, real-data loaders, cleaning, splits, the Interactions container)
→ features → models (one protocol) → evaluation (metrics, protocols, significance) → simulator,
serving and benchmark. See CONTRIBUTING.md for the module map.
"""

__version__ = "0.1.0"
