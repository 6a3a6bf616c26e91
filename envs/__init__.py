"""Gymnasium environments: see envs/README in the project README."""
