"""Policies that drive chipalloc environments, all with SB3's ``predict`` interface.

>>> import gymnasium as gym, envs, agents
>>> env = gym.make("ChipAlloc/Datacenter-v0")
>>> policy = agents.make_policy("forecast", env)
>>> obs, _ = env.reset(seed=0)
>>> action, _ = policy.predict(obs)

``constant`` plays the best constant action for the env's scenario and variant, tuned on training
seeds and cached in ``agents/tuned/`` (:mod:`agents.tuning`). The buying heuristics use their parameters
tuned the same way when the env's scenario and variant have a cache entry, and their defaults (with a
warning) otherwise; ``tuned=False`` asks for the defaults (:mod:`agents.heuristics`).

``lp-scheduler``, ``mpc`` and ``oracle`` set explicit role shares and need a ``ChipAlloc/DatacenterFine-*``
environment; the heuristics drive every variant.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from agents.base import Plan, Policy, to_action
from agents.constant import ConstantPolicy
from agents.heuristics import (
    DisaggregatedGreedyPolicy,
    DoNothingPolicy,
    ForecastPolicy,
    HomogeneousGPUPolicy,
    RandomPolicy,
)
from agents.lp_scheduler import LPSchedulerPolicy, SolverError, schedule_lp
from agents.mpc import MPCPolicy
from agents.oracle import OraclePolicy, solve_oracle

_PROCUREMENT = {cls.name: cls for cls in (DoNothingPolicy, HomogeneousGPUPolicy, DisaggregatedGreedyPolicy,
                                           ForecastPolicy)}
_POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (
    RandomPolicy, ConstantPolicy, DoNothingPolicy, HomogeneousGPUPolicy, DisaggregatedGreedyPolicy, ForecastPolicy,
    LPSchedulerPolicy, MPCPolicy, OraclePolicy)}
FINE_ONLY = ("lp-scheduler", "mpc", "oracle")
# Policies whose parameters are tuned on training seeds and cached in agents/tuned/ (agents.tuning);
# `python -m agents.tune --policy NAME` regenerates their caches.
TUNABLE = ("constant", "forecast", "disaggregated-greedy", "homogeneous-gpu")
BASELINES = ("random", "constant", "do-nothing", "homogeneous-gpu", "disaggregated-greedy", "forecast", "lp-scheduler",
             "mpc")


def list_policies() -> list[str]:
    """Names accepted by :func:`make_policy`, from the simplest to the oracle."""
    return list(_POLICIES)


def make_policy(name: str, env: gym.Env, **kwargs: Any) -> Policy:
    """Build a policy by name for ``env``.

    ``lp-scheduler`` takes ``procurement=`` (a heuristic's name, default ``forecast``) for its orders.
    The buying heuristics and ``lp-scheduler`` take ``tuned=False`` for the heuristics' default parameters,
    and the heuristics ``params={name: value}`` to set any of them.
    """
    if name not in _POLICIES:
        raise ValueError(f"unknown policy {name!r}; available: {', '.join(_POLICIES)}")
    if name == "lp-scheduler" and isinstance(kwargs.get("procurement"), str):
        rule = kwargs["procurement"]
        if rule not in _PROCUREMENT:
            raise ValueError(f"unknown procurement rule {rule!r} for lp-scheduler; "
                             f"available: {', '.join(_PROCUREMENT)}")
        kwargs["procurement"] = _PROCUREMENT[rule]
    return _POLICIES[name](env, **kwargs)


__all__ = ["BASELINES", "FINE_ONLY", "TUNABLE", "ConstantPolicy", "Plan", "Policy", "SolverError", "list_policies",
           "make_policy", "schedule_lp", "solve_oracle", "to_action"]
