"""The datacenter dynamics: exogenous paths drawn at reset, and one pure transition over a batch.

Everything here works on arrays with a leading batch axis ``B``; the single environment is a
batch of one. ``Params`` (the scenario's arrays) never change; ``State`` is replaced, not
mutated, by :func:`step`. All randomness is drawn up front by :func:`draw_exogenous` from one
``numpy.random.Generator``, so a seed fixes the whole exogenous path (demand, HBM supply, shocks,
training-job arrivals, failure draws) and every policy can face the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from envs.scenario import Scenario

WEEK_S = 7 * 24 * 3600.0
N_KNOBS = 4
_AFFINITY_SHARPNESS = 4.0  # how strongly "specialise" concentrates each role on its best chips
_BACKLOG_WEEKS = 4.0  # carried-over demand is capped at this many weeks of current demand


@dataclass(frozen=True)
class State:
    """Arrays of shape (B, ...) describing B datacenters at the start of a week."""

    week: np.ndarray  # (B,) int
    cash: np.ndarray  # (B,)
    fleet: np.ndarray  # (B, K) working chips
    age_weeks: np.ndarray  # (B, K) mean age of the working chips
    queue: np.ndarray  # (B, K) ordered chips waiting for HBM stacks or SRAM wafer capacity
    queue_value: np.ndarray  # (B, K) $ paid for them
    pipeline: np.ndarray  # (B, K, L) chips in transit; slot 0 arrives at the end of this week
    pipeline_value: np.ndarray  # (B, K, L)
    book_value: np.ndarray  # (B, K)
    depreciation_rate: np.ndarray  # (B, K) $ per week
    hbm_price: np.ndarray  # (B,) HBM contract price index, 1 = start of episode
    backlog: np.ndarray  # (B, C) carried-over demand, tokens/s averaged over a week
    job_flops: np.ndarray  # (B, J) remaining FLOPs of each training job (0 = empty slot)
    job_weeks_left: np.ndarray  # (B, J)
    job_value: np.ndarray  # (B, J)
    last_served_fraction: np.ndarray  # (B, C)
    last_attainment: np.ndarray  # (B, C)
    last_utilisation: np.ndarray  # (B, K)
    bankrupt: np.ndarray  # (B,) bool

    def where(self, mask: np.ndarray, other: State) -> State:
        """``other`` where ``mask`` (B,) is True, else self."""
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            m = mask.reshape((-1,) + (1,) * (a.ndim - 1))
            out[f.name] = np.where(m, b, a)
        return State(**out)


@dataclass(frozen=True)
class Exogenous:
    """Paths of shape (B, T, ...) fixed at reset by the seed."""

    demand: np.ndarray  # (B, T, C) tokens/s
    hbm_supply: np.ndarray  # (B, T) stacks/week reaching the market
    other_hbm_demand: np.ndarray  # (B, T) stacks/week everyone else wants
    hbm_shock: np.ndarray  # (B, T) 1 during a supply shock
    job_arrival: np.ndarray  # (B, T) 1 if a training job arrives
    job_flops: np.ndarray  # (B, T)
    failure_u: np.ndarray  # (B, T, K) uniforms for stochastic rounding of failures


def draw_exogenous(scenario: Scenario, rng: np.random.Generator, batch: int) -> Exogenous:
    """Sample B exogenous paths; the draw order is fixed so a seed gives identical paths."""
    T, C, K = scenario.weeks, scenario.n_classes, scenario.n_chips
    a = scenario.arrays
    weeks = np.arange(T)
    growth = np.empty((batch, T, C))
    for c, cls in enumerate(scenario.classes):
        g = cls.growth
        if g["kind"] == "exponential":
            growth[:, :, c] = (1.0 + g["rate_per_year"]) ** (weeks / 52.0)
        else:
            # Logistic S-curve whose midpoint is uncertain: drawn per episode (log-normal shift in weeks).
            mid = g["midpoint_week"] * np.exp(g["uncertainty"] * rng.standard_normal(batch))
            s = 1.0 / (1.0 + np.exp(-g["steepness"] * (weeks[None, :] - mid[:, None])))
            s0 = 1.0 / (1.0 + np.exp(g["steepness"] * mid))
            growth[:, :, c] = 1.0 + (g["ceiling_multiple"] - 1.0) * (s - s0[:, None]) / (1.0 - s0[:, None])
    # AR(1) log-noise per class, and occasional demand shocks (viral launch or outage: +/- magnitude).
    eps = rng.standard_normal((batch, T, C)) * a["noise"]
    noise = np.zeros_like(eps)
    for t in range(T):
        noise[:, t] = 0.7 * (noise[:, t - 1] if t else 0.0) + eps[:, t]
    ds = scenario.demand_shocks
    shock_start = rng.random((batch, T, C)) < ds["probability_per_week"]
    shock_sign = np.where(rng.random((batch, T, C)) < 0.5, -1.0, 1.0)
    shock = np.zeros((batch, T, C))
    for t in range(T):
        lo = max(0, t - ds["weeks"] + 1)
        shock[:, t] = (shock_start[:, lo:t + 1] * shock_sign[:, lo:t + 1]).sum(axis=1)
    demand = a["demand0"] * growth * np.exp(noise) * np.clip(1.0 + ds["magnitude"] * shock, 0.05, None)

    hbm = scenario.hbm
    base_supply = hbm["supply_stacks_per_week"] * (1.0 + hbm["supply_growth_per_year"]) ** (weeks / 52.0)
    shock_hits = rng.random((batch, T)) < hbm["shock_probability_per_week"]
    in_shock = np.zeros((batch, T))
    for t in range(T):
        lo = max(0, t - hbm["shock_weeks"] + 1)
        in_shock[:, t] = shock_hits[:, lo:t + 1].any(axis=1)
    supply = base_supply * (1.0 - hbm["shock_depth"] * in_shock) * np.exp(0.03 * rng.standard_normal((batch, T)))
    other = (hbm["supply_stacks_per_week"] * hbm["other_demand_ratio"]
             * (1.0 + hbm["other_demand_growth_per_year"]) ** (weeks / 52.0)
             * np.exp(0.03 * rng.standard_normal((batch, T))))
    tr = scenario.training
    arrival = (rng.random((batch, T)) < tr["arrivals_per_week"]).astype(float)
    job_flops = tr["flops_per_job"] * np.exp(0.5 * rng.standard_normal((batch, T)))
    failure_u = rng.random((batch, T, K))
    return Exogenous(demand=demand, hbm_supply=np.broadcast_to(supply, (batch, T)).copy(),
                     other_hbm_demand=other, hbm_shock=in_shock, job_arrival=arrival, job_flops=job_flops,
                     failure_u=failure_u)


def initial_state(scenario: Scenario, batch: int) -> State:
    a = scenario.arrays
    K, C, J = scenario.n_chips, scenario.n_classes, scenario.training["slots"]
    L = max(int(scenario.base_lead_weeks), 1)
    fleet = np.tile(a["initial_fleet"], (batch, 1))
    book = fleet * a["list_price"]
    dep_weeks = scenario.depreciation_years * 52.0
    zeros = lambda *s: np.zeros((batch, *s))  # noqa: E731
    return State(
        week=np.zeros(batch, dtype=np.int64), cash=np.full(batch, float(scenario.initial_cash_usd)), fleet=fleet,
        age_weeks=zeros(K), queue=zeros(K), queue_value=zeros(K), pipeline=zeros(K, L),
        pipeline_value=zeros(K, L), book_value=book, depreciation_rate=book / dep_weeks,
        hbm_price=np.ones(batch), backlog=zeros(C), job_flops=zeros(J), job_weeks_left=zeros(J),
        job_value=zeros(J), last_served_fraction=np.ones((batch, C)), last_attainment=np.ones((batch, C)),
        last_utilisation=zeros(K), bankrupt=np.zeros(batch, dtype=bool),
    )


def chip_prices(scenario: Scenario, week: np.ndarray, hbm_price: np.ndarray) -> np.ndarray:
    """(B, K) unit prices this week: list price falling with age on the market, HBM share moving with HBM prices."""
    a = scenario.arrays
    years_on_market = np.maximum(week[:, None] - a["available_week"], 0.0) / 52.0
    price = a["list_price"] * (1.0 - scenario.price_decline_per_year) ** years_on_market
    hbm_term = 1.0 + scenario.hbm["hbm_cost_share"] * (hbm_price[:, None] - 1.0) * (a["hbm_stacks"] > 0)
    return price * hbm_term


def available_mask(scenario: Scenario, week: np.ndarray) -> np.ndarray:
    """(B, K) True where the chip can be bought this week."""
    return week[:, None] >= scenario.arrays["available_week"]


def allocate(scenario: Scenario, fleet: np.ndarray, demand: np.ndarray, knobs: np.ndarray):
    """Turn four knobs in [0, 1] into whole replicas per role.

    knobs[:, 0] training share: up to half of each training-capable chip type trains.
    knobs[:, 1] prefill bias: 0.5 gives prefill and decode capacity in proportion to their work.
    knobs[:, 2] specialisation: 0 splits every chip type across all roles alike (colocated);
                1 gives each role to the chip types with a comparative advantage in it
                (compute-rich chips prefill, bandwidth-rich chips decode: disaggregated serving).
    knobs[:, 3] latency priority: 0.5 neutral; higher favours latency classes over batch work.
    Returns (train_chips (B,K), prefill_chips (B,C,K), decode_chips (B,C,K)).
    """
    a = scenario.arrays
    capable = (a["train_flops_per_chip_s"] > 0).astype(float)
    train = np.floor(0.5 * knobs[:, :1] * fleet * capable)
    serve = fleet - train
    fits = a["fits"]
    pr, dr = a["prefill_rate"], a["serving_decode_rate"]

    # "Chips needed" are counted at the serving fleet's own average rate, so needs of different
    # roles are comparable whatever mix of chips (a wafer-scale CS-3 or an 80 GB GPU) is owned.
    weight = serve[:, None, :] * fits  # (B, C, K)
    owned = weight.sum(2)
    fallback = (a["median_prefill_rate"], a["median_decode_rate"])

    def mean_rate(rate, which):
        fleet_mean = (weight * rate).sum(2) / np.maximum(owned, 1e-9)
        return np.where(owned > 0, fleet_mean, fallback[which])

    mean_p, mean_d = mean_rate(pr, 0), mean_rate(dr, 1)
    need_p = demand * (a["input_tokens"] / a["output_tokens"]) / mean_p * 2.0 * knobs[:, 1:2]
    need_d = demand / mean_d * 2.0 * (1.0 - knobs[:, 1:2])
    lat = a["latency_class"]
    priority = lat * (0.5 + knobs[:, 3:4]) + (1.0 - lat) * (1.5 - knobs[:, 3:4])
    gamma = _AFFINITY_SHARPNESS * knobs[:, 2][:, None, None]
    # Comparative advantage: a chip's rate for a role relative to the scenario's average chip.
    rel_p = np.where(fits > 0, pr / mean_p[:, :, None], 0.0)
    rel_d = np.where(fits > 0, dr / mean_d[:, :, None], 0.0)
    # Comparative advantage is the ratio of a chip's prefill and decode strengths.
    advantage_p = np.sqrt(np.where(rel_d > 0, rel_p / np.maximum(rel_d, 1e-12), 1.0))
    w_p = (need_p * priority)[:, :, None] * fits * advantage_p ** gamma
    w_d = (need_d * priority)[:, :, None] * fits * (1.0 / np.maximum(advantage_p, 1e-12)) ** gamma
    total = w_p.sum(1) + w_d.sum(1)  # (B, K)
    safe = np.where(total > 0, total, 1.0)
    n = np.maximum(a["replica_chips"], 1.0)
    prefill = np.floor(w_p / safe[:, None] * serve[:, None] / n) * n
    decode = np.floor(w_d / safe[:, None] * serve[:, None] / n) * n
    return train, prefill, decode


def step(scenario: Scenario, state: State, orders: np.ndarray, knobs: np.ndarray, exo: Exogenous):
    """One week for B datacenters. ``orders`` (B,K) are whole chips; ``knobs`` (B,4) in [0,1].

    Returns (next_state, reward (B,), info dict of arrays). Infeasible orders follow two rules,
    reported in ``info``: chips not yet on the market are not ordered; orders that would take
    cash below minus the credit limit are scaled down (whole order units) until they fit.
    """
    a = scenario.arrays
    B, K = state.fleet.shape
    t = np.minimum(state.week, scenario.weeks - 1)
    rows = np.arange(B)
    demand_now = exo.demand[rows, t]

    # 1. Orders: pay now; chips queue for HBM (or SRAM wafer) capacity.
    avail = available_mask(scenario, state.week)
    unit = a["order_unit"]
    wanted = np.floor(np.maximum(orders, 0.0) / unit) * unit
    unavailable = np.where(avail, 0.0, wanted)
    wanted = wanted - unavailable
    prices = chip_prices(scenario, state.week, state.hbm_price)
    capex_wanted = (wanted * prices).sum(1)
    headroom = np.maximum(state.cash + scenario.credit_limit_usd, 0.0)
    scale = np.where(capex_wanted > headroom, headroom / np.maximum(capex_wanted, 1e-9), 1.0)
    bought = np.floor(wanted * scale[:, None] / unit) * unit
    capex = (bought * prices).sum(1)
    queue = state.queue + bought
    queue_value = state.queue_value + bought * prices

    # 2. Supply: our HBM allocation shrinks when the market is short; SRAM chips have a wafer cap.
    supply, other = exo.hbm_supply[rows, t], exo.other_hbm_demand[rows, t]
    stacks = a["hbm_stacks"]
    hbm_chip = stacks > 0
    fill = np.minimum(1.0, supply / np.maximum(other, 1.0))
    allocation = scenario.hbm["our_allocation_share"] * supply * fill
    stacks_needed = (queue * stacks).sum(1)
    hbm_share = np.minimum(1.0, allocation / np.maximum(stacks_needed, 1e-9))
    release = np.where(hbm_chip, np.floor(queue * hbm_share[:, None]), np.minimum(queue, a["sram_cap"]))
    hbm_drawn = (release * stacks).sum(1)
    released_value = queue_value * np.where(queue > 0, release / np.maximum(queue, 1e-9), 0.0)
    queue, queue_value = queue - release, queue_value - released_value

    # 3. Transit: released chips arrive after the base lead time; slot 0 arrives now.
    lead = int(scenario.base_lead_weeks)
    pipeline, pipeline_value = state.pipeline.copy(), state.pipeline_value.copy()
    slot = max(lead - 1, 0)
    pipeline[:, :, slot] += release
    pipeline_value[:, :, slot] += released_value
    arrivals, arrival_value = pipeline[:, :, 0].copy(), pipeline_value[:, :, 0].copy()
    pipeline = np.concatenate([pipeline[:, :, 1:], np.zeros((B, K, 1))], axis=2)
    pipeline_value = np.concatenate([pipeline_value[:, :, 1:], np.zeros((B, K, 1))], axis=2)
    dep_weeks = scenario.depreciation_years * 52.0
    fleet = state.fleet + arrivals
    age = np.where(fleet > 0, state.age_weeks * state.fleet / np.maximum(fleet, 1e-9), 0.0)
    book = state.book_value + arrival_value
    dep_rate = state.depreciation_rate + arrival_value / dep_weeks

    # 4. Failures: stochastic rounding of fleet x weekly rate with pre-drawn uniforms (common random numbers).
    p_fail = scenario.failure_rate_per_year / 52.0
    failed = np.minimum(np.floor(fleet * p_fail + exo.failure_u[rows, t]), fleet)
    kept = np.where(fleet > 0, 1.0 - failed / np.maximum(fleet, 1e-9), 0.0)
    write_off = (book * (1.0 - kept)).sum(1)
    fleet, book, dep_rate = fleet - failed, book * kept, dep_rate * kept

    # 5. HBM price index moves toward its excess-demand target.
    excess = (other + stacks_needed) / np.maximum(supply, 1.0) - 1.0
    target = np.maximum(0.5, 1.0 + scenario.hbm["price_elasticity"] * excess)
    hbm_price = state.hbm_price + scenario.hbm["price_smoothing"] * (target - state.hbm_price)

    # 6-7. Schedule the fleet and serve.
    demand_eff = demand_now + state.backlog
    train, prefill, decode = allocate(scenario, fleet, demand_eff, knobs)
    ratio = a["output_tokens"] / a["input_tokens"]
    prefill_cap = (prefill * a["prefill_rate"]).sum(2) * ratio  # output-token equivalent
    decode_rate = a["serving_decode_rate"]
    decode_cap = (decode * decode_rate).sum(2)
    p_share = prefill * a["prefill_rate"] / np.maximum((prefill * a["prefill_rate"]).sum(2, keepdims=True), 1e-9)
    d_share = decode * decode_rate / np.maximum(decode_cap[:, :, None], 1e-9)
    crossing = np.clip(1.0 - np.minimum(p_share, d_share).sum(2), 0.0, 1.0)  # share of KV caches that move
    kv_req = (p_share * a["kv_bytes_per_request"]).sum(2)
    link = prefill.sum(2) * a["kv_link_bytes_per_s"]
    transfer_cap = np.where(crossing > 0, link / np.maximum(crossing * kv_req, 1e-9) * a["output_tokens"], np.inf)
    served = np.minimum.reduce([demand_eff, prefill_cap, decode_cap, transfer_cap])
    tpot_ok = (d_share * (a["tpot_s"] <= a["tpot_slo_s"][:, None])).sum(2)
    service = (p_share * a["prefill_latency_s"]).sum(2)
    rho = np.where(prefill_cap > 0, served / np.maximum(prefill_cap, 1e-9), 0.0)
    rho = np.minimum(rho, 0.99)
    ttft = service + rho * service / (2.0 * (1.0 - rho)) + crossing * kv_req / a["kv_link_bytes_per_s"]
    ttft_ok = np.where(served > 0, np.minimum(1.0, a["ttft_slo_s"] / np.maximum(ttft, 1e-9)), 1.0)
    attainment = np.where(served > 0, tpot_ok * ttft_ok, 1.0)
    revenue_class = served * attainment * a["price_per_token"] * WEEK_S
    unmet = demand_eff - served
    backlog = np.minimum(unmet * a["carry_over"], _BACKLOG_WEEKS * demand_now)

    # 8. Training: earliest deadline first over the job slots; value paid on completion before the deadline.
    train_cap = (train * a["train_flops_per_chip_s"]).sum(1) * WEEK_S
    order = np.argsort(np.where(state.job_flops > 0, state.job_weeks_left, np.inf), axis=1, kind="stable")
    rem = np.take_along_axis(state.job_flops, order, 1)
    before = np.cumsum(rem, 1) - rem
    got = np.clip(train_cap[:, None] - before, 0.0, rem)
    done_flops = np.empty_like(got)
    np.put_along_axis(done_flops, order, got, 1)
    job_flops = state.job_flops - done_flops
    active = state.job_flops > 0
    completed = active & (job_flops <= 1e-6 * np.maximum(state.job_flops, 1.0))
    revenue_training = (state.job_value * completed).sum(1)
    weeks_left = state.job_weeks_left - 1.0
    missed = active & ~completed & (weeks_left <= 0)
    ended = completed | missed
    job_flops = np.where(ended, 0.0, job_flops)
    job_value = np.where(ended, 0.0, state.job_value)
    weeks_left = np.where(ended, 0.0, weeks_left)
    empty = job_flops <= 0
    first_empty = np.argmax(empty, axis=1)
    can_take = (exo.job_arrival[rows, t] > 0) & empty.any(1)
    new = np.zeros_like(job_flops, dtype=bool)
    new[rows, first_empty] = can_take
    job_flops = np.where(new, exo.job_flops[rows, t][:, None], job_flops)
    job_value = np.where(new, scenario.training["value_per_job_usd"]
                         * exo.job_flops[rows, t][:, None] / scenario.training["flops_per_job"], job_value)
    weeks_left = np.where(new, float(scenario.training["deadline_weeks"]), weeks_left)
    train_used = done_flops.sum(1)

    # 9-11. Utilisation, operating cost, money.
    load_p = np.where(prefill_cap > 0, served / np.maximum(prefill_cap, 1e-9), 0.0)
    load_d = np.where(decode_cap > 0, served / np.maximum(decode_cap, 1e-9), 0.0)
    train_load = np.where(train_cap > 0, train_used / np.maximum(train_cap, 1e-9), 0.0)
    busy = (prefill * load_p[:, :, None]).sum(1) + (decode * load_d[:, :, None]).sum(1) + train * train_load[:, None]
    utilisation = np.where(fleet > 0, busy / np.maximum(fleet, 1e-9), 0.0)
    energy_kwh = (fleet * utilisation * a["tdp_w"]).sum(1) * scenario.pue * WEEK_S / 3.6e6
    power_cost = energy_kwh * scenario.energy_usd_per_kwh
    maintenance = (fleet * a["list_price"]).sum(1) * scenario.maintenance_per_year / 52.0
    interest = np.maximum(-state.cash, 0.0) * scenario.interest_rate_per_year / 52.0
    depreciation = dep_rate.sum(1)
    revenue = revenue_class.sum(1) + revenue_training
    opex = power_cost + maintenance + interest
    cash = state.cash - capex + revenue - opex
    book = book - dep_rate
    profit = revenue - opex - depreciation - write_off
    bankrupt = cash < -scenario.credit_limit_usd
    reward = profit / scenario.reward_scale_usd

    served_fraction = np.where(demand_eff > 0, served / np.maximum(demand_eff, 1e-9), 1.0)
    next_state = State(
        week=state.week + 1, cash=cash, fleet=fleet, age_weeks=np.where(fleet > 0, age + 1.0, 0.0), queue=queue,
        queue_value=queue_value, pipeline=pipeline, pipeline_value=pipeline_value, book_value=book,
        depreciation_rate=dep_rate, hbm_price=hbm_price, backlog=backlog, job_flops=job_flops,
        job_weeks_left=weeks_left, job_value=job_value, last_served_fraction=served_fraction,
        last_attainment=attainment, last_utilisation=utilisation, bankrupt=bankrupt,
    )
    tokens = served.sum(1) * WEEK_S
    info = {
        "revenue": revenue, "revenue_per_class": revenue_class, "revenue_training": revenue_training,
        "capex": capex, "opex": opex, "power_cost": power_cost, "maintenance": maintenance, "interest": interest,
        "depreciation": depreciation, "write_off": write_off, "profit": profit, "cash": cash,
        "demand": demand_eff, "served": served, "unmet": unmet, "prefill_capacity": prefill_cap,
        "decode_capacity": decode_cap, "slo_attainment": attainment, "ttft_s": ttft, "kv_crossing": crossing,
        "utilisation": utilisation, "fleet": fleet, "ordered": bought, "orders_unavailable": unavailable,
        "orders_clipped": wanted - bought, "arrived": arrivals, "failed": failed, "in_queue": queue,
        "in_transit": pipeline.sum(2), "hbm_supply": supply, "hbm_allocation": allocation, "hbm_drawn": hbm_drawn,
        "hbm_price": hbm_price, "hbm_exposure": (fleet * stacks).sum(1) / np.maximum(fleet.sum(1) * stacks.max(), 1),
        "usd_per_mtok": np.where(tokens > 0, (opex + depreciation) / np.maximum(tokens, 1.0) * 1e6, 0.0),
        "training_flops_done": train_used, "training_jobs_completed": completed.sum(1),
        "training_jobs_missed": missed.sum(1), "train_chips": train, "prefill_chips": prefill,
        "decode_chips": decode, "bankrupt": bankrupt,
    }
    return next_state, reward, info

