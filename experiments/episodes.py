"""Episodes of a policy on seeded exogenous paths (common random numbers), and which seeds serve what."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the IDs)
from agents.base import Policy

# Seeds: training env i uses (seed + i); train.py's periodic evaluation starts at EVAL_SEED_START and
# final comparisons (train.py, evaluate.py) at TEST_SEED_START, so the three sets never overlap.
EVAL_SEED_START, TEST_SEED_START = 10_000, 20_000


@dataclass
class Episode:
    seed: int
    episode_return: float
    weeks: int
    totals: dict[str, float] = field(default_factory=dict)  # summed info terms, USD
    means: dict[str, np.ndarray] = field(default_factory=dict)  # per-class / per-chip means over the episode
    trace: dict[str, np.ndarray] = field(default_factory=dict)  # week-by-week series, when asked for


_SUMMED = ("profit", "revenue", "revenue_training", "capex", "facility_capex", "opex", "power_cost", "maintenance",
           "depreciation", "write_off", "sale_gain", "capital_charge", "facility_cost", "terminal_settlement",
           "accounting_profit")
_AVERAGED = ("slo_attainment", "utilisation", "usd_per_mtok", "hbm_exposure")
_TRACED = ("fleet", "demand", "served", "prefill_capacity", "decode_capacity", "hbm_price", "hbm_supply",
           "hbm_allocation", "hbm_drawn", "cash")


def run_episode(env: gym.Env, policy: Policy, seed: int, trace: bool = False) -> Episode:
    """One episode of ``policy`` on ``env`` from ``reset(seed=seed)``; the seed fixes the exogenous path.

    ``trace=True`` also keeps the week-by-week fleet, demand, served tokens, capacity and HBM market.
    """
    obs, _ = env.reset(seed=seed)
    state, start, total, weeks = None, np.array([True]), 0.0, 0
    sums = {k: 0.0 for k in _SUMMED}
    sums.update(unmet=0.0, demand=0.0)
    means: dict[str, np.ndarray] = {}
    series: dict[str, list] = {k: [] for k in _TRACED} if trace else {}
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
        for k in series:
            series[k].append(np.asarray(info[k], dtype=float))
        if terminated or truncated:
            break
    sums["unmet_share"] = sums.pop("unmet") / max(sums.pop("demand"), 1e-9)
    return Episode(seed, total, weeks, sums, {k: v / weeks for k, v in means.items()},
                   {k: np.array(v) for k, v in series.items()})


def make_env(env_id: str, scenario: str | None = None) -> gym.Env:
    """``gym.make(env_id)`` with the scenario (a name or a YAML path) when one is given."""
    return gym.make(env_id, **({"scenario": scenario} if scenario else {}))


def evaluate_policy(make_env: Callable[[], gym.Env], make_policy: Callable[[gym.Env], Policy],
                    seeds: Sequence[int]) -> list[Episode]:
    """One episode per seed, all on one environment and one policy."""
    env = make_env()
    policy = make_policy(env)
    return [run_episode(env, policy, s) for s in seeds]
