"""Simulation: the marketplace as an online environment (simulator, oracle), A/B tests and bandits."""
