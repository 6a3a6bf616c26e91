"""Mechanism ablation: ``python -m benchmarks.ablation [--seeds N] [--scenarios a,b] [--out results/ablation.json]``.

For every registered scenario and every modelled mechanism, the oracle's return and the best baseline's
return with the mechanism switched on (the scenario as registered) and off (:mod:`envs.ablation`'s
override), averaged over the same test seeds (common random numbers: each seed fixes the exogenous path of
both). A mechanism binds where switching it off moves the oracle's return; the issue asks for >= 3% in at
least one scenario.

The best baseline is the best mean return among the untuned heuristics that run on the fine variant
(forecast, disaggregated-greedy, homogeneous-gpu and the weekly LP scheduler): the tuned ``constant`` would
need a fresh tuning for every switched-off scenario. Work is spread over the CPU cores, one scenario
variant per process, and the results are written atomically as JSON beside the printed Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from envs import SCENARIO_NAMES, DatacenterEnv, load_scenario
from envs.ablation import MECHANISMS, switched_off
from experiments.episodes import TEST_SEED_START, run_episode
from experiments.runs import atomic_write_text

BASELINES = ("forecast", "disaggregated-greedy", "homogeneous-gpu", "lp-scheduler")


def returns(scenario_raw: dict, seeds: list[int]) -> dict[str, float]:
    """Mean return of the oracle and of each baseline over ``seeds`` on the fine variant of a scenario."""
    from agents import make_policy  # imported in the worker process

    scenario = load_scenario(scenario_raw)
    out = {}
    for name in ("oracle", *BASELINES):
        env = DatacenterEnv(scenario=scenario, variant="fine")
        policy = make_policy(name, env)
        out[name] = float(np.mean([run_episode(env, policy, seed).episode_return for seed in seeds]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="test seeds per scenario variant (from 20000)")
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES), help="comma-separated scenario names")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
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
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {key: pool.submit(returns, raw, seeds) for key, raw in jobs.items()}
        results = {key: future.result() for key, future in futures.items()}
    elapsed = time.perf_counter() - start

    rows = []
    print(f"Mechanism ablation: mean return over test seeds {seeds} ({elapsed / 60:.1f} min)\n")
    print("| scenario | mechanism off | oracle on | oracle off | oracle change | best baseline on | "
          "best baseline off | baseline change |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (name, mechanism), off in results.items():
        if mechanism == "on":
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"seeds": seeds, "rows": rows,
                                            "on": {n: r for (n, m), r in results.items() if m == "on"}}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
