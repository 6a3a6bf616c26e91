"""The policy interface shared by heuristics, the LP scheduler, the oracle and trained models.

Every policy has SB3's ``predict(obs, state=None, episode_start=None, deterministic=True)``
and returns ``(action, state)``. Heuristics need more than the observation vector: they read
the environment through one documented hook, ``self.env`` (the unwrapped
:class:`envs.DatacenterEnv`), and only what an operator knows at decision time: the scenario,
the current state and the demand observed so far. The perfect-foresight oracle is the one
policy that also reads the future exogenous path (``env.exogenous``), by design.

A heuristic decides a :class:`Plan` (order fractions per chip and either four knobs or explicit
role shares); :func:`to_action` encodes it for whichever variant the environment is.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from envs import DatacenterEnv
from envs.core import demand_now, knob_shares
from envs.spaces import KNOB_LEVELS, ORDER_LEVELS, fine_action


@dataclass(frozen=True)
class Plan:
    """One week's decision: ``order_fraction`` (K,) of the weekly maximum per chip, and either
    ``knobs`` (4,) in [0, 1] or ``shares`` ((1+2C), K) of each chip type's fleet."""

    order_fraction: np.ndarray
    knobs: np.ndarray | None = None
    shares: np.ndarray | None = None


class Policy:
    """Base class: subclasses implement :meth:`plan` (or override :meth:`predict`)."""

    name = "policy"

    def __init__(self, env: gym.Env):
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, DatacenterEnv):
            raise TypeError(f"{type(self).__name__} drives chipalloc environments; got {type(unwrapped).__name__}")
        self.env: DatacenterEnv = unwrapped

    def plan(self) -> Plan:
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        if self.env.state is None:
            raise RuntimeError("reset the environment before asking the policy for an action")
        return to_action(self.env, self.plan()), state


def to_action(env: DatacenterEnv, plan: Plan) -> np.ndarray:
    """Encode a plan in the action space of ``env``'s variant."""
    scenario = env.scenario
    orders = np.clip(np.asarray(plan.order_fraction, dtype=float), 0.0, 1.0)
    if env.variant == "fine":
        shares = plan.shares
        if shares is None:
            state, exo = env.state, env.exogenous
            shares = knob_shares(scenario, state.fleet, demand_now(exo, state) + state.backlog,
                                 np.asarray(plan.knobs, dtype=float)[None])[0]
        return fine_action(scenario, orders, shares)
    if plan.knobs is None:
        raise ValueError(f"{env.variant} environments take knobs; this plan has only explicit shares "
                         f"(use a ChipAlloc/DatacenterFine-* environment)")
    knobs = np.clip(np.asarray(plan.knobs, dtype=float), 0.0, 1.0)
    if env.discrete:
        order_levels = np.round(orders * (ORDER_LEVELS - 1)).astype(np.int64)
        masks = env.action_masks()[: scenario.n_chips * ORDER_LEVELS].reshape(scenario.n_chips, ORDER_LEVELS)
        for k, level in enumerate(order_levels):  # the largest allowed level not above the plan
            order_levels[k] = max(lvl for lvl in range(level + 1) if masks[k, lvl])
        knob_levels = np.round(knobs * (KNOB_LEVELS - 1)).astype(np.int64)
        return np.concatenate([order_levels, knob_levels])
    encoded_orders = np.where(orders > 0, orders, -1.0)
    parts = {"datacenter": [encoded_orders, 2 * knobs - 1], "procurement": [encoded_orders],
             "scheduling": [2 * knobs - 1]}[env.variant]
    return np.concatenate(parts).astype(np.float32)
