"""Training learned scheduling policies (stable-baselines3 PPO, sb3-contrib MaskablePPO) on the -v1 environments."""
