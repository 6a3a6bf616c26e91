"""Text dashboard and figure of an episode so far."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.scenario import Scenario


def dashboard(scenario: Scenario, history: list[dict[str, Any]]) -> str:
    if not history:
        return f"{scenario.name}: week 0 of {scenario.weeks}, nothing has happened yet\n"
    h = history[-1]
    lines = [f"{scenario.name}  week {h['week']}/{scenario.weeks}  cash ${h['cash'] / 1e6:,.1f}M  "
             f"profit ${h['profit'] / 1e6:,.2f}M  HBM price x{h['hbm_price_mean']:.2f}"]
    if scenario.n_hbm_generations > 1:
        lines.append("HBM price  " + "  ".join(f"{g} x{p:.2f}" for g, p in zip(scenario.hbm_generations,
                                                                                h["hbm_price"])))
    lines.append("chip          fleet  on order  util")
    for k, chip in enumerate(scenario.chips):
        lines.append(f"{chip:<12} {h['fleet'][k]:6.0f} {h['in_queue'][k] + h['in_transit'][k]:9.0f} "
                     f"{h['utilisation'][k]:5.0%}")
    lines.append("class       demand tok/s  served   SLO")
    for c, cls in enumerate(scenario.classes):
        frac = h["served"][c] / h["demand"][c] if h["demand"][c] > 0 else 1.0
        lines.append(f"{cls.name:<10} {h['demand'][c]:13,.0f} {frac:7.0%} {h['slo_attainment'][c]:5.0%}")
    return "\n".join(lines) + "\n"


def figure(scenario: Scenario, history: list[dict[str, Any]]) -> np.ndarray:
    """An RGB array: fleet by chip, demand against served tokens, and the HBM market."""
    # A figure of its own on the Agg canvas: no pyplot, so the caller's backend and figures are left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.5), dpi=80)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    weeks = [h["week"] for h in history]
    if history:
        fleet = np.array([h["fleet"] for h in history])
        axes[0].stackplot(weeks, fleet.T, labels=scenario.chips)
        demand = np.array([h["demand"] for h in history]).sum(1)
        served = np.array([h["served"] for h in history]).sum(1)
        axes[1].plot(weeks, demand, label="demand")
        axes[1].plot(weeks, served, label="served")
        prices = np.array([h["hbm_price"] for h in history])  # (weeks, G)
        for g, name in enumerate(scenario.hbm_generations):
            axes[2].plot(weeks, prices[:, g], label=f"{name} price index" if len(prices[0]) > 1 else "HBM price index")
        axes[2].plot(weeks, [np.sum(h["hbm_supply"]) / scenario.hbm["supply_stacks_per_week"] for h in history],
                     "k:", label="world supply / initial")
    for ax, title in zip(axes, ("fleet (chips)", "tokens/s", "HBM market")):
        ax.set_title(title)
        ax.set_xlabel("week")
        if history:
            ax.legend(fontsize=6)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
