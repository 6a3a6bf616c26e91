"""A digest of what the dynamics compute, from probe rollouts.

Tuned caches and leaderboard entries record it, so that a change to the code which leaves every probe trajectory
bit-identical (a faster kernel, a helper moved) keeps them valid, while any change to what an episode computes on
the probes makes them stale. The probes are whole episodes of one scenario and action variant, for each of
:data:`PROBE_SEEDS` and each action regime below (seeded random actions, both corners of the action space and its
middle), hashed step by step: the state rows, observations and info rows (which hold the reward). The exogenous
paths they run on are drawn by :func:`envs.exogenous.draw_exogenous`, so a change to the draws shows too.

A change that no probe reaches (say, a branch only a rare state takes) is not seen; the probes cover buying,
selling, renting, expansion, clusters and bankruptcy through the corners and the random regime.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from envs import functional as fn

# The exogenous seeds the probes run on: outside the training (0-15) and evaluation (20000+) seeds, so that a
# digest says nothing about the episodes results are reported on beyond what the dynamics do.
PROBE_SEEDS = (7001, 7002)
_REGIMES = ("random", "low", "high", "middle")
_ACTION_SEED = 7


def _actions(params: fn.Params, regime: str, rng: np.random.Generator, batch: int) -> np.ndarray:
    space = params.action_space
    if params.discrete:
        nvec = np.asarray(space.nvec)
        corner = {"low": np.zeros_like(nvec), "high": nvec - 1, "middle": nvec // 2}
        one = rng.integers(0, nvec, size=(batch, *nvec.shape)) if regime == "random" else corner[regime]
    else:
        low, high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
        corner = {"low": low, "high": high, "middle": (low + high) / 2}
        one = rng.uniform(low, high, size=(batch, *low.shape)) if regime == "random" else corner[regime]
    return np.broadcast_to(one, (batch, *space.shape)).astype(space.dtype)


def dynamics_digest(params: fn.Params) -> str:
    """16 hex digits, equal exactly when every probe rollout of ``params`` is bit-identical."""
    digest = hashlib.sha256(f"{params.scenario.name}|{params.variant}|{params.discrete}".encode())
    rng = np.random.default_rng(_ACTION_SEED)
    for regime in _REGIMES:
        gen = np.random.default_rng(list(PROBE_SEEDS))
        state, obs = fn.reset(params, gen, batch=len(PROBE_SEEDS))
        digest.update(obs.tobytes())
        for _ in range(params.weeks):
            state, obs, _, info = fn.step_arrays(params, state, _actions(params, regime, rng, len(PROBE_SEEDS)))
            for array in (state.rows, obs, info):
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def scenario_digest(scenario: str, variant: str = "datacenter", discrete: bool = False) -> str:
    """:func:`dynamics_digest` of a registered scenario (or YAML path) by name, computed once per process."""
    return dynamics_digest(fn.params(scenario, variant, discrete))
