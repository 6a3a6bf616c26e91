"""Model-predictive control: every ``every`` weeks, the oracle's horizon program (HiGHS) over the next
``horizon`` weeks from the env's current state, along forecasts in place of the true path; the plan's
weeks are played until the next solve (and, with cluster contracts, a week with an offer solves again,
since only a solve can accept it).

Forecasts use only what an operator knows at week t0: the path up to t0 (this week's demand, HBM supply and
contract offer are observed), the scenario's published schedules and rates, and the env's state.

- Demand of each class: Holt's linear trend on log demand over weeks 0..t0 (the forecast heuristic's
  smoothing and constants); week t0 + h is exp(level + h x trend); week t0 itself is as observed.
- HBM supply and other buyers' HBM demand of each generation: the scenario's schedule (world output growth
  and generation mix, other buyers' growth) times this week's ratio of observed to scheduled (a shock and the
  noise persist over the window); our allocation follows by the env's rule. Each generation's price index
  stays at this week's (persistence; the oracle's re-solve with its own HBM draw is not repeated).
- Training: a FLOP job arrives each week, this one included (its arrival is not observed before the
  decision), with the scenario's probability and mean size (the program takes a share of it, at most that
  probability); with cluster contracts, this week's offer as observed and an expected offer each later week.
- Failures at their expected rate (the program's relaxation); this week's fleet is the expected one, with the
  expected failures rounded up, never the env's failure draw.

The end of a window settles the books as the oracle settles the episode's end (the env's terminal settlement):
chips at resale value by their age less book value, orders still in transit and site blocks under construction
refunded in part. A window that reaches the episode's end is then exact; a shorter one values the fleet at
liquidation, which discounts chips bought late in the window, but only the first ``every`` weeks of a plan
are played.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from agents.base import Plan, Policy
from agents.heuristics import HOLT_ALPHA, HOLT_BETA, holt
from agents.oracle import TIME_LIMIT_S, OraclePlan, Window, _solve, _week_plan
from envs.datacenter import DatacenterEnv
from envs.dynamics import WEEKS_PER_YEAR
from envs.exogenous import JOB_SIZE_LOG_SIGMA
from envs.functional import hbm_market_path


def _persisting(observed: np.ndarray, schedule: np.ndarray) -> np.ndarray:
    """``schedule`` (T, G) from this week on, times the ratio ``observed`` (G,) / ``schedule[0]`` (1 where
    nothing is scheduled)."""
    ratio = np.divide(observed, schedule[0], out=np.ones_like(observed), where=schedule[0] > 0)
    return schedule * ratio


def forecast_window(env: DatacenterEnv, weeks: int) -> Window:
    """The next ``weeks`` weeks from the env's current state, along forecasts from what is known now."""
    params, scenario, exo = env.params, env.scenario, env.exogenous
    t0 = int(env.state.week[0])
    trend = params.exogenous_trend
    level = slope = None
    for observed in np.log(np.maximum(exo.demand[0, :t0 + 1], 1.0)):
        level, slope = holt(level, slope, observed, HOLT_ALPHA, HOLT_BETA)
    demand = np.exp(level + np.arange(weeks)[:, None] * slope)
    demand[0] = exo.demand[0, t0]
    mix = scenario.arrays["hbm_mix"][t0:t0 + weeks]
    supply = _persisting(exo.hbm_supply[0, t0], trend.supply[t0:t0 + weeks])
    other = _persisting(exo.other_hbm_demand[0, t0], trend.other[t0:t0 + weeks, None] * mix)
    allocation = hbm_market_path(params, supply, other, np.zeros_like(supply))[0]
    tr = scenario.training
    mean_flops = tr["flops_per_job"] * np.exp(JOB_SIZE_LOG_SIGMA ** 2 / 2)  # log-normal sizes' mean
    arrival, flops = np.full(weeks, float(tr["arrivals_per_week"])), np.full(weeks, mean_flops)
    if tr["clusters"]:  # this week's offer is observed
        arrival[0], flops[0] = float(exo.job_arrival[0, t0] > 0), exo.job_flops[0, t0]
    return Window(week=t0, row=env.state.rows[0].copy(), demand=demand, allocation=allocation,
                  hbm_price=np.repeat(env.state.hbm_price[:1], weeks, axis=0), job_arrival=arrival, job_flops=flops)


def expected_fleet(env: DatacenterEnv) -> np.ndarray:
    """(K,) this week's fleet after its arrivals and expected failures (rounded up, so no chip is let out or
    scheduled that may have failed)."""
    s = env.state
    arriving = s.fleet[0] + s.pipeline[0, :, 0]
    return arriving - np.ceil(arriving * env.scenario.failure_rate_per_year / WEEKS_PER_YEAR - 1e-9)


class MPCPolicy(Policy):
    """Rolling-horizon planning: solves the oracle's program over ``horizon`` weeks (fewer near the episode's
    end) every ``every`` weeks along ``forecast(env, weeks)`` (default :func:`forecast_window`; a test can feed
    the true path), and plays the plan's weeks in between. Acts on the fine variants (explicit role shares)."""

    name = "mpc"

    def __init__(self, env, every: int = 13, horizon: int = 52, time_limit: float = TIME_LIMIT_S,
                 forecast: Callable[[DatacenterEnv, int], Window] = forecast_window):
        super().__init__(env)
        if self.env.variant != "fine":
            raise ValueError(f"MPC sets explicit role shares; use a ChipAlloc/DatacenterFine-* environment "
                             f"(got variant {self.env.variant!r})")
        if not 1 <= every <= horizon:
            raise ValueError(f"MPC needs 1 <= every <= horizon (got every={every}, horizon={horizon})")
        self.every, self.horizon, self.time_limit, self.forecast = every, horizon, time_limit, forecast
        self.plan_: OraclePlan | None = None
        self.solve_seconds: list[float] = []  # wall time of each solve
        self._start = 0  # the env's week at which plan_ starts
        self._exo_id = None

    def _stale(self, week: int) -> bool:
        env = self.env
        if self.plan_ is None or self._exo_id != id(env.exogenous) or not 0 <= week - self._start < self.every:
            return True
        # a contract offer is accepted only by a solve that sees it
        offer = bool(env.scenario.training["clusters"]) and env.exogenous.job_arrival[0, week] > 0
        return offer and week != self._start

    def plan(self) -> Plan:
        env = self.env
        week = int(env.state.week[0])
        if self._stale(week):
            start = time.perf_counter()
            window = self.forecast(env, min(self.horizon, env.scenario.weeks - week))
            self.plan_ = _solve(env.params, window, self.time_limit)
            self.solve_seconds.append(time.perf_counter() - start)
            self._start, self._exo_id = week, id(env.exogenous)
        return _week_plan(env, self.plan_, week - self._start, fleet=expected_fleet(env))
