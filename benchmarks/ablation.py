"""Mechanism ablation: ``python -m benchmarks.ablation [--seeds N] [--scenarios a,b] [--out results/ablation.json]``.

For every registered scenario and every modelled mechanism, the oracle's return and the best baseline's
return with the mechanism switched on (the scenario as registered) and off (:mod:`envs.ablation`'s
override), averaged over the same test seeds (common random numbers: each seed fixes the exogenous path of
both). A mechanism binds where switching it off moves the oracle's return; the issue asks for >= 3% in at
least one scenario.

The best baseline is the best mean return among the untuned heuristics that run on the fine variant
(forecast, disaggregated-greedy, homogeneous-gpu and the weekly LP scheduler): the tuned ``constant`` would
need a fresh tuning for every switched-off scenario. Work is spread over the CPU cores, one scenario
variant per process. Each finished variant is written at once (atomically) to the JSON file, and a rerun with
the same seeds skips the variants it already holds, so a killed run resumes; a variant whose oracle fails
(e.g. HiGHS's time limit on a loaded machine) is recorded with its error and left out of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np

from agents.lp_scheduler import SolverError
from envs import SCENARIO_NAMES, DatacenterEnv, Scenario, load_scenario
from envs.ablation import MECHANISMS, switched_off
from experiments.episodes import TEST_SEED_START, run_episode
from experiments.runs import atomic_write_text

BASELINES = ("forecast", "disaggregated-greedy", "homogeneous-gpu", "lp-scheduler")


class _OnPath(gym.Wrapper):
    """Resets to the registered scenario's exogenous path of the seed, for a variant with fewer chips.

    The exogenous draw takes one failure uniform per chip type before it picks which HBM generation each supply
    shock hits, so a variant without some chips would meet other shocks on the same seed; it gets the registered
    scenario's path instead, less the failure uniforms of the chips it drops."""

    def __init__(self, env: DatacenterEnv, registered: Scenario):
        super().__init__(env)
        self.registered = DatacenterEnv(scenario=registered, variant="fine")
        self.kept = [registered.chips.index(c) for c in env.unwrapped.scenario.chips]

    def reset(self, *, seed=None, options=None):
        self.registered.reset(seed=seed)
        path = self.registered.exogenous
        path = replace(path, failure_u=np.ascontiguousarray(path.failure_u[:, :, self.kept]))
        return self.env.reset(options={"exogenous": path})


def returns(scenario_raw: dict, seeds: list[int], time_limit: float, registered: str) -> dict[str, float]:
    """Mean return of the oracle and of each baseline over ``seeds`` on the fine variant of a scenario."""
    from agents import make_policy  # imported in the worker process

    scenario, on = load_scenario(scenario_raw), load_scenario(registered)
    out = {}
    for name in ("oracle", *BASELINES):
        env = DatacenterEnv(scenario=scenario, variant="fine")
        env = _OnPath(env, on) if scenario.chips != on.chips else env
        # Untuned heuristics: tuned values exist only for the registered scenarios, not for their ablated variants.
        policy = make_policy(name, env, **({"time_limit": time_limit} if name == "oracle" else {"tuned": False}))
        out[name] = float(np.mean([run_episode(env, policy, seed).episode_return for seed in seeds]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="test seeds per scenario variant (from 20000)")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES), help="comma-separated scenario names")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds for each oracle solve (HiGHS); a loaded machine needs more than the oracle's 120")
    parser.add_argument("--out", type=Path, default=Path("results/ablation.json"))
    args = parser.parse_args()
    seeds = list(range(TEST_SEED_START, TEST_SEED_START + args.seeds))
    jobs = {}
    for name in args.scenarios.split(","):
        jobs[(name, "on")] = dict(load_scenario(name).raw)
        for mechanism in MECHANISMS:
            off = switched_off(name, mechanism)
            if off is not None:
                jobs[(name, mechanism)] = dict(off.raw)
    done = _load_done(args.out, seeds)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(returns, raw, seeds, args.time_limit, key[0]): key
                   for key, raw in jobs.items() if _key(key) not in done}
        for future in as_completed(futures):
            key = futures[future]
            try:
                done[_key(key)] = future.result()
            except SolverError as exc:
                done[_key(key)] = {"error": str(exc)}
            print(f"  {key[0]} / {key[1]}: {done[_key(key)]}", flush=True)
            _save(args.out, seeds, done)
    elapsed = time.perf_counter() - start
    failed = {k: r["error"] for k, r in done.items() if "error" in r}
    results = {key: done[_key(key)] for key in jobs if "error" not in done[_key(key)]}

    rows = []
    print(f"Mechanism ablation: mean return over test seeds {seeds} ({elapsed / 60:.1f} min)\n")
    print("| scenario | mechanism off | oracle on | oracle off | oracle change | best baseline on | "
          "best baseline off | baseline change |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (name, mechanism), off in results.items():
        if mechanism == "on" or (name, "on") not in results:
            continue
        on = results[(name, "on")]
        best_on, best_off = max(on[b] for b in BASELINES), max(off[b] for b in BASELINES)
        oracle_change = (on["oracle"] - off["oracle"]) / abs(on["oracle"])
        baseline_change = (best_on - best_off) / abs(best_on)
        rows.append({"scenario": name, "mechanism": mechanism, "on": on, "off": off,
                     "oracle_change": oracle_change, "best_baseline_change": baseline_change})
        print(f"| {name} | {mechanism} | {on['oracle']:.1f} | {off['oracle']:.1f} | {oracle_change:+.1%} | "
              f"{best_on:.1f} | {best_off:.1f} | {baseline_change:+.1%} |")
    print("\nLargest oracle change per mechanism (>= 3% somewhere binds):")
    for mechanism in MECHANISMS:
        changes = [(abs(r["oracle_change"]), r["scenario"]) for r in rows if r["mechanism"] == mechanism]
        if changes:
            size, where = max(changes)
            print(f"  {mechanism:<18} {size:6.1%} ({where}){'' if size >= 0.03 else '  < 3%'}")
        else:
            print(f"  {mechanism:<18} not in any scenario run")
    for key, error in failed.items():
        print(f"  not measured: {key}: {error}")
    _save(args.out, seeds, done, rows)
    print(f"\nwrote {args.out}")


def _key(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def _load_done(path: Path, seeds: list[int]) -> dict[str, dict]:
    """The variants an earlier run with the same seeds finished (errors are tried again)."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("seeds") != seeds:
        return {}
    return {k: r for k, r in saved.get("variants", {}).items() if "error" not in r}


def _save(path: Path, seeds: list[int], done: dict[str, dict], rows: list[dict] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"seeds": seeds, "variants": done, "rows": rows or []}, indent=1))


if __name__ == "__main__":
    main()
