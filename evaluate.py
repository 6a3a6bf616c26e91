"""Compare trained agents, baselines and the oracle on the same held-out exogenous paths.

    python evaluate.py                                   # the latest train.py run vs every baseline and the oracle
    python evaluate.py --policies forecast,runs/a,oracle --seeds 50 --workers 2
    python evaluate.py --policies "ppo=runs/s0+runs/s1,forecast"   # several training seeds as one policy

Every policy meets the same seeds (common random numbers), from TEST_SEED_START on, disjoint from
training and from train.py's periodic evaluation. A policy is a baseline's name (see
agents.list_policies()), ``baselines`` (all of them), ``oracle``, a train.py run folder or model
.zip, ``latest`` (the newest train.py run), or ``label=run+run`` to pool training seeds.

Writes to --out: results.md, per_seed.csv and summary.json (atomically), and plots/*.png.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from agents import BASELINES, FINE_ONLY, list_policies, make_policy
from agents.cli import parse_config
from agents.evaluation import (
    TEST_SEED_START,
    Episode,
    iqm,
    paired_difference_ci,
    probability_of_improvement,
    run_episode,
    stratified_ci,
)
from agents.trained import TrainedPolicy
from agents.training import atomic_save, atomic_write_text, read_run_config
from envs import fine_variant
from envs.scenario import Scenario


@dataclass
class Config:
    policies: str = field(default="latest,baselines,oracle", metadata={"help": "comma-separated policies (see above)"})
    env_id: str | None = field(default=None, metadata={"help": "environment ID (default: the runs', else "
                                                                "ChipAlloc/Datacenter-v0)"})
    scenario: str | None = field(default=None, metadata={"help": "scenario name or YAML path"})
    seeds: int = field(default=20, metadata={"help": "evaluation episodes per policy"})
    out: str | None = field(default=None, metadata={"help": "output folder (default: results/<time>)"})
    workers: int = field(default=1, metadata={"help": "parallel processes for the episodes"})


@dataclass(frozen=True)
class Spec:
    """One policy to evaluate: a label and what builds it."""

    label: str
    kind: str  # "baseline", "oracle" or "trained"
    runs: tuple[str, ...] = ()

    def env_id(self, env_id: str) -> str:
        """The env this policy runs on: the fine variant of ``env_id`` for the LP scheduler and the oracle."""
        return fine_variant(env_id) if self.kind != "trained" and self.label in FINE_ONLY else env_id


def latest_run() -> str:
    pointer = Path("runs/latest.txt")
    if not pointer.is_file():
        raise FileNotFoundError("no train.py run found (runs/latest.txt is missing); run train.py first or name "
                                "policies with --policies")
    return pointer.read_text().strip()


def resolve_policies(text: str) -> list[Spec]:
    specs: list[Spec] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item == "baselines":
            specs += [Spec(name, "baseline") for name in BASELINES]
        elif item == "oracle":
            specs.append(Spec("oracle", "oracle"))
        elif item in list_policies():
            specs.append(Spec(item, "baseline"))
        else:
            label, _, paths = item.rpartition("=")
            runs = tuple(latest_run() if p == "latest" else p for p in paths.split("+"))
            for run in runs:
                if not Path(run).exists():
                    raise FileNotFoundError(f"policy {item!r}: {run} is neither a policy name "
                                            f"({', '.join(list_policies())}, baselines, latest) nor an existing run")
            specs.append(Spec(label or Path(runs[0]).name, "trained", runs))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two policies share a label: {labels}")
    if not specs:
        raise ValueError("no policies to evaluate")
    return specs


def run_env_id(run: str) -> str | None:
    config = read_run_config(run)
    return config["env_id"] if config else None


def make_env(env_id: str, scenario: str | None) -> gym.Env:
    return gym.make(env_id, **({"scenario": scenario} if scenario else {}))


def build_policy(spec: Spec, env: gym.Env, run: str | None = None):
    if spec.kind == "trained":
        return TrainedPolicy(env, run)
    return make_policy(spec.label, env)


@functools.lru_cache(maxsize=8)
def _trained(run: str, env_id: str, scenario: str | None) -> tuple[gym.Env, TrainedPolicy]:
    """A trained run loaded once per process: it keeps no state across episodes, unlike seeded baselines."""
    env = make_env(env_id, scenario)
    return env, TrainedPolicy(env, run)


def run_task(task: tuple) -> dict:
    """One episode (runs in a worker process when --workers > 1)."""
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
                 "iqm_return": iq, "iqm_ci95": [iq_low, iq_high]}
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
    lines = [f"{env_id}, seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} per policy; same exogenous paths for all)",
             "", "| policy | mean return [95% CI] | IQM [95% CI] | gap to oracle | P(improve over best baseline) | "
             "profit $M | $/M tokens | unmet demand |", "|---|---|---|---|---|---|---|---|"]
    for label, e in summary["policies"].items():
        gap = f"{e['optimality_gap']:.1%}" if "optimality_gap" in e else "n/a"
        poi = e.get("probability_of_improvement_over_best_baseline")
        poi_text = "best baseline" if label == summary["best_baseline"] else ("" if poi is None else f"{poi:.2f}")
        lines.append(f"| {label} | {e['mean_return']:.1f} [{e['mean_ci95'][0]:.1f}, {e['mean_ci95'][1]:.1f}] | "
                     f"{e['iqm_return']:.1f} [{e['iqm_ci95'][0]:.1f}, {e['iqm_ci95'][1]:.1f}] | {gap} | {poi_text} | "
                     f"{e['mean_profit'] / 1e6:,.1f} | {e['mean_usd_per_mtok']:.3f} | {e['mean_unmet_share']:.1%} |")
    best = summary["best_baseline"]
    for label, e in summary["policies"].items():
        if "minus_best_baseline" in e and e["kind"] == "trained":
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


def plots(rows: list[dict], summary: dict, scenario: Scenario, runs: list[str], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name):
        atomic_save(folder / name, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        made.append(folder / name)

    labels = list(summary["policies"])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    for i, label in enumerate(labels):
        e = summary["policies"][label]
        ax.errorbar(e["mean_return"], i, xerr=[[e["mean_return"] - e["mean_ci95"][0]],
                                               [e["mean_ci95"][1] - e["mean_return"]]], fmt="o", capsize=4)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("episode return (mean, 95% bootstrap CI)")
    ax.grid(axis="x", alpha=0.3)
    save(fig, "scores.png")

    traced = {r["policy"]: r["episode"].trace for r in rows if r["episode"].trace}
    shown = [k for k in labels if k in traced and k not in ("random",)][:4]
    if not shown:  # only the random policy: its fleet and service say nothing worth a plot
        return made
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], shown):
        fleet = traced[label]["fleet"]
        ax.stackplot(np.arange(len(fleet)), fleet.T, labels=scenario.chips)
        ax.set_title(label)
        ax.set_xlabel("week")
    axes[0][0].set_ylabel("chips owned")
    axes[0][-1].legend(fontsize=6, loc="upper left")
    save(fig, "fleet.png")

    first = shown[0]
    t = traced[first]
    fig, axes = plt.subplots(1, scenario.n_classes, figsize=(3.2 * scenario.n_classes, 3), squeeze=False)
    for c, ax in enumerate(axes[0]):
        weeks = np.arange(len(t["demand"]))
        ax.plot(weeks, t["demand"][:, c], label="demand")
        ax.plot(weeks, np.minimum(t["prefill_capacity"][:, c], t["decode_capacity"][:, c]), label="capacity")
        ax.plot(weeks, t["served"][:, c], label="served")
        ax.set_title(f"{scenario.classes[c].name} ({first})", fontsize=9)
        ax.set_xlabel("week")
    axes[0][0].set_ylabel("output tokens/s")
    axes[0][0].legend(fontsize=7)
    save(fig, "demand_vs_capacity.png")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    weeks = np.arange(len(t["hbm_price"]))
    ax.plot(weeks, t["hbm_price"], label="HBM price index")
    ax.plot(weeks, t["hbm_supply"] / scenario.hbm["supply_stacks_per_week"], label="world supply / start")
    ax2 = ax.twinx()
    ax2.plot(weeks, t["hbm_allocation"], "k:", label="our allocation (stacks)")
    ax2.plot(weeks, t["hbm_drawn"], "k-", alpha=0.4, label="our draw (stacks)")
    ax.set_xlabel("week")
    ax.legend(fontsize=7, loc="upper left")
    ax2.legend(fontsize=7, loc="upper right")
    ax.set_title(f"HBM market ({first}, seed {rows[0]['seed']})", fontsize=9)
    save(fig, "hbm_market.png")

    curves = learning_curves(runs)
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for name, (steps, values) in curves.items():
            ax.plot(steps, values, label=name)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
        ax.legend(fontsize=7)
        save(fig, "learning_curves.png")
    return made


def learning_curves(runs: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Training return, periodic evaluation and the best heuristic's line, read from the runs' TensorBoard files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for run in runs:
        for events in sorted((Path(run) / "tb").glob("*")) if (Path(run) / "tb").is_dir() else []:
            acc = EventAccumulator(str(events))
            acc.Reload()
            for tag in ("rollout/ep_rew_mean", "eval/mean_return", "eval/best_heuristic_return"):
                if tag in acc.Tags()["scalars"]:
                    points = acc.Scalars(tag)
                    curves[f"{Path(run).name}: {tag}"] = (np.array([p.step for p in points]),
                                                          np.array([p.value for p in points]))
    return curves


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(Config, argv, __doc__)
    if cfg.seeds < 1 or cfg.workers < 1:
        raise ValueError(f"--seeds and --workers must be positive, got {cfg.seeds} and {cfg.workers}")
    specs = resolve_policies(cfg.policies)
    runs = [r for s in specs for r in s.runs]
    trained_on = {run_env_id(r) for r in runs} - {None}
    if len(trained_on) > 1 and not cfg.env_id:
        raise ValueError(f"the runs were trained on different environments ({', '.join(sorted(trained_on))}); "
                         f"choose one with --env-id")
    env_id = cfg.env_id or (trained_on.pop() if trained_on else "ChipAlloc/Datacenter-v0")
    if env_id not in gym.registry:
        raise ValueError(f"unknown environment {env_id!r}")
    for spec in specs:  # fail before any episode: unknown names, other variants, missing files
        for run in spec.runs or (None,):
            build_policy(spec, make_env(spec.env_id(env_id), cfg.scenario), run)
    seeds = list(range(TEST_SEED_START, TEST_SEED_START + cfg.seeds))
    out = Path(cfg.out or f"results/{time.strftime('%Y%m%d-%H%M%S')}")
    tasks = tasks_for(specs, env_id, cfg.scenario, seeds)
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(tqdm(pool.map(run_task, tasks), total=len(tasks), desc="episodes"))
    else:
        rows = [run_task(t) for t in tqdm(tasks, desc="episodes")]
    summary = summarise(rows, specs)
    summary.update(env_id=env_id, scenario=cfg.scenario, seeds=seeds)
    table = markdown(summary, env_id, seeds)
    atomic_write_text(out / "results.md", table + "\n")
    atomic_write_text(out / "per_seed.csv", per_seed_csv(rows))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    scenario = make_env(env_id, cfg.scenario).unwrapped.scenario
    plots(rows, summary, scenario, runs, out / "plots")
    print(table)
    print(f"\nwrote {out}/results.md, per_seed.csv, summary.json and plots/")
    return summary


if __name__ == "__main__":
    main()
