"""Per-week LP scheduler (scipy's HiGHS): allocate the fleet to roles to maximise that week's profit.

Variables per chip type k: training chips t_k, prefill chips p_ck and decode chips d_ck of each
class c; served tokens/s s_c; training FLOPs f. The LP maximises

    sum_c price_c * WEEK_S * s_c + v * f - sum_k power_k * (t_k + sum_c p_ck + d_ck)

(f in exaFLOPs; price_c counts the prompt's input tokens and falls at the class's yearly rate) subject to
chips: t_k + sum_c (p_ck + d_ck) <= N_k; demand: s_c <= D_c; capacity x_c <= sum_k rho*_ck *
prefill_rate_ck * (O_c / I_c) * p_ck, where rho*_ck is the highest prefill load at which the M/D/1 time
to first token on chip k meets the class SLO, and x_c <= sum_k decode_rate_ck * d_ck over chips whose
TPOT meets the SLO (rates at this year's vendor software efficiency); peaks: s_c <= a_i x_c + b_i D_c,
tangents of the share served when load peaks at the class's peak-to-mean factor and the excess is
shed, as the environment does; training: f <= sum_k F_k * WEEK_S * t_k
and f <= what active jobs need this week at an even pace to their deadlines (+10%); v is the
jobs' value divided by that pace (falling behind loses a whole job, not a share of it). It acts on
the fine variants (``ChipAlloc/DatacenterFine-*``), whose action carries explicit shares.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from agents.base import Plan, Policy
from agents.heuristics import ForecastPolicy
from envs.dynamics import J_PER_KWH, NEUTRAL_UPDATE_SHARE, WEEK_S, WEEKS_PER_YEAR, _max_prefill_load
from envs.functional import (
    Params,
    capacity_rules,
    contract_offer,
    demand_with_backlog,
    rent_prices,
    serving_factors,
    training_need,
)

EXA = 1e18  # training FLOPs enter the LP in exaFLOPs: HiGHS treats numbers >= 1e20 as infinite


class SolverError(RuntimeError):
    """HiGHS did not return an optimal solution; the message carries its status."""


PACE_MARGIN = 1.1
PEAK_CUT_POINTS = 8  # tangents approximating the share of load served under peaks


# The dynamics' own M/D/1 load limit of one chip type (service time, TTFT budget), elementwise over (C, K).
max_prefill_load = np.vectorize(_max_prefill_load, otypes=[float])


def serving_rates(params: Params, week: float = 0.0,
                  update_share: float = NEUTRAL_UPDATE_SHARE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the LPs count per chip at ``week``: output tokens/s one chip serves in prefill (C, K) at the load that
    keeps TTFT within its SLO, in decode (C, K) within the TPOT SLO (0 where missed; RL student classes' training-
    capable decode chips serve 1 - ``update_share`` of the time), both at that year's vendor software efficiency,
    and its power cost per week at full load (K,). The efficiency and the SLO check are the step's own
    (:func:`envs.functional.serving_factors`)."""
    scenario = params.scenario
    a = scenario.arrays
    factors = serving_factors(params, week)
    eff_p, eff_d = factors.prefill_efficiency[0], factors.decode_efficiency[0]
    fits = a["fits"] > 0
    # The TTFT budget leaves room for moving the KV cache, in case prefill and decode land on different chips.
    kv_transfer_s = a["kv_bytes_per_request"] / a["kv_link_bytes_per_s"]
    # Each chip type admits prefill load up to where its own TTFT meets the SLO, as the environment does.
    rho = max_prefill_load(a["prefill_latency_s"] / eff_p, a["ttft_slo_s"][:, None] - kv_transfer_s) * fits
    prefill_out = rho * a["prefill_rate"] * eff_p * (a["output_tokens"] / a["input_tokens"])[:, None]
    decode_ok = fits & factors.decode_meets_slo[0]
    updating = a["student_updating"]
    decode_out = np.where(decode_ok, a["decode_rate"] * np.where(updating, 1.0 - update_share, 1.0) * eff_d, 0.0)
    power = a["system_power_w"] * scenario.pue * scenario.energy_usd_per_kwh * WEEK_S / J_PER_KWH
    return prefill_out, decode_out, power


def token_prices(params: Params, week: float = 0.0) -> np.ndarray:
    """(C,) $ earned per output token served at ``week``, its prompt's input tokens included, falling as the step
    has it (:func:`envs.functional.serving_factors`)."""
    a = params.scenario.arrays
    price = a["output_price_per_token"] + a["input_price_per_token"] * a["input_tokens"] / a["output_tokens"]
    return price * serving_factors(params, week).price_multiple[0]


def peak_cuts(peak: float, points: int = PEAK_CUT_POINTS) -> list[tuple[float, float]]:
    """Tangents (a, b) with served <= a x capacity + b x demand, for the concave share served when load peaks
    at ``peak`` x its mean (:func:`envs.dynamics._served_with_peaks`): at capacity / demand = z, the slope is
    1 - u and the intercept z u / peak, with u = (z / peak)^(1 / (peak - 1))."""
    if peak <= 1.0 + 1e-9:
        return [(1.0, 0.0)]
    cuts = []
    for z in peak * np.linspace(0.05, 1.0, points):
        u = (z / peak) ** (1.0 / (peak - 1.0))
        cuts.append((1.0 - u, z * u / peak))
    return cuts


def schedule_lp(params: Params, fleet: np.ndarray, demand: np.ndarray, training_flops: float,
                value_per_flop: float, week: float = 0.0, rent: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Solve one week's allocation LP; returns chips per role, chips rented in and let out, and the LP's served
    tokens/s and objective.

    ``training_flops`` caps this week's training: jobs are paid only on completion, so training
    faster than their deadlines need earns nothing and costs power. Served tokens of each class are at
    most its capacity (the least of prefill and decode), discounted for the class's peaks by tangent cuts.
    ``rent`` (K,) is each chip's weekly cloud rent (0: no rental market): chips rented in join the week's
    fleet at that rent, chips let out leave it for the rent less the marketplace fee, on our power.
    """
    scenario = params.scenario
    a = scenario.arrays
    K, C = scenario.n_chips, scenario.n_classes
    prefill_out, decode_out, power = serving_rates(params, week)
    capable = a["train_flops_per_chip_s"] > 0
    rent = np.zeros(K) if rent is None else np.asarray(rent, dtype=float)
    depth = np.where(rent > 0, float(scenario.rental["max_chips_per_week"]), 0.0)
    most = fleet + depth  # the most chips of a type the week can serve with
    # Variable layout: t (K) | p (C*K) | d (C*K) | s (C) | x (C) capacity | f (1) | rented in (K) | let out (K)
    # | y (C*K) each chip type's own capacity (used only without disaggregated serving)
    nt, npd = K, C * K
    n = nt + 2 * npd + 2 * C + 1 + 2 * K + npd
    ip, id_, is_, ix, if_ = nt, nt + npd, nt + 2 * npd, nt + 2 * npd + C, nt + 2 * npd + 2 * C
    ir, io, iy = if_ + 1, if_ + 1 + K, if_ + 1 + 2 * K
    cost = np.zeros(n)
    cost[ir:io] = rent
    cost[io:iy] = -rent * (1.0 - scenario.rental["rent_out_fee"]) + power
    cost[:nt] = power
    cost[ip:id_] = np.tile(power, C)
    cost[id_:is_] = np.tile(power, C)
    cost[is_:ix] = -token_prices(params, week) * WEEK_S
    cost[if_] = -value_per_flop * EXA
    rows, rhs = [], []
    for k in range(K):  # chips
        row = np.zeros(n)
        row[k] = 1.0
        row[ip + k:id_:K] = 1.0
        row[id_ + k:is_:K] = 1.0
        row[ir + k] = -1.0
        row[io + k] = 1.0
        rows.append(row)
        rhs.append(fleet[k])
    for c in range(C):  # capacity: prefill and decode; served within it, less what the peaks shed
        if scenario.disaggregation:
            row = np.zeros(n)
            row[ix + c] = 1.0
            row[ip + c * K:ip + (c + 1) * K] = -prefill_out[c]
            rows.append(row)
            rhs.append(0.0)
            row = np.zeros(n)
            row[ix + c] = 1.0
            row[id_ + c * K:id_ + (c + 1) * K] = -decode_out[c]
            rows.append(row)
            rhs.append(0.0)
        else:
            # Colocated only: capacity y_ck of each chip type is the least of its own prefill and decode.
            row = np.zeros(n)
            row[ix + c] = 1.0
            row[iy + c * K:iy + (c + 1) * K] = -1.0
            rows.append(row)
            rhs.append(0.0)
            for k in range(K):
                for first, rate in ((ip, prefill_out), (id_, decode_out)):
                    row = np.zeros(n)
                    row[iy + c * K + k] = 1.0
                    row[first + c * K + k] = -rate[c, k]
                    rows.append(row)
                    rhs.append(0.0)
        for slope, intercept in peak_cuts(float(a["peak_to_mean"][c])):
            row = np.zeros(n)
            row[is_ + c] = 1.0
            row[ix + c] = -slope
            rows.append(row)
            rhs.append(intercept * demand[c])
    row = np.zeros(n)  # training FLOPs
    row[if_] = 1.0
    row[:nt] = -a["train_flops_per_chip_s"] * WEEK_S / EXA
    rows.append(row)
    rhs.append(0.0)
    bounds = ([(0, most[k] if capable[k] else 0) for k in range(K)]
              + [(0, most[k] if prefill_out[c, k] > 0 else 0) for c in range(C) for k in range(K)]
              + [(0, most[k] if decode_out[c, k] > 0 else 0) for c in range(C) for k in range(K)]
              + [(0, demand[c]) for c in range(C)]
              + [(0, None) for c in range(C)]
              + [(0, max(training_flops, 0.0) / EXA)]
              + [(0, depth[k]) for k in range(K)]
              + [(0, min(fleet[k], depth[k])) for k in range(K)]
              + [(0, None) for _ in range(npd)])
    res = linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    if res.status != 0:
        raise SolverError(f"the weekly scheduling LP failed: HiGHS status {res.status} ({res.message})")
    x = res.x
    return {"train": x[:nt], "prefill": x[ip:id_].reshape(C, K), "decode": x[id_:is_].reshape(C, K),
            "served": x[is_:ix], "rent_in": x[ir:io], "rent_out": x[io:iy], "objective": -res.fun}


def whole_replica_shares(scenario, fleet: np.ndarray, train: np.ndarray, prefill: np.ndarray,
                         decode: np.ndarray) -> np.ndarray:
    """Shares (1+2C, K) of whole replicas covering the LP's allocation, with every spare chip added.

    The environment rounds shares down to whole replicas and charges power by load, not by
    allocation, so each serving allocation is rounded up to whole replicas (largest remainder
    first) and the chips left over are spread over the roles in use, as headroom.
    """
    a = scenario.arrays
    n = np.maximum(np.concatenate([a["replica_chips"], a["replica_chips"]]), 1.0)  # (2C, K)
    wanted = np.concatenate([prefill, decode]) / n
    whole = np.floor(wanted + 1e-9)
    train = np.minimum(np.ceil(train - 1e-9), fleet)  # whole chips, rounded up so jobs keep their pace
    serving_chips = np.maximum(fleet - train, 0.0)
    for k in range(scenario.n_chips):
        spare = serving_chips[k] - (whole[:, k] * n[:, k]).sum()
        for r in np.argsort(-(wanted[:, k] - whole[:, k])):
            if wanted[r, k] - whole[r, k] > 1e-6 and spare >= n[r, k]:
                whole[r, k] += 1
                spare -= n[r, k]
        used = whole[:, k] * n[:, k]
        if used.sum() > 0 and spare > 0:  # headroom for the roles in use, in proportion to their size
            extra = np.floor(spare * used / used.sum() / n[:, k])
            whole[:, k] += extra
    chips = np.concatenate([train[None], whole * n])
    shares = np.where(fleet > 0, chips / np.maximum(fleet, 1e-9), 0.0) + 1e-7 * (chips > 0)
    return shares / np.maximum(shares.sum(0), 1.0)


class LPSchedulerPolicy(Policy):
    """Forecast-driven procurement (or any rule given) with the weekly LP deciding the allocation."""

    name = "lp-scheduler"

    def __init__(self, env, procurement: type[Policy] = ForecastPolicy, tuned: bool = True):
        """``procurement`` is a heuristic class, built with ``tuned`` (its tuned parameters when cached)."""
        super().__init__(env)
        if self.env.variant != "fine":
            raise ValueError(f"{self.name} sets explicit role shares; use a ChipAlloc/DatacenterFine-* environment "
                             f"(got variant {self.env.variant!r})")
        self.procurement = procurement(env, tuned=tuned)

    def plan(self) -> Plan:
        env = self.env
        s, scenario = env.state, env.scenario
        procurement = self.procurement.plan()
        orders = procurement.orders
        incoming = s.pipeline[0, :, 0] if s.pipeline.shape[2] else 0.0
        fleet = s.fleet[0] + incoming
        # Less this week's failures, rounded up.
        fleet = fleet - np.ceil(fleet * scenario.failure_rate_per_year / WEEKS_PER_YEAR) - 1.0
        demand = demand_with_backlog(env.params, s)[0]
        active = s.job_flops[0] > 0
        # An even pace to each deadline (FLOPs this week), with 10% to spare for rounding to whole chips.
        paced = PACE_MARGIN * float(training_need(env.params, s)[0]) * WEEK_S
        # A job is paid only if every week keeps pace, so this week's pace is worth the jobs' whole value.
        value = float(s.job_value[0][active].sum()) / paced if paced > 0 else 0.0
        fleet = np.maximum(fleet, 0.0)
        accept, held = None, np.zeros(scenario.n_chips)
        if scenario.training["clusters"]:
            # Cluster contracts hold their chips apart: the procurement rule's acceptance (its training_pace
            # knob) takes this week's offer on the rule's chip type, and the LP schedules the chips left.
            held = s.job_chips[0] @ np.eye(scenario.n_chips)[s.job_type[0].astype(int)]
            h100s, chosen = contract_offer(env.params, s)
            if procurement.knobs is not None and procurement.knobs[0] >= 0.5 and chosen[0] >= 0 \
                    and (s.job_chips[0] <= 0).any():
                accept = int(chosen[0])
                held[accept] += np.ceil(h100s[0] * scenario.training["h100_train_flops_per_s"]
                                        / scenario.arrays["train_flops_per_chip_s"][accept] - 1e-6)
            fleet = np.maximum(fleet - held, 0.0)
            paced = value = 0.0
        rent = rent_prices(env.params, s.week, s.hbm_price)[0]
        lp = schedule_lp(env.params, fleet, demand, paced, value, week=float(s.week[0]), rent=rent)
        # Whole chips: rent in what the LP uses (rounded up), let out only whole idle chips.
        rent_in, rent_out = np.ceil(lp["rent_in"] - 1e-6), np.floor(lp["rent_out"] + 1e-6)
        serving = np.maximum(fleet - rent_out, 0.0) + rent_in
        shares = whole_replica_shares(scenario, serving, lp["train"], lp["prefill"], lp["decode"])
        return Plan(orders, shares=shares, expansion_blocks=_blocks(env, procurement), rent_in_chips=rent_in,
                    rent_out_chips=rent_out, accept_type=accept)


def _blocks(env, plan: Plan) -> float:
    """Site blocks a procurement plan's expansion rule orders this week."""
    if plan.expansion_blocks is not None:
        return float(plan.expansion_blocks)
    return float(capacity_rules(env.params, env.state, plan.expansion, 0.0, 0.0, np.asarray(plan.orders)[None])[0][0])
