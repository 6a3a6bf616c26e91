"""Observations and action decoding shared by the single and the vector environments."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.core import N_KNOBS, Exogenous, State, available_mask, chip_prices, demand_now, knob_shares
from envs.scenario import Scenario

OBS_CLIP = 10.0
VARIANTS = ("datacenter", "procurement", "scheduling", "fine")
ORDER_LEVELS = 5  # discrete order sizes: 0, 1/4, 1/2, 3/4, 1 of the weekly maximum
KNOB_LEVELS = 5
# Procurement-v0's fixed schedule: 10% of training-capable chips train, balanced prefill/decode,
# half-specialised placement, neutral latency priority.
PROCUREMENT_KNOBS = np.array([0.2, 0.5, 0.5, 0.5])
# Scheduling-v0's fixed purchase plan: every quarter, buy the newest NVIDIA HBM GPU on sale, as many
# chips as this share of the fleet (within the weekly maximum); the agent only schedules.
SCHEDULING_PLAN_EVERY_WEEKS = 13
SCHEDULING_PLAN_GROWTH = 0.25


def observation_size(scenario: Scenario) -> int:
    return 2 + 5 * scenario.n_chips + 3 * scenario.n_classes + 4 + 2


def observation_space(scenario: Scenario) -> spaces.Box:
    n = observation_size(scenario)
    return spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n,), dtype=np.float32)


def _fleet_scale(scenario: Scenario) -> float:
    return 4.0 * max(float(scenario.arrays["initial_fleet"].sum()), float(scenario.max_order_chips_per_week))


def _week(scenario: Scenario, state: State) -> np.ndarray:
    return np.minimum(state.week, scenario.weeks - 1)


def observe(scenario: Scenario, state: State, exo: Exogenous) -> np.ndarray:
    """(B, n) float32 observation, each block scaled to order one and clipped to ±OBS_CLIP.

    Blocks: [week / T, cash / credit limit] | per chip: fleet, on order (queued + in transit),
    on sale now (0/1), price / list price, utilisation last week | per class: this week's
    demand / (10 x initial demand), served fraction and SLO attainment last week | HBM: price
    index, supply / initial supply, our queued stacks / weekly allocation, shock flag |
    training: remaining FLOPs / (slots x job size), nearest deadline / deadline weeks.
    """
    a, B = scenario.arrays, state.fleet.shape[0]
    scale = _fleet_scale(scenario)
    hbm = scenario.hbm
    allocation = hbm["our_allocation_share"] * hbm["supply_stacks_per_week"]
    tr = scenario.training
    active = state.job_flops > 0
    nearest = np.where(active.any(1), np.where(active, state.job_weeks_left, np.inf).min(1), tr["deadline_weeks"])
    blocks = [
        (state.week / scenario.weeks)[:, None],
        (state.cash / scenario.credit_limit_usd)[:, None],
        state.fleet / scale,
        (state.queue + state.pipeline.sum(2)) / scale,
        available_mask(scenario, state.week).astype(float),
        chip_prices(scenario, state.week, state.hbm_price) / a["list_price"],
        state.last_utilisation,
        demand_now(exo, state) / (10.0 * np.maximum(a["demand0"], 1.0)),
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
    n_orders = scenario.n_chips if variant in ("datacenter", "procurement") else 0
    n_knobs = N_KNOBS if variant in ("datacenter", "scheduling") else 0
    if discrete:
        return spaces.MultiDiscrete([ORDER_LEVELS] * n_orders + [KNOB_LEVELS] * n_knobs)
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

    Box: an order entry a > 0 buys a x the weekly maximum (rounded down to whole order units
    by the dynamics), a <= 0 buys nothing; a knob entry maps [-1, 1] to [0, 1] and the built-in
    allocator (:func:`envs.core.knob_shares`) turns the knobs into shares. MultiDiscrete: order
    level l buys l/4 of the weekly maximum, knob level l sets the knob to l/4. Fine: after the K
    order entries come (1+2C) x K share entries, row-major by role (training, prefill per class,
    decode per class); u = (a + 1) / 2 and each chip type's shares are u / max(1, sum of its u).
    """
    B, K = action.shape[0], scenario.n_chips
    max_order = float(scenario.max_order_chips_per_week)
    if variant == "fine":
        u = ((action[:, K:] + 1.0) / 2.0).reshape(B, n_roles(scenario), K)
        return np.maximum(action[:, :K], 0.0) * max_order, u / np.maximum(1.0, u.sum(1, keepdims=True))
    if discrete:
        levels = action.astype(float)
        frac_orders = levels[:, :K] / (ORDER_LEVELS - 1) if variant != "scheduling" else None
        knob_part = levels[:, -N_KNOBS:] / (KNOB_LEVELS - 1) if variant != "procurement" else None
    else:
        frac_orders = np.maximum(action[:, :K], 0.0) if variant != "scheduling" else None
        knob_part = (action[:, -N_KNOBS:] + 1.0) / 2.0 if variant != "procurement" else None
    if frac_orders is None:
        frac_orders = scheduling_plan(scenario, state)
    knobs = np.tile(PROCUREMENT_KNOBS, (B, 1)) if knob_part is None else knob_part
    shares = knob_shares(scenario, state.fleet, demand_now(exo, state) + state.backlog, knobs)
    return frac_orders * max_order, shares


def scheduling_plan(scenario: Scenario, state: State) -> np.ndarray:
    """(B, K) order fractions of Scheduling-v0's fixed plan (see SCHEDULING_PLAN_*)."""
    a = scenario.arrays
    candidates = available_mask(scenario, state.week) * a["nvidia_hbm"]
    newest = np.argmax(np.where(candidates > 0, a["available_week"], -np.inf), axis=1)
    due = (state.week % SCHEDULING_PLAN_EVERY_WEEKS == 0) & (candidates.sum(1) > 0)
    chips = SCHEDULING_PLAN_GROWTH * state.fleet.sum(1) * due
    fractions = np.zeros(state.fleet.shape)
    fractions[np.arange(len(newest)), newest] = np.minimum(chips / scenario.max_order_chips_per_week, 1.0)
    return fractions


def fine_action(scenario: Scenario, order_fraction: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The fine variant's action that decodes to these order fractions (K,) and shares (1+2C, K)."""
    if (shares.sum(0) > 1.0 + 1e-9).any() or (shares < 0).any():
        raise ValueError("each chip type's shares must be >= 0 and sum to at most 1")
    orders = np.where(order_fraction > 0, order_fraction, -1.0)
    return np.concatenate([orders, 2.0 * shares.reshape(-1) - 1.0]).astype(np.float32)


def action_masks(scenario: Scenario, variant: str, state: State) -> np.ndarray:
    """(B, sum(nvec)) bool: order levels for chips not on sale, or costing more than cash plus credit, are masked."""
    B, K = state.fleet.shape
    masks = []
    if variant == "fine":
        raise AttributeError("action_masks() exists only for the discrete variants")
    if variant != "scheduling":
        unit = scenario.arrays["order_unit"]
        prices = chip_prices(scenario, state.week, state.hbm_price)
        headroom = np.maximum(state.cash + scenario.credit_limit_usd, 0.0)
        levels = np.arange(ORDER_LEVELS) / (ORDER_LEVELS - 1)
        chips = np.floor(levels[None, None, :] * scenario.max_order_chips_per_week / unit[None, :, None]) * unit[
            None, :, None]
        ok = (chips * prices[:, :, None] <= headroom[:, None, None]) & available_mask(scenario, state.week)[:, :, None]
        ok[:, :, 0] = True
        masks.append(ok.reshape(B, K * ORDER_LEVELS))
    if variant != "procurement":
        masks.append(np.ones((B, N_KNOBS * KNOB_LEVELS), dtype=bool))
    return np.concatenate(masks, axis=1)
