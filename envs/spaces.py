"""Observations and action decoding shared by the single and the vector environments."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.core import (
    N_KNOBS,
    Exogenous,
    State,
    available_mask,
    chip_prices,
    demand_now,
    demand_with_backlog,
    knob_shares,
)
from envs.scenario import Scenario
from envs.sizing import chips_for_demand, coverage, owned_and_ordered, training_need

OBS_CLIP = 10.0
VARIANTS = ("datacenter", "procurement", "scheduling", "fine")
LEVELS = 5  # discrete variants: each entry takes 5 levels, 0, 1/4, 1/2, 3/4, 1 of its range
MAX_COVERAGE = 3.0  # the largest capacity target of the compact action, in multiples of current demand
# Chip weights are exponential in the action, so one chip can take nearly all of an order without the
# other entries sitting exactly at -1: weight(u) = exp(SHARPNESS (u - 1)) - exp(-SHARPNESS), 0 at u = 0.
WEIGHT_SHARPNESS = 6.0


def chip_weight(u: np.ndarray) -> np.ndarray:
    """Order weight of an action entry u in [0, 1] (0 at u = 0, ~1 at u = 1)."""
    return np.exp(WEIGHT_SHARPNESS * (u - 1.0)) - np.exp(-WEIGHT_SHARPNESS)


def weight_entry(share: np.ndarray) -> np.ndarray:
    """Inverse of :func:`chip_weight` for relative shares in [0, 1] (the largest share maps to u = 1)."""
    top = 1.0 - np.exp(-WEIGHT_SHARPNESS)
    return np.clip(1.0 + np.log(share * top + np.exp(-WEIGHT_SHARPNESS)) / WEIGHT_SHARPNESS, 0.0, 1.0)
# Procurement-v0's fixed schedule: training at 1.2x the pace jobs need, balanced prefill/decode,
# half-specialised placement, neutral latency priority.
PROCUREMENT_KNOBS = np.array([0.6, 0.5, 0.5, 0.5])
# Scheduling-v0's fixed purchase plan: every quarter, buy the newest NVIDIA HBM GPU on sale, as many
# chips as this share of the fleet (within the weekly maximum); the agent only schedules.
SCHEDULING_PLAN_EVERY_WEEKS = 13
SCHEDULING_PLAN_GROWTH = 0.25


def observation_size(scenario: Scenario) -> int:
    return 4 + 5 * scenario.n_chips + 4 * scenario.n_classes + 4 + 2


def observation_space(scenario: Scenario) -> spaces.Box:
    n = observation_size(scenario)
    return spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n,), dtype=np.float32)


def fleet_scale(scenario: Scenario) -> float:
    """The chip count that observations of fleet and orders are divided by."""
    return 4.0 * max(float(scenario.arrays["initial_fleet"].sum()), float(scenario.max_order_chips_per_week))


def _week(scenario: Scenario, state: State) -> np.ndarray:
    return np.minimum(state.week, scenario.weeks - 1)


def observe(scenario: Scenario, state: State, exo: Exogenous) -> np.ndarray:
    """(B, n) float32 observation, each block scaled to order one and clipped to ±OBS_CLIP.

    Blocks: [week / T, cash / credit limit, coverage of this week's demand by the fleet and by
    fleet + orders (see :mod:`envs.sizing`) / MAX_COVERAGE] | per chip: fleet, on order (queued +
    in transit), on sale now (0/1), price / list price, utilisation last week | per class: this
    week's demand / (10 x initial demand), its growth over four weeks (log ratio x 10), served
    fraction and SLO attainment last week | HBM: price index, supply / initial supply, our queued
    stacks / weekly allocation, shock flag | training: remaining FLOPs / (slots x job size),
    nearest deadline / deadline weeks.
    """
    a, B = scenario.arrays, state.fleet.shape[0]
    scale = fleet_scale(scenario)
    hbm = scenario.hbm
    allocation = hbm["our_allocation_share"] * hbm["supply_stacks_per_week"]
    tr = scenario.training
    active = state.job_flops > 0
    nearest = np.where(active.any(1), np.where(active, state.job_weeks_left, np.inf).min(1), tr["deadline_weeks"])
    demand = demand_now(exo, state)
    wanted = demand + state.backlog
    past = exo.demand[np.arange(B), np.maximum(_week(scenario, state) - 4, 0)]
    work = chips_for_demand(scenario, wanted)
    blocks = [
        (state.week / scenario.weeks)[:, None],
        (state.cash / scenario.credit_limit_usd)[:, None],
        np.minimum(coverage(scenario, state.fleet, wanted, work), OBS_CLIP)[:, None] / MAX_COVERAGE,
        np.minimum(coverage(scenario, owned_and_ordered(state), wanted, work), OBS_CLIP)[:, None] / MAX_COVERAGE,
        state.fleet / scale,
        (state.queue + state.pipeline.sum(2)) / scale,
        available_mask(scenario, state.week).astype(float),
        chip_prices(scenario, state.week, state.hbm_price) / a["list_price"],
        state.last_utilisation,
        demand / (10.0 * np.maximum(a["demand0"], 1.0)),
        10.0 * np.log(np.maximum(demand, 1.0) / np.maximum(past, 1.0)),
        state.last_served_fraction,
        state.last_attainment,
        state.hbm_price[:, None],
        (exo.hbm_supply[np.arange(B), _week(scenario, state)] / hbm["supply_stacks_per_week"])[:, None],
        ((state.queue * a["hbm_stacks"]).sum(1) / max(allocation, 1.0))[:, None] / 10.0,
        exo.hbm_shock[np.arange(B), _week(scenario, state)][:, None],
        (state.job_flops.sum(1) / (tr["slots"] * tr["flops_per_job"]))[:, None],
        (nearest / tr["deadline_weeks"])[:, None],
    ]
    return np.clip(np.concatenate(blocks, axis=1), -OBS_CLIP, OBS_CLIP).astype(np.float32)


def n_roles(scenario: Scenario) -> int:
    """Rows of an allocation: training, then prefill and decode of each class."""
    return 1 + 2 * scenario.n_classes


def action_space(scenario: Scenario, variant: str, discrete: bool = False) -> spaces.Space:
    if variant == "fine":
        if discrete:
            raise ValueError("the fine variant has a continuous action only; use discrete=False")
        return spaces.Box(-1.0, 1.0, shape=(scenario.n_chips * (1 + n_roles(scenario)),), dtype=np.float32)
    n_orders = scenario.n_chips + 1 if variant in ("datacenter", "procurement") else 0
    n_knobs = N_KNOBS if variant in ("datacenter", "scheduling") else 0
    if discrete:
        return spaces.MultiDiscrete([LEVELS] * (n_orders + n_knobs))
    return spaces.Box(-1.0, 1.0, shape=(n_orders + n_knobs,), dtype=np.float32)


def check_action(action, space: spaces.Space, batch: int | None = None) -> np.ndarray:
    """Reject NaN, inf, wrong shape, dtype or range with an error naming what is allowed."""
    arr = np.asarray(action)
    shape = space.shape if batch is None else (batch, *space.shape)
    if arr.shape != shape:
        raise ValueError(f"action has shape {arr.shape}; this environment expects {shape} ({space})")
    if isinstance(space, spaces.MultiDiscrete):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action dtype {arr.dtype} is not an integer type; expected integers for {space}")
        if (arr < 0).any() or (arr >= space.nvec).any():
            raise ValueError(f"action {arr.tolist()} is outside {space}: each entry must be in [0, nvec)")
        return arr
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"action dtype {arr.dtype} is not numeric; expected float32 in [-1, 1]")
    if not np.isfinite(arr).all():
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}; every entry must be a finite number in [-1, 1]")
    if (arr < -1.0 - 1e-6).any() or (arr > 1.0 + 1e-6).any():
        raise ValueError(f"action {arr.tolist()} is outside [-1, 1]; rescale it (or clip it yourself) before step()")
    return arr.astype(np.float64)


def decode(scenario: Scenario, variant: str, action: np.ndarray, state: State, exo: Exogenous,
           discrete: bool = False):
    """(orders (B,K) chips, shares (B, 1+2C, K)) from a batch of valid actions.

    Compact variants (datacenter, procurement), Box: K chip weight entries (weight
    :func:`chip_weight`, exponential in the entry), then a capacity target,
    then (datacenter) four knobs; each entry maps [-1, 1] to u in [0, 1]. The target is u x
    MAX_COVERAGE times this week's demand; the order buys the shortfall between it and the
    coverage of the chips owned and on order, split over the chips on sale in proportion to their
    weights (each share sized in that chip's own capacity, :mod:`envs.sizing`). The knobs feed the
    built-in allocator (:func:`envs.core.knob_shares`). MultiDiscrete: level l of any entry is
    u = l/4. Fine: K order entries (a > 0 buys a x the weekly maximum) then (1+2C) x K share
    entries, row-major by role (training, prefill per class, decode per class); u = (a + 1) / 2
    and each chip type's shares are u / max(1, sum of its u).
    """
    B, K = action.shape[0], scenario.n_chips
    if variant == "fine":
        u = ((action[:, K:] + 1.0) / 2.0).reshape(B, n_roles(scenario), K)
        orders = np.maximum(action[:, :K], 0.0) * float(scenario.max_order_chips_per_week)
        return orders, u / np.maximum(1.0, u.sum(1, keepdims=True))
    u = action.astype(float) / (LEVELS - 1) if discrete else (action + 1.0) / 2.0
    demand = demand_with_backlog(exo, state)
    if variant == "scheduling":
        orders = scheduling_plan(scenario, state)
    else:
        orders = capacity_orders(scenario, state, demand, chip_weight(u[:, :K]), u[:, K] * MAX_COVERAGE)
    knobs = np.tile(PROCUREMENT_KNOBS, (B, 1)) if variant == "procurement" else u[:, -N_KNOBS:]
    shares = knob_shares(scenario, state.fleet, demand, knobs, training_need(state))
    return orders, shares


def capacity_orders(scenario: Scenario, state: State, demand: np.ndarray, weights: np.ndarray,
                    target: np.ndarray) -> np.ndarray:
    """(B, K) chips that lift coverage of ``demand`` to ``target``, split by ``weights`` over chips on sale."""
    work = chips_for_demand(scenario, demand)
    usable = available_mask(scenario, state.week) & np.isfinite(work) & (work > 0)
    w = np.where(usable, weights, 0.0)
    total = w.sum(1, keepdims=True)
    split = np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0)
    shortfall = np.maximum(target - coverage(scenario, owned_and_ordered(state), demand, work), 0.0)
    shortfall = np.where(np.isfinite(shortfall), shortfall, 0.0)
    return shortfall[:, None] * split * np.where(usable, work, 0.0)


def scheduling_plan(scenario: Scenario, state: State) -> np.ndarray:
    """(B, K) chips ordered by Scheduling-v0's fixed plan (see SCHEDULING_PLAN_*)."""
    a = scenario.arrays
    candidates = available_mask(scenario, state.week) * a["nvidia_hbm"]
    newest = np.argmax(np.where(candidates > 0, a["available_week"], -np.inf), axis=1)
    due = (state.week % SCHEDULING_PLAN_EVERY_WEEKS == 0) & (candidates.sum(1) > 0)
    chips = SCHEDULING_PLAN_GROWTH * state.fleet.sum(1) * due
    orders = np.zeros(state.fleet.shape)
    orders[np.arange(len(newest)), newest] = np.minimum(chips, scenario.max_order_chips_per_week)
    return orders


def fine_action(scenario: Scenario, order_fraction: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The fine variant's action that decodes to these order fractions (K,) and shares (1+2C, K)."""
    if (shares.sum(0) > 1.0 + 1e-9).any() or (shares < 0).any():
        raise ValueError("each chip type's shares must be >= 0 and sum to at most 1")
    orders = np.where(order_fraction > 0, order_fraction, -1.0)
    return np.concatenate([orders, 2.0 * shares.reshape(-1) - 1.0]).astype(np.float32)


def action_masks(scenario: Scenario, variant: str, state: State) -> np.ndarray:
    """(B, sum(nvec)) bool: a chip not on sale can only take weight level 0; every other level is valid
    (orders beyond cash plus credit are scaled down by the dynamics and reported)."""
    if variant == "fine":
        raise AttributeError("action_masks() exists only for the discrete variants")
    B, K = state.fleet.shape
    masks = []
    if variant != "scheduling":
        weights = np.ones((B, K, LEVELS), dtype=bool)
        weights[:, :, 1:] = available_mask(scenario, state.week)[:, :, None]
        masks += [weights.reshape(B, K * LEVELS), np.ones((B, LEVELS), dtype=bool)]
    if variant != "procurement":
        masks.append(np.ones((B, N_KNOBS * LEVELS), dtype=bool))
    return np.concatenate(masks, axis=1)
