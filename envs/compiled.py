"""The NumPy fast path: action decoding, the weekly transition and the observation, compiled with Numba.

:mod:`envs.core` is the reference: one pure transition over a batch, written against the array
API so that torch can step it on a GPU. On NumPy its ~150 small array calls a week cost about
0.5 ms whatever the batch size, which dominates a single environment. This module computes the
same week with scalar loops over chips, classes and job slots, compiled once per machine (Numba
caches the machine code in ``__pycache__``), so a datacenter costs microseconds.

Everything a kernel touches is a float64 array of fixed layout: the scenario as four parameter
tables (per chip, per class and chip, per class, scalars), the state as one row per datacenter
(:data:`STATE_FIELDS`), the exogenous path as (B, T, C + 5 + K), and info as one row per
datacenter (:data:`INFO_FIELDS`). :mod:`envs.simulator` converts them to and from
:class:`envs.core.State`, :class:`envs.core.Exogenous` and info dicts. Sums may add in another
order than NumPy's, so results agree with the reference to rounding (tests/test_compiled.py).
``NUMBA_DISABLE_JIT=1`` runs these functions as plain Python, for stepping through with a debugger.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from envs.core import AFFINITY_SHARPNESS, BACKLOG_WEEKS, MAX_TRAINING_SHARE, WEEK_S, Exogenous
from envs.scenario import Scenario
from envs.spaces import (
    LEVELS,
    MAX_COVERAGE,
    OBS_CLIP,
    PROCUREMENT_KNOBS,
    SCHEDULING_PLAN_EVERY_WEEKS,
    SCHEDULING_PLAN_GROWTH,
    VARIANTS,
    WEIGHT_SHARPNESS,
    fleet_scale,
)

VARIANT_CODES = {name: i for i, name in enumerate(VARIANTS)}  # the kernels' ``variant`` argument

# Parameter tables: rows of the per-chip (P, K), per-class-and-chip (P, C, K) and per-class (P, C) tables.
CHIP_PARAMS = ("available_week", "list_price", "tdp_w", "hbm_stacks", "order_unit", "sram_cap",
               "train_flops_per_chip_s", "nvidia_hbm")
AVAILABLE_WEEK, LIST_PRICE, TDP_W, HBM_STACKS, ORDER_UNIT, SRAM_CAP, TRAIN_FLOPS, NVIDIA_HBM = range(8)
CLASS_CHIP_PARAMS = ("fits", "replica_chips", "prefill_rate", "serving_decode_rate", "prefill_latency_s", "tpot_s",
                     "kv_bytes_per_request", "chip_s_per_prompt_token", "chip_s_per_output_token")
FITS, REPLICA_CHIPS, PREFILL_RATE, DECODE_RATE, PREFILL_LATENCY, TPOT, KV_BYTES, S_PER_PROMPT, S_PER_OUTPUT = range(9)
CLASS_PARAMS = ("input_tokens", "output_tokens", "tpot_slo_s", "ttft_slo_s", "price_per_token", "demand0",
                "carry_over", "latency_class", "median_prefill_rate", "median_decode_rate")
IN_TOKENS, OUT_TOKENS, TPOT_SLO, TTFT_SLO, PRICE, DEMAND0, CARRY, LATENCY, MEDIAN_PREFILL, MEDIAN_DECODE = range(10)
(WEEKS, CREDIT, ALLOCATION_SHARE, SUPPLY0, LEAD, DEPRECIATION_YEARS, FAILURES_PER_YEAR, ELASTICITY, SMOOTHING,
 HBM_COST_SHARE, PRICE_DECLINE, PUE, ENERGY_PRICE, MAINTENANCE, INTEREST, REWARD_SCALE, KV_LINK, JOB_VALUE,
 JOB_FLOPS, DEADLINE, SLOTS, MAX_ORDER, MAX_STACKS, FLEET_SCALE) = range(24)


def scenario_tables(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The scenario as the kernels' four float64 parameter tables (per chip, per class x chip, per class, scalars)."""
    a, hbm, tr = scenario.arrays, scenario.hbm, scenario.training
    scalars = [scenario.weeks, scenario.credit_limit_usd, hbm["our_allocation_share"], hbm["supply_stacks_per_week"],
               scenario.base_lead_weeks, scenario.depreciation_years, scenario.failure_rate_per_year,
               hbm["price_elasticity"], hbm["price_smoothing"], hbm["hbm_cost_share"],
               scenario.price_decline_per_year, scenario.pue, scenario.energy_usd_per_kwh,
               scenario.maintenance_per_year, scenario.interest_rate_per_year, scenario.reward_scale_usd,
               float(a["kv_link_bytes_per_s"]), tr["value_per_job_usd"], tr["flops_per_job"], tr["deadline_weeks"],
               tr["slots"], scenario.max_order_chips_per_week, float(a["hbm_stacks"].max()), fleet_scale(scenario)]
    return (np.stack([a[k] for k in CHIP_PARAMS]).astype(np.float64),
            np.stack([a[k] for k in CLASS_CHIP_PARAMS]).astype(np.float64),
            np.stack([a[k] for k in CLASS_PARAMS]).astype(np.float64),
            np.array(scalars, dtype=np.float64))


# One state row per datacenter: (name, shape in terms of K chips, C classes, J job slots, L transit weeks).
STATE_FIELDS = (("week", ""), ("cash", ""), ("hbm_price", ""), ("bankrupt", ""), ("fleet", "K"),
                ("age_weeks", "K"), ("queue", "K"), ("queue_value", "K"), ("pipeline", "KL"),
                ("pipeline_value", "KL"), ("book_value", "K"), ("depreciation_rate", "K"), ("backlog", "C"),
                ("job_flops", "J"), ("job_weeks_left", "J"), ("job_value", "J"), ("last_served_fraction", "C"),
                ("last_attainment", "C"), ("last_utilisation", "K"))
(S_WEEK, S_CASH, S_HBM_PRICE, S_BANKRUPT, S_FLEET, S_AGE, S_QUEUE, S_QUEUE_VALUE, S_PIPELINE, S_PIPELINE_VALUE,
 S_BOOK, S_DEPRECIATION, S_BACKLOG, S_JOB_FLOPS, S_JOB_WEEKS, S_JOB_VALUE, S_SERVED, S_ATTAINMENT,
 S_UTILISATION) = range(19)

# One info row per datacenter, scalars first (the single env reads them in one call); the kind says how
# the env hands a value out (float, int or bool).
INFO_FIELDS = (("revenue", "", "f"), ("revenue_training", "", "f"), ("capex", "", "f"), ("opex", "", "f"),
               ("power_cost", "", "f"), ("maintenance", "", "f"), ("interest", "", "f"), ("depreciation", "", "f"),
               ("write_off", "", "f"), ("profit", "", "f"), ("cash", "", "f"), ("hbm_supply", "", "f"),
               ("hbm_allocation", "", "f"), ("hbm_drawn", "", "f"), ("hbm_price", "", "f"), ("hbm_exposure", "", "f"),
               ("usd_per_mtok", "", "f"), ("training_flops_done", "", "f"), ("training_jobs_completed", "", "i"),
               ("training_jobs_missed", "", "i"), ("training_jobs_accepted", "", "b"),
               ("training_jobs_rejected", "", "b"), ("bankrupt", "", "b"), ("reward", "", "f"),
               ("revenue_per_class", "C", "f"), ("demand", "C", "f"), ("served", "C", "f"), ("unmet", "C", "f"),
               ("prefill_capacity", "C", "f"), ("decode_capacity", "C", "f"), ("slo_attainment", "C", "f"),
               ("ttft_s", "C", "f"), ("kv_crossing", "C", "f"), ("utilisation", "K", "f"), ("fleet", "K", "f"),
               ("ordered", "K", "f"), ("orders_unavailable", "K", "f"), ("orders_clipped", "K", "f"),
               ("arrived", "K", "f"), ("failed", "K", "f"), ("in_queue", "K", "f"), ("in_transit", "K", "f"),
               ("train_chips", "K", "f"), ("prefill_chips", "CK", "f"), ("decode_chips", "CK", "f"))
(I_REVENUE, I_REVENUE_TRAINING, I_CAPEX, I_OPEX, I_POWER, I_MAINTENANCE, I_INTEREST, I_DEPRECIATION, I_WRITE_OFF,
 I_PROFIT, I_CASH, I_SUPPLY, I_ALLOCATION, I_DRAWN, I_HBM_PRICE, I_EXPOSURE, I_USD_PER_MTOK, I_TRAIN_FLOPS,
 I_COMPLETED, I_MISSED, I_ACCEPTED, I_REJECTED, I_BANKRUPT, I_REWARD, I_REVENUE_CLASS, I_DEMAND, I_SERVED, I_UNMET,
 I_PREFILL_CAP, I_DECODE_CAP, I_ATTAINMENT, I_TTFT, I_CROSSING, I_UTILISATION, I_FLEET, I_ORDERED, I_UNAVAILABLE,
 I_CLIPPED, I_ARRIVED, I_FAILED, I_QUEUE, I_TRANSIT, I_TRAIN_CHIPS, I_PREFILL_CHIPS, I_DECODE_CHIPS) = range(45)
N_INFO_SCALARS = I_REVENUE_CLASS

# Exogenous columns per week: demand of each class, then these five, then a failure uniform per chip.
X_SUPPLY, X_OTHER, X_SHOCK, X_ARRIVAL, X_JOB_FLOPS = range(5)


def layout(fields: tuple, dims: dict[str, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Offsets (n_fields + 1,) of ``fields`` in a row, and each field's shape, for sizes ``dims`` (K, C, J, L)."""
    shapes = [tuple(dims[d] for d in f[1]) for f in fields]
    offsets = np.zeros(len(fields) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([math.prod(s) for s in shapes])
    return offsets, shapes


def pack_exogenous(exo: Exogenous) -> np.ndarray:
    """(B, T, C + 5 + K) float64: the exogenous paths in the kernels' column order."""
    columns = [exo.hbm_supply, exo.other_hbm_demand, exo.hbm_shock, exo.job_arrival, exo.job_flops]
    return np.concatenate([exo.demand, np.stack(columns, axis=2), exo.failure_u], axis=2).astype(np.float64)


@njit(cache=True)
def _demand_with_backlog(row, so, x, C):
    """(C,) this week's demand (the exogenous row ``x``) plus the carried-over backlog of state ``row``."""
    dem = np.empty(C)
    for c in range(C):
        dem[c] = x[c] + row[so[S_BACKLOG] + c]
    return dem


@njit(cache=True)
def _chips_for_demand(dem, pck, pc):
    """W_k(D) of :func:`envs.sizing.chips_for_demand` for one datacenter."""
    C, K = pck.shape[1], pck.shape[2]
    work = np.empty(K)
    for k in range(K):
        misfit, prefill, decode = 0.0, 0.0, 0.0
        for c in range(C):
            if dem[c] > 0:
                misfit += 1.0 - pck[FITS, c, k]
            prefill += dem[c] * (pc[IN_TOKENS, c] / pc[OUT_TOKENS, c]) * pck[S_PER_PROMPT, c, k]
            decode += dem[c] * pck[S_PER_OUTPUT, c, k]
        work[k] = np.inf if misfit > 0 else prefill + decode
    return work


@njit(cache=True)
def _coverage(chips, dem, work):
    """:func:`envs.sizing.coverage` for one datacenter."""
    cover, total = 0.0, 0.0
    for k in range(chips.shape[0]):
        if math.isfinite(work[k]) and work[k] > 0:
            cover += chips[k] / work[k]
    for c in range(dem.shape[0]):
        total += dem[c]
    return cover if total > 0 else np.inf


@njit(cache=True)
def _available(week, pk, k):
    return week >= pk[AVAILABLE_WEEK, k]


@njit(cache=True)
def _chip_price(week, hbm_price, pk, ps, k):
    """:func:`envs.core.chip_prices` of chip k."""
    years = max(week - pk[AVAILABLE_WEEK, k], 0.0) / 52.0
    price = pk[LIST_PRICE, k] * (1.0 - ps[PRICE_DECLINE]) ** years
    hbm_chip = 1.0 if pk[HBM_STACKS, k] > 0 else 0.0
    return price * (1.0 + ps[HBM_COST_SHARE] * (hbm_price - 1.0) * hbm_chip)


@njit(cache=True)
def _in_transit(row, so, L, k):
    total = 0.0
    for j in range(L):
        total += row[so[S_PIPELINE] + k * L + j]
    return total


@njit(cache=True)
def _owned_and_ordered(row, so, K, L):
    out = np.empty(K)
    for k in range(K):
        out[k] = row[so[S_FLEET] + k] + row[so[S_QUEUE] + k] + _in_transit(row, so, L, k)
    return out


@njit(cache=True)
def _knob_shares(fleet, dem, knobs, need, pk, pck, pc):
    """:func:`envs.core.knob_shares` for one datacenter: (1 + 2C, K) shares."""
    C, K = pck.shape[1], pck.shape[2]
    fleet_flops = 0.0
    for k in range(K):
        fleet_flops += fleet[k] * pk[TRAIN_FLOPS, k]
    pace = 2.0 * knobs[0] * need / max(fleet_flops, 1e-9)
    train = np.empty(K)
    for k in range(K):
        train[k] = min(pace, MAX_TRAINING_SHARE) * (1.0 if pk[TRAIN_FLOPS, k] > 0 else 0.0)
    mean_p, mean_d = np.empty(C), np.empty(C)
    for c in range(C):
        owned, sum_p, sum_d = 0.0, 0.0, 0.0
        for k in range(K):
            weight = fleet[k] * (1.0 - train[k]) * pck[FITS, c, k]
            owned += weight
            sum_p += weight * pck[PREFILL_RATE, c, k]
            sum_d += weight * pck[DECODE_RATE, c, k]
        mean_p[c] = sum_p / max(owned, 1e-9) if owned > 0 else pc[MEDIAN_PREFILL, c]
        mean_d[c] = sum_d / max(owned, 1e-9) if owned > 0 else pc[MEDIAN_DECODE, c]
    gamma = AFFINITY_SHARPNESS * knobs[2]
    shares = np.empty((1 + 2 * C, K))
    total_p, total_d = np.zeros(K), np.zeros(K)
    for c in range(C):
        need_p = dem[c] * (pc[IN_TOKENS, c] / pc[OUT_TOKENS, c]) / mean_p[c] * 2.0 * knobs[1]
        need_d = dem[c] / mean_d[c] * 2.0 * (1.0 - knobs[1])
        lat = pc[LATENCY, c]
        priority = lat * (0.5 + knobs[3]) + (1.0 - lat) * (1.5 - knobs[3])
        for k in range(K):
            fits = pck[FITS, c, k]
            if fits == 0.0:
                shares[1 + c, k] = shares[1 + C + c, k] = 0.0
                continue
            rel_p = pck[PREFILL_RATE, c, k] / mean_p[c] * fits
            rel_d = pck[DECODE_RATE, c, k] / mean_d[c] * fits
            # advantage ** gamma with advantage = sqrt(rel_p / rel_d), in one power instead of a root and two
            tilt = max(rel_p / max(rel_d, 1e-12), 1e-24) ** (0.5 * gamma) if rel_d > 0 else 1.0
            shares[1 + c, k] = need_p * priority * fits * tilt
            shares[1 + C + c, k] = need_d * priority * fits / tilt
            total_p[k] += shares[1 + c, k]
            total_d[k] += shares[1 + C + c, k]
    for k in range(K):
        total = total_p[k] + total_d[k]
        serve = (1.0 - train[k]) / (total if total > 0 else 1.0)
        shares[0, k] = train[k]
        for r in range(1, 1 + 2 * C):
            shares[r, k] *= serve
    return shares


@njit(cache=True)
def _training_need(row, so, J):
    need = 0.0
    for j in range(J):
        flops = row[so[S_JOB_FLOPS] + j]
        if flops > 0:
            need += flops / (max(row[so[S_JOB_WEEKS] + j], 1.0) * WEEK_S)
    return need


@njit(cache=True)
def _decode(variant, discrete, act, row, so, dem, pk, pck, pc, ps, K, C, J, L):
    """:func:`envs.spaces.decode` for one datacenter: (orders (K,), shares (1 + 2C, K))."""
    R = 1 + 2 * C
    week = row[so[S_WEEK]]
    orders = np.zeros(K)
    if variant == 3:  # fine
        shares = np.empty((R, K))
        for k in range(K):
            orders[k] = max(act[k], 0.0) * ps[MAX_ORDER]
            total = 0.0
            for r in range(R):
                shares[r, k] = (act[K + r * K + k] + 1.0) / 2.0
                total += shares[r, k]
            for r in range(R):
                shares[r, k] /= max(1.0, total)
        return orders, shares
    u = np.empty(act.shape[0])
    for i in range(act.shape[0]):
        u[i] = act[i] / (LEVELS - 1) if discrete else (act[i] + 1.0) / 2.0
    if variant == 2:  # scheduling: the fixed purchase plan of envs.spaces.scheduling_plan
        newest, newest_week, fleet_total = 0, -np.inf, 0.0
        for k in range(K):
            fleet_total += row[so[S_FLEET] + k]
            if _available(week, pk, k) and pk[NVIDIA_HBM, k] > 0 and pk[AVAILABLE_WEEK, k] > newest_week:
                newest, newest_week = k, pk[AVAILABLE_WEEK, k]
        if int(week) % SCHEDULING_PLAN_EVERY_WEEKS == 0 and newest_week > -np.inf:
            orders[newest] = min(SCHEDULING_PLAN_GROWTH * fleet_total, ps[MAX_ORDER])
    else:  # compact: buy the shortfall to the capacity target, split by chip weights
        work = _chips_for_demand(dem, pck, pc)
        weights = np.zeros(K)
        total = 0.0
        for k in range(K):
            if _available(week, pk, k) and math.isfinite(work[k]) and work[k] > 0:
                weights[k] = math.exp(WEIGHT_SHARPNESS * (u[k] - 1.0)) - math.exp(-WEIGHT_SHARPNESS)
                total += weights[k]
        shortfall = max(u[K] * MAX_COVERAGE - _coverage(_owned_and_ordered(row, so, K, L), dem, work), 0.0)
        if total > 0 and math.isfinite(shortfall):
            for k in range(K):
                if weights[k] != 0.0:
                    orders[k] = shortfall * (weights[k] / total) * work[k]
    knobs = PROCUREMENT_KNOBS.copy() if variant == 1 else u[u.shape[0] - 4:]
    fleet = row[so[S_FLEET]:so[S_FLEET] + K]
    return orders, _knob_shares(fleet, dem, knobs, _training_need(row, so, J), pk, pck, pc)


@njit(cache=True)
def _transition(row, new, info, so, io, exo, dem, orders, shares, pk, pck, pc, ps, K, C, J, L):
    """:func:`envs.core.step` for one datacenter: writes the next state row and the info row.
    ``dem`` is this week's demand plus backlog."""
    T = exo.shape[0]
    week = row[so[S_WEEK]]
    t = min(int(week), T - 1)
    x = exo[t]
    new[:] = row
    fleet, age = new[so[S_FLEET]:so[S_FLEET] + K], new[so[S_AGE]:so[S_AGE] + K]
    queue, queue_value = new[so[S_QUEUE]:so[S_QUEUE] + K], new[so[S_QUEUE_VALUE]:so[S_QUEUE_VALUE] + K]
    pipeline = new[so[S_PIPELINE]:so[S_PIPELINE] + K * L].reshape((K, L))
    pipeline_value = new[so[S_PIPELINE_VALUE]:so[S_PIPELINE_VALUE] + K * L].reshape((K, L))
    book, dep = new[so[S_BOOK]:so[S_BOOK] + K], new[so[S_DEPRECIATION]:so[S_DEPRECIATION] + K]
    cash, hbm_price = row[so[S_CASH]], row[so[S_HBM_PRICE]]

    # 1. Orders: whole order units of chips on sale, scaled down to fit cash plus credit.
    wanted, prices = np.empty(K), np.empty(K)
    capex_wanted = 0.0
    for k in range(K):
        unit = pk[ORDER_UNIT, k]
        want = math.floor(max(orders[k], 0.0) / unit) * unit
        unavailable = 0.0 if _available(week, pk, k) else want
        wanted[k] = want - unavailable
        info[io[I_UNAVAILABLE] + k] = unavailable
        prices[k] = _chip_price(week, hbm_price, pk, ps, k)
        capex_wanted += wanted[k] * prices[k]
    headroom = max(cash + ps[CREDIT], 0.0)
    scale = headroom / max(capex_wanted, 1e-9) if capex_wanted > headroom else 1.0
    capex = 0.0
    for k in range(K):
        unit = pk[ORDER_UNIT, k]
        bought = math.floor(wanted[k] * scale / unit) * unit
        capex += bought * prices[k]
        queue[k] += bought
        queue_value[k] += bought * prices[k]
        info[io[I_ORDERED] + k] = bought
        info[io[I_CLIPPED] + k] = wanted[k] - bought

    # 2. Supply: HBM allocation shrinks in a short market; SRAM chips have a wafer cap.
    supply, other = x[C + X_SUPPLY], x[C + X_OTHER]
    fill = min(supply / max(other, 1.0), 1.0)
    allocation = ps[ALLOCATION_SHARE] * supply * fill
    stacks_needed = 0.0
    for k in range(K):
        stacks_needed += queue[k] * pk[HBM_STACKS, k]
    hbm_share = min(allocation / max(stacks_needed, 1e-9), 1.0)
    slot = max(int(ps[LEAD]) - 1, 0)
    hbm_drawn, write_off = 0.0, 0.0
    p_fail = ps[FAILURES_PER_YEAR] / 52.0
    for k in range(K):
        stacks = pk[HBM_STACKS, k]
        release = math.floor(queue[k] * hbm_share) if stacks > 0 else min(queue[k], pk[SRAM_CAP, k])
        hbm_drawn += release * stacks
        released_value = queue_value[k] * (release / max(queue[k], 1e-9) if queue[k] > 0 else 0.0)
        queue[k] -= release
        queue_value[k] -= released_value
        # 3. Transit: released chips enter at the base lead time; slot 0 arrives now.
        pipeline[k, slot] += release
        pipeline_value[k, slot] += released_value
        arrived, arrived_value = pipeline[k, 0], pipeline_value[k, 0]
        for j in range(L - 1):
            pipeline[k, j] = pipeline[k, j + 1]
            pipeline_value[k, j] = pipeline_value[k, j + 1]
        pipeline[k, L - 1] = 0.0
        pipeline_value[k, L - 1] = 0.0
        old = fleet[k]
        fleet[k] = old + arrived
        age[k] = age[k] * old / max(fleet[k], 1e-9) if fleet[k] > 0 else 0.0
        book[k] += arrived_value
        dep[k] += arrived_value / (ps[DEPRECIATION_YEARS] * 52.0)
        info[io[I_ARRIVED] + k] = arrived
        # 4. Failures: stochastic rounding with the pre-drawn uniform.
        failed = min(math.floor(fleet[k] * p_fail + x[C + 5 + k]), fleet[k])
        kept = 1.0 - failed / max(fleet[k], 1e-9) if fleet[k] > 0 else 0.0
        write_off += book[k] * (1.0 - kept)
        fleet[k] -= failed
        book[k] *= kept
        dep[k] *= kept
        info[io[I_FAILED] + k] = failed
        info[io[I_QUEUE] + k] = queue[k]
        info[io[I_TRANSIT] + k] = _in_transit(new, so, L, k)

    # 5. The HBM price index moves toward its excess-demand target.
    excess = (other + stacks_needed) / max(supply, 1.0) - 1.0
    target = max(1.0 + ps[ELASTICITY] * excess, 0.5)
    new_hbm_price = hbm_price + ps[SMOOTHING] * (target - hbm_price)

    # 6-7. Whole replicas from the shares, then serving.
    train = np.empty(K)
    prefill, decode = info[io[I_PREFILL_CHIPS]:io[I_PREFILL_CHIPS + 1]], info[io[I_DECODE_CHIPS]:io[I_DECODE_CHIPS + 1]]
    for k in range(K):
        train[k] = math.floor(shares[0, k] * fleet[k] * (1.0 if pk[TRAIN_FLOPS, k] > 0 else 0.0))
        info[io[I_TRAIN_CHIPS] + k] = train[k]
        for c in range(C):
            n = max(pck[REPLICA_CHIPS, c, k], 1.0)
            prefill[c * K + k] = math.floor(shares[1 + c, k] * fleet[k] * pck[FITS, c, k] / n) * n
            decode[c * K + k] = math.floor(shares[1 + C + c, k] * fleet[k] * pck[FITS, c, k] / n) * n
    served_all = np.empty(C)
    load_p, load_d = np.empty(C), np.empty(C)
    revenue = 0.0
    for c in range(C):
        demand, dem_eff = x[c], dem[c]
        prefill_sum, decode_cap = 0.0, 0.0
        for k in range(K):
            prefill_sum += prefill[c * K + k] * pck[PREFILL_RATE, c, k]
            decode_cap += decode[c * K + k] * pck[DECODE_RATE, c, k]
        prefill_cap = prefill_sum * (pc[OUT_TOKENS, c] / pc[IN_TOKENS, c])
        overlap, kv_req, link, tpot_ok, service = 0.0, 0.0, 0.0, 0.0, 0.0
        for k in range(K):
            p_share = prefill[c * K + k] * pck[PREFILL_RATE, c, k] / max(prefill_sum, 1e-9)
            d_share = decode[c * K + k] * pck[DECODE_RATE, c, k] / max(decode_cap, 1e-9)
            overlap += min(p_share, d_share)
            kv_req += p_share * pck[KV_BYTES, c, k]
            link += prefill[c * K + k]
            tpot_ok += d_share * (1.0 if pck[TPOT, c, k] <= pc[TPOT_SLO, c] else 0.0)
            service += p_share * pck[PREFILL_LATENCY, c, k]
        link *= ps[KV_LINK]
        crossing = min(max(1.0 - overlap, 0.0), 1.0)  # share of KV caches that move between chip types
        transfer_cap = link / max(crossing * kv_req, 1e-9) * pc[OUT_TOKENS, c] if crossing > 0 else np.inf
        served = min(min(dem_eff, prefill_cap), min(decode_cap, transfer_cap))
        rho = min(served / max(prefill_cap, 1e-9) if prefill_cap > 0 else 0.0, 0.99)
        ttft = service + rho * service / (2.0 * (1.0 - rho)) + crossing * kv_req / ps[KV_LINK]
        ttft_ok = min(pc[TTFT_SLO, c] / max(ttft, 1e-9), 1.0) if served > 0 else 1.0
        attainment = tpot_ok * ttft_ok if served > 0 else 1.0
        revenue_class = served * attainment * pc[PRICE, c] * WEEK_S
        revenue += revenue_class
        unmet = dem_eff - served
        new[so[S_BACKLOG] + c] = min(unmet * pc[CARRY, c], BACKLOG_WEEKS * demand)
        new[so[S_SERVED] + c] = served / max(dem_eff, 1e-9) if dem_eff > 0 else 1.0
        new[so[S_ATTAINMENT] + c] = attainment
        served_all[c] = served
        load_p[c] = served / max(prefill_cap, 1e-9) if prefill_cap > 0 else 0.0
        load_d[c] = served / max(decode_cap, 1e-9) if decode_cap > 0 else 0.0
        for key, value in ((I_REVENUE_CLASS, revenue_class), (I_DEMAND, dem_eff), (I_SERVED, served),
                           (I_UNMET, unmet), (I_PREFILL_CAP, prefill_cap), (I_DECODE_CAP, decode_cap),
                           (I_ATTAINMENT, attainment), (I_TTFT, ttft), (I_CROSSING, crossing)):
            info[io[key] + c] = value

    # 8. Training: earliest deadline first over the job slots; paid on completion before the deadline.
    train_cap = 0.0
    for k in range(K):
        train_cap += train[k] * pk[TRAIN_FLOPS, k]
    train_cap *= WEEK_S
    job_flops = new[so[S_JOB_FLOPS]:so[S_JOB_FLOPS] + J]
    weeks_left = new[so[S_JOB_WEEKS]:so[S_JOB_WEEKS] + J]
    job_value = new[so[S_JOB_VALUE]:so[S_JOB_VALUE] + J]
    order = np.arange(J)
    keys = np.empty(J)
    for j in range(J):
        keys[j] = weeks_left[j] if job_flops[j] > 0 else np.inf
    for i in range(1, J):  # stable insertion sort by deadline
        j = i
        while j > 0 and keys[order[j - 1]] > keys[order[j]]:
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1
    cumulative, train_used, revenue_training = 0.0, 0.0, 0.0
    completed_n, missed_n = 0.0, 0.0
    for i in range(J):
        j = order[i]
        rem = job_flops[j]
        cumulative += rem
        got = min(max(train_cap - (cumulative - rem), 0.0), rem)
        train_used += got
        active = rem > 0
        remaining = rem - got
        completed = active and remaining <= 1e-6 * max(rem, 1.0)
        left = weeks_left[j] - 1.0
        missed = active and not completed and left <= 0
        if completed:
            revenue_training += job_value[j]
            completed_n += 1.0
        if missed:
            missed_n += 1.0
        if completed or missed:
            job_flops[j], job_value[j], weeks_left[j] = 0.0, 0.0, 0.0
        else:
            job_flops[j], weeks_left[j] = remaining, left
    first_empty, any_empty = 0, False
    for j in range(J):
        if job_flops[j] <= 0 and not any_empty:
            first_empty, any_empty = j, True
    arrived_job = x[C + X_ARRIVAL] > 0
    can_take = arrived_job and any_empty
    if can_take:
        arriving = x[C + X_JOB_FLOPS]
        job_flops[first_empty] = arriving
        job_value[first_empty] = ps[JOB_VALUE] * arriving / ps[JOB_FLOPS]
        weeks_left[first_empty] = ps[DEADLINE]

    # 9-11. Utilisation, operating cost, money.
    train_load = train_used / max(train_cap, 1e-9) if train_cap > 0 else 0.0
    energy, maintenance, depreciation, fleet_stacks, fleet_total = 0.0, 0.0, 0.0, 0.0, 0.0
    for k in range(K):
        busy_p, busy_d = 0.0, 0.0
        for c in range(C):
            busy_p += prefill[c * K + k] * load_p[c]
            busy_d += decode[c * K + k] * load_d[c]
        busy = busy_p + busy_d + train[k] * train_load
        utilisation = busy / max(fleet[k], 1e-9) if fleet[k] > 0 else 0.0
        new[so[S_UTILISATION] + k] = utilisation
        info[io[I_UTILISATION] + k] = utilisation
        info[io[I_FLEET] + k] = fleet[k]
        energy += fleet[k] * utilisation * pk[TDP_W, k]
        maintenance += fleet[k] * pk[LIST_PRICE, k]
        depreciation += dep[k]
        fleet_stacks += fleet[k] * pk[HBM_STACKS, k]
        fleet_total += fleet[k]
        book[k] -= dep[k]
        age[k] = age[k] + 1.0 if fleet[k] > 0 else 0.0
    energy_kwh = energy * ps[PUE] * WEEK_S / 3.6e6
    power_cost = energy_kwh * ps[ENERGY_PRICE]
    maintenance = maintenance * ps[MAINTENANCE] / 52.0
    interest = max(-cash, 0.0) * ps[INTEREST] / 52.0
    revenue = revenue + revenue_training
    opex = power_cost + maintenance + interest
    new_cash = cash - capex + revenue - opex
    profit = revenue - opex - depreciation - write_off
    bankrupt = new_cash < -ps[CREDIT]
    tokens = 0.0
    for c in range(C):
        tokens += served_all[c]
    tokens *= WEEK_S
    new[so[S_WEEK]] = week + 1.0
    new[so[S_CASH]] = new_cash
    new[so[S_HBM_PRICE]] = new_hbm_price
    new[so[S_BANKRUPT]] = 1.0 if bankrupt else 0.0
    for key, value in ((I_REVENUE, revenue), (I_REVENUE_TRAINING, revenue_training), (I_CAPEX, capex),
                       (I_OPEX, opex), (I_POWER, power_cost), (I_MAINTENANCE, maintenance), (I_INTEREST, interest),
                       (I_DEPRECIATION, depreciation), (I_WRITE_OFF, write_off), (I_PROFIT, profit),
                       (I_CASH, new_cash), (I_SUPPLY, supply), (I_ALLOCATION, allocation), (I_DRAWN, hbm_drawn),
                       (I_HBM_PRICE, new_hbm_price),
                       (I_EXPOSURE, fleet_stacks / max(fleet_total * ps[MAX_STACKS], 1.0)),
                       (I_USD_PER_MTOK, (opex + depreciation) / max(tokens, 1.0) * 1e6 if tokens > 0 else 0.0),
                       (I_TRAIN_FLOPS, train_used), (I_COMPLETED, completed_n), (I_MISSED, missed_n),
                       (I_ACCEPTED, 1.0 if can_take else 0.0),
                       (I_REJECTED, 1.0 if arrived_job and not can_take else 0.0),
                       (I_BANKRUPT, 1.0 if bankrupt else 0.0), (I_REWARD, profit / ps[REWARD_SCALE])):
        info[io[key]] = value


@njit(cache=True)
def _observe(row, obs, so, exo, pk, pck, pc, ps, K, C, J, L):
    """:func:`envs.spaces.observe` for one datacenter, into ``obs`` (float32)."""
    T = exo.shape[0]
    week = row[so[S_WEEK]]
    t = min(int(week), T - 1)
    x, past = exo[t], exo[max(t - 4, 0)]
    wanted = _demand_with_backlog(row, so, x, C)
    work = _chips_for_demand(wanted, pck, pc)
    fleet = row[so[S_FLEET]:so[S_FLEET] + K]
    out = np.empty(obs.shape[0])
    out[0] = week / ps[WEEKS]
    out[1] = row[so[S_CASH]] / ps[CREDIT]
    out[2] = min(_coverage(fleet, wanted, work), OBS_CLIP) / MAX_COVERAGE
    out[3] = min(_coverage(_owned_and_ordered(row, so, K, L), wanted, work), OBS_CLIP) / MAX_COVERAGE
    queued_stacks = 0.0
    for k in range(K):
        out[4 + k] = fleet[k] / ps[FLEET_SCALE]
        out[4 + K + k] = (row[so[S_QUEUE] + k] + _in_transit(row, so, L, k)) / ps[FLEET_SCALE]
        out[4 + 2 * K + k] = 1.0 if _available(week, pk, k) else 0.0
        out[4 + 3 * K + k] = _chip_price(week, row[so[S_HBM_PRICE]], pk, ps, k) / pk[LIST_PRICE, k]
        out[4 + 4 * K + k] = row[so[S_UTILISATION] + k]
        queued_stacks += row[so[S_QUEUE] + k] * pk[HBM_STACKS, k]
    i = 4 + 5 * K
    for c in range(C):
        out[i + c] = x[c] / (10.0 * max(pc[DEMAND0, c], 1.0))
        out[i + C + c] = 10.0 * math.log(max(x[c], 1.0) / max(past[c], 1.0))
        out[i + 2 * C + c] = row[so[S_SERVED] + c]
        out[i + 3 * C + c] = row[so[S_ATTAINMENT] + c]
    i += 4 * C
    nearest, remaining = np.inf, 0.0
    for j in range(J):
        remaining += row[so[S_JOB_FLOPS] + j]
        if row[so[S_JOB_FLOPS] + j] > 0:
            nearest = min(nearest, row[so[S_JOB_WEEKS] + j])
    out[i] = row[so[S_HBM_PRICE]]
    out[i + 1] = x[C + X_SUPPLY] / ps[SUPPLY0]
    out[i + 2] = queued_stacks / max(ps[ALLOCATION_SHARE] * ps[SUPPLY0], 1.0) / 10.0
    out[i + 3] = x[C + X_SHOCK]
    out[i + 4] = remaining / (ps[SLOTS] * ps[JOB_FLOPS])
    out[i + 5] = (nearest if nearest < np.inf else ps[DEADLINE]) / ps[DEADLINE]
    for n in range(obs.shape[0]):
        obs[n] = min(max(out[n], -OBS_CLIP), OBS_CLIP)


@njit(cache=True)
def valid_actions(actions, discrete):
    """True if every entry is finite and in [-1, 1] (continuous) or in [0, LEVELS) (discrete)."""
    for value in actions.ravel():
        if discrete:
            if value < 0 or value >= LEVELS:
                return False
        elif not (math.isfinite(value) and -1.0 - 1e-6 <= value <= 1.0 + 1e-6):
            return False
    return True


@njit(cache=True)
def step_batch(variant, discrete, actions, state, exo, pk, pck, pc, ps, so, io, dims, new_state, obs, info):
    """One week for every row of ``state`` (B, S): next state, observation (B, O) float32 and info (B, I)."""
    K, C, J, L = dims[0], dims[1], dims[2], dims[3]
    for b in range(state.shape[0]):
        row = state[b]
        dem = _demand_with_backlog(row, so, exo[b, min(int(row[so[S_WEEK]]), exo.shape[1] - 1)], C)
        orders, shares = _decode(variant, discrete, actions[b], row, so, dem, pk, pck, pc, ps, K, C, J, L)
        _transition(row, new_state[b], info[b], so, io, exo[b], dem, orders, shares, pk, pck, pc, ps, K, C, J, L)
        _observe(new_state[b], obs[b], so, exo[b], pk, pck, pc, ps, K, C, J, L)


@njit(cache=True)
def observe_rows(state, exo, pk, pck, pc, ps, so, dims, rows, obs):
    """Writes the observation (float32) of each row ``b`` in ``rows`` of ``state`` into ``obs[b]``."""
    for b in rows:
        _observe(state[b], obs[b], so, exo[b], pk, pck, pc, ps, dims[0], dims[1], dims[2], dims[3])

