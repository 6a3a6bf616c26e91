"""Domain randomisation: each episode samples its market and demand within documented ranges.

A policy trained on one scenario's paths learns that scenario's market; one trained on many markets has to read
the market it is in from the observation (demand and its growth, HBM supply and prices, training work are all
observed, so no observation changes). The draws rescale the exogenous path after ``draw_exogenous`` has drawn
it, instead of rebuilding the scenario's compiled tables, which would cost seconds a reset: an episode is only
26-156 steps at ~30,000 steps/s. So what a path carries is randomised (demand, HBM supply, other buyers' HBM
demand, training jobs) and what the tables carry is not (token prices, chip prices, power, the site).

Every draw comes from the generator that drew the path, after it, so a seed fixes the randomised episode and a
run without randomisation draws exactly what it did before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from envs.dynamics import WEEKS_PER_YEAR
from envs.exogenous import Exogenous
from envs.scenario import Scenario

MULTIPLIER, TILT = "multiplier", "tilt"


def _range(low: float, high: float, kind: str, why: str, per_class: bool = False) -> Any:
    """A (low, high) field: a ``multiplier`` is drawn log-uniformly (x2 as likely as /2), a ``tilt`` (a change of
    log-growth per year: the path is multiplied by exp(tilt x years since the start)) uniformly; ``per_class``
    ranges are drawn for each inference class independently."""
    return field(default=(low, high), metadata={"kind": kind, "why": why, "per_class": per_class})


@dataclass(frozen=True)
class Randomization:
    """The ranges each episode's market is drawn from, relative to the scenario's own figures."""

    demand_level: tuple[float, float] = _range(0.5, 2.0, MULTIPLIER, (
        "each class's demand, drawn per class. ASSUMPTION: the scenarios' initial demand levels are themselves "
        "assumptions (default.yaml provenance: chat 'sized to ~60% of the initial fleet's chat capacity'), so a "
        "factor of two either way"), per_class=True)
    demand_growth_tilt: tuple[float, float] = _range(-0.3, 0.3, TILT, (
        "each class's growth, drawn per class: x0.74 to x1.35 a year on top of the scenario's growth (chat: 1.5x "
        "to 2.7x a year around 2x). hbm_market_and_demand.md c: token volumes grew 5x (Microsoft, 2025) to 6.7x "
        "(Google, 2025-26) a year, after ~50x (Google, 2024-25); how much of that one operator wins is an "
        "ASSUMPTION"), per_class=True)
    hbm_supply_level: tuple[float, float] = _range(0.8, 1.2, MULTIPLIER, (
        "world HBM output: hbm_market_and_demand.md a1 (derived): 60-90M stacks in 2025 (24-36 GB a stack), "
        "0.82x to 1.24x the default's 73M a year"))
    hbm_supply_growth_tilt: tuple[float, float] = _range(-0.15, 0.15, TILT, (
        "HBM output growth: +52% to +106% a year around the default's +77%. hbm_market_and_demand.md a1: "
        "TrendForce forecasts of different vintages put yearly bit growth at +77% (2026) and +105% to +260% "
        "(2024); SK hynix expects ~60% a year mid-to-long term (a4)"))
    other_hbm_demand_level: tuple[float, float] = _range(0.9, 1.1, MULTIPLIER, (
        "other buyers' HBM demand. hbm_market_and_demand.md a4: 2024-2026 output sold out in advance, so others "
        "want about what is made; ASSUMPTION: within 10% of it"))
    other_hbm_demand_growth_tilt: tuple[float, float] = _range(-0.1, 0.1, TILT, (
        "other buyers' HBM demand growth: +63% to +99% a year around the default's +80%. hbm_market_and_demand.md "
        "a4: SK hynix expects ~60% a year; c: token volumes grew 5-6.7x a year"))
    job_size: tuple[float, float] = _range(0.5, 2.0, MULTIPLIER, (
        "training jobs' FLOPs (and so their value). economics.md §8: contracts that fit a mid-size neocloud hold "
        "512-2,048 GPUs, the default job ~630 H100s; ASSUMPTION: a factor of two either way, since the largest "
        "would not fit the initial fleet"))
    job_arrival: tuple[float, float] = _range(0.5, 1.5, MULTIPLIER, (
        "training jobs' arrival rate. ASSUMPTION, as the rate itself ('a frontier training contract every ~8 "
        "weeks'): one every ~5 to ~16 weeks"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                low, high = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"randomize.{f.name}: expected a (low, high) pair of numbers, got {value!r}") from None
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"randomize.{f.name}: low and high must be finite, got ({low}, {high})")
            if low > high:
                raise ValueError(f"randomize.{f.name}: low {low} exceeds high {high}; give low <= high "
                                 f"(low == high fixes the value)")
            if f.metadata["kind"] == MULTIPLIER and low <= 0:
                raise ValueError(f"randomize.{f.name}: a multiplier must be positive, got low {low}; "
                                 f"(1, 1) leaves the scenario's figure as it is")
            object.__setattr__(self, f.name, (low, high))  # lists from JSON or YAML become tuples of floats

    @classmethod
    def coerce(cls, value: bool | dict | Randomization | None) -> Randomization | None:
        """The ranges an env's ``randomize`` argument asks for: None for False or None, the defaults for True,
        a dict overrides some of them."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise ValueError(f"randomize: unknown range(s) {', '.join(unknown)}; "
                                 f"choose from {', '.join(f.name for f in fields(cls))}")
            return cls(**value)
        raise TypeError(f"randomize: expected True, False, None, a dict of ranges or a Randomization, "
                        f"got {type(value).__name__}")

    def check(self, scenario: Scenario) -> None:
        """Refuse ranges that the scenario cannot realise: a job arrives at most once a week."""
        rate, high = scenario.training["arrivals_per_week"], self.job_arrival[1]
        if rate * high > 1.0:
            raise ValueError(f"randomize.job_arrival: high {high} x the scenario's training.arrivals_per_week "
                             f"{rate} is more than one job a week (arrivals are weekly coin flips); "
                             f"give a high of at most {1.0 / rate:.4g}")


@dataclass(frozen=True)
class MarketDraw:
    """One batch of drawn markets: (B, C) per class, (B,) otherwise, with the fields of :class:`Randomization`."""

    demand_level: np.ndarray
    demand_growth_tilt: np.ndarray
    hbm_supply_level: np.ndarray
    hbm_supply_growth_tilt: np.ndarray
    other_hbm_demand_level: np.ndarray
    other_hbm_demand_growth_tilt: np.ndarray
    job_size: np.ndarray
    job_arrival: np.ndarray

    def row(self, i: int) -> dict[str, float | list[float]]:
        """Path ``i``'s draw as plain numbers (what an env's reset info reports)."""
        return {f.name: getattr(self, f.name)[i].tolist() for f in fields(self)}


if [f.name for f in fields(MarketDraw)] != [f.name for f in fields(Randomization)]:
    raise ImportError("envs.randomization: MarketDraw and Randomization must list the same fields in order")


def draw_market(ranges: Randomization, batch: int, n_classes: int, rng: np.random.Generator) -> MarketDraw:
    """B markets in one call (a reset draws one), in a fixed order so that a seed gives the same draw."""
    sizes = [n_classes if f.metadata["per_class"] else 1 for f in fields(ranges)]
    u = rng.random((batch, sum(sizes)))
    columns = np.cumsum([0, *sizes])
    drawn = {}
    for f, start, end in zip(fields(ranges), columns[:-1], columns[1:]):
        low, high = getattr(ranges, f.name)
        part = u[:, start:end] if f.metadata["per_class"] else u[:, start]
        if f.metadata["kind"] == MULTIPLIER:
            drawn[f.name] = np.exp(np.log(low) + (np.log(high) - np.log(low)) * part)
        else:
            drawn[f.name] = low + (high - low) * part
    return MarketDraw(**drawn)


def apply_market(exo: Exogenous, market: MarketDraw, arrival_u: np.ndarray, arrivals_per_week: float) -> Exogenous:
    """``exo`` in the drawn markets. Levels and tilts multiply demand, HBM supply and others' HBM demand by
    level x exp(tilt x years since the start); job FLOPs scale by ``job_size``. Arrivals change rate without
    redrawing the path: at ``job_arrival`` m <= 1 each job is kept if its uniform ``arrival_u`` < m, at m > 1 a
    week without one gets one if its uniform < p (m - 1) / (1 - p), so that jobs arrive at p x m a week."""
    years = np.arange(exo.demand.shape[1]) / WEEKS_PER_YEAR
    demand = exo.demand * market.demand_level[:, None, :] \
        * np.exp(market.demand_growth_tilt[:, None, :] * years[None, :, None])

    def scaled(path: np.ndarray, level: np.ndarray, tilt: np.ndarray) -> np.ndarray:
        return path * (level[:, None] * np.exp(tilt[:, None] * years[None, :]))[:, :, None]

    m, p = market.job_arrival[:, None], arrivals_per_week
    extra = p * np.maximum(m - 1.0, 0.0) / max(1.0 - p, 1e-12)
    arrival = np.where(exo.job_arrival > 0, arrival_u < m, arrival_u < extra).astype(float)
    return replace(exo, demand=demand,
                   hbm_supply=scaled(exo.hbm_supply, market.hbm_supply_level, market.hbm_supply_growth_tilt),
                   other_hbm_demand=scaled(exo.other_hbm_demand, market.other_hbm_demand_level,
                                           market.other_hbm_demand_growth_tilt),
                   job_arrival=arrival, job_flops=exo.job_flops * market.job_size[:, None])


def randomize(exo: Exogenous, scenario: Scenario, ranges: Randomization,
              rng: np.random.Generator) -> tuple[Exogenous, MarketDraw]:
    """Draw a market for each of ``exo``'s B paths from ``rng`` (after the path itself) and apply it."""
    batch, weeks = exo.job_arrival.shape
    market = draw_market(ranges, batch, scenario.n_classes, rng)
    arrival_u = rng.random((batch, weeks))
    return apply_market(exo, market, arrival_u, scenario.training["arrivals_per_week"]), market
