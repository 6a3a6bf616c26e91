"""A policy of your own, scored by evaluate.py: copy this file, change ``predict``, then run

    python evaluate.py --policies examples.my_policy:FixedActionPolicy,forecast --env-id ChipAlloc/Datacenter-Small-v0

``--policies`` takes ``module:Class`` (or ``label=module:Class``) for any module importable from the
working directory or ``PYTHONPATH``. The class is built as ``Class(env)`` (or ``Class()`` if its
``__init__`` takes no argument) and needs SB3's ``predict``: a stable-baselines3 model's own ``predict``
has the same signature. ``env`` is the Gymnasium env the episodes run on; ``env.action_space`` says what
an action is (see ``envs.DatacenterEnv``'s docstring). To read the state beyond the observation, as the
baselines do, subclass ``agents.base.Policy`` instead and use its ``self.env``.
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium import spaces


class FixedActionPolicy:
    """Plays the middle of every action entry every week (u = 0.5 in the env's terms): in the compact
    variants, order up to 1.5 times this week's demand, split evenly over the chips on sale, sell nothing,
    and leave the allocator's knobs at their midpoints."""

    def __init__(self, env: gym.Env):
        space = env.action_space
        if isinstance(space, spaces.MultiDiscrete):
            self.action = (space.nvec // 2).astype(space.dtype)
        elif isinstance(space, spaces.Box):
            self.action = ((space.low + space.high) / 2).astype(space.dtype)
        else:
            raise TypeError(f"FixedActionPolicy handles Box and MultiDiscrete action spaces, not {space}")

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """The action for ``observation`` and the recurrent state (None: this policy has none)."""
        return self.action.copy(), state

