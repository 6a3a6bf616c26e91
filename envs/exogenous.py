"""The exogenous paths of an episode: demand, HBM supply, other buyers' HBM demand, shocks, training
jobs and failure draws, all sampled at reset from one seeded ``numpy.random.Generator``.

HBM comes in generations (the scenario's ``hbm.generation_mix``): the supply of generation g is the
world output times g's share of it that week, and other buyers want their total times the same
shares (they buy the same products), so without shocks every generation's market is as tight as the
whole. A supply shock hits one generation, drawn in proportion to the generations' shares that week.

Drawing everything up front fixes the whole path by the seed, so every policy can face the same one
(common random numbers), and the oracle can read it. The draw order is fixed: a seed gives identical
paths on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
from scipy.signal import lfilter

from envs.dynamics import EXO_FIELDS, WEEKS_PER_YEAR
from envs.scenario import Scenario

# Model figures of the exogenous processes. Each is an ASSUMPTION of this model, not a market figure:
DEMAND_NOISE_AR = 0.7  # week-to-week persistence of demand noise: log-noise_t = 0.7 log-noise_(t-1) + eps_t,
#   so a surprise fades over a few weeks (half-life ~2 weeks), as traffic deviations do, not at once.
DEMAND_SHOCK_FLOOR = 0.05  # a negative demand shock never takes demand below 5% of its trend (an outage
#   leaves some traffic); overlapping shocks could otherwise make demand negative.
HBM_SUPPLY_NOISE = 0.03  # weekly log-noise of HBM supply reaching the market (3%: shipments are contracted)
OTHER_HBM_DEMAND_NOISE = 0.03  # weekly log-noise of other buyers' HBM demand (3%, as for supply)
JOB_SIZE_LOG_SIGMA = 0.5  # training jobs' FLOPs are log-normal around the scenario's job size (x/÷ 1.65)


@dataclass(frozen=True)
class Exogenous:
    """Paths of shape (B, T, ...) fixed at reset by the seed; the fields follow ``envs.dynamics.EXO_FIELDS``."""

    demand: np.ndarray  # (B, T, C) tokens/s
    hbm_supply: np.ndarray  # (B, T, G) stacks/week of each HBM generation reaching the market
    other_hbm_demand: np.ndarray  # (B, T, G) stacks/week of each generation everyone else wants
    hbm_shock: np.ndarray  # (B, T, G) 1 while a supply shock hits the generation
    job_arrival: np.ndarray  # (B, T) 1 if a training job arrives
    job_flops: np.ndarray  # (B, T)
    failure_u: np.ndarray  # (B, T, K) uniforms for stochastic rounding of failures

    def pack(self) -> np.ndarray:
        """(B, T, C + 3G + 2 + K) float64: the paths in the kernels' column order."""
        B, T = self.hbm_supply.shape[:2]
        return np.concatenate([np.asarray(getattr(self, f.name), dtype=np.float64).reshape(B, T, -1)
                               for f in fields(self)], axis=2)

    @staticmethod
    def concatenate(paths: list[Exogenous]) -> Exogenous:
        """One batch from several (B_i, T, ...) batches."""
        return Exogenous(**{f.name: np.concatenate([getattr(p, f.name) for p in paths]) for f in fields(Exogenous)})


if tuple(f.name for f in fields(Exogenous)) != tuple(f[0] for f in EXO_FIELDS):
    raise ImportError("envs.exogenous.Exogenous and envs.dynamics.EXO_FIELDS must list the same fields in order")


def _trailing_sum(x: np.ndarray, weeks: int) -> np.ndarray:
    """Sum of ``x`` (B, T, ...) over weeks t - weeks + 1 .. t; exact for the small integers it is used on."""
    total = np.cumsum(x, axis=1)
    total[:, weeks:] -= total[:, :-weeks].copy()
    return total


class Trend(NamedTuple):
    """The parts of a scenario's paths that no draw changes, worked out once per scenario (``Params`` keeps them):
    an env draws a path at every reset, and a Small episode is only 26 steps."""

    weeks: np.ndarray  # (T,)
    growth: tuple[np.ndarray | None, ...]  # per class, (T,) for exponential growth; None where it is drawn
    other: np.ndarray  # (T,) other buyers' HBM demand before its noise
    supply: np.ndarray  # (T, G) each generation's HBM supply before shocks and noise
    cumulative_mix: np.ndarray  # (T, G) cumulative generation shares, for drawing which generation a shock hits
    arrivals_per_week: float
    flops_per_job: float


def exogenous_trend(scenario: Scenario) -> Trend:
    """The deterministic part of :func:`draw_exogenous`'s paths for ``scenario``."""
    years = np.arange(scenario.weeks) / WEEKS_PER_YEAR
    hbm = scenario.hbm
    base_supply = hbm["supply_stacks_per_week"] * (1.0 + hbm["supply_growth_per_year"]) ** years
    mix = scenario.arrays["hbm_mix"]  # (T, G) each generation's share of world output
    tr = scenario.training
    return Trend(weeks=np.arange(scenario.weeks),
                 growth=tuple((1.0 + c.growth["rate_per_year"]) ** years if c.growth["kind"] == "exponential" else None
                              for c in scenario.classes),
                 other=(hbm["supply_stacks_per_week"] * hbm["other_demand_ratio"]
                        * (1.0 + hbm["other_demand_growth_per_year"]) ** years),
                 supply=base_supply[:, None] * mix, cumulative_mix=np.cumsum(mix, axis=1),
                 arrivals_per_week=tr["arrivals_per_week"], flops_per_job=tr["flops_per_job"])


def draw_exogenous(scenario: Scenario, rng: np.random.Generator, batch: int, trend: Trend | None = None) -> Exogenous:
    """Sample B exogenous paths; the draw order is fixed so a seed gives identical paths. ``trend`` is
    ``exogenous_trend(scenario)`` when the caller keeps it (``Params.exogenous_trend``)."""
    trend = exogenous_trend(scenario) if trend is None else trend
    T, C, K = scenario.weeks, scenario.n_classes, scenario.n_chips
    a = scenario.arrays
    growth = np.empty((batch, T, C))
    for c, cls in enumerate(scenario.classes):
        g = cls.growth
        if trend.growth[c] is not None:
            growth[:, :, c] = trend.growth[c]
        else:
            # Logistic S-curve whose midpoint is uncertain: drawn per episode (log-normal shift in weeks).
            mid = g["midpoint_week"] * np.exp(g["uncertainty"] * rng.standard_normal(batch))
            s = 1.0 / (1.0 + np.exp(-g["steepness"] * (trend.weeks[None, :] - mid[:, None])))
            s0 = 1.0 / (1.0 + np.exp(g["steepness"] * mid))
            growth[:, :, c] = 1.0 + (g["ceiling_multiple"] - 1.0) * (s - s0[:, None]) / (1.0 - s0[:, None])
    # AR(1) log-noise per class, and occasional demand shocks (viral launch or outage: +/- magnitude).
    eps = rng.standard_normal((batch, T, C)) * a["noise"]
    noise = lfilter([1.0], [1.0, -DEMAND_NOISE_AR], eps, axis=1)
    ds = scenario.demand_shocks
    shock_start = rng.random((batch, T, C)) < ds["probability_per_week"]
    shock_sign = np.where(rng.random((batch, T, C)) < 0.5, -1.0, 1.0)
    shock = _trailing_sum(shock_start * shock_sign, ds["weeks"])
    demand = a["demand0"] * growth * np.exp(noise) * np.clip(1.0 + ds["magnitude"] * shock, DEMAND_SHOCK_FLOOR, None)

    hbm = scenario.hbm
    mix = scenario.arrays["hbm_mix"]  # (T, G) each generation's share of world output
    shock_hits = rng.random((batch, T)) < hbm["shock_probability_per_week"]
    supply_noise = np.exp(HBM_SUPPLY_NOISE * rng.standard_normal((batch, T)))
    other = trend.other * np.exp(OTHER_HBM_DEMAND_NOISE * rng.standard_normal((batch, T)))
    arrival = (rng.random((batch, T)) < trend.arrivals_per_week).astype(float)
    job_flops = trend.flops_per_job * np.exp(JOB_SIZE_LOG_SIGMA * rng.standard_normal((batch, T)))
    failure_u = rng.random((batch, T, K))
    # Which generation each shock hits, drawn last so that the paths above are the same whatever the pools
    # (and not at all with one pool, whose paths are then those of the model before generations).
    G = mix.shape[1]
    if G == 1:
        hit = shock_hits[:, :, None].astype(float)
    else:
        cumulative = trend.cumulative_mix
        u = rng.random((batch, T)) * cumulative[:, -1]
        which = np.minimum((u[:, :, None] >= cumulative[None]).sum(axis=2), G - 1)
        # (one comparison: np.put_along_axis into zeros gives the same array in several times the time)
        hit = ((which[:, :, None] == np.arange(G)) & (shock_hits & (cumulative[:, -1] > 0))[:, :, None]).astype(float)
    in_shock = (_trailing_sum(hit, hbm["shock_weeks"]) > 0).astype(float)
    supply = trend.supply[None] * (1.0 - hbm["shock_depth"] * in_shock) * supply_noise[:, :, None]
    return Exogenous(demand=demand, hbm_supply=supply, other_hbm_demand=other[:, :, None] * mix[None],
                     hbm_shock=in_shock, job_arrival=arrival, job_flops=job_flops, failure_u=failure_u)
