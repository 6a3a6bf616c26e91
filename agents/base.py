"""The policy interface shared by heuristics, the LP scheduler, the oracle and trained models.

Every policy has SB3's ``predict(obs, state=None, episode_start=None, deterministic=True)``
and returns ``(action, state)``. Heuristics need more than the observation vector: they read
the environment through one documented hook, ``self.env`` (the unwrapped
:class:`envs.DatacenterEnv`), and only what an operator knows at decision time: the scenario,
the current state and the demand observed so far. The perfect-foresight oracle is the one
policy that also reads the future exogenous path (``env.exogenous``), by design.

A heuristic decides a :class:`Plan` (order fractions per chip and either the knobs or explicit
role shares); :func:`to_action` encodes it for whichever variant the environment is.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from envs import DatacenterEnv
from envs.dynamics import KNOBS, LEVELS, MAX_COVERAGE, N_KNOBS, SELL_MAX_SHARE
from envs.functional import (
    available_mask,
    capacity_rules,
    chips_for_demand,
    contract_offer,
    coverage,
    demand_with_backlog,
    knob_shares,
    owned_and_ordered,
    training_need,
)
from envs.spaces import fine_action, weight_entry


@dataclass(frozen=True)
class Plan:
    """One week's decision: ``orders`` (K,) chips per chip type, either ``knobs`` (N_KNOBS,) in [0, 1] or
    ``shares`` ((1+2C), K) of each chip type's serving fleet, and optionally the share of each type's fleet
    to sell. With explicit shares, ``update_knob`` sets the RL update share (the knobs' last entry otherwise).

    Site expansion and renting are given either as the compact action's rules (``expansion``, ``rent_in``,
    ``rent_out`` in [0, 1]: see :func:`envs.dynamics._decode`), which every variant can express, or
    explicitly (``expansion_blocks``, ``rent_in_chips`` (K,), ``rent_out_chips`` (K,)), which only the fine
    variant can. Cluster training contracts are accepted by the rule of the training_pace knob (>= 0.5: accept on
    the rule's chip type), or, on the fine variant, on ``accept_type`` (None with explicit shares: decline).
    """

    orders: np.ndarray
    knobs: np.ndarray | None = None
    shares: np.ndarray | None = None
    sales_fraction: np.ndarray | None = None  # (K,) share of each chip type's fleet to sell this week
    expansion: float = 0.0
    rent_in: float = 0.0
    rent_out: float = 0.0
    expansion_blocks: float | None = None
    rent_in_chips: np.ndarray | None = None
    rent_out_chips: np.ndarray | None = None
    accept_type: int | None = None  # cluster contracts: the chip type to accept this week's offer on (fine only)
    update_knob: float = 0.5  # RL update share / MAX_UPDATE_SHARE, read with explicit shares (fine only)

    @property
    def explicit_capacity(self) -> bool:
        return any(v is not None for v in (self.expansion_blocks, self.rent_in_chips, self.rent_out_chips))


class Policy:
    """Base class: subclasses implement :meth:`plan` (or override :meth:`predict`)."""

    name = "policy"

    def __init__(self, env: gym.Env):
        unwrapped = env.unwrapped
        if not isinstance(unwrapped, DatacenterEnv):
            raise TypeError(f"{type(self).__name__} drives chipalloc environments; got {type(unwrapped).__name__}")
        self.env: DatacenterEnv = unwrapped

    def plan(self) -> Plan:
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        if self.env.state is None:
            raise RuntimeError("reset the environment before asking the policy for an action")
        return to_action(self.env, self.plan()), state


def to_action(env: DatacenterEnv, plan: Plan) -> np.ndarray:
    """Encode a plan in the action space of ``env``'s variant.

    The compact variants order by a capacity target and chip weights; the chips a plan orders map
    onto them exactly (weights proportional to the capacity each chip type adds), except that the
    target saturates at MAX_COVERAGE and the discrete variants round to their levels.
    """
    scenario, state, params = env.scenario, env.state, env.params
    orders = np.maximum(np.asarray(plan.orders, dtype=float), 0.0)
    if env.variant == "fine":
        shares, update_knob = plan.shares, plan.update_knob
        if shares is None:
            update_knob = float(plan.knobs[KNOBS.rl_updates])
            shares = knob_shares(params, state.fleet, demand_with_backlog(params, state),
                                 np.asarray(plan.knobs, dtype=float)[None], training_need(params, state), state.week)[0]
        return fine_action(scenario, np.minimum(orders / scenario.max_order_chips_per_week, 1.0), shares,
                           plan.sales_fraction, *_fine_capacity(env, plan, orders), accept_type=_accept_type(env, plan),
                           update_knob=update_knob)
    if plan.explicit_capacity or plan.accept_type is not None:
        raise ValueError(f"{env.variant} environments expand the site, rent and accept contracts by their rules "
                         f"(Plan.expansion, rent_in, rent_out, the training_pace knob); explicit blocks, rented chips "
                         f"and contract chip types need a ChipAlloc/DatacenterFine-* environment")
    if plan.knobs is None:
        raise ValueError(f"{env.variant} environments take knobs; this plan has only explicit shares "
                         f"(use a ChipAlloc/DatacenterFine-* environment)")
    knobs = np.clip(np.asarray(plan.knobs, dtype=float), 0.0, 1.0)
    if knobs.shape != (N_KNOBS,):
        raise ValueError(f"a plan's knobs are {N_KNOBS} numbers in [0, 1] ({', '.join(KNOBS._fields)}); "
                         f"got shape {knobs.shape}")
    demand = demand_with_backlog(params, state)
    work = chips_for_demand(params, demand, state.week)
    usable = available_mask(params, state.week)[0] & np.isfinite(work[0]) & (work[0] > 0)
    added = np.where(usable, orders / np.where(usable, work[0], 1.0), 0.0)  # coverage each chip type adds
    weights = weight_entry(added / added.max()) if added.max() > 0 else np.zeros_like(added)
    owned = coverage(params, owned_and_ordered(params, state), demand, state.week, work)[0]
    target = min((owned + added.sum()) / MAX_COVERAGE, 1.0) if added.sum() > 0 else 0.0
    capacity = [_sale_entry(env, plan), plan.expansion, plan.rent_in, plan.rent_out]
    parts = {"datacenter": [weights, [target], capacity, knobs], "procurement": [weights, [target], capacity],
             "scheduling": [knobs]}[env.variant]
    u = np.concatenate(parts)
    if env.discrete:
        # The nearest level, or the highest valid level below it where the masks rule it out.
        wanted = np.round(u * (LEVELS - 1)).astype(np.int64)
        valid = env.action_masks().reshape(len(u), LEVELS) & (np.arange(LEVELS)[None, :] <= wanted[:, None])
        return (LEVELS - 1 - np.argmax(valid[:, ::-1], axis=1)).astype(np.int64)
    return (2.0 * u - 1.0).astype(np.float32)


def _accept_type(env: DatacenterEnv, plan: Plan) -> int | None:
    """The chip type the fine action accepts this week's cluster contract offer on: the plan's, or with knobs the
    rule's when the training_pace knob is >= 0.5 (as the compact variants decide)."""
    if plan.accept_type is not None or plan.knobs is None or plan.knobs[KNOBS.training_pace] < 0.5:
        return plan.accept_type
    chosen = int(contract_offer(env.params, env.state)[1][0])
    return chosen if chosen >= 0 else None


def _fine_capacity(env: DatacenterEnv, plan: Plan, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(rent-in fractions of the market's depth (K,), rent-out fractions of the fleet (K,), expansion fraction of
    the weekly maximum of blocks) of the fine action for ``plan``'s explicit or rule-based capacity decisions."""
    scenario, state = env.scenario, env.state
    if plan.explicit_capacity:
        zeros = np.zeros(scenario.n_chips)
        blocks = float(plan.expansion_blocks or 0.0)
        rent_in = zeros if plan.rent_in_chips is None else np.asarray(plan.rent_in_chips, dtype=float)
        rent_out = zeros if plan.rent_out_chips is None else np.asarray(plan.rent_out_chips, dtype=float)
    else:
        rule = capacity_rules(env.params, state, plan.expansion, plan.rent_in, plan.rent_out, orders[None])
        blocks, rent_in, rent_out = float(rule[0][0]), rule[1][0], rule[2][0]
    depth = float(scenario.rental["max_chips_per_week"])
    most_blocks = float(scenario.site["max_blocks_per_week"])
    fleet = state.fleet[0]
    # A hair above the whole number, so float32 rounding cannot decode one chip or block fewer.
    in_fraction = np.minimum(rent_in * (1 + 1e-6) / depth, 1.0) if depth > 0 else np.zeros_like(rent_in)
    out_fraction = np.minimum(np.where(fleet > 0, rent_out * (1 + 1e-6) / np.maximum(fleet, 1.0), 0.0), 1.0)
    expansion = min(blocks * (1 + 1e-6) / most_blocks, 1.0) if most_blocks > 0 else 0.0
    return in_fraction, out_fraction, expansion


def _sale_entry(env: DatacenterEnv, plan: Plan) -> float:
    """The compact action's sale entry u in [0, 1]: it sells max(2u - 1, 0) x SELL_MAX_SHARE of the oldest chip
    type's fleet, so a plan selling another type, or more than that share, cannot be expressed and raises."""
    if plan.sales_fraction is None or not np.any(plan.sales_fraction > 0):
        return 0.0
    state = env.state
    owned = state.fleet[0] > 0
    oldest = int(np.argmax(np.where(owned, state.age_weeks[0], -1.0)))
    others = np.delete(plan.sales_fraction, oldest)
    if np.any(others > 0) or plan.sales_fraction[oldest] > SELL_MAX_SHARE:
        raise ValueError(f"the {env.variant} action sells at most {SELL_MAX_SHARE:.0%} of the oldest chip type's "
                         f"fleet a week; use a ChipAlloc/DatacenterFine-* environment for other sales")
    return float(0.5 + 0.5 * plan.sales_fraction[oldest] / SELL_MAX_SHARE)
