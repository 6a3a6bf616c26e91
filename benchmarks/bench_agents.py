"""Baseline speed and returns: ``python -m benchmarks.bench_agents``.

For each scenario: each policy's time per decision (its predict() alone, over whole episodes on
the fine variant, solves apart), its mean return over three seeds, the gap to the oracle, and the
planners' time per solve: the oracle's once an episode (which includes replaying its plan to settle HBM
prices and job slots), MPC's at each re-plan.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from agents import TUNABLE, list_policies, make_policy
from benchmarks.yardstick import cartpole_steps_per_s
from envs import SCENARIO_SUFFIXES

SEEDS = (0, 1, 2)


def evaluate(env_id: str, name: str) -> tuple[float, float, float, float]:
    """(mean return, seconds per decision, seconds per solve or nan, solves per episode): planners count their
    solves in ``policy.solve_seconds``."""
    env = gym.make(env_id)
    policy = make_policy(name, env)
    returns, decide, decisions, solves = [], 0.0, 0, []
    for seed in SEEDS:
        obs, _ = env.reset(seed=seed)
        total = 0.0
        while True:
            start = time.perf_counter()
            action, _ = policy.predict(obs)
            elapsed = time.perf_counter() - start
            if len(getattr(policy, "solve_seconds", ())) > len(solves):  # this decision solved a plan
                solves.append(elapsed)
            else:
                decide += elapsed
                decisions += 1
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                break
        returns.append(total)
    return (float(np.mean(returns)), decide / max(decisions, 1), float(np.mean(solves)) if solves else float("nan"),
            len(solves) / len(SEEDS))


def main() -> None:
    print(f"CartPole-v1 yardstick: {cartpole_steps_per_s():,.0f} steps/s")
    for scenario, suffix in SCENARIO_SUFFIXES.items():
        env_id = f"ChipAlloc/DatacenterFine{suffix}-v0"
        # `constant` is skipped: it is tuned per action variant, and on the fine variant (~100 entries) an
        # uncached tuning takes minutes; evaluate.py reports it on the compact variants it is cached for.
        results = {name: evaluate(env_id, name) for name in list_policies() if name not in TUNABLE}
        best = results["oracle"][0]
        print(f"\n{scenario} ({env_id}, seeds {SEEDS})")
        print(f"{'policy':<22}{'mean return':>12}{'gap to oracle':>15}{'ms/decision':>13}{'solve s':>9}"
              f"{'solves/ep':>11}")
        for name, (ret, per, solve, count) in results.items():
            gap = (best - ret) / abs(best) if best else float("nan")
            solve_text = f"{solve:9.2f}{count:11.1f}" if np.isfinite(solve) else f"{'':20}"
            print(f"{name:<22}{ret:12.1f}{gap:15.1%}{per * 1e3:13.3f}{solve_text}")


if __name__ == "__main__":
    main()
