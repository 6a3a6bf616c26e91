"""Tuning a heuristic's own parameters (safety stock, knobs, forecast smoothing...) on training seeds.

A heuristic is a closed-loop Python policy reading ``env.state``, so a parameter vector is scored by
running its episodes on the training seeds (a Gymnasium env, the same loop as
:func:`experiments.episodes.run_episode`). :func:`agents.tuning.optimise` searches the heuristic's
declared box with its documented defaults in the first generation, so the tuned training return is at least
the defaults'. Entries are cached by :func:`agents.tuning.cached` under a fingerprint that adds the
heuristic's own code and declared parameters to the scenario, model, variant, seeds and budget.

Building a heuristic never tunes (:func:`tuned_values` only reads the cache): a large scenario takes
minutes. ``python -m agents.tune --policy forecast`` (re)writes the committed entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents import parameters
from agents.tuning import (
    TRAIN_SEEDS,
    Budget,
    Result,
    box_problem,
    cached,
    check_training_seeds,
    code_digest,
    fingerprint_inputs,
    lookup,
    optimise,
)
from envs import functional as fn
from envs.datacenter import DatacenterEnv
from envs.probe import PROBE_SEEDS

# One candidate is 16 closed-loop episodes (0.07-0.17 s each on a 156-week scenario, 2 shared cores), so a
# generation is as small as scipy allows (one candidate per parameter) and there are few of them: 7 generations
# of the forecast rule's 11 parameters take about 3 min a large scenario.
HEURISTIC_BUDGET = Budget(popsize=1, maxiter=6)
# The heuristics' own code: a change to the rules or to how a plan becomes an action changes the answer.
_CODE = (Path(__file__).parent / "heuristics.py", Path(__file__).parent / "base.py")


class Tunable(Protocol):
    """A heuristic class with declared parameters, built as ``cls(env, params=..., tuned=False)``."""

    name: str
    PARAMS: parameters.Declared

    def __call__(self, env: DatacenterEnv, params: dict[str, float] | None = None, tuned: bool = True) -> Any: ...


def _play(env: DatacenterEnv, policy: Any, seed: int) -> Iterator[tuple[Any, float]]:
    """(action, reward) of each week of one episode of ``policy`` from ``env.reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    while True:
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        yield action, float(reward)
        if terminated or truncated:
            return


def episode_return(env: DatacenterEnv, policy: Any, seed: int) -> float:
    """The return of one episode of ``policy`` from ``env.reset(seed=seed)``."""
    return sum((reward for _, reward in _play(env, policy, seed)), 0.0)


def training_returns(cls: Tunable, params: fn.Params, candidates: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """(P,) mean return over ``seeds`` (training seeds only) of each of P parameter vectors (P, D)."""
    seeds = check_training_seeds(seeds)
    env = DatacenterEnv(scenario=params.scenario, variant=params.variant, discrete=params.discrete)
    out = []
    for x in np.atleast_2d(candidates):
        policy = cls(env, params=parameters.from_vector(cls.PARAMS, x), tuned=False)
        out.append(np.mean([episode_return(env, policy, s) for s in seeds]))
    return np.array(out)


def tune_heuristic(cls: Tunable, params: fn.Params, seeds: Sequence[int] = TRAIN_SEEDS,
                   budget: Budget = HEURISTIC_BUDGET) -> Result:
    """The parameter vector of ``cls`` with the best mean return over ``seeds``, the defaults among the candidates."""
    seeds = check_training_seeds(seeds)  # here too: scipy would hide the objective's error behind its own
    return optimise(lambda x: training_returns(cls, params, x, seeds), parameters.bounds(cls.PARAMS), budget,
                    x0=parameters.to_vector(cls.PARAMS, parameters.defaults(cls.PARAMS)))


def policy_digest(cls: Tunable, params: fn.Params) -> str:
    """A digest of the actions ``cls`` (default parameters) takes on the dynamics' probe episodes: it changes when
    a helper of the model that only policies call (coverage, chip counts for demand) changes what they do."""
    env = DatacenterEnv(scenario=params.scenario, variant=params.variant, discrete=params.discrete)
    policy, digest = cls(env, tuned=False), hashlib.sha256()
    for seed in PROBE_SEEDS:
        for action, _ in _play(env, policy, seed):
            digest.update(np.ascontiguousarray(action).tobytes())
    return digest.hexdigest()[:16]


def _inputs(cls: Tunable, params: fn.Params, seeds: Sequence[int], budget: Budget) -> dict[str, Any]:
    return fingerprint_inputs(params, seeds, budget, policy_code=code_digest(*_CODE),
                              policy_probe=policy_digest(cls, params),
                              parameters={name: [p.default, p.low, p.high] for name, p in cls.PARAMS.items()})


def _validate(cls: Tunable):
    return lambda x: box_problem(x, parameters.bounds(cls.PARAMS), f"{cls.name}'s parameters ({', '.join(cls.PARAMS)})")


def tuned_entry(cls: Tunable, params: fn.Params, cache_dir: Path | None = None, refresh: bool = False,
                seeds: Sequence[int] = TRAIN_SEEDS, budget: Budget = HEURISTIC_BUDGET) -> dict[str, Any]:
    """The cached entry of ``cls`` for ``params``' scenario and variant, tuned (and written to ``cache_dir``)
    when missing, stale or ``refresh``: what ``python -m agents.tune`` calls."""
    return cached(cls.name, params, _inputs(cls, params, seeds, budget),
                  lambda: tune_heuristic(cls, params, seeds, budget), _validate(cls), cache_dir, refresh)


def tuned_values(cls: Tunable, params: fn.Params, cache_dir: Path | None = None) -> tuple[dict[str, float] | None, str]:
    """``(values, "")`` from a fresh cache entry of ``cls`` for ``params``' scenario and variant, or
    ``(None, why)`` when it is missing or stale. Never tunes."""
    entry, why = lookup(cls.name, params, _inputs(cls, params, TRAIN_SEEDS, HEURISTIC_BUDGET), _validate(cls),
                        cache_dir)
    return (None, why) if entry is None else (parameters.from_vector(cls.PARAMS, np.asarray(entry["x"])), "")
