"""Simulation: the marketplace as an online environment (simulator, oracle), A/B tests, bandits, logged
feedback for off-policy evaluation, long-term user dynamics and reinforcement learning."""
