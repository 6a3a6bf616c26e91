"""The tuned open-loop baseline: the best constant action for a scenario and action variant.

It never looks at the state, so an RL agent that cannot beat it has learned nothing that depends on
state. The action is found by differential evolution on training seeds only (:mod:`agents.tuning`)
and cached in ``agents/tuned/constant/``; regenerate the caches with ``python -m agents.tune``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.base import Policy
from agents.tuning import (
    TRAIN_SEEDS,
    Budget,
    Result,
    box_problem,
    cached,
    constant_returns,
    default_budget,
    fingerprint_inputs,
    optimise,
    training_paths,
)
from envs import functional as fn


def _bounds(space: spaces.Space) -> tuple[list[tuple[float, float]], list[bool] | None]:
    """The search box of a constant action: [-1, 1] per Box entry, or the levels of each MultiDiscrete
    entry as integers (differential evolution's integrality option), so no rounding rule is invented here."""
    if isinstance(space, spaces.MultiDiscrete):
        return [(0.0, float(n - 1)) for n in space.nvec.ravel()], [True] * space.nvec.size
    if isinstance(space, spaces.Box):
        return list(zip(space.low.ravel().astype(float), space.high.ravel().astype(float))), None
    raise TypeError(f"a constant action needs a Box or MultiDiscrete action space, got {space}")


def to_actions(space: spaces.Space, x: np.ndarray) -> np.ndarray:
    """(P, *shape) actions of ``space``'s dtype from (P, D) search vectors; the float32 rounding is the
    one the env sees, so tuned returns are the env's returns to the last bit."""
    x = np.atleast_2d(x)
    if isinstance(space, spaces.MultiDiscrete):
        return np.rint(x).astype(space.dtype).reshape(len(x), *space.shape)
    return np.clip(x, space.low.ravel(), space.high.ravel()).astype(space.dtype).reshape(len(x), *space.shape)


def tune_constant(params: fn.Params, seeds: Sequence[int] = TRAIN_SEEDS, budget: Budget | None = None) -> Result:
    """The constant action with the best mean return over ``seeds`` (training seeds only)."""
    paths = training_paths(params, seeds)
    bounds, integrality = _bounds(params.action_space)
    budget = budget or default_budget(len(bounds))
    return optimise(lambda x: constant_returns(params, paths, to_actions(params.action_space, x)),
                    bounds, budget, integrality)


class ConstantPolicy(Policy):
    """Plays one action every week: the best constant action for the env's scenario and variant,
    tuned on training seeds and cached (tuned on first use when the cache is missing or stale)."""

    name = "constant"

    def __init__(self, env: gym.Env, cache_dir: Path | None = None, budget: Budget | None = None,
                 seeds: Sequence[int] = TRAIN_SEEDS, refresh: bool = False):
        super().__init__(env)
        params, space = self.env.params, self.env.action_space
        bounds, _ = _bounds(space)
        budget = budget or default_budget(len(bounds))
        self.entry = cached(self.name, params, fingerprint_inputs(params, seeds, budget),
                            lambda: tune_constant(params, seeds, budget), lambda x: box_problem(x, bounds, str(space)),
                            cache_dir, refresh)
        self.action = to_actions(space, np.asarray(self.entry["x"]))[0]
        self.train_return: float = float(self.entry["train_return"])

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        return self.action.copy(), state
