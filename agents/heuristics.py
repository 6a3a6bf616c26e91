"""Heuristic baselines: random, do-nothing, homogeneous GPU fleet, disaggregated greedy, forecast-driven.

They share the sizing rule of :func:`envs.functional.coverage`: a rule buys the chips that lift the coverage of
its demand target (counting chips already on order) to one, choosing chips its own way.

The buying rules' constants (safety headroom, the knobs they send, forecast smoothing...) are per-instance
parameters (``PARAMS``, with the documented defaults below), tuned on training seeds per scenario and action
variant (:mod:`agents.heuristic_tuning`). ``tuned=True`` (the default) loads the committed tuned values when
the env's scenario and variant have a fresh cache entry, and otherwise keeps the defaults with a warning that
names the command that tunes them; ``tuned=False`` keeps the defaults; ``params=`` overrides any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from agents import parameters
from agents.base import Plan, Policy
from agents.heuristic_tuning import tuned_values
from agents.parameters import Param
from envs.dynamics import KNOBS
from envs.functional import (
    available_mask,
    chip_prices,
    coverage,
    demand_with_backlog,
    generation_stacks,
    owned_and_ordered,
    prefill_and_decode_chips,
)

log = logging.getLogger(__name__)

NEUTRAL_KNOBS = np.array([0.6, 0.5, 0.0, 0.5, 0.5])  # training at 1.2x the pace jobs need; balanced; neutral
HOLT_ALPHA, HOLT_BETA = 0.5, 0.2  # the forecast rule's default smoothing, which MPC's forecasts share

# The knobs a rule sends (specialisation is each rule's own: colocated or disaggregated), bounded by the action.
KNOB_PARAMS = {name: Param(float(NEUTRAL_KNOBS[i]), 0.0, 1.0, f"the {name} knob, in [0, 1]")
               for i, name in enumerate(KNOBS._fields) if name != "specialisation"}
BUYING = {
    # Rules spend at most cash + this share of the credit line.
    "debt_buffer": Param(0.5, 0.0, 1.0, "share of the credit line a rule may spend beyond its cash"),
    # Rules that buy chips also expand a power-capped site by the compact action's rule: at 0.5 they keep the power
    # built and under construction at 1.5x the IT load of the chips owned, on order and wanted (u x MAX_SITE_MULTIPLE).
    "site_entry": Param(0.5, 0.0, 1.0, "the compact action's site expansion entry"),
}
SAFETY = {"safety": Param(0.2, 0.0, 1.0, "capacity headroom over the demand a rule sizes for")}
DISAGGREGATED = {
    "specialisation": Param(1.0, 0.0, 1.0, "the specialisation knob: 1 places prefill and decode apart"),
    # Capital waiting in the HBM queue earns nothing: a chip's price is charged this share per week of expected
    # wait in its generation's queue.
    "queue_cost": Param(0.01, 0.0, 0.05, "share of an HBM chip's price charged per week of queue wait"),
}


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
    """Shared reads of the environment (only what is known at decision time), sizing arithmetic, and the
    rule's parameters (``self.parameters``; ``self.tuned`` says whether they came from a tuned cache entry)."""

    PARAMS: parameters.Declared = {}

    def __init__(self, env, params: Mapping[str, float] | None = None, tuned: bool = True,
                 cache_dir: Path | None = None):
        super().__init__(env)
        base = None
        if tuned and self.PARAMS:
            base, why = tuned_values(type(self), self.env.params, cache_dir)
            if base is None:
                log.warning("%s: %s; using its default parameters (tune them with `python -m agents.tune --policy %s "
                            "--scenarios %s --variants %s%s`, or pass tuned=False to mean the defaults)", self.name,
                            why, self.name, self.env.scenario.name, self.env.variant,
                            " --discrete" if self.env.discrete else "")
        self.tuned = base is not None
        self.parameters: dict[str, float] = parameters.resolve(self.PARAMS, params, self.name, base)

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
        return max(0.0, float(s.cash[0]) + self.parameters["debt_buffer"] * self.env.scenario.credit_limit_usd)

    def _order(self, chips: np.ndarray) -> np.ndarray:
        """``chips`` (K,) scaled down to the spending budget and the weekly maximum."""
        cost, budget = float(np.sum(chips * self._prices())), self._budget()
        if cost > budget:
            chips = chips * budget / cost
        return np.minimum(chips, self.env.scenario.max_order_chips_per_week)

    def _knobs(self) -> np.ndarray:
        """The knobs the rule sends: its parameters where it has them, the neutral ones otherwise."""
        return np.array([self.parameters.get(name, NEUTRAL_KNOBS[i]) for i, name in enumerate(KNOBS._fields)])


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
        return Plan(np.zeros(self.env.scenario.n_chips), knobs=self._knobs())


class HomogeneousGPUPolicy(_Sizing):
    """Buys only the newest NVIDIA GPU on sale, serves colocated, sized to current demand plus headroom."""

    name = "homogeneous-gpu"
    PARAMS = {**SAFETY, **BUYING, **KNOB_PARAMS}  # colocated by definition: specialisation stays 0

    def plan(self) -> Plan:
        scenario = self.env.scenario
        _, demand = self._now()
        on_sale = np.flatnonzero(self._available() & (scenario.arrays["nvidia_hbm"] > 0))  # NVIDIA HBM GPUs
        chips = np.zeros(scenario.n_chips)
        if on_sale.size:
            k = max(on_sale, key=lambda i: (scenario.arrays["available_week"][i], i))
            shortfall = (1.0 + self.parameters["safety"]) - self._coverage(self._owned_and_ordered(), demand)
            wp, wd = self._work(demand)
            if shortfall > 0 and np.isfinite(wp[k] + wd[k]):
                chips[k] = shortfall * (wp[k] + wd[k])
        return Plan(self._order(chips), knobs=self._knobs(), expansion=self.parameters["site_entry"])


class DisaggregatedGreedyPolicy(_Sizing):
    """Buys the cheapest prefill chip (compute per $) and the cheapest decode chip (bandwidth and
    memory per $) for the current demand mix, and places prefill and decode on them (Splitwise/DistServe).
    HBM chips' cost carries the expected wait of their generation's queue while it is long."""

    name = "disaggregated-greedy"
    PARAMS = {**SAFETY, **BUYING, **KNOB_PARAMS, **DISAGGREGATED}

    def _demand_target(self, demand: np.ndarray) -> np.ndarray:
        return demand * (1.0 + self.parameters["safety"])

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
        queued, allocation = self._queue()
        wait = queued / np.maximum(allocation, 1.0)  # (G,)
        generation = self.env.scenario.arrays["hbm_generation"].astype(int)
        return 1.0 + self.parameters["queue_cost"] * np.where(generation >= 0, wait[np.maximum(generation, 0)], 0.0)

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
        return Plan(self._order(chips), knobs=self._knobs(), expansion=self.parameters["site_entry"])


class ForecastPolicy(DisaggregatedGreedyPolicy):
    """Order-up-to procurement: Holt's linear-trend smoothing forecasts demand over the effective lead
    time (base lead + the HBM queue's wait), the target adds safety stock of z sigma of the forecast
    errors, and HBM chips' cost carries the expected wait of their generation's queue while it is long."""

    name = "forecast"
    # Its target replaces the greedy rule's safety headroom with z sigma of safety stock.
    PARAMS = {**BUYING, **KNOB_PARAMS, **DISAGGREGATED,
              "alpha": Param(HOLT_ALPHA, 0.05, 1.0, "Holt's level smoothing"),
              "beta": Param(HOLT_BETA, 0.0, 1.0, "Holt's trend smoothing"),
              "z": Param(1.65, 0.0, 3.0, "safety stock, in sigmas of the forecast errors")}

    def __init__(self, env, params: Mapping[str, float] | None = None, tuned: bool = True,
                 cache_dir: Path | None = None):
        super().__init__(env, params, tuned, cache_dir)
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
        self.level, self.trend = holt(self.level, self.trend, observed, self.parameters["alpha"],
                                       self.parameters["beta"])
        horizon = self._lead_weeks()
        sigma = np.std(self.errors[-26:], axis=0) if len(self.errors) >= 4 else 0.1 * np.ones_like(observed)
        target = np.exp(self.level + self.trend * horizon + self.parameters["z"] * sigma * np.sqrt(max(horizon, 1.0)))
        self._decided = (path, week, target)
        return target
