"""Heuristic baselines: random, do-nothing, homogeneous GPU fleet, disaggregated greedy, forecast-driven.

They share the sizing rule of :func:`envs.functional.coverage`: a rule buys the chips that lift the coverage of
its demand target (counting chips already on order) to one, choosing chips its own way.
"""

from __future__ import annotations

import numpy as np

from agents.base import Plan, Policy
from envs.functional import (
    available_mask,
    chip_prices,
    coverage,
    demand_with_backlog,
    generation_stacks,
    owned_and_ordered,
    prefill_and_decode_chips,
)

NEUTRAL_KNOBS = np.array([0.6, 0.5, 0.0, 0.5, 0.5])  # training at 1.2x the pace jobs need; balanced; neutral
SAFETY = 0.2  # capacity headroom over the demand a rule sizes for
DEBT_BUFFER = 0.5  # rules spend at most cash + this share of the credit line
# Rules that buy chips also expand a power-capped site by the compact action's rule: they keep the power built
# and under construction at 1.5x the IT load of the chips owned, on order and wanted (u x MAX_SITE_MULTIPLE).
SITE_ENTRY = 0.5


def holt(level: np.ndarray | None, trend: np.ndarray | None, observed: np.ndarray, alpha: float,
         beta: float) -> tuple[np.ndarray, np.ndarray]:
    """One step of Holt's linear-trend smoothing: (level, trend) after ``observed``; the first observation
    (``level`` None) starts the level there, with no trend."""
    if level is None:
        return observed, np.zeros_like(observed)
    predicted = level + trend
    new_level = alpha * observed + (1 - alpha) * predicted
    return new_level, beta * (new_level - level) + (1 - beta) * trend


class _Sizing(Policy):
    """Shared reads of the environment (only what is known at decision time) and sizing arithmetic."""

    def _now(self):
        env = self.env
        state = env.state
        demand = demand_with_backlog(env.params, state)[0]
        return state, demand

    def _work(self, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prefill, decode) chips of each type needed to serve ``demand`` alone; inf if a class does not fit."""
        prefill, decode = prefill_and_decode_chips(self.env.params, demand[None], self.env.state.week)
        return prefill[0], decode[0]

    def _coverage(self, chips: np.ndarray, demand: np.ndarray) -> float:
        return float(coverage(self.env.params, chips[None], demand[None], self.env.state.week)[0])

    def _owned_and_ordered(self) -> np.ndarray:
        return owned_and_ordered(self.env.params, self.env.state)[0]

    def _prices(self) -> np.ndarray:
        s = self.env.state
        return chip_prices(self.env.params, s.week, s.hbm_price)[0]

    def _available(self) -> np.ndarray:
        return available_mask(self.env.params, self.env.state.week)[0]

    def _budget(self) -> float:
        s = self.env.state
        return max(0.0, float(s.cash[0]) + DEBT_BUFFER * self.env.scenario.credit_limit_usd)

    def _order(self, chips: np.ndarray) -> np.ndarray:
        """``chips`` (K,) scaled down to the spending budget and the weekly maximum."""
        cost, budget = float(np.sum(chips * self._prices())), self._budget()
        if cost > budget:
            chips = chips * budget / cost
        return np.minimum(chips, self.env.scenario.max_order_chips_per_week)

    def _knobs(self, specialisation: float) -> np.ndarray:
        knobs = NEUTRAL_KNOBS.copy()
        knobs[2] = specialisation
        return knobs


class RandomPolicy(Policy):
    """Uniform random actions from the action space, seeded."""

    name = "random"

    def __init__(self, env, seed: int = 0):
        super().__init__(env)
        self.space = env.action_space
        self.space.seed(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        return self.space.sample(), state


class DoNothingPolicy(_Sizing):
    """Keeps the initial fleet; colocated allocation in proportion to demand; trains what jobs need."""

    name = "do-nothing"

    def plan(self) -> Plan:
        return Plan(np.zeros(self.env.scenario.n_chips), knobs=self._knobs(specialisation=0.0))


class HomogeneousGPUPolicy(_Sizing):
    """Buys only the newest NVIDIA GPU on sale, serves colocated, sized to current demand plus headroom."""

    name = "homogeneous-gpu"

    def plan(self) -> Plan:
        scenario = self.env.scenario
        _, demand = self._now()
        on_sale = np.flatnonzero(self._available() & (scenario.arrays["nvidia_hbm"] > 0))  # NVIDIA HBM GPUs
        chips = np.zeros(scenario.n_chips)
        if on_sale.size:
            k = max(on_sale, key=lambda i: (scenario.arrays["available_week"][i], i))
            shortfall = (1.0 + SAFETY) - self._coverage(self._owned_and_ordered(), demand)
            wp, wd = self._work(demand)
            if shortfall > 0 and np.isfinite(wp[k] + wd[k]):
                chips[k] = shortfall * (wp[k] + wd[k])
        return Plan(self._order(chips), knobs=self._knobs(specialisation=0.0), expansion=SITE_ENTRY)


class DisaggregatedGreedyPolicy(_Sizing):
    """Buys the cheapest prefill chip (compute per $) and the cheapest decode chip (bandwidth and
    memory per $) for the current demand mix, and places prefill and decode on them (Splitwise/DistServe).
    HBM chips' cost carries the expected wait of their generation's queue while it is long."""

    name = "disaggregated-greedy"
    specialisation = 1.0

    def _demand_target(self, demand: np.ndarray) -> np.ndarray:
        return demand * (1.0 + SAFETY)

    def _queue(self) -> tuple[np.ndarray, np.ndarray]:
        """(stacks queued, stacks a week our share of the scheduled supply brings) of each HBM generation: the
        scenario's starting world output x the generation's share of it this week (no foresight of shocks)."""
        scenario, s = self.env.scenario, self.env.state
        hbm = scenario.hbm
        queued = s.queue[0] @ generation_stacks(self.env.params)
        week = min(int(s.week[0]), scenario.weeks - 1)
        allocation = hbm["our_allocation_share"] * hbm["supply_stacks_per_week"] * scenario.arrays["hbm_mix"][week]
        return queued, allocation

    def _cost_factor(self) -> np.ndarray:
        # Capital waiting in the HBM queue earns nothing: charge 1% of the price per week of expected wait in the
        # queue of the chip's generation.
        queued, allocation = self._queue()
        wait = queued / np.maximum(allocation, 1.0)  # (G,)
        generation = self.env.scenario.arrays["hbm_generation"].astype(int)
        return 1.0 + 0.01 * np.where(generation >= 0, wait[np.maximum(generation, 0)], 0.0)

    def plan(self) -> Plan:
        scenario = self.env.scenario
        _, demand = self._now()
        target = self._demand_target(demand)
        shortfall = 1.0 - self._coverage(self._owned_and_ordered(), target)
        chips = np.zeros(scenario.n_chips)
        avail = self._available()
        if shortfall > 0 and avail.any():
            wp, wd = self._work(target)
            cost = self._prices() * self._cost_factor()
            prefill_cost = np.where(avail & np.isfinite(wp), wp * cost, np.inf)
            decode_cost = np.where(avail & np.isfinite(wd), wd * cost, np.inf)
            if np.isfinite(prefill_cost).any() and np.isfinite(decode_cost).any():
                p, d = int(np.argmin(prefill_cost)), int(np.argmin(decode_cost))
                chips[p] += shortfall * wp[p]
                chips[d] += shortfall * wd[d]
        return Plan(self._order(chips), knobs=self._knobs(self.specialisation), expansion=SITE_ENTRY)


class ForecastPolicy(DisaggregatedGreedyPolicy):
    """Order-up-to procurement: Holt's linear-trend smoothing forecasts demand over the effective lead
    time (base lead + the HBM queue's wait), the target adds safety stock of z sigma of the forecast
    errors, and HBM chips' cost carries the expected wait of their generation's queue while it is long."""

    name = "forecast"
    alpha, beta, z = 0.5, 0.2, 1.65

    def __init__(self, env):
        super().__init__(env)
        self._reset_forecast()

    def _reset_forecast(self):
        self.level = self.trend = None
        self.errors: list[np.ndarray] = []
        self._decided: tuple | None = None  # (episode path, week, target) of the last decision

    def _lead_weeks(self) -> float:
        queued, allocation = self._queue()
        return float(self.env.scenario.base_lead_weeks) + float(queued.sum()) / max(float(allocation.sum()), 1.0)

    def _demand_target(self, demand: np.ndarray) -> np.ndarray:
        path, week = id(self.env.exogenous), int(self.env.state.week[0])
        if self._decided is not None:
            last_path, last_week, target = self._decided
            if (path, week) == (last_path, last_week):  # asked again this week: the forecast has nothing new
                return target
            if path != last_path or week < last_week:  # a new episode
                self._reset_forecast()
        observed = np.log(np.maximum(demand, 1.0))
        if self.level is not None:
            self.errors.append(observed - (self.level + self.trend))
        self.level, self.trend = holt(self.level, self.trend, observed, self.alpha, self.beta)
        horizon = self._lead_weeks()
        sigma = np.std(self.errors[-26:], axis=0) if len(self.errors) >= 4 else 0.1 * np.ones_like(observed)
        target = np.exp(self.level + self.trend * horizon + self.z * sigma * np.sqrt(max(horizon, 1.0)))
        self._decided = (path, week, target)
        return target
