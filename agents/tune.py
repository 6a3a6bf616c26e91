"""Regenerate the tuned caches of a policy: ``python -m agents.tune --policy constant --discrete`` (or forecast...).

An entry is re-tuned only when it is missing or stale (its fingerprint no longer matches the scenario,
what the dynamics compute on probe episodes, the action space, the seeds or the budget), unless ``--force``; commit
``agents/tuned/`` afterwards. See :mod:`agents.tuning`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import envs
from agents import TUNABLE, make_policy
from agents.heuristic_tuning import tuned_entry
from agents.heuristics import DisaggregatedGreedyPolicy, ForecastPolicy, HomogeneousGPUPolicy
from agents.tuning import CACHE_DIR, label

HEURISTICS = {cls.name: cls for cls in (ForecastPolicy, DisaggregatedGreedyPolicy, HomogeneousGPUPolicy)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agents.tune", description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="constant", choices=TUNABLE, help="the policy to tune")
    parser.add_argument("--scenarios", default=",".join(envs.SCENARIO_SUFFIXES),
                        help="comma-separated registered scenarios (default: all)")
    parser.add_argument("--variants", default="datacenter",
                        help="comma-separated action variants: datacenter, procurement, scheduling, fine")
    parser.add_argument("--discrete", action="store_true", help="also the MultiDiscrete datacenter variant")
    parser.add_argument("--force", action="store_true", help="re-tune even entries that are up to date")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"where the entries live ({CACHE_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    scenarios = [s.strip() for s in args.scenarios.split(",")]
    targets = [(s, v.strip(), False) for s in scenarios for v in args.variants.split(",")]
    targets += [(s, "datacenter", True) for s in scenarios] if args.discrete else []
    try:  # every target first, so a misspelt scenario fails before minutes of tuning, not after
        targets = [envs.DatacenterEnv(scenario, variant, discrete) for scenario, variant, discrete in targets]
    except ValueError as exc:
        parser.error(str(exc))
    for env in targets:
        start = time.perf_counter()
        # --force re-tunes without deleting the entry first: an interrupted run leaves the old one in place.
        if args.policy == "constant":
            train_return = make_policy(args.policy, env, cache_dir=args.cache_dir, refresh=args.force).train_return
        else:  # building a heuristic never tunes (a large scenario takes minutes); this does
            train_return = tuned_entry(HEURISTICS[args.policy], env.params, args.cache_dir, args.force)["train_return"]
        print(f"{args.policy} {label(env.params):30s} training return {train_return:10.2f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
