"""Mechanism tests, worked by hand: one tiny scenario, exogenous paths fixed by the test, and every
expected number written out as arithmetic from the scenario's figures, citing the rule it checks.

The scenario (``tiny``) is ``small`` cut down to two HBM chips (H100-SXM, MI300X), one inference
class (chat: llama-3.1-70b fp8, 1024 in / 256 out) and two training slots. Per-chip serving rates,
latencies and KV sizes are read from ``scenario.arrays`` (the roofline is tested in test_perf.py);
everything downstream of them is computed here. The figures the hand arithmetic writes as literals
(list prices, HBM stacks, market dates, replica sizes) are pinned by the first test, so a catalog
change fails there with a clear message rather than in the middle of a mechanism.

Only the public surface is used: ``envs.DatacenterEnv`` (fine variant), ``envs.load_scenario``,
``envs.Exogenous``, ``envs.spaces.fine_action``, the ``info`` dict and the ``State`` fields.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import envs
from envs import Exogenous
from envs.spaces import fine_action

WEEK_S = 7 * 24 * 3600.0  # seconds in a week
REL = 1e-9

TINY = {
    "base": "small",
    "name": "tiny",
    "weeks": 12,
    "chips": ["H100-SXM", "MI300X"],
    "initial_fleet": {"H100-SXM": 16, "MI300X": 8},
    "max_order_chips_per_week": 64,
    "base_lead_weeks": 3,
    "drop_classes": ["agents", "batch"],
    "hbm": {"our_allocation_share": 0.001},
    "training": {"flops_per_job": 1e21, "value_per_job_usd": 1e6, "deadline_weeks": 3, "slots": 2},
}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny(**overrides) -> envs.Scenario:
    """The tiny scenario with ``overrides`` merged in (nested mappings merge; note that ``initial_fleet``
    merges with small's ``{H100-SXM: 256}``, so name every chip)."""
    return envs.load_scenario(_merge(TINY, overrides))


def _path(value, T: int, tail: tuple[int, ...]) -> np.ndarray:
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        v = v[None]
    v = np.concatenate([v, np.repeat(v[-1:], T - len(v), axis=0)])  # the last week given repeats to the end
    if v.ndim == 1 and tail:
        v = v[:, None]  # one value a week for every class or chip
    return np.broadcast_to(v, (T, *tail))[None].copy()


def paths(s: envs.Scenario, *, demand=None, hbm_supply=1e5, other_hbm_demand=1e5, hbm_shock=0.0,
          job_arrival=0.0, job_flops=None, failure_u=0.0) -> Exogenous:
    """Exogenous paths (batch of one) for scenario ``s``. A scalar holds for every week; a sequence gives
    weeks 0, 1, ... (its last entry repeats to the horizon), each entry a scalar or one value per class
    (demand) or per chip (failure_u). Defaults: demand at the scenario's initial level, a balanced HBM
    market of 1e5 stacks a week, no shocks, no training jobs, failure uniforms 0."""
    T, C, K = s.weeks, s.n_classes, s.n_chips
    demand = [s.arrays["demand0"]] if demand is None else demand
    job_flops = s.training["flops_per_job"] if job_flops is None else job_flops
    return Exogenous(demand=_path(demand, T, (C,)),
                     hbm_supply=_path(hbm_supply, T, ()), other_hbm_demand=_path(other_hbm_demand, T, ()),
                     hbm_shock=_path(hbm_shock, T, ()), job_arrival=_path(job_arrival, T, ()),
                     job_flops=_path(job_flops, T, ()), failure_u=_path(failure_u, T, (K,)))


def action(s: envs.Scenario, order=None, train=None, prefill=None, decode=None) -> np.ndarray:
    """The fine action ordering ``order`` (K,) x the weekly maximum and giving each chip type's fleet the
    shares ``train``, ``prefill`` and ``decode`` (K,) of the scenario's one class (zeros by default)."""
    assert s.n_classes == 1
    K = s.n_chips

    def row(x):
        return np.zeros(K) if x is None else np.asarray(x, dtype=float)

    return fine_action(s, row(order), np.stack([row(train), row(prefill), row(decode)]))


def start(s: envs.Scenario, exo: Exogenous) -> envs.DatacenterEnv:
    env = envs.DatacenterEnv(scenario=s, variant="fine")
    env.reset(options={"exogenous": exo})
    return env


def run(env, s, weeks: int, **act):
    """Step ``weeks`` weeks with the same action; the info dicts."""
    return [env.step(action(s, **act))[4] for _ in range(weeks)]


def test_tiny_scenario_figures_used_by_the_hand_arithmetic():
    """The catalog and scenario figures that the tests below write as literals."""
    s = tiny()
    a = s.arrays
    assert s.chips == ("H100-SXM", "MI300X") and [c.name for c in s.classes] == ["chat"]
    assert a["list_price"].tolist() == [27500.0, 12500.0]
    assert a["hbm_stacks"].tolist() == [5.0, 8.0]
    assert a["available_week"].tolist() == [-104.0, -52.0]
    assert a["order_unit"].tolist() == [8.0, 8.0]
    assert a["tdp_w"].tolist() == [700.0, 750.0]
    assert a["replica_chips"].tolist() == [[8.0, 1.0]]
    assert a["fits"].tolist() == [[1.0, 1.0]]
    assert a["input_tokens"].tolist() == [1024.0] and a["output_tokens"].tolist() == [256.0]
    assert a["price_per_token"].tolist() == [1e-6]
    assert float(a["kv_link_bytes_per_s"]) == 50e9
    assert (s.credit_limit_usd, s.initial_cash_usd, s.interest_rate_per_year) == (4e7, 2e7, 0.08)
    assert (s.price_decline_per_year, s.maintenance_per_year, s.depreciation_years) == (0.15, 0.03, 4)
    assert (s.failure_rate_per_year, s.pue, s.energy_usd_per_kwh) == (0.05, 1.2, 0.08)
    assert (s.hbm["price_elasticity"], s.hbm["price_smoothing"], s.hbm["hbm_cost_share"]) == (1.5, 0.2, 0.45)
    assert s.reward_scale_usd == 1e5


def test_hbm_rationing_release_and_price_index():
    """Our HBM allocation is share x supply x min(supply / other demand, 1); each HBM chip type releases
    floor(queue x min(allocation / stacks needed, 1)); the price index moves by ``price_smoothing`` toward
    max(1 + elasticity x excess, 0.5), excess = (other + our stacks needed) / supply - 1; and the HBM
    part of a chip's price (``hbm_cost_share``) moves with the index."""
    s = tiny()
    env = start(s, paths(s, hbm_supply=[100_000.0, 100_000.0, 200_000.0], other_hbm_demand=[125_000.0, 10_000.0]))

    # Week 0: order 0.5 x 64 = 32 H100 and 0.25 x 64 = 16 MI300X, at list price x 0.85^(years on market).
    info = env.step(action(s, order=[0.5, 0.25]))[4]
    assert info["ordered"].tolist() == [32.0, 16.0]
    assert info["capex"] == pytest.approx(32 * 27500 * 0.85 ** (104 / 52) + 16 * 12500 * 0.85 ** (52 / 52), rel=REL)
    stacks_needed = 32 * 5 + 16 * 8  # 288 stacks for the queue
    allocation = 0.001 * 100_000 * (100_000 / 125_000)  # the market is short: 80 stacks
    assert info["hbm_supply"] == 100_000.0
    assert info["hbm_allocation"] == pytest.approx(80.0, rel=REL) == allocation
    share = allocation / stacks_needed  # 0.2778 of the queue
    released = [math.floor(32 * share), math.floor(16 * share)]
    assert released == [8, 4]
    assert info["hbm_drawn"] == 8 * 5 + 4 * 8
    assert info["in_queue"].tolist() == [24.0, 12.0]
    assert env.unwrapped.state.queue[0].tolist() == [24.0, 12.0]
    excess = (125_000 + stacks_needed) / 100_000 - 1
    price0 = 1 + 0.2 * (max(1 + 1.5 * excess, 0.5) - 1)  # 1.075864
    assert info["hbm_price"] == pytest.approx(price0, rel=REL)
    assert env.unwrapped.state.hbm_price[0] == pytest.approx(price0, rel=REL)

    # Week 1: order 8 more H100, now with the HBM share of the price (45%) up with the index.
    info = env.step(action(s, order=[0.125, 0.0]))[4]
    h100_price = 27500 * 0.85 ** (105 / 52) * (1 + 0.45 * (price0 - 1))
    assert info["capex"] == pytest.approx(8 * h100_price, rel=REL)
    stacks_needed = (24 + 8) * 5 + 12 * 8  # 256
    allocation = 0.001 * 100_000 * 1.0  # others want less than supply: the fill is capped at 1
    assert info["hbm_allocation"] == pytest.approx(allocation, rel=REL)
    share = allocation / stacks_needed  # 0.390625
    assert [math.floor(32 * share), math.floor(12 * share)] == [12, 4]
    assert info["hbm_drawn"] == 12 * 5 + 4 * 8
    assert info["in_queue"].tolist() == [20.0, 8.0]
    excess = (10_000 + stacks_needed) / 100_000 - 1  # -0.897: the target 1 + 1.5 x excess is floored at 0.5
    assert info["hbm_price"] == pytest.approx(price0 + 0.2 * (0.5 - price0), rel=REL)

    # Week 2: supply doubles; an allocation of 0.001 x 200,000 = 200 stacks covers the queue's 164 and frees it all.
    info = env.step(action(s))[4]
    assert info["hbm_allocation"] == pytest.approx(200.0, rel=REL)
    assert info["hbm_drawn"] == 20 * 5 + 8 * 8 and info["in_queue"].tolist() == [0.0, 0.0]


def test_sram_wafer_cap_releases_at_most_sram_cap_a_week():
    """SRAM chips (no HBM stacks) leave the queue at most ``sram_chips_per_week`` a week, whatever the HBM
    market does; HBM chips in the same queue wait for stacks (none this time: our allocation is 0)."""
    s = tiny(chips=["H100-SXM", "Groq-LPU"], initial_fleet={"H100-SXM": 16, "Groq-LPU": 0},
             max_order_chips_per_week=256, sram_chips_per_week={"Groq-LPU": 100}, initial_cash_usd=1e7)
    assert s.arrays["hbm_stacks"].tolist() == [5.0, 0.0] and s.arrays["order_unit"].tolist() == [8.0, 64.0]
    assert s.arrays["sram_cap"].tolist() == [math.inf, 100.0]
    env = start(s, paths(s, hbm_supply=0.0))
    # Order 0.25 x 256 = 64 H100 and 1.0 x 256 = 256 Groq chips (4 racks of 64) in week 0 only.
    infos = [env.step(action(s, order=[0.25, 1.0]))[4], *run(env, s, 3)]
    assert infos[0]["ordered"].tolist() == [64.0, 256.0]
    # Groq: min(queue, 100) a week: 100, 100, then the last 56.
    assert [i["in_queue"].tolist() for i in infos] == [[64.0, 156.0], [64.0, 56.0], [64.0, 0.0], [64.0, 0.0]]
    assert [i["hbm_drawn"] for i in infos] == [0.0] * 4  # SRAM chips draw no stacks; the H100s got none
    assert [i["hbm_allocation"] for i in infos] == [0.0] * 4


@pytest.mark.parametrize("lead", [1, 2, 4])
def test_lead_time_pipeline(lead):
    """Chips released in week w enter the pipeline at slot ``base_lead_weeks`` - 1 and shift one slot a week;
    slot 0 arrives: they are in ``info["arrived"]`` of week w + lead - 1 and in the fleet (State) from the
    start of week w + lead."""
    s = tiny(base_lead_weeks=lead)
    env = start(s, paths(s))
    # Allocation 0.001 x 1e5 = 100 stacks covers 8 H100 (40 stacks): all 8 are released in week 0.
    infos = [env.step(action(s, order=[0.125, 0.0]))[4], *run(env, s, lead)]
    arrived = [i["arrived"][0] for i in infos]
    in_transit = [i["in_transit"][0] for i in infos]
    assert arrived == [0.0] * (lead - 1) + [8.0, 0.0]
    assert in_transit == [8.0] * (lead - 1) + [0.0, 0.0]
    assert [i["fleet"][0] for i in infos] == [16.0] * (lead - 1) + [24.0, 24.0]
    assert all(i["in_queue"][0] == 0.0 for i in infos)


def test_pipeline_slots_shift_one_a_week():
    """The State's pipeline (K, L): a release in week 0 with a 3-week lead sits in slot 2 - 1 = 1 after the
    week's shift, then slot 0, then arrives; its $ value travels with it."""
    s = tiny()
    env = start(s, paths(s))
    env.step(action(s, order=[0.125, 0.0]))
    price = 27500 * 0.85 ** (104 / 52)
    st = env.unwrapped.state
    assert st.pipeline[0].tolist() == [[0.0, 8.0, 0.0], [0.0, 0.0, 0.0]]
    assert st.pipeline_value[0, 0].tolist() == pytest.approx([0.0, 8 * price, 0.0], rel=REL)
    env.step(action(s))
    assert env.unwrapped.state.pipeline[0].tolist() == [[8.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    env.step(action(s))
    assert env.unwrapped.state.pipeline[0].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert env.unwrapped.state.fleet[0].tolist() == [24.0, 8.0]


def test_failures_stochastic_rounding_and_pro_rata_write_off():
    """Failed chips = floor(fleet x failure_rate / 52 + u) with the pre-drawn uniform u of that week and chip;
    the failed share of each chip type's book value (and of its depreciation rate) is written off."""
    s = tiny(failure_rate_per_year=0.52, initial_fleet={"H100-SXM": 200, "MI300X": 50})  # 1% a week
    env = start(s, paths(s, failure_u=[[0.3, 0.6], [0.95, 0.4]]))
    book0 = [200 * 27500, 50 * 12500]  # the initial fleet is booked at list price
    dep0 = [b / (4 * 52) for b in book0]

    info = env.step(action(s))[4]
    # floor(200 x 0.01 + 0.3) = floor(2.3) = 2; floor(50 x 0.01 + 0.6) = floor(1.1) = 1
    assert info["failed"].tolist() == [2.0, 1.0]
    assert info["fleet"].tolist() == [198.0, 49.0]
    assert info["write_off"] == pytest.approx(book0[0] * 2 / 200 + book0[1] * 1 / 50, rel=REL)  # 55,000 + 12,500
    dep1 = [dep0[0] * 198 / 200, dep0[1] * 49 / 50]
    assert info["depreciation"] == pytest.approx(dep1[0] + dep1[1], rel=REL)
    book1 = [book0[0] * 198 / 200 - dep1[0], book0[1] * 49 / 50 - dep1[1]]
    st = env.unwrapped.state
    assert st.book_value[0].tolist() == pytest.approx(book1, rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx(dep1, rel=REL)
    # Profit: no revenue (nothing scheduled, so no power either), maintenance on the surviving fleet.
    maintenance = (198 * 27500 + 49 * 12500) * 0.03 / 52
    assert info["maintenance"] == pytest.approx(maintenance, rel=REL)
    assert info["profit"] == pytest.approx(-maintenance - (dep1[0] + dep1[1]) - info["write_off"], rel=REL)

    info = env.step(action(s))[4]
    # floor(198 x 0.01 + 0.95) = floor(2.93) = 2; floor(49 x 0.01 + 0.4) = floor(0.89) = 0
    assert info["failed"].tolist() == [2.0, 0.0]
    assert info["write_off"] == pytest.approx(book1[0] * 2 / 198, rel=REL)
    assert env.unwrapped.state.fleet[0].tolist() == [196.0, 49.0]


def test_depreciation_and_book_value():
    """Book value starts at fleet x list price and falls by a constant depreciation rate, book / (years x 52)
    a week; a chip adds the price paid for it to the book (and price / (years x 52) to the rate) only when
    it arrives, not while it is queued or in transit."""
    s = tiny()
    env = start(s, paths(s))
    book0 = 16 * 27500 + 8 * 12500
    dep0 = book0 / (4 * 52)
    paid = 8 * 27500 * 0.85 ** (104 / 52)  # 8 H100 ordered in week 0, all released then, arriving in week 2
    infos = [env.step(action(s, order=[0.125, 0.0]))[4], *run(env, s, 3)]
    assert [i["depreciation"] for i in infos] == pytest.approx([dep0, dep0, dep0 + paid / 208, dep0 + paid / 208],
                                                               rel=REL)
    book = book0 - 2 * dep0 + paid - 2 * (dep0 + paid / 208)
    st = env.unwrapped.state
    assert st.book_value[0].sum() == pytest.approx(book, rel=REL)
    assert st.book_value[0, 0] == pytest.approx(16 * 27500 * (1 - 4 / 208) + paid * (1 - 2 / 208), rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx([(16 * 27500 + paid) / 208, 8 * 12500 / 208], rel=REL)
    # Depreciation is a cost in profit but not a cash flow: cash fell by the capex and maintenance only.
    maintenance = [(16 * 27500 + 8 * 12500) * 0.03 / 52] * 2 + [(24 * 27500 + 8 * 12500) * 0.03 / 52] * 2
    assert st.cash[0] == pytest.approx(2e7 - paid - sum(maintenance), rel=REL)


def test_depreciation_stops_when_the_book_value_is_used_up():
    """Straight-line depreciation over half a year (26 weeks) charges book / 26 a week until the book value is
    used up, then nothing: the book never goes negative, so a later failure could never book a gain."""
    s = tiny(depreciation_years=0.5, weeks=30)
    env = start(s, paths(s))
    book0 = 16 * 27500 + 8 * 12500
    infos = run(env, s, 30)
    charges = [i["depreciation"] for i in infos]
    assert charges[:25] == pytest.approx([book0 / 26] * 25, rel=REL)
    assert sum(charges) == pytest.approx(book0, rel=REL)
    assert charges[27:] == [0.0, 0.0, 0.0]
    assert (env.unwrapped.state.book_value >= 0).all()


def test_credit_limit_interest_and_bankruptcy():
    """Orders are scaled down, in whole order units, to fit cash + credit limit; interest is charged on the
    week's opening overdraft at rate / 52; the episode terminates (bankrupt) when cash < -credit limit."""
    s = tiny(initial_cash_usd=100_000, credit_limit_usd=390_000, maintenance_per_year=0.52,
             initial_fleet={"H100-SXM": 16, "MI300X": 0}, hbm={"our_allocation_share": 0.0})
    env = start(s, paths(s))
    price = 27500 * 0.85 ** (104 / 52)  # 19,868.75
    maintenance = 16 * 27500 * 0.52 / 52  # 4,400 a week

    # Week 0: 64 H100 would cost 1,271,600 > 100,000 + 390,000 of headroom: scaled by 490,000 / 1,271,600,
    # 64 x 0.385 = 24.7 chips, rounded down to 3 units of 8 = 24.
    _, reward, terminated, _, info = env.step(action(s, order=[1.0, 0.0]))
    assert math.floor(64 * (490_000 / (64 * price)) / 8) * 8 == 24
    assert info["ordered"].tolist() == [24.0, 0.0] and info["orders_clipped"].tolist() == [40.0, 0.0]
    assert info["capex"] == pytest.approx(24 * price, rel=REL)
    assert info["interest"] == 0.0  # the week opened with cash in hand
    cash1 = 100_000 - 24 * price - maintenance  # -381,250
    assert info["cash"] == pytest.approx(cash1, rel=REL) and not terminated
    # The reward is the week's profit / reward_scale: capex is not a cost, depreciation (of the owned 16) is.
    assert reward == pytest.approx((-maintenance - 16 * 27500 / 208) / 1e5, rel=REL)

    # Week 1: headroom 390,000 - 381,250 = 8,750 buys not one unit; interest on the opening overdraft.
    _, _, terminated, _, info = env.step(action(s, order=[1.0, 0.0]))
    assert info["ordered"].tolist() == [0.0, 0.0] and info["orders_clipped"].tolist() == [64.0, 0.0]
    assert info["capex"] == 0.0
    assert info["interest"] == pytest.approx(381_250 * 0.08 / 52, rel=REL)
    assert info["opex"] == pytest.approx(maintenance + 381_250 * 0.08 / 52, rel=REL)
    cash2 = cash1 - maintenance - 381_250 * 0.08 / 52  # -386,236.54
    assert info["cash"] == pytest.approx(cash2, rel=REL) and not terminated and not info["bankrupt"]

    # Week 2: -386,236.54 - 4,400 - 594.21 = -391,230.75 < -390,000: bankrupt.
    _, _, terminated, truncated, info = env.step(action(s))
    assert info["interest"] == pytest.approx(-cash2 * 0.08 / 52, rel=REL)
    assert info["cash"] == pytest.approx(cash2 - maintenance + cash2 * 0.08 / 52, rel=REL)
    assert info["cash"] < -390_000
    assert terminated and info["bankrupt"] and not truncated
    assert bool(env.unwrapped.state.bankrupt[0])


def test_training_earliest_deadline_first_completion_pay_and_missed_deadlines():
    """Training capacity (training chips x FLOP/s x week seconds) goes to active jobs in order of weeks left
    (earliest deadline first), not slot order; a job is paid value_per_job x its FLOPs / flops_per_job when
    it completes, and dropped unpaid when its weeks run out. A job arriving in week t is placed in the first
    empty slot at the end of week t with ``deadline_weeks`` weeks left."""
    s = tiny(initial_fleet={"H100-SXM": 8, "MI300X": 0})
    cap = 8 * s.arrays["train_flops_per_chip_s"][0] * WEEK_S  # 8 H100 training for a week
    # Job A (1.5 cap) arrives in week 0, B (1.2 cap) in week 1, C (0.5 cap) in week 2; none after.
    flops = [1.5 * cap, 1.2 * cap, 0.5 * cap]
    env = start(s, paths(s, job_arrival=[1.0, 1.0, 1.0, 0.0], job_flops=[*flops, 0.0]))
    value = [1e6 * f / 1e21 for f in flops]  # value_per_job_usd x FLOPs / flops_per_job

    def st():
        return env.unwrapped.state


    info = env.step(action(s, train=[1.0, 0.0]))[4]  # week 0: nothing to train yet; A -> slot 0
    assert info["training_flops_done"] == 0.0
    # (An empty slot's weeks_left is not meaningful: only active slots are checked.)
    assert st().job_flops[0].tolist() == [flops[0], 0.0] and st().job_weeks_left[0, 0] == 3.0
    assert st().job_value[0].tolist() == pytest.approx([value[0], 0.0], rel=REL)

    info = env.step(action(s, train=[1.0, 0.0]))[4]  # week 1: A gets the whole cap; B -> slot 1
    assert info["train_chips"].tolist() == [8.0, 0.0]
    assert info["training_flops_done"] == pytest.approx(cap, rel=REL)
    assert st().job_flops[0].tolist() == pytest.approx([0.5 * cap, 1.2 * cap], rel=REL)
    assert st().job_weeks_left[0].tolist() == [2.0, 3.0]
    # All 8 chips busy: power = 8 x 700 W x PUE 1.2 for a week at $0.08/kWh.
    assert info["power_cost"] == pytest.approx(8 * 700 * 1.2 * WEEK_S / 3.6e6 * 0.08, rel=REL)

    info = env.step(action(s, train=[1.0, 0.0]))[4]  # week 2: A (2 weeks left) finishes first, B gets the rest
    assert info["training_jobs_completed"] == 1 and info["training_jobs_missed"] == 0
    assert info["revenue"] == pytest.approx(value[0], rel=REL)
    assert info["training_flops_done"] == pytest.approx(cap, rel=REL)
    # B has 1.2 - 0.5 = 0.7 cap left, 2 weeks; C takes the freed slot 0 with 3 weeks.
    assert st().job_flops[0].tolist() == pytest.approx([0.5 * cap, 0.7 * cap], rel=REL)
    assert st().job_weeks_left[0].tolist() == [3.0, 2.0]

    # Week 3: B (slot 1, 2 weeks left) goes before C (slot 0, 3 weeks left): B completes with 0.7 cap and C
    # gets 0.3. In slot order C would have finished instead, leaving B 0.2 cap short.
    info = env.step(action(s, train=[1.0, 0.0]))[4]
    assert info["training_jobs_completed"] == 1
    assert info["revenue"] == pytest.approx(value[1], rel=REL)
    assert st().job_flops[0].tolist() == pytest.approx([0.2 * cap, 0.0], rel=REL)
    assert st().job_weeks_left[0, 0] == 2.0

    # Weeks 4-5: no training chips; C runs out of weeks at the end of week 5, unpaid.
    infos = run(env, s, 2)
    assert [i["training_jobs_missed"] for i in infos] == [0, 1]
    assert [i["training_flops_done"] for i in infos] == [0.0, 0.0]
    assert [i["revenue"] for i in infos] == [0.0, 0.0]
    assert st().job_flops[0].tolist() == [0.0, 0.0] and st().job_value[0].tolist() == [0.0, 0.0]


def test_serving_capacity_ttft_queueing_slo_attainment_and_revenue():
    """Shares become whole replicas (floor to ``replica_chips``). Prefill capacity = sum of prefill chips x
    prefill rate x output/input tokens; decode capacity = sum of decode chips x decode rate; served = the
    least of demand and the capacities. TTFT = service + rho x service / (2 (1 - rho)) + crossing x KV bytes /
    link rate, with service the prefill-work-weighted latency and rho = served / prefill capacity (at most
    0.99). Attainment = (decode share on chips meeting the TPOT SLO) x min(TTFT SLO / TTFT, 1); revenue =
    served x attainment x price x week seconds. Power is paid on the busy share of each chip."""
    # A 9.5 ms TPOT SLO that MI300X meets (in replicas of 8) and H100 cannot meet at any batch (34 ms, alone).
    s = tiny(initial_fleet={"H100-SXM": 16, "MI300X": 40}, classes={"chat": {"tpot_slo_s": 0.0095, "ttft_slo_s": 0.1}})
    a = s.arrays
    pr, dr = a["prefill_rate"][0], a["serving_decode_rate"][0]
    latency, kv, tpot = a["prefill_latency_s"][0], a["kv_bytes_per_request"][0], a["tpot_s"][0]
    assert tpot[0] > 0.0095 >= tpot[1]
    assert a["replica_chips"].tolist() == [[1.0, 8.0]]
    env = start(s, paths(s, demand=[20_000.0, 30_000.0]))

    # A quarter of each fleet to prefill, three quarters to decode, in whole replicas:
    # H100 4 and 12 chips; MI300X 0.25 x 40 = 10 -> 8 and 0.75 x 40 = 30 -> 24.
    act = action(s, prefill=[0.25, 0.25], decode=[0.75, 0.75])
    info = env.step(act)[4]
    assert info["prefill_chips"].tolist() == [[4.0, 8.0]] and info["decode_chips"].tolist() == [[12.0, 24.0]]
    prefill_work = [4 * pr[0], 8 * pr[1]]
    decode_work = [12 * dr[0], 24 * dr[1]]
    prefill_cap = (prefill_work[0] + prefill_work[1]) * 256 / 1024  # in output-token equivalents
    decode_cap = decode_work[0] + decode_work[1]
    assert info["prefill_capacity"][0] == pytest.approx(prefill_cap, rel=REL)  # ~25,287 tokens/s
    assert info["decode_capacity"][0] == pytest.approx(decode_cap, rel=REL)  # ~51,850 tokens/s
    p_share = [w / sum(prefill_work) for w in prefill_work]
    d_share = [w / decode_cap for w in decode_work]
    crossing = 1 - (min(p_share[0], d_share[0]) + min(p_share[1], d_share[1]))  # ~0.27 of KV caches move
    assert info["kv_crossing"][0] == pytest.approx(crossing, rel=REL)
    served = 20_000.0  # below both capacities (and the KV-transfer cap of 12 links, ~2.7e7 tokens/s)
    assert info["served"][0] == pytest.approx(served, rel=REL) and info["unmet"][0] == pytest.approx(0.0, abs=1e-9)
    service = p_share[0] * latency[0] + p_share[1] * latency[1]
    kv_req = p_share[0] * kv[0] + p_share[1] * kv[1]
    rho = served / prefill_cap  # ~0.79
    ttft = service + rho * service / (2 * (1 - rho)) + crossing * kv_req / 50e9
    assert info["ttft_s"][0] == pytest.approx(ttft, rel=REL)  # ~0.16 s
    attainment = d_share[1] * min(0.1 / ttft, 1.0)  # ~0.99 of decode meets TPOT x ~0.61
    assert info["slo_attainment"][0] == pytest.approx(attainment, rel=REL)
    assert info["revenue"] == pytest.approx(served * attainment * 1e-6 * WEEK_S, rel=REL)
    busy = [4 * served / prefill_cap + 12 * served / decode_cap, 8 * served / prefill_cap + 24 * served / decode_cap]
    assert info["utilisation"].tolist() == pytest.approx([busy[0] / 16, busy[1] / 40], rel=REL)
    assert info["power_cost"] == pytest.approx((busy[0] * 700 + busy[1] * 750) * 1.2 * WEEK_S / 3.6e6 * 0.08, rel=REL)
    st = env.unwrapped.state
    assert st.last_served_fraction[0, 0] == pytest.approx(1.0, rel=REL)
    assert st.last_attainment[0, 0] == pytest.approx(attainment, rel=REL)

    # Week 1: demand 30,000 exceeds prefill capacity: served = prefill capacity, rho = min(1, 0.99) = 0.99.
    info = env.step(act)[4]
    assert info["served"][0] == pytest.approx(prefill_cap, rel=REL)
    assert info["unmet"][0] == pytest.approx(30_000 - prefill_cap, rel=REL)
    ttft = service + 0.99 * service / (2 * 0.01) + crossing * kv_req / 50e9
    assert info["ttft_s"][0] == pytest.approx(ttft, rel=REL)
    attainment = d_share[1] * min(0.1 / ttft, 1.0)
    assert info["revenue"] == pytest.approx(prefill_cap * attainment * 1e-6 * WEEK_S, rel=REL)
    assert env.unwrapped.state.last_served_fraction[0, 0] == pytest.approx(prefill_cap / 30_000, rel=REL)


def test_kv_transfer_cap_on_disaggregated_serving():
    """When prefill and decode run on different chip types the KV cache of every request crosses a link:
    served is capped at (prefill chips x link bytes/s) / (crossing x KV bytes per request) x output tokens,
    and TTFT pays crossing x KV bytes / link rate for the transfer."""
    s = tiny(chips=["H100-SXM", "WSE-3"], initial_fleet={"H100-SXM": 320, "WSE-3": 32})
    a = s.arrays
    assert a["replica_chips"].tolist() == [[8.0, 32.0]]
    pr, dr = a["prefill_rate"][0], a["serving_decode_rate"][0]
    latency, kv = a["prefill_latency_s"][0], a["kv_bytes_per_request"][0]
    assert a["tpot_s"][0, 0] <= 0.05  # H100 decode meets chat's TPOT SLO
    env = start(s, paths(s, demand=1.5e6))
    # All 32 WSE-3 prefill (one replica), all 320 H100 decode: every KV cache moves (crossing 1).
    info = env.step(action(s, prefill=[0.0, 1.0], decode=[1.0, 0.0]))[4]
    prefill_cap = 32 * pr[1] * 256 / 1024  # ~1.75e6 tokens/s
    decode_cap = 320 * dr[0]  # ~1.24e6 tokens/s
    transfer_cap = 32 * 50e9 / (1.0 * kv[1]) * 256  # 32 links of 50 GB/s, 336 MB a request: ~1.22e6 tokens/s
    assert transfer_cap < min(prefill_cap, decode_cap, 1.5e6)  # the link is what binds
    assert info["kv_crossing"][0] == 1.0
    assert info["served"][0] == pytest.approx(transfer_cap, rel=REL)
    assert info["unmet"][0] == pytest.approx(1.5e6 - transfer_cap, rel=REL)
    rho = transfer_cap / prefill_cap
    ttft = latency[1] + rho * latency[1] / (2 * (1 - rho)) + 1.0 * kv[1] / 50e9
    assert info["ttft_s"][0] == pytest.approx(ttft, rel=REL)
    assert info["slo_attainment"][0] == 1.0  # TTFT ~7 ms against a 1 s SLO, TPOT met
    assert info["revenue"] == pytest.approx(transfer_cap * 1e-6 * WEEK_S, rel=REL)


def test_backlog_carry_over_is_capped_at_four_weeks_of_demand():
    """A carry-over class's unmet demand returns next week: backlog = min(unmet x carry_over, 4 x this week's
    exogenous demand), and next week's demand to serve is exogenous demand + backlog. Other classes lose it."""
    s = tiny(initial_fleet={"H100-SXM": 0, "MI300X": 8}, classes={"chat": {"carry_over": True}})
    cap = 2 * s.arrays["prefill_rate"][0, 1] * 256 / 1024  # 2 MI300X prefill: ~4,586 tokens/s binds
    demand = [1e6] * 5 + [5e5]
    env = start(s, paths(s, demand=demand))
    infos = run(env, s, 6, prefill=[0.0, 0.25], decode=[0.0, 0.75])
    assert [i["served"][0] for i in infos] == pytest.approx([cap] * 6, rel=REL)
    short = 1e6 - cap
    # Backlog after weeks 0-3: 1, 2, 3, 4 weeks' shortfall (4 x 995,414 < 4e6); week 4: 5 x 995,414 > 4e6.
    # Week 5: demand halves and the cap with it: min(5e5 + 4e6 - cap, 4 x 5e5) = 2e6.
    backlog = [short, 2 * short, 3 * short, 4 * short, 4e6, 2e6]
    demand_eff = [d + b for d, b in zip(demand, [0.0, *backlog[:-1]])]
    assert [i["demand"][0] for i in infos] == pytest.approx(demand_eff, rel=REL)
    assert [i["unmet"][0] for i in infos] == pytest.approx([d - cap for d in demand_eff], rel=REL)
    assert env.unwrapped.state.backlog[0, 0] == pytest.approx(2e6, rel=REL)

    s = tiny(initial_fleet={"H100-SXM": 0, "MI300X": 8})  # chat without carry-over
    env = start(s, paths(s, demand=demand))
    infos = run(env, s, 2, prefill=[0.0, 0.25], decode=[0.0, 0.75])
    assert [i["demand"][0] for i in infos] == [1e6, 1e6]
    assert env.unwrapped.state.backlog[0, 0] == 0.0
