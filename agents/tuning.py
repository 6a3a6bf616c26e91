"""Tuning a policy's parameter vector on training seeds, with a library optimiser, and caching the result.

Three pieces, usable by any policy whose parameters can be scored on a batch of datacenters:

- :func:`training_paths` and :func:`batch_returns` score candidates by rolling the functional API
  forward on one batch holding every (candidate, training seed) pair, so that one compiled step
  advances a whole population of candidates. Seed ``s`` gets exactly the exogenous path a
  Gymnasium env reset with ``seed=s`` faces (tested), so a tuned return is a return the env gives.
- :func:`optimise` runs scipy's ``differential_evolution`` (seeded, vectorised, no gradient polish:
  returns are piecewise constant in the action, through whole order units and rounding).
- :func:`cached` stores a result as JSON in ``agents/tuned/<policy>/<scenario>-<variant>.json``,
  under a fingerprint of everything that changes the answer; a stale or missing entry is re-tuned
  (with a log line) and rewritten atomically.

Regenerate the committed caches, e.g. after the dynamics change, with one command::

    python -m agents.tune --policy constant --discrete   # every registered scenario, Box and MultiDiscrete
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import differential_evolution

from envs import dynamics as dyn
from envs import functional as fn
from envs.exogenous import Exogenous, draw_exogenous
from envs.probe import dynamics_digest

log = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).parent / "tuned"
# Training seeds are 0 up (train.py's env i uses seed + i); the periodic evaluation starts at
# experiments.episodes.EVAL_SEED_START (10,000) and the held-out comparison at TEST_SEED_START (20,000).
# Sixteen seeds keep the standard error of a mean return near a percent on the default scenario
# while a DE generation of ~60 candidates stays about a second.
TRAIN_SEEDS: tuple[int, ...] = tuple(range(16))
# Rows stepped per kernel call: below envs.dynamics.PARALLEL_FROM the serial kernel runs. On the shared
# 2-core machine (load ~2) a default-scenario generation of 60 candidates x 16 seeds took 0.75 s in
# serial chunks against 0.62 s with the parallel kernel on one 960-row batch; serial chunks leave the
# other core to whoever shares the machine, and keep the gathered paths (~24 kB a row) small.
CHUNK_ROWS = dyn.PARALLEL_FROM - 1
_FORMAT = 2  # bump when the cache's layout or the meaning of its entries changes (2: the dynamics' probe digest)


class CacheError(ValueError):
    """A cache file that cannot be used: the message names the file and what to do."""


@dataclass(frozen=True)
class Budget:
    """What differential evolution may spend. ``popsize`` is scipy's multiplier: a generation holds
    ``popsize * D`` candidates for a D-dimensional vector; ``maxiter`` caps the generations; ``tol``
    stops early once the population's returns agree (scipy's relative convergence test)."""

    # Measured on the default scenario (16 seeds, popsize 4: 60 candidates, ~1 s a generation): the best
    # training return was 1025 after 10 generations, 1058.5 after 60, 1059.4 after 100, 1059.6 after 150.
    popsize: int = 4
    maxiter: int = 80
    tol: float = 0.001
    seed: int = 0


GENERATION_CANDIDATES = 64  # a generation's size the default budget aims at: ~1 s on the default scenario


def default_budget(dims: int) -> Budget:
    """The budget a ``dims``-dimensional vector gets unless one is given: popsize 4 (~60 candidates
    for the compact variants), fewer for long vectors so a generation stays near 64 candidates (the
    fine variant's ~100 entries get one candidate per entry, scipy's least, and tune in minutes)."""
    return Budget(popsize=max(1, min(Budget.popsize, GENERATION_CANDIDATES // dims)))


@dataclass(frozen=True)
class Result:
    """The best vector found, its mean return over the training seeds, and what finding it cost."""

    x: np.ndarray
    train_return: float
    evaluations: int
    generations: int
    seconds: float


def check_training_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple of ints, refusing any that belong to evaluation (EVAL_SEED_START up)."""
    from experiments.episodes import EVAL_SEED_START  # here, not at the top: experiments imports agents

    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("tuning needs at least one training seed")
    held_out = [s for s in seeds if s < 0 or s >= EVAL_SEED_START]
    if held_out:
        raise ValueError(f"seeds {held_out} are not training seeds: tuning may use only 0 <= seed < "
                         f"{EVAL_SEED_START} (evaluation seeds start there); the default is {TRAIN_SEEDS}")
    return seeds


def training_paths(params: fn.Params, seeds: Sequence[int]) -> Exogenous:
    """One exogenous path per seed, each the path ``env.reset(seed=s)`` draws (from the same generator)."""
    seeds = check_training_seeds(seeds)
    return Exogenous.concatenate([draw_exogenous(params.scenario, fn.episode_generator(s), 1, params.exogenous_trend)
                                  for s in seeds])


def _take(paths: Exogenous, rows: np.ndarray | slice) -> Exogenous:
    """The paths of ``rows`` (an index array or a slice) of a batch."""
    return Exogenous(**{name: getattr(paths, name)[rows] for name in Exogenous.__dataclass_fields__})


Act = Callable[[fn.State, np.ndarray, slice], np.ndarray]


def _rollout(params: fn.Params, paths: Exogenous, act: Callable[[fn.State, np.ndarray], np.ndarray]) -> np.ndarray:
    """(B,) returns of one batch: the rewards up to and including the week each datacenter is done
    (bankrupt, or at the horizon), as an env's episode sums them. A bankrupt row keeps being stepped
    (the batch moves in lockstep) but its later rewards are not counted."""
    state, obs = fn.reset(params, exogenous=paths)
    total = np.zeros(state.batch_size)
    done = np.zeros(state.batch_size, dtype=bool)
    for _ in range(params.weeks):
        state, obs, reward, _ = fn.step_arrays(params, state, act(state, obs))
        total += np.where(done, 0.0, reward)
        done |= state.bankrupt
        if done.all():
            break
    return total


def batch_returns(params: fn.Params, paths: Exogenous, act: Act, chunk: int = CHUNK_ROWS) -> np.ndarray:
    """(B,) episode returns of B datacenters on ``paths``; ``act(state, obs, rows)`` gives the actions of
    the rows ``rows`` (a slice of the batch) that ``state`` holds: the batch is stepped ``chunk`` rows at a time."""
    B = paths.hbm_supply.shape[0]
    out = np.empty(B)
    for lo in range(0, B, chunk):
        rows = slice(lo, min(lo + chunk, B))
        out[rows] = _rollout(params, _take(paths, rows), lambda state, obs, rows=rows: act(state, obs, rows))
    return out


def constant_returns(params: fn.Params, paths: Exogenous, actions: np.ndarray, chunk: int = CHUNK_ROWS) -> np.ndarray:
    """(P,) mean return over the S ``paths`` of each of P constant actions (P, *action_shape).

    The P x S (candidate, path) pairs are one batch, stepped ``chunk`` rows at a time; the paths are
    gathered per chunk rather than tiled P times, so memory stays that of one chunk."""
    actions = np.asarray(actions)
    P, S = actions.shape[0], paths.hbm_supply.shape[0]
    returns = np.empty(P * S)
    for lo in range(0, P * S, chunk):
        rows = np.arange(lo, min(lo + chunk, P * S))  # row i is candidate i // S on path i % S
        chosen = actions[rows // S]
        returns[rows] = _rollout(params, _take(paths, rows % S), lambda state, obs, chosen=chosen: chosen)
    return returns.reshape(P, S).mean(axis=1)


def optimise(objective: Callable[[np.ndarray], np.ndarray], bounds: Sequence[tuple[float, float]], budget: Budget,
             integrality: Sequence[bool] | None = None, x0: np.ndarray | None = None) -> Result:
    """Maximise ``objective`` over the box ``bounds`` with differential evolution.

    ``objective`` maps (P, D) candidates to (P,) scores (mean training returns), so a whole
    generation is scored in one call. Integer entries (``integrality``) reach the objective
    already rounded. Seeded by ``budget.seed``: the same inputs give the same result.
    ``x0`` (a policy's documented defaults) joins the first generation; a member is replaced only
    by a better one, so the result scores at least what ``x0`` scores.
    """
    start = time.perf_counter()
    evaluations = 0  # scipy's nfev counts calls when vectorized, not candidates

    def loss(x: np.ndarray) -> np.ndarray:  # scipy passes (D, P) when vectorized, and minimises
        nonlocal evaluations
        candidates = np.atleast_2d(x.T)
        evaluations += len(candidates)
        return -np.asarray(objective(candidates), dtype=float)

    res = differential_evolution(loss, bounds, maxiter=budget.maxiter, popsize=budget.popsize, tol=budget.tol,
                                 rng=np.random.default_rng(budget.seed), polish=False, init="latinhypercube",
                                 updating="deferred", vectorized=True, integrality=integrality, x0=x0)
    return Result(np.asarray(res.x, dtype=float), float(-res.fun), evaluations, int(res.nit),
                  time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------- cache


def _digest(data: Any) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else
                          json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_digest(*files: Path) -> str:
    """A digest of source files' bytes: a policy's own code, whose change can change its tuned answer."""
    return _digest(b"".join(Path(f).read_bytes() for f in files))


def fingerprint_inputs(params: fn.Params, seeds: Sequence[int], budget: Budget, **extra: Any) -> dict[str, Any]:
    """What a tuned answer depends on, readable in the cache file: the scenario's validated contents,
    the kernels' tables (so a hardware catalog change counts too), the action space, what the dynamics compute
    (:func:`envs.probe.dynamics_digest`: a faster kernel with bit-identical trajectories keeps an entry, any change
    to an episode's numbers makes it stale), the training seeds and the budget; ``extra`` adds a policy's own
    settings."""
    tables = hashlib.sha256(b"".join(np.ascontiguousarray(t).tobytes()
                                     for t in (*params.tables[:dyn.N_PRIMARY_TABLES], params.initial_row))
                            ).hexdigest()[:16]
    return {"format": _FORMAT, "scenario": _digest(dict(params.scenario.raw)), "tables": tables,
            "variant": params.variant, "discrete": params.discrete, "action_space": repr(params.action_space),
            "dynamics": dynamics_digest(params),
            "train_seeds": list(check_training_seeds(seeds)), "budget": asdict(budget), **extra}


def label(params: fn.Params) -> str:
    """``scenario-variant[-discrete]``: what an entry is for, and its file's name."""
    return f"{params.scenario.name}-{params.variant}{'-discrete' if params.discrete else ''}"


def cache_path(policy: str, params: fn.Params, cache_dir: Path | None = None) -> Path:
    """Where ``policy``'s entry for this scenario and action variant lives."""
    return Path(cache_dir or CACHE_DIR) / policy / f"{label(params)}.json"


def _write_atomic(path: Path, text: str) -> None:
    """Through a temporary file in the same folder and os.replace: readers see the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a committed cache should read like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_entry(path: Path, policy: str) -> dict[str, Any] | None:
    """The JSON entry at ``path``, None if there is none; anything unreadable raises CacheError."""
    if not path.exists():
        return None
    fix = (f"delete it, or regenerate it with `python -m agents.tune --policy {policy}` "
           f"(or restore the committed file with `git checkout -- {path}`)")
    try:
        entry = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(f"tuned cache {path} is not valid JSON ({exc}); {fix}") from exc
    if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
        raise CacheError(f"tuned cache {path} has no 'fingerprint' string; {fix}")
    return entry


def box_problem(x: np.ndarray, bounds: Sequence[tuple[float, float]], what: str) -> str | None:
    """Why ``x`` cannot be a cached vector for the box ``bounds`` (wrong length, not finite, outside), or None."""
    if x.shape != (len(bounds),):
        return f"'x' has {x.size} entries, but {what} needs {len(bounds)}"
    low, high = np.array(bounds, dtype=float).reshape(-1, 2).T
    if not (np.isfinite(x).all() and (x >= low).all() and (x <= high).all()):
        return f"'x' = {x.tolist()} is not inside {what}"
    return None


def lookup(policy: str, params: fn.Params, inputs: dict[str, Any], validate: Callable[[np.ndarray], str | None],
           cache_dir: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(entry, "")`` when ``policy``'s cache entry for ``params`` matches ``inputs``' fingerprint, else
    ``(None, why)`` with why it is missing or stale. Never tunes. ``validate(x)`` returns why a cached vector
    cannot be used (wrong length, out of bounds), or None; such an entry, or a malformed file, raises CacheError."""
    path = cache_path(policy, params, cache_dir)
    entry = _read_entry(path, policy)
    if entry is None:
        return None, f"tuned cache {path} is missing"
    if entry["fingerprint"] != _digest(inputs):
        return None, (f"tuned cache {path} is stale (the scenario, the dynamics, action space, seeds, budget or the "
                      f"policy's code changed)")
    try:
        x = np.asarray(entry["x"], dtype=float)
        problem = validate(x) if x.ndim == 1 else f"'x' has shape {x.shape}, expected a vector"
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"'x' is missing or not a list of numbers ({exc!r})"
    if problem is None and not isinstance(entry.get("train_return"), (int, float)):
        problem = "'train_return' is missing or not a number"
    if problem:
        raise CacheError(f"tuned cache {path}: {problem}; delete it, or regenerate it with "
                         f"`python -m agents.tune --policy {policy}`")
    return entry, ""


def cached(policy: str, params: fn.Params, inputs: dict[str, Any], tune: Callable[[], Result],
           validate: Callable[[np.ndarray], str | None], cache_dir: Path | None = None,
           refresh: bool = False) -> dict[str, Any]:
    """``policy``'s tuned entry for ``params``: read from the cache when its fingerprint matches
    ``inputs`` (and not ``refresh``; see :func:`lookup`), else tuned by ``tune()``.

    A new entry is written only to a ``cache_dir`` the caller names (``python -m agents.tune`` names the
    committed one): a scenario that merely shares a registered name, or a package installed read-only,
    never overwrites the committed entries; it is tuned in memory instead.
    """
    path = cache_path(policy, params, cache_dir)
    fingerprint = _digest(inputs)
    if not refresh:
        entry, why = lookup(policy, params, inputs, validate, cache_dir)
        if entry is not None:
            return entry
    else:
        why = f"tuned cache {path} is being refreshed"
    log.warning("%s: %s; tuning on %d training seeds", policy, why, len(inputs["train_seeds"]))
    result = tune()
    entry = {"policy": policy, "scenario": params.scenario.name, "variant": params.variant,
             "discrete": params.discrete, "fingerprint": fingerprint, "inputs": inputs,
             "x": result.x.tolist(), "train_return": result.train_return, "evaluations": result.evaluations,
             "generations": result.generations, "seconds": round(result.seconds, 1)}
    if cache_dir is None:
        where = f"kept in memory (`python -m agents.tune --policy {policy}` writes {path})"
    else:
        # One key a line, each value compact: short diffs when an entry is regenerated, and still readable.
        _write_atomic(path, "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in entry.items())
                      + "\n}\n")
        where = f"wrote {path}"
    log.warning("%s: tuned %s in %.1f s (%d evaluations, %d generations): training return %.2f; %s",
                policy, label(params), result.seconds, result.evaluations, result.generations, result.train_return,
                where)
    return entry
