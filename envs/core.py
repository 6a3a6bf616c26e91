"""The datacenter dynamics: exogenous paths drawn at reset, and one pure transition over a batch.

Everything here works on arrays with a leading batch axis ``B``; the single environment is a
batch of one. The scenario's arrays never change; ``State`` is replaced, not mutated, by
:func:`step`. All randomness is drawn up front by :func:`draw_exogenous` from one
``numpy.random.Generator``, so a seed fixes the whole exogenous path (demand, HBM supply, shocks,
training-job arrivals, failure draws) and every policy can face the same one.

The transition is written against the Python array API standard (through ``array-api-compat``):
it takes its namespace from the state's arrays, so the same code steps NumPy arrays here and
torch tensors (CPU or GPU) when the state and exogenous paths are created with that namespace
(:func:`initial_state` with ``xp=``, :func:`exogenous_as`). ``tests/test_backends.py`` checks
torch and the strict reference namespace against NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from array_api_compat import array_namespace as _compat_namespace
from array_api_compat import device as _device
from scipy.signal import lfilter

from envs.scenario import Scenario

WEEK_S = 7 * 24 * 3600.0
N_KNOBS = 4
AFFINITY_SHARPNESS = 4.0  # how strongly "specialise" concentrates each role on its best chips
BACKLOG_WEEKS = 4.0  # carried-over demand is capped at this many weeks of current demand
MAX_TRAINING_SHARE = 0.9  # the training pace knob gives at most this share of each chip type to training


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

    def where(self, mask: Any, other: State) -> State:
        """``other`` where ``mask`` (B,) is True, else self."""
        xp = array_namespace(self.cash)
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            m = xp.reshape(mask, (-1,) + (1,) * (a.ndim - 1))
            out[f.name] = xp.where(m, b, a)
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


def _trailing_sum(x: np.ndarray, weeks: int) -> np.ndarray:
    """Sum of ``x`` (B, T, ...) over weeks t - weeks + 1 .. t; exact for the small integers it is used on."""
    total = np.cumsum(x, axis=1)
    total[:, weeks:] -= total[:, :-weeks].copy()
    return total


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
    noise = lfilter([1.0], [1.0, -0.7], eps, axis=1)  # noise_t = 0.7 noise_(t-1) + eps_t
    ds = scenario.demand_shocks
    shock_start = rng.random((batch, T, C)) < ds["probability_per_week"]
    shock_sign = np.where(rng.random((batch, T, C)) < 0.5, -1.0, 1.0)
    shock = _trailing_sum(shock_start * shock_sign, ds["weeks"])
    demand = a["demand0"] * growth * np.exp(noise) * np.clip(1.0 + ds["magnitude"] * shock, 0.05, None)

    hbm = scenario.hbm
    base_supply = hbm["supply_stacks_per_week"] * (1.0 + hbm["supply_growth_per_year"]) ** (weeks / 52.0)
    shock_hits = rng.random((batch, T)) < hbm["shock_probability_per_week"]
    in_shock = (_trailing_sum(shock_hits.astype(float), hbm["shock_weeks"]) > 0).astype(float)
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


def exogenous_as(exo: Exogenous, xp: Any, device: Any = None) -> Exogenous:
    """The exogenous paths as arrays of namespace ``xp`` (float64), e.g. ``array_api_compat.torch``."""
    return Exogenous(**{f.name: xp.asarray(getattr(exo, f.name), dtype=xp.float64, device=device)
                        for f in fields(exo)})


def array_namespace(x: Any) -> Any:
    """NumPy itself for NumPy arrays (it implements the standard since 2.1, without the compat
    layer's per-call wrapping, which halves the single env's speed); the compat namespace otherwise."""
    return np if isinstance(x, np.ndarray) else _compat_namespace(x)


_PARAMS: dict[tuple[int, str, str], tuple[Scenario, dict[str, Any]]] = {}


def params(scenario: Scenario, xp: Any, device: Any = None) -> dict[str, Any]:
    """The scenario's arrays in namespace ``xp``, converted once per (scenario, namespace, device)."""
    key = (id(scenario), xp.__name__, str(device))
    cached = _PARAMS.get(key)
    if cached is None or cached[0] is not scenario:
        # np.array(v) is a writable copy: torch refuses to wrap the read-only scenario arrays quietly.
        arrays = {k: xp.asarray(np.array(v), dtype=xp.float64, device=device) for k, v in scenario.arrays.items()}
        cached = _PARAMS[key] = (scenario, arrays)
    return cached[1]


def initial_state(scenario: Scenario, batch: int, xp: Any = np, device: Any = None) -> State:
    a = params(scenario, xp, device)
    K, C, J = scenario.n_chips, scenario.n_classes, scenario.training["slots"]
    L = max(int(scenario.base_lead_weeks), 1)
    f64 = xp.float64

    def zeros(*shape):
        return xp.zeros((batch, *shape), dtype=f64, device=device)

    fleet = xp.tile(a["initial_fleet"][None, :], (batch, 1))
    book = fleet * a["list_price"]
    return State(
        week=xp.zeros(batch, dtype=xp.int64, device=device),
        cash=xp.full(batch, float(scenario.initial_cash_usd), dtype=f64, device=device), fleet=fleet,
        age_weeks=zeros(K), queue=zeros(K), queue_value=zeros(K), pipeline=zeros(K, L),
        pipeline_value=zeros(K, L), book_value=book, depreciation_rate=book / (scenario.depreciation_years * 52.0),
        hbm_price=xp.ones(batch, dtype=f64, device=device), backlog=zeros(C), job_flops=zeros(J),
        job_weeks_left=zeros(J), job_value=zeros(J), last_served_fraction=zeros(C) + 1.0,
        last_attainment=zeros(C) + 1.0, last_utilisation=zeros(K),
        bankrupt=xp.zeros(batch, dtype=xp.bool, device=device),
    )


def _floor_div(xp, x, unit):
    """Whole multiples of ``unit`` not exceeding ``x``."""
    return xp.floor(x / unit) * unit


def _clip(xp, x, low=None, high=None):
    """``xp.clip``; NumPy's own clip costs several times two ufunc calls on small arrays (the hot path)."""
    if xp is np:
        if low is not None:
            x = np.maximum(x, low)
        return x if high is None else np.minimum(x, high)
    return xp.clip(x, min=low, max=high)


def _pos(xp, x):
    return _clip(xp, x, 0.0)


def _safe(xp, x, eps=1e-9):
    """``x`` kept away from zero, for denominators whose zero cases are masked afterwards."""
    return _clip(xp, x, eps)


def _at_week(xp, path, t):
    """Row b of ``path`` (B, T, ...) at week ``t[b]``."""
    B = path.shape[0]
    if xp is np:  # two-array indexing is not in the array API standard, but it is NumPy's fast path
        return path[np.arange(B), t]
    if path.ndim == 2:
        return xp.take_along_axis(path, xp.reshape(t, (B, 1)), axis=1)[:, 0]
    idx = xp.broadcast_to(xp.reshape(t, (B, 1, 1)), (B, 1, path.shape[2]))
    return xp.take_along_axis(path, idx, axis=1)[:, 0, :]


def demand_now(exo: Exogenous, state: State) -> Any:
    """(B, C) this week's exogenous demand (tokens/s) of each datacenter."""
    xp = array_namespace(state.cash)
    return _at_week(xp, exo.demand, _clip(xp, state.week, None, exo.demand.shape[1] - 1))


def demand_with_backlog(exo: Exogenous, state: State) -> Any:
    """(B, C) what the fleet is asked to serve this week: exogenous demand plus the carried-over backlog."""
    return demand_now(exo, state) + state.backlog


def failed_chips(xp: Any, fleet: Any, p_fail: float, u: Any) -> Any:
    """Chips failing this week: ``fleet`` x the weekly rate, rounded stochastically with pre-drawn uniforms ``u``."""
    return xp.minimum(xp.floor(fleet * p_fail + u), fleet)


def chip_prices(scenario: Scenario, week: Any, hbm_price: Any) -> Any:
    """(B, K) unit prices this week: list price falling with age on the market, HBM share moving with HBM prices."""
    xp = array_namespace(hbm_price)
    a = params(scenario, xp, _device(hbm_price))
    years_on_market = _pos(xp, xp.astype(week, xp.float64)[:, None] - a["available_week"]) / 52.0
    price = a["list_price"] * (1.0 - scenario.price_decline_per_year) ** years_on_market
    hbm_chip = xp.astype(a["hbm_stacks"] > 0, xp.float64)
    return price * (1.0 + scenario.hbm["hbm_cost_share"] * (hbm_price[:, None] - 1.0) * hbm_chip)


def available_mask(scenario: Scenario, week: Any) -> Any:
    """(B, K) True where the chip can be bought this week."""
    xp = array_namespace(week)
    return xp.astype(week, xp.float64)[:, None] >= params(scenario, xp, _device(week))["available_week"]


def knob_shares(scenario: Scenario, fleet: Any, demand: Any, knobs: Any, training_need: Any) -> Any:
    """The built-in allocator: four knobs in [0, 1] -> shares (B, 1 + 2C, K) of each chip type's fleet.

    Rows of the result: 0 training, 1..C prefill of each class, C+1..2C decode of each class.
    knobs[:, 0] training pace: training-capable chips get 2 x knob x the FLOP/s that active jobs
                need (``training_need``, (B,)) to meet their deadlines at an even pace (0.5 = on
                pace), spread in proportion over them, at most 90% of each type.
    knobs[:, 1] prefill bias: 0.5 gives prefill and decode capacity in proportion to their work.
    knobs[:, 2] specialisation: 0 splits every chip type across all roles alike (colocated);
                1 gives each role to the chip types with a comparative advantage in it
                (compute-rich chips prefill, bandwidth-rich chips decode: disaggregated serving).
    knobs[:, 3] latency priority: 0.5 neutral; higher favours latency classes over batch work.
    """
    xp = array_namespace(fleet)
    a = params(scenario, xp, _device(fleet))
    flops = a["train_flops_per_chip_s"]
    capable = xp.astype(flops > 0, xp.float64)
    fleet_flops = xp.sum(fleet * flops, axis=1)
    pace = 2.0 * knobs[:, 0] * training_need / _safe(xp, fleet_flops)
    train_share = _clip(xp, pace, None, MAX_TRAINING_SHARE)[:, None] * capable  # (B, K)
    serve = fleet * (1.0 - train_share)
    fits = a["fits"]
    pr, dr = a["prefill_rate"], a["serving_decode_rate"]

    # "Chips needed" are counted at the serving fleet's own average rate, so needs of different
    # roles are comparable whatever mix of chips (a wafer-scale CS-3 or an 80 GB GPU) is owned.
    weight = serve[:, None, :] * fits  # (B, C, K)
    owned = xp.sum(weight, axis=2)

    def mean_rate(rate, fallback):
        fleet_mean = xp.sum(weight * rate, axis=2) / _safe(xp, owned)
        return xp.where(owned > 0, fleet_mean, fallback)

    mean_p, mean_d = mean_rate(pr, a["median_prefill_rate"]), mean_rate(dr, a["median_decode_rate"])
    need_p = demand * (a["input_tokens"] / a["output_tokens"]) / mean_p * 2.0 * knobs[:, 1:2]
    need_d = demand / mean_d * 2.0 * (1.0 - knobs[:, 1:2])
    lat = a["latency_class"]
    priority = lat * (0.5 + knobs[:, 3:4]) + (1.0 - lat) * (1.5 - knobs[:, 3:4])
    gamma = AFFINITY_SHARPNESS * knobs[:, 2][:, None, None]
    # Comparative advantage: the ratio of a chip's prefill and decode strengths, each relative
    # to the fleet's average chip for that class.
    rel_p = pr / mean_p[:, :, None] * fits
    rel_d = dr / mean_d[:, :, None] * fits
    one = xp.ones_like(rel_p)
    advantage_p = xp.sqrt(xp.where(rel_d > 0, rel_p / _safe(xp, rel_d, 1e-12), one))
    w_p = (need_p * priority)[:, :, None] * fits * advantage_p ** gamma
    w_d = (need_d * priority)[:, :, None] * fits * (1.0 / _safe(xp, advantage_p, 1e-12)) ** gamma
    total = xp.sum(w_p, axis=1) + xp.sum(w_d, axis=1)  # (B, K)
    serve_share = (1.0 - train_share) / xp.where(total > 0, total, xp.ones_like(total))
    return xp.concat([train_share[:, None, :], w_p * serve_share[:, None, :], w_d * serve_share[:, None, :]],
                     axis=1)


def replicas(scenario: Scenario, fleet: Any, shares: Any):
    """Whole training chips (B,K) and whole prefill / decode replicas (B,C,K), in chips, from shares."""
    xp = array_namespace(fleet)
    a = params(scenario, xp, _device(fleet))
    C = scenario.n_classes
    capable = xp.astype(a["train_flops_per_chip_s"] > 0, xp.float64)
    train = xp.floor(shares[:, 0, :] * fleet * capable)
    n = _clip(xp, a["replica_chips"], 1.0)
    prefill = _floor_div(xp, shares[:, 1:C + 1, :] * fleet[:, None, :] * a["fits"], n)
    decode = _floor_div(xp, shares[:, C + 1:, :] * fleet[:, None, :] * a["fits"], n)
    return train, prefill, decode


def step(scenario: Scenario, state: State, orders: Any, shares: Any, exo: Exogenous):
    """One week for B datacenters. ``orders`` (B,K) are chips wanted; ``shares`` (B, 1+2C, K) split
    each chip type's fleet into training, prefill and decode of each class (rows summing to <= 1;
    :func:`knob_shares` makes them from the four knobs). Shares become whole replicas of the fleet
    after this week's arrivals and failures.

    Returns (next_state, reward (B,), info dict of arrays). Infeasible orders follow two rules,
    reported in ``info``: chips not yet on the market are not ordered; orders that would take
    cash below minus the credit limit are scaled down (whole order units) until they fit.
    """
    xp = array_namespace(state.cash)
    a = params(scenario, xp, _device(state.cash))
    zero, inf = xp.zeros_like(state.cash), math.inf
    t = _clip(xp, state.week, None, scenario.weeks - 1)
    demand = demand_now(exo, state)

    # 1. Orders: pay now; chips queue for HBM (or SRAM wafer) capacity.
    unit = a["order_unit"]
    wanted = _floor_div(xp, _pos(xp, orders), unit)
    unavailable = wanted * xp.astype(~available_mask(scenario, state.week), xp.float64)
    wanted = wanted - unavailable
    prices = chip_prices(scenario, state.week, state.hbm_price)
    capex_wanted = xp.sum(wanted * prices, axis=1)
    headroom = _pos(xp, state.cash + scenario.credit_limit_usd)
    scale = xp.where(capex_wanted > headroom, headroom / _safe(xp, capex_wanted), zero + 1.0)
    bought = _floor_div(xp, wanted * scale[:, None], unit)
    capex = xp.sum(bought * prices, axis=1)
    queue = state.queue + bought
    queue_value = state.queue_value + bought * prices

    # 2. Supply: our HBM allocation shrinks when the market is short; SRAM chips have a wafer cap.
    supply, other = _at_week(xp, exo.hbm_supply, t), _at_week(xp, exo.other_hbm_demand, t)
    stacks = a["hbm_stacks"]
    fill = _clip(xp, supply / _clip(xp, other, 1.0), None, 1.0)
    allocation = scenario.hbm["our_allocation_share"] * supply * fill
    stacks_needed = xp.sum(queue * stacks, axis=1)
    hbm_share = _clip(xp, allocation / _safe(xp, stacks_needed), None, 1.0)
    release = xp.where(stacks > 0, xp.floor(queue * hbm_share[:, None]), xp.minimum(queue, a["sram_cap"]))
    hbm_drawn = xp.sum(release * stacks, axis=1)
    released_value = queue_value * xp.where(queue > 0, release / _safe(xp, queue), xp.zeros_like(queue))
    queue, queue_value = queue - release, queue_value - released_value

    # 3. Transit: released chips join the pipeline at the base lead time; slot 0 arrives now.
    slot = max(int(scenario.base_lead_weeks) - 1, 0)

    def enter_and_shift(pipe, new):
        pipe = xp.concat([pipe[:, :, :slot], pipe[:, :, slot:slot + 1] + new[:, :, None], pipe[:, :, slot + 1:]],
                         axis=2)
        return pipe[:, :, 0], xp.concat([pipe[:, :, 1:], xp.zeros_like(pipe[:, :, :1])], axis=2)

    arrivals, pipeline = enter_and_shift(state.pipeline, release)
    arrival_value, pipeline_value = enter_and_shift(state.pipeline_value, released_value)
    fleet = state.fleet + arrivals
    age = xp.where(fleet > 0, state.age_weeks * state.fleet / _safe(xp, fleet), xp.zeros_like(fleet))
    book = state.book_value + arrival_value
    dep_rate = state.depreciation_rate + arrival_value / (scenario.depreciation_years * 52.0)

    # 4. Failures: stochastic rounding of fleet x weekly rate with pre-drawn uniforms (common random numbers).
    p_fail = scenario.failure_rate_per_year / 52.0
    failed = failed_chips(xp, fleet, p_fail, _at_week(xp, exo.failure_u, t))
    kept = xp.where(fleet > 0, 1.0 - failed / _safe(xp, fleet), xp.zeros_like(fleet))
    write_off = xp.sum(book * (1.0 - kept), axis=1)
    fleet, book, dep_rate = fleet - failed, book * kept, dep_rate * kept

    # 5. HBM price index moves toward its excess-demand target.
    excess = (other + stacks_needed) / _clip(xp, supply, 1.0) - 1.0
    target = _clip(xp, 1.0 + scenario.hbm["price_elasticity"] * excess, 0.5)
    hbm_price = state.hbm_price + scenario.hbm["price_smoothing"] * (target - state.hbm_price)

    # 6-7. Schedule the fleet and serve.
    demand_eff = demand + state.backlog
    train, prefill, decode = replicas(scenario, fleet, shares)
    prefill_work = prefill * a["prefill_rate"]
    prefill_cap = xp.sum(prefill_work, axis=2) * (a["output_tokens"] / a["input_tokens"])  # output-token equivalent
    decode_work = decode * a["serving_decode_rate"]
    decode_cap = xp.sum(decode_work, axis=2)
    p_share = prefill_work / _safe(xp, xp.sum(prefill_work, axis=2, keepdims=True))
    d_share = decode_work / _safe(xp, decode_cap[:, :, None])
    crossing = _clip(xp, 1.0 - xp.sum(xp.minimum(p_share, d_share), axis=2), 0.0, 1.0)  # KV caches that move
    kv_req = xp.sum(p_share * a["kv_bytes_per_request"], axis=2)
    link = xp.sum(prefill, axis=2) * a["kv_link_bytes_per_s"]
    transfer_cap = xp.where(crossing > 0, link / _safe(xp, crossing * kv_req) * a["output_tokens"],
                            xp.full_like(crossing, inf))
    served = xp.minimum(xp.minimum(demand_eff, prefill_cap), xp.minimum(decode_cap, transfer_cap))
    tpot_ok = xp.sum(d_share * xp.astype(a["tpot_s"] <= a["tpot_slo_s"][:, None], xp.float64), axis=2)
    service = xp.sum(p_share * a["prefill_latency_s"], axis=2)
    rho = _clip(xp, xp.where(prefill_cap > 0, served / _safe(xp, prefill_cap), xp.zeros_like(served)), None, 0.99)
    ttft = service + rho * service / (2.0 * (1.0 - rho)) + crossing * kv_req / a["kv_link_bytes_per_s"]
    ones = xp.ones_like(served)
    ttft_ok = xp.where(served > 0, _clip(xp, a["ttft_slo_s"] / _safe(xp, ttft), None, 1.0), ones)
    attainment = xp.where(served > 0, tpot_ok * ttft_ok, ones)
    revenue_class = served * attainment * a["price_per_token"] * WEEK_S
    unmet = demand_eff - served
    backlog = xp.minimum(unmet * a["carry_over"], BACKLOG_WEEKS * demand)

    # 8. Training: earliest deadline first over the job slots; value paid on completion before the deadline.
    train_cap = xp.sum(train * a["train_flops_per_chip_s"], axis=1) * WEEK_S
    active = state.job_flops > 0
    order = xp.argsort(xp.where(active, state.job_weeks_left, xp.full_like(state.job_weeks_left, inf)), axis=1,
                       stable=True)
    rem = xp.take_along_axis(state.job_flops, order, axis=1)
    before = xp.cumulative_sum(rem, axis=1) - rem
    got = xp.minimum(_pos(xp, train_cap[:, None] - before), rem)
    done_flops = xp.take_along_axis(got, xp.argsort(order, axis=1), axis=1)  # back to slot order
    job_flops = state.job_flops - done_flops
    completed = active & (job_flops <= 1e-6 * _clip(xp, state.job_flops, 1.0))
    revenue_training = xp.sum(state.job_value * xp.astype(completed, xp.float64), axis=1)
    weeks_left = state.job_weeks_left - 1.0
    missed = active & ~completed & (weeks_left <= 0)
    ended = completed | missed
    job_flops = xp.where(ended, xp.zeros_like(job_flops), job_flops)
    job_value = xp.where(ended, xp.zeros_like(job_flops), state.job_value)
    weeks_left = xp.where(ended, xp.zeros_like(job_flops), weeks_left)
    empty = job_flops <= 0
    first_empty = xp.argmax(xp.astype(empty, xp.float64), axis=1)
    slots = xp.arange(job_flops.shape[1], device=_device(job_flops))
    arrived = _at_week(xp, exo.job_arrival, t) > 0
    can_take = arrived & xp.any(empty, axis=1)
    new = (slots[None, :] == first_empty[:, None]) & can_take[:, None]
    arriving = _at_week(xp, exo.job_flops, t)[:, None] + xp.zeros_like(job_flops)
    job_flops = xp.where(new, arriving, job_flops)
    tr = scenario.training
    job_value = xp.where(new, tr["value_per_job_usd"] * arriving / tr["flops_per_job"], job_value)
    weeks_left = xp.where(new, xp.full_like(weeks_left, float(tr["deadline_weeks"])), weeks_left)
    train_used = xp.sum(done_flops, axis=1)

    # 9-11. Utilisation, operating cost, money.
    load_p = xp.where(prefill_cap > 0, served / _safe(xp, prefill_cap), xp.zeros_like(served))
    load_d = xp.where(decode_cap > 0, served / _safe(xp, decode_cap), xp.zeros_like(served))
    train_load = xp.where(train_cap > 0, train_used / _safe(xp, train_cap), zero)
    busy = (xp.sum(prefill * load_p[:, :, None], axis=1) + xp.sum(decode * load_d[:, :, None], axis=1)
            + train * train_load[:, None])
    utilisation = xp.where(fleet > 0, busy / _safe(xp, fleet), xp.zeros_like(fleet))
    energy_kwh = xp.sum(fleet * utilisation * a["tdp_w"], axis=1) * scenario.pue * WEEK_S / 3.6e6
    power_cost = energy_kwh * scenario.energy_usd_per_kwh
    maintenance = xp.sum(fleet * a["list_price"], axis=1) * scenario.maintenance_per_year / 52.0
    interest = _pos(xp, -state.cash) * scenario.interest_rate_per_year / 52.0
    depreciation = xp.sum(dep_rate, axis=1)
    revenue = xp.sum(revenue_class, axis=1) + revenue_training
    opex = power_cost + maintenance + interest
    cash = state.cash - capex + revenue - opex
    book = book - dep_rate
    profit = revenue - opex - depreciation - write_off
    bankrupt = cash < -scenario.credit_limit_usd
    reward = profit / scenario.reward_scale_usd

    served_fraction = xp.where(demand_eff > 0, served / _safe(xp, demand_eff), ones)
    next_state = State(
        week=state.week + 1, cash=cash, fleet=fleet, age_weeks=xp.where(fleet > 0, age + 1.0, xp.zeros_like(age)),
        queue=queue, queue_value=queue_value, pipeline=pipeline, pipeline_value=pipeline_value, book_value=book,
        depreciation_rate=dep_rate, hbm_price=hbm_price, backlog=backlog, job_flops=job_flops,
        job_weeks_left=weeks_left, job_value=job_value, last_served_fraction=served_fraction,
        last_attainment=attainment, last_utilisation=utilisation, bankrupt=bankrupt,
    )
    tokens = xp.sum(served, axis=1) * WEEK_S
    max_stacks = float(scenario.arrays["hbm_stacks"].max())
    info = {
        "revenue": revenue, "revenue_per_class": revenue_class, "revenue_training": revenue_training,
        "capex": capex, "opex": opex, "power_cost": power_cost, "maintenance": maintenance, "interest": interest,
        "depreciation": depreciation, "write_off": write_off, "profit": profit, "cash": cash,
        "demand": demand_eff, "served": served, "unmet": unmet, "prefill_capacity": prefill_cap,
        "decode_capacity": decode_cap, "slo_attainment": attainment, "ttft_s": ttft, "kv_crossing": crossing,
        "utilisation": utilisation, "fleet": fleet, "ordered": bought, "orders_unavailable": unavailable,
        "orders_clipped": wanted - bought, "arrived": arrivals, "failed": failed, "in_queue": queue,
        "in_transit": xp.sum(pipeline, axis=2), "hbm_supply": supply, "hbm_allocation": allocation,
        "hbm_drawn": hbm_drawn, "hbm_price": hbm_price,
        "hbm_exposure": xp.sum(fleet * stacks, axis=1) / _clip(xp, xp.sum(fleet, axis=1) * max_stacks, 1.0),
        "usd_per_mtok": xp.where(tokens > 0, (opex + depreciation) / _clip(xp, tokens, 1.0) * 1e6, zero),
        "training_flops_done": train_used, "training_jobs_completed": xp.sum(xp.astype(completed, xp.int64), axis=1),
        "training_jobs_missed": xp.sum(xp.astype(missed, xp.int64), axis=1),
        "training_jobs_accepted": can_take, "training_jobs_rejected": arrived & ~can_take, "train_chips": train,
        "prefill_chips": prefill, "decode_chips": decode, "bankrupt": bankrupt,
    }
    return next_state, reward, info
