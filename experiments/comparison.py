"""The comparison evaluate.py runs (and train.py at the end of a run): every policy on the same held-out
seeds, summarised with bootstrap intervals and written as results.md, per_seed.csv, summary.json and plots."""

from __future__ import annotations

import csv
import functools
import io
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from agents import BASELINES, FINE_ONLY, list_policies, make_policy
from agents.base import Policy
from envs import fine_variant
from envs.probe import dynamics_digest
from experiments.episodes import TEST_SEED_START, Episode, make_env, run_episode
from experiments.plots import plots
from experiments.provenance import provenance
from experiments.runs import atomic_write_text, latest_run, read_run_config
from experiments.stats import iqm, paired_difference_ci, probability_of_improvement, stratified_ci
from experiments.trained import TrainedPolicy
from experiments.user_policy import build as build_user_policy
from experiments.user_policy import check_first_step, is_target, load_class

DEFAULT_ENV_ID = "ChipAlloc/Datacenter-v0"


@dataclass(frozen=True)
class Spec:
    """One policy to evaluate: a label and what builds it."""

    label: str
    kind: str  # "baseline", "oracle", "trained" or "user" (a module:Class of the user's)
    runs: tuple[str, ...] = ()
    target: str = ""  # module:Class, for a user's policy

    def env_id(self, env_id: str) -> str:
        """The env this policy runs on: the fine variant of ``env_id`` for the LP scheduler and the oracle."""
        return fine_variant(env_id) if self.kind in ("baseline", "oracle") and self.label in FINE_ONLY else env_id


def resolve_policies(text: str) -> list[Spec]:
    """The policies a comma-separated ``--policies`` value names (see evaluate.py's docstring)."""
    specs: list[Spec] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, rest = item.rpartition("=")  # rest: run+run or module:Class
        if item == "baselines":
            specs += [Spec(name, "baseline") for name in BASELINES]
        elif item == "oracle":
            specs.append(Spec("oracle", "oracle"))
        elif item in list_policies():
            specs.append(Spec(item, "baseline"))
        elif is_target(rest) and not Path(rest).exists():
            load_class(rest)  # a missing module, attribute or predict fails here, naming what is wrong
            specs.append(Spec(label or rest, "user", target=rest))
        else:
            runs = tuple(latest_run() if p == "latest" else p for p in rest.split("+"))
            for run in runs:
                if not Path(run).exists():
                    raise FileNotFoundError(f"policy {item!r}: {run} is neither a policy name "
                                            f"({', '.join(list_policies())}, baselines, latest) nor an existing run "
                                            f"nor module:Class (a policy class of yours)")
            specs.append(Spec(label or Path(runs[0]).name, "trained", runs))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two policies share a label: {labels}")
    if not specs:
        raise ValueError("no policies to evaluate")
    return specs


def trained_env_id(specs: list[Spec]) -> str:
    """The environment the trained runs among ``specs`` were trained on (the default ID without any)."""
    trained_on = {config["env_id"] for s in specs for r in s.runs if (config := read_run_config(r))}
    if len(trained_on) > 1:
        raise ValueError(f"the runs were trained on different environments ({', '.join(sorted(trained_on))}); "
                         f"choose one with --env-id")
    return trained_on.pop() if trained_on else DEFAULT_ENV_ID


def build_policy(spec: Spec, env: gym.Env, run: str | None = None) -> Policy:
    if spec.kind == "trained":
        return TrainedPolicy(env, run)
    if spec.kind == "user":
        return build_user_policy(spec.target, env)
    return make_policy(spec.label, env)


def check_policies(specs: list[Spec], env_id: str, scenario: str | None) -> None:
    """Build every policy once, so that unknown names, other variants and missing files fail before any episode."""
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment {env_id!r}")
    for spec in specs:
        for run in spec.runs or (None,):
            env = make_env(spec.env_id(env_id), scenario)
            policy = build_policy(spec, env, run)
            if spec.kind == "user":  # one step, so that a wrong return or action is explained up front
                check_first_step(spec.target, policy, env, TEST_SEED_START)


@functools.lru_cache(maxsize=8)
def _trained(run: str, env_id: str, scenario: str | None) -> tuple[gym.Env, TrainedPolicy]:
    """A trained run loaded once per process: it keeps no state across episodes, unlike seeded baselines."""
    env = make_env(env_id, scenario)
    return env, TrainedPolicy(env, run)


def run_task(task: tuple) -> dict:
    """One episode (runs in a worker process when workers > 1)."""
    spec, run, env_id, scenario, seed, trace = task
    if spec.kind == "trained":
        env, policy = _trained(run, env_id, scenario)
    else:
        env = make_env(env_id, scenario)
        policy = build_policy(spec, env, run)
    episode = run_episode(env, policy, seed, trace=trace)
    return {"policy": spec.label, "run": run or "", "seed": seed, "episode": episode}


def tasks_for(specs: list[Spec], env_id: str, scenario: str | None, seeds: list[int]) -> list[tuple]:
    tasks = []
    for spec in specs:
        for run in spec.runs or (None,):
            for seed in seeds:
                tasks.append((spec, run, spec.env_id(env_id), scenario, seed, seed == seeds[0]))
    return tasks


def _strata(rows: list[dict], value) -> list[np.ndarray]:
    """``value(row)`` of each episode, one stratum per training run (baselines have a single one)."""
    return [np.array([value(r) for r in rows if r["run"] == run]) for run in sorted({r["run"] for r in rows})]


def summarise(rows: list[dict], specs: list[Spec]) -> dict:
    """Per policy: mean and IQM with 95% bootstrap CIs, gap to the oracle, P(improvement) over the best baseline."""
    by_policy = {s.label: [r for r in rows if r["policy"] == s.label] for s in specs}
    returns = {k: np.array([r["episode"].episode_return for r in v]) for k, v in by_policy.items()}
    oracle = {r["seed"]: r["episode"].episode_return for s in specs if s.kind == "oracle" for r in by_policy[s.label]}
    baselines = [s.label for s in specs if s.kind == "baseline"]
    best = max(baselines, key=lambda k: returns[k].mean()) if baselines else None
    summary = {"best_baseline": best, "policies": {}}
    for spec in specs:
        label, rows_ = spec.label, by_policy[spec.label]
        episode_returns = _strata(rows_, lambda r: r["episode"].episode_return)
        mean, low, high = stratified_ci(episode_returns, np.mean)
        iq, iq_low, iq_high = stratified_ci(episode_returns, iqm)
        entry = {"kind": spec.kind, "episodes": len(rows_), "mean_return": mean, "mean_ci95": [low, high],
                 "iqm_return": iq, "iqm_ci95": [iq_low, iq_high], **({"target": spec.target} if spec.target else {})}
        if oracle:
            gaps = _strata(rows_, lambda r: (oracle[r["seed"]] - r["episode"].episode_return) / abs(oracle[r["seed"]]))
            gap, gap_low, gap_high = stratified_ci(gaps, np.mean)
            entry.update(optimality_gap=gap, optimality_gap_ci95=[gap_low, gap_high])
        if best and label != best:
            entry["probability_of_improvement_over_best_baseline"] = probability_of_improvement(returns[label],
                                                                                                returns[best])
            # Paired over seeds (common random numbers); pooled training seeds average per seed first.
            seeds = sorted({r["seed"] for r in rows_})
            mine = [np.mean([r["episode"].episode_return for r in rows_ if r["seed"] == s]) for s in seeds]
            theirs = [np.mean([r["episode"].episode_return for r in by_policy[best] if r["seed"] == s])
                      for s in seeds]
            diff, low, high = paired_difference_ci(np.array(mine), np.array(theirs))
            entry["minus_best_baseline"] = {"mean": diff, "ci95": [low, high]}
        for key in rows_[0]["episode"].totals:
            entry[f"mean_{key}"] = float(np.mean([r["episode"].totals[key] for r in rows_]))
        for key in rows_[0]["episode"].means:
            entry[f"mean_{key}"] = np.mean([r["episode"].means[key] for r in rows_], axis=0).tolist()
        summary["policies"][label] = entry
    return summary


def markdown(summary: dict, env_id: str, seeds: list[int]) -> str:
    given = " (given with --scenario)" if summary.get("scenario") else ""
    lines = [f"{env_id} on scenario {summary['scenario_name']!r}{given}, seeds {seeds[0]}..{seeds[-1]} "
             f"({len(seeds)} per policy; same exogenous paths for all)",
             "", "| policy | mean return [95% CI] | IQM [95% CI] | gap to oracle | P(improve over best baseline) | "
             "economic profit $M | net margin | $/M tokens | unmet demand |", "|---|---|---|---|---|---|---|---|---|"]
    for label, e in summary["policies"].items():
        gap = f"{e['optimality_gap']:.1%}" if "optimality_gap" in e else "n/a"
        poi = e.get("probability_of_improvement_over_best_baseline")
        poi_text = "best baseline" if label == summary["best_baseline"] else ("" if poi is None else f"{poi:.2f}")
        lines.append(f"| {label} | {e['mean_return']:.1f} [{e['mean_ci95'][0]:.1f}, {e['mean_ci95'][1]:.1f}] | "
                     f"{e['iqm_return']:.1f} [{e['iqm_ci95'][0]:.1f}, {e['iqm_ci95'][1]:.1f}] | {gap} | {poi_text} | "
                     f"{e['mean_profit'] / 1e6:,.1f} | {e['mean_profit'] / max(e['mean_revenue'], 1.0):.1%} | "
                     f"{e['mean_usd_per_mtok']:.3f} | {e['mean_unmet_share']:.1%} |")
    best = summary["best_baseline"]
    for label, e in summary["policies"].items():
        if "minus_best_baseline" in e and e["kind"] in ("trained", "user"):
            diff, (low, high) = e["minus_best_baseline"]["mean"], e["minus_best_baseline"]["ci95"]
            verdict = "beats" if low > 0 else "does not beat"
            lines += ["", f"{label} - {best} (best baseline): {diff:+.1f} [{low:+.1f}, {high:+.1f}] "
                      f"(paired over seeds, 95% bootstrap): {label} {verdict} the best baseline."]
    return "\n".join(lines)


def per_seed_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    keys = sorted(rows[0]["episode"].totals)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["policy", "run", "seed", "episode_return", "weeks", *keys])
    for r in sorted(rows, key=lambda r: (r["policy"], r["run"], r["seed"])):
        e: Episode = r["episode"]
        writer.writerow([r["policy"], r["run"], r["seed"], repr(e.episode_return), e.weeks,
                         *(repr(e.totals[k]) for k in keys)])
    return buffer.getvalue()


def compare(specs: list[Spec], env_id: str, scenario: str | None, seeds: list[int], out: Path,
            workers: int = 1) -> dict:
    """Run every policy on every seed, then write results.md, per_seed.csv, summary.json and plots/ to ``out``."""
    tasks = tasks_for(specs, env_id, scenario, seeds)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(tqdm(pool.map(run_task, tasks), total=len(tasks), desc="episodes"))
    else:
        rows = [run_task(t) for t in tqdm(tasks, desc="episodes")]
    summary = summarise(rows, specs)
    scenario_params = make_env(env_id, scenario).unwrapped.scenario
    for spec in specs:
        summary["policies"][spec.label]["env_id"] = spec.env_id(env_id)
        if spec.kind == "trained":  # so that a score on another scenario says whether training saw many markets
            summary["policies"][spec.label]["randomized_training"] = [
                bool((read_run_config(run) or {}).get("randomize")) for run in spec.runs]
    summary.update(env_id=env_id, scenario=scenario, scenario_name=scenario_params.name, seeds=seeds,
                   provenance=provenance(scenario_params.raw, {
                       scored: dynamics_digest(make_env(scored, scenario).unwrapped.params)
                       for scored in {spec.env_id(env_id) for spec in specs}}))
    table = markdown(summary, env_id, seeds)
    atomic_write_text(out / "results.md", table + "\n")
    atomic_write_text(out / "per_seed.csv", per_seed_csv(rows))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    runs = [r for s in specs for r in s.runs]
    plots(rows, summary, scenario_params, runs, out / "plots")
    print(table)
    print(f"\nwrote {out}/results.md, per_seed.csv, summary.json and plots/")
    return summary
