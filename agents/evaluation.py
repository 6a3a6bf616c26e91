"""Run policies on common random numbers and summarise with bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from scipy import stats

import envs  # noqa: F401  (registers the IDs)
from agents.base import Policy

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


@dataclass
class Episode:
    seed: int
    episode_return: float
    weeks: int
    totals: dict[str, float] = field(default_factory=dict)  # summed info terms, USD
    means: dict[str, np.ndarray] = field(default_factory=dict)  # per-class / per-chip means over the episode


_SUMMED = ("profit", "revenue", "revenue_training", "capex", "opex", "power_cost", "maintenance", "interest",
           "depreciation", "write_off")
_AVERAGED = ("slo_attainment", "utilisation", "usd_per_mtok", "hbm_exposure")


def run_episode(env: gym.Env, policy: Policy, seed: int) -> Episode:
    """One episode of ``policy`` on ``env`` from ``reset(seed=seed)``; the seed fixes the exogenous path."""
    obs, _ = env.reset(seed=seed)
    state, start, total, weeks = None, np.array([True]), 0.0, 0
    sums = {k: 0.0 for k in _SUMMED}
    sums.update(unmet=0.0, demand=0.0)
    means: dict[str, np.ndarray] = {}
    while True:
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        start = np.array([False])
        total += reward
        weeks += 1
        for k in _SUMMED:
            sums[k] += float(info[k])
        sums["unmet"] += float(np.sum(info["unmet"]))
        sums["demand"] += float(np.sum(info["demand"]))
        for k in _AVERAGED:
            means[k] = means.get(k, 0.0) + np.asarray(info[k], dtype=float)
        if terminated or truncated:
            break
    sums["unmet_share"] = sums.pop("unmet") / max(sums.pop("demand"), 1e-9)
    return Episode(seed, total, weeks, sums, {k: v / weeks for k, v in means.items()})


def evaluate(make_env: Callable[[], gym.Env], make_policy: Callable[[gym.Env], Policy],
             seeds: Sequence[int]) -> list[Episode]:
    env = make_env()
    policy = make_policy(env)
    return [run_episode(env, policy, s) for s in seeds]


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% percentile-bootstrap interval (scipy.stats.bootstrap); the mean alone for one value."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        return float(values.mean()), float(values.mean()), float(values.mean())
    res = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                          method="percentile", random_state=np.random.default_rng(0))
    return float(values.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_difference_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b over the same seeds (common random numbers) with its 95% bootstrap interval."""
    return mean_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy.stats.trim_mean)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))
