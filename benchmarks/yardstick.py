"""A yardstick run in the same process as each benchmark, so figures can be read as ratios on noisy machines."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np


def rate(fn, *, min_seconds: float = 0.5) -> float:
    """Calls per second of ``fn()``, timed over at least ``min_seconds``."""
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        fn()
        calls += 1
    return calls / elapsed


def cartpole_steps_per_s(n_steps: int = 50_000, seed: int = 0) -> float:
    """Steps/s of ``gym.make("CartPole-v1")`` with pre-drawn actions, resetting on episode end."""
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 2, size=n_steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - start)
