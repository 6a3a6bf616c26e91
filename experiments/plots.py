"""Figures of a comparison: scores with intervals, fleets, demand against capacity, the HBM market and the
runs' learning curves from TensorBoard."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from envs.scenario import Scenario
from experiments.runs import atomic_save


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
    prices = t["hbm_price"].reshape(len(t["hbm_price"]), -1)  # (weeks, G): one index per HBM generation
    weeks = np.arange(len(prices))
    for g, name in enumerate(scenario.hbm_generations):
        ax.plot(weeks, prices[:, g], label=f"{name} price index" if prices.shape[1] > 1 else "HBM price index")
    supply = t["hbm_supply"].reshape(len(weeks), -1).sum(1)
    ax.plot(weeks, supply / scenario.hbm["supply_stacks_per_week"], "k--", label="world supply / start")
    ax2 = ax.twinx()
    ax2.plot(weeks, t["hbm_allocation"].reshape(len(weeks), -1).sum(1), "k:", label="our allocation (stacks)")
    ax2.plot(weeks, t["hbm_drawn"].reshape(len(weeks), -1).sum(1), "k-", alpha=0.4, label="our draw (stacks)")
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
            for tag in ("rollout/ep_rew_mean", "eval/mean_return", "eval/best_baseline_return"):
                if tag in acc.Tags()["scalars"]:
                    points = acc.Scalars(tag)
                    curves[f"{Path(run).name}: {tag}"] = (np.array([p.step for p in points]),
                                                          np.array([p.value for p in points]))
    return curves
