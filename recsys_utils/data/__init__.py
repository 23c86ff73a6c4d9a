"""Data: the simulated marketplace, real-data loaders, cleaning, splits and the Interactions container."""
