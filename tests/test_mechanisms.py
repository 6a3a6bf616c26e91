"""Mechanism tests, worked by hand: one tiny scenario, exogenous paths fixed by the test, and every
expected number written out as arithmetic from the scenario's figures, citing the rule it checks.

The scenario (``tiny``) is ``small`` cut down to two HBM chips (H100-SXM, MI300X), one inference
class (chat: llama-3.1-70b fp8, 1024 in / 256 out) and two training slots. It keeps the economics of
``default``: chips cost their deployed price (chip x a system multiple of 1.8), draw 1.8 x their TDP at
the wall, need a site at $12,000 per kW of IT load (15-year life), depreciate over 5 years and carry a
cost of capital of 11% a year; the initial fleet is 52 weeks old. Per-chip serving rates, latencies,
KV sizes and the vendors' software-efficiency multipliers are read from ``scenario.arrays`` (the
roofline is tested in test_perf.py); everything downstream of them is computed here. The figures the
hand arithmetic writes as literals (prices, multiples, stacks, market dates, replica sizes, economics)
are pinned by the first test, so a catalog or scenario change fails there with a clear message rather
than in the middle of a mechanism.

Figures used throughout (TINY's initial fleet: 16 H100, 8 MI300X, bought at week -52):
* deployed price of a new chip at week w: H100 27,500 x 0.85^((w + 104) / 52) x 1.8, MI300X
  12,500 x 0.85^((w + 52) / 52) x 1.8 (x (1 + 0.45 (HBM index - 1)) when the HBM index moves);
  so the initial fleet cost 27,500 x 0.85 x 1.8 = 42,075 an H100 and 12,500 x 1.8 = 22,500 an MI300X;
* book value at the start: cost x (1 - 52 / 260), depreciated at cost / 260 a week;
* site: 16 x 1,260 W + 8 x 1,350 W = 30.96 kW, cost 30.96 x 12,000 = 371,520, booked at
  371,520 x (1 - 52 / 780) and depreciated at 371,520 / 780 a week; an order builds the kW its chips need
  beyond what the site holds for the chips owned, queued and in transit, paid and booked the week it is placed
  (8 H100: 8 x 1.26 kW x 12,000 = 120,960), and depreciated from that week;
* capital charge: 0.11 / 52 x (chips' book + prepaid orders + site book) at the end of each week;
* HBM: the default scenario's generation mix gives four pools, HBM2e, HBM3, HBM3e, HBM4 (the G axis of
  the HBM paths, state and info, in that order); H100 and MI300X use HBM3, H200 HBM3e.

Only the public surface is used: ``envs.DatacenterEnv`` (fine variant), ``envs.load_scenario``,
``envs.Exogenous``, ``envs.spaces.fine_action``, ``envs.functional``'s helpers, the ``info`` dict and the
``State`` fields.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import envs
import envs.functional as fn
from envs import Exogenous
from envs.spaces import fine_action

WEEK_S = 7 * 24 * 3600.0  # seconds in a week
REL = 1e-9
CC = 0.11 / 52  # the weekly capital charge: cost_of_capital_per_year / 52

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
    "training": {"flops_per_job": 1e21, "deadline_weeks": 3, "slots": 2, "clusters": False},
    # The site is built with each order and nothing is rented unless a test turns the power cap or the
    # rental market on (tests of those mechanisms below).
    "site": {"power_cap": False},
    "rental": {"enabled": False},
}
# The power cap and rental market the tests of those mechanisms turn on: a site of 42 kW of IT load
# (0.0525 MW at the meter / PUE 1.25), blocks of 20 kW (0.025 MW / 1.25) ready 3 weeks after they are
# ordered, at most 2 a week; H100s rent at $2.40 an hour, at most 64 a week, and a let-out chip pays a 20% fee.
POWER_CAP = {"power_cap": True, "initial_grid_mw": 0.0525, "expansion_block_mw": 0.025, "expansion_lead_weeks": 3,
             "max_blocks_per_week": 2}
RENTAL = {"enabled": True, "usd_per_chip_hour": {"H100-SXM": 2.40}, "rent_out_fee": 0.2, "max_chips_per_week": 64}

# TINY's initial fleet, bought 52 weeks before the start at the deployed price of then (42,075 an H100,
# 22,500 an MI300X), booked at cost less 52 of 260 weeks of straight-line depreciation; and its site.
BOOK0 = [16 * 42_075 * (1 - 52 / 260), 8 * 22_500 * (1 - 52 / 260)]  # 538,560 and 144,000
DEP0 = [16 * 42_075 / 260, 8 * 22_500 / 260]  # 2,589.23 and 692.31 a week
SITE_KW0 = (16 * 1260 + 8 * 1350) / 1000  # 30.96 kW of IT load
SITE0 = 371_520 * (1 - 52 / 780)  # 30.96 kW x $12,000, 52 of 780 weeks used: 346,752
SITE_DEP = 371_520 / 780  # 476.31 a week
MAINTENANCE0 = (16 * 27_500 + 8 * 12_500) * 1.8 * 0.03 / 52  # 3% a year of the fleet's deployed list price


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
    (demand), per HBM generation (the HBM paths) or per chip (failure_u). Defaults: demand at the
    scenario's initial level, a balanced HBM market of 1e5 stacks a week in every generation, no shocks,
    no training jobs, failure uniforms 0."""
    T, C, K, G = s.weeks, s.n_classes, s.n_chips, s.n_hbm_generations
    demand = [s.arrays["demand0"]] if demand is None else demand
    job_flops = s.training["flops_per_job"] if job_flops is None else job_flops
    return Exogenous(demand=_path(demand, T, (C,)),
                     hbm_supply=_path(hbm_supply, T, (G,)), other_hbm_demand=_path(other_hbm_demand, T, (G,)),
                     hbm_shock=_path(hbm_shock, T, (G,)), job_arrival=_path(job_arrival, T, ()),
                     job_flops=_path(job_flops, T, ()), failure_u=_path(failure_u, T, (K,)))


def action(s: envs.Scenario, order=None, train=None, prefill=None, decode=None, sell=None, rent_in=None,
           rent_out=None, expand=0.0, accept=None, update=0.5) -> np.ndarray:
    """The fine action ordering ``order`` (K,) x the weekly maximum, selling ``sell`` (K,) of each chip type's
    fleet, renting in ``rent_in`` (K,) x the rental market's depth, letting out ``rent_out`` (K,) of each type's
    fleet, ordering ``expand`` x the weekly maximum of site blocks, accepting the week's cluster contract on chip
    type ``accept``, giving each type's serving fleet the shares ``train``, ``prefill`` and ``decode`` (K,) of
    the scenario's one class (zeros by default) and RL students ``update`` x MAX_UPDATE_SHARE of their decode time."""
    assert s.n_classes == 1
    K = s.n_chips

    def row(x):
        return np.zeros(K) if x is None else np.asarray(x, dtype=float)

    return fine_action(s, row(order), np.stack([row(train), row(prefill), row(decode)]), row(sell), row(rent_in),
                       row(rent_out), expand, accept, update_knob=update)


def start(s: envs.Scenario, exo: Exogenous) -> envs.DatacenterEnv:
    env = envs.DatacenterEnv(scenario=s, variant="fine")
    env.reset(options={"exogenous": exo})
    return env


def run(env, s, weeks: int, **act):
    """Step ``weeks`` weeks with the same action; the info dicts."""
    return [env.step(action(s, **act))[4] for _ in range(weeks)]


def peaks(capacity: float, demand: float, peak: float) -> float:
    """Mean load served when the load over the week is peak x u^(peak - 1) x demand, u uniform on [0, 1], and
    load above ``capacity`` is shed: the integral of min(load, capacity), worked out by hand. The load is
    at most capacity for u <= u* = (x / peak)^(1 / (peak - 1)), x = capacity / demand, so served / demand
    = u*^peak + x (1 - u*) = x (1 - u* (1 - 1 / peak)); all of it when x >= peak."""
    x = capacity / demand
    if x >= peak:
        return demand
    u = (x / peak) ** (1 / (peak - 1))
    return demand * (u ** peak + x * (1 - u))


def max_load(service: float, budget: float) -> float:
    """Largest prefill load rho with service x (1 + rho / (2 (1 - rho))) <= budget (the M/D/1 mean TTFT),
    solved by hand: rho <= 2 (q - 1) / (2 q - 1), q = budget / service; at most 0.99, 0 if q <= 1."""
    q = budget / service
    return 0.0 if q <= 1 else min(2 * (q - 1) / (2 * q - 1), 0.99)


def test_tiny_scenario_figures_used_by_the_hand_arithmetic():
    """The catalog and scenario figures that the tests below write as literals."""
    s = tiny()
    a = s.arrays
    assert s.chips == ("H100-SXM", "MI300X") and [c.name for c in s.classes] == ["chat"]
    assert a["list_price"].tolist() == [27500.0, 12500.0]
    assert a["system_capex_multiple"].tolist() == [1.8, 1.8]
    assert a["tdp_w"].tolist() == [700.0, 750.0] and a["system_power_w"].tolist() == [1260.0, 1350.0]
    assert a["hbm_stacks"].tolist() == [5.0, 8.0]
    assert a["available_week"].tolist() == [-104.0, -52.0]
    assert a["order_unit"].tolist() == [8.0, 8.0]
    assert a["replica_chips"].tolist() == [[2.0, 1.0]]
    assert a["fits"].tolist() == [[1.0, 1.0]]
    assert a["input_tokens"].tolist() == [1024.0] and a["output_tokens"].tolist() == [256.0]
    assert a["input_price_per_token"].tolist() == pytest.approx([0.4e-6], rel=REL)
    assert a["output_price_per_token"].tolist() == pytest.approx([0.4e-6], rel=REL)
    assert a["price_decline_per_year"].tolist() == [0.1] and a["peak_to_mean"].tolist() == [1.9]
    assert a["tpot_slo_s"].tolist() == [0.05] and a["ttft_slo_s"].tolist() == [1.0]
    assert float(a["kv_link_bytes_per_s"]) == 50e9
    assert a["efficiency_by_year"].shape == (2, 2, 1)  # 12 weeks: one episode year
    assert (s.credit_limit_usd, s.initial_cash_usd, s.cost_of_capital_per_year) == (4e7, 2e7, 0.11)
    assert (s.price_decline_per_year, s.maintenance_per_year, s.depreciation_years) == (0.15, 0.03, 5)
    assert (s.failure_rate_per_year, s.pue, s.energy_usd_per_kwh) == (0.05, 1.25, 0.08)
    assert (s.facility_capex_usd_per_kw, s.facility_life_years, s.initial_fleet_age_weeks) == (12000, 15, 52)
    assert (s.order_refund_fraction, s.resale_age_decay_per_year) == (0.5, 0.27)
    assert (s.hbm["price_elasticity"], s.hbm["price_smoothing"], s.hbm["hbm_cost_share"]) == (1.5, 0.2, 0.45)
    assert s.reward_scale_usd == 1e5
    assert s.hbm_generations == ("HBM2e", "HBM3", "HBM3e", "HBM4") and a["hbm_generation"].tolist() == [1.0, 1.0]
    assert (s.training["rent_usd_per_h100_hour"], s.training["contract_rent_multiple"]) == (2.40, 0.83)


def test_training_contract_value_is_h100_hours_at_contract_rent():
    """value_per_job_usd = flops_per_job / (H100 bf16 peak x training MFU x 3,600) x rent per H100-hour x the
    contract multiple; an H100's training FLOP/s (``train_flops_per_chip_s``) is that peak x MFU."""
    s = tiny()
    h100_flops = s.arrays["train_flops_per_chip_s"][0]  # ~3.96e14 FLOP/s
    assert s.training["value_per_job_usd"] == pytest.approx(1e21 / (h100_flops * 3600) * 2.40 * 0.83, rel=REL)
    # Ten times the FLOPs, ten times the H100-hours and the value.
    s10 = tiny(training={"flops_per_job": 1e22})
    assert s10.training["value_per_job_usd"] == pytest.approx(10 * s.training["value_per_job_usd"], rel=REL)


def test_initial_state_books_the_aged_fleet_and_its_site():
    """The initial fleet is ``initial_fleet_age_weeks`` old: booked at the deployed price of that week
    (list x 0.85^(years on the market then) x 1.8) less straight-line depreciation since, and depreciated
    at that cost / (5 x 52) a week. The site is sized to the fleet's IT load (system power), costs
    $12,000 a kW, and is as old (15-year life)."""
    s = tiny()
    st = start(s, paths(s)).unwrapped.state
    assert st.cash[0] == 2e7 and st.week[0] == 0 and not st.bankrupt[0]
    assert st.fleet[0].tolist() == [16.0, 8.0] and st.age_weeks[0].tolist() == [52.0, 52.0]
    # H100 on the market since week -104: 52 weeks at week -52, 27,500 x 0.85 x 1.8 = 42,075; MI300X launched
    # at week -52: 12,500 x 1.8 = 22,500.
    assert st.book_value[0].tolist() == pytest.approx([16 * 42_075 * (1 - 52 / 260), 8 * 22_500 * (1 - 52 / 260)],
                                                      rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx([16 * 42_075 / 260, 8 * 22_500 / 260], rel=REL)
    assert st.site_kw[0] == pytest.approx((16 * 1260 + 8 * 1350) / 1000, rel=REL)  # 30.96 kW
    assert st.site_book_value[0] == pytest.approx(30.96 * 12_000 * (1 - 52 / 780), rel=REL)
    assert st.site_depreciation_rate[0] == pytest.approx(30.96 * 12_000 / 780, rel=REL)
    assert st.queue.sum() == st.queue_value.sum() == st.pipeline.sum() == st.pipeline_value.sum() == 0.0
    assert st.hbm_price[0].tolist() == [1.0] * 4  # one index per HBM generation
    # (the admissible-load observation starts at the most the dynamics report, the queueing cap 0.99)
    assert st.last_served_fraction[0].tolist() == [1.0] and st.last_admissible_load[0].tolist() == [0.99]

    # 300 weeks old: older than the 260-week book life, so booked at nothing (its cost floors at list x 1.8:
    # the price decline counts from launch); the site, 300 of 780 weeks used, still has book value. A type
    # with no chips has age 0.
    s = tiny(initial_fleet={"H100-SXM": 16, "MI300X": 0}, initial_fleet_age_weeks=300)
    st = start(s, paths(s)).unwrapped.state
    assert st.age_weeks[0].tolist() == [300.0, 0.0]
    assert st.book_value[0].tolist() == [0.0, 0.0]
    assert st.depreciation_rate[0].tolist() == pytest.approx([16 * 27_500 * 1.8 / 260, 0.0], rel=REL)
    assert st.site_kw[0] == pytest.approx(16 * 1.26, rel=REL)
    assert st.site_book_value[0] == pytest.approx(16 * 1.26 * 12_000 * (1 - 300 / 780), rel=REL)
    # A fully depreciated fleet charges no depreciation; the site's is charged.
    info = start(s, paths(s)).step(action(s))[4]
    assert info["depreciation"] == pytest.approx(16 * 1.26 * 12_000 / 780, rel=REL)


HBM3 = 1  # the HBM3 pool's place on the G axis (H100, MI300X)
HBM3E = 2  # (H200)


def test_hbm_rationing_release_and_price_index():
    """Our HBM allocation of a generation is share x its supply x min(supply / other demand, 1); each HBM chip
    type releases floor(queue x min(allocation / stacks its generation's queue needs, 1)); the generation's price
    index moves by ``price_smoothing`` toward max(1 + elasticity x excess, 0.5), excess = (other + our stacks
    needed) / supply - 1; and the HBM part of a chip's price (``hbm_cost_share``) moves with the index of its
    generation. Here every generation sees the same market; both chips use HBM3."""
    s = tiny()
    env = start(s, paths(s, hbm_supply=[100_000.0, 100_000.0, 200_000.0], other_hbm_demand=[125_000.0, 10_000.0]))

    # Week 0: order 0.5 x 64 = 32 H100 and 0.25 x 64 = 16 MI300X, at the deployed price: list x
    # 0.85^(years on market) x the system multiple 1.8.
    info = env.step(action(s, order=[0.5, 0.25]))[4]
    assert info["ordered"].tolist() == [32.0, 16.0]
    assert info["capex"] == pytest.approx(32 * 27500 * 0.85 ** (104 / 52) * 1.8 + 16 * 12500 * 0.85 ** (52 / 52) * 1.8,
                                          rel=REL)
    stacks_needed = 32 * 5 + 16 * 8  # 288 stacks for the queue
    allocation = 0.001 * 100_000 * (100_000 / 125_000)  # the market is short: 80 stacks
    assert info["hbm_supply"].tolist() == [100_000.0] * 4
    assert info["hbm_allocation"][HBM3] == pytest.approx(80.0, rel=REL) == allocation
    share = allocation / stacks_needed  # 0.2778 of the queue
    released = [math.floor(32 * share), math.floor(16 * share)]
    assert released == [8, 4]
    assert info["hbm_drawn"].tolist() == [0.0, 8 * 5 + 4 * 8, 0.0, 0.0]
    assert info["in_queue"].tolist() == [24.0, 12.0]
    assert env.unwrapped.state.queue[0].tolist() == [24.0, 12.0]
    excess = (125_000 + stacks_needed) / 100_000 - 1
    price0 = 1 + 0.2 * (max(1 + 1.5 * excess, 0.5) - 1)  # 1.075864
    assert info["hbm_price"][HBM3] == pytest.approx(price0, rel=REL)
    assert env.unwrapped.state.hbm_price[0, HBM3] == pytest.approx(price0, rel=REL)
    # The other generations' markets are short by others' demand alone: 1 + 0.2 x 1.5 x (125,000 / 100,000 - 1).
    assert info["hbm_price"][[0, 2, 3]].tolist() == pytest.approx([1 + 0.2 * 1.5 * 0.25] * 3, rel=REL)

    # Week 1: order 8 more H100, now with the HBM share of the price (45%) up with the index.
    info = env.step(action(s, order=[0.125, 0.0]))[4]
    h100_price = 27500 * 0.85 ** (105 / 52) * (1 + 0.45 * (price0 - 1)) * 1.8
    assert info["capex"] == pytest.approx(8 * h100_price, rel=REL)
    stacks_needed = (24 + 8) * 5 + 12 * 8  # 256
    allocation = 0.001 * 100_000 * 1.0  # others want less than supply: the fill is capped at 1
    assert info["hbm_allocation"][HBM3] == pytest.approx(allocation, rel=REL)
    share = allocation / stacks_needed  # 0.390625
    assert [math.floor(32 * share), math.floor(12 * share)] == [12, 4]
    assert info["hbm_drawn"][HBM3] == 12 * 5 + 4 * 8
    assert info["in_queue"].tolist() == [20.0, 8.0]
    excess = (10_000 + stacks_needed) / 100_000 - 1  # -0.897: the target 1 + 1.5 x excess is floored at 0.5
    assert info["hbm_price"][HBM3] == pytest.approx(price0 + 0.2 * (0.5 - price0), rel=REL)

    # Week 2: supply doubles; an allocation of 0.001 x 200,000 = 200 stacks covers the queue's 164 and frees it all.
    info = env.step(action(s))[4]
    assert info["hbm_allocation"][HBM3] == pytest.approx(200.0, rel=REL)
    assert info["hbm_drawn"][HBM3] == 20 * 5 + 8 * 8 and info["in_queue"].tolist() == [0.0, 0.0]


def test_a_shock_to_one_hbm_generation_delays_its_chips_and_spares_the_others():
    """Each HBM chip draws from its own generation's pool. A shock that takes 40% of HBM3e's supply (and makes
    its market short) in week 0 holds back H200s (HBM3e) a week, while H100s (HBM3) ordered with them are
    released at once and arrive at the base lead time; each generation's price index follows its own market,
    and each chip's price its own generation's index."""
    s = tiny(chips=["H100-SXM", "H200"], initial_fleet={"H100-SXM": 16, "H200": 0})
    a = s.arrays
    assert a["hbm_stacks"].tolist() == [5.0, 6.0] and a["hbm_generation"].tolist() == [HBM3, HBM3E]
    assert a["list_price"].tolist() == [27_500.0, 30_000.0] and a["available_week"].tolist() == [-104.0, -39.0]
    shocked = [100_000.0, 100_000.0, 60_000.0, 100_000.0]  # HBM2e, HBM3, HBM3e (1e5 less 40%), HBM4
    flag = [0.0, 0.0, 1.0, 0.0]
    env = start(s, paths(s, hbm_supply=[shocked, [100_000.0] * 4], hbm_shock=[flag, [0.0] * 4]))
    # The observation's HBM block: G price indices, G supplies, G queued stacks, G shock flags.
    i = 4 + 6 * s.n_chips + 5 * s.n_classes
    obs = fn.observe(env.unwrapped.params, env.unwrapped.state)[0]
    assert obs[i:i + 4].tolist() == [1.0] * 4 and obs[i + 12:i + 16].tolist() == flag

    # Week 0: order 0.25 x 64 = 16 of each. HBM3 queue: 16 x 5 = 80 stacks, allocation 0.001 x 100,000 x 1 = 100:
    # every H100 is released. HBM3e queue: 16 x 6 = 96 stacks, allocation 0.001 x 60,000 x (60,000 / 100,000)
    # = 36 stacks: floor(16 x 36 / 96) = floor(6.0) = 6 H200 are released, 10 wait.
    obs, _, _, _, info = env.step(action(s, order=[0.25, 0.25]))
    assert info["ordered"].tolist() == [16.0, 16.0]
    assert info["hbm_supply"].tolist() == shocked
    assert info["hbm_allocation"].tolist() == pytest.approx([100.0, 100.0, 36.0, 100.0], rel=REL)
    assert info["hbm_drawn"].tolist() == [0.0, 16 * 5, 6 * 6, 0.0]
    assert info["in_queue"].tolist() == [0.0, 10.0]
    # Price indices: HBM3 excess (100,000 + 80) / 100,000 - 1 = 0.0008; HBM3e (100,000 + 96) / 60,000 - 1;
    # the unused pools are balanced (excess 0) and stay at 1.
    p3 = 1 + 0.2 * (1.5 * 0.0008)
    p3e = 1 + 0.2 * (1.5 * (100_096 / 60_000 - 1))  # 1.200480
    assert info["hbm_price"].tolist() == pytest.approx([1.0, p3, p3e, 1.0], rel=REL)
    assert env.unwrapped.state.hbm_price[0].tolist() == pytest.approx([1.0, p3, p3e, 1.0], rel=REL)
    assert obs[i:i + 4].tolist() == pytest.approx([1.0, p3, p3e, 1.0], rel=1e-6)  # (float32)
    assert obs[i + 12:i + 16].tolist() == [0.0] * 4  # week 1: the shock is over

    # Week 1: order 8 of each, each priced with its own generation's index (45% of a chip's price is HBM).
    info = env.step(action(s, order=[0.125, 0.125]))[4]
    h100 = 27_500 * 0.85 ** (105 / 52) * (1 + 0.45 * (p3 - 1)) * 1.8
    h200 = 30_000 * 0.85 ** (40 / 52) * (1 + 0.45 * (p3e - 1)) * 1.8
    assert info["capex"] == pytest.approx(8 * h100 + 8 * h200, rel=REL)
    # HBM3: 8 x 5 = 40 stacks within 100, all released. HBM3e: (10 + 8) x 6 = 108 stacks for an allocation of 100:
    # floor(18 x 100 / 108) = floor(16.67) = 16 released, 2 wait.
    assert info["hbm_allocation"].tolist() == pytest.approx([100.0] * 4, rel=REL)
    assert info["hbm_drawn"].tolist() == [0.0, 8 * 5, 16 * 6, 0.0]
    assert info["in_queue"].tolist() == [0.0, 2.0]
    assert info["hbm_price"][HBM3] == pytest.approx(p3 + 0.2 * (1 + 1.5 * 0.0004 - p3), rel=REL)
    assert info["hbm_price"][HBM3E] == pytest.approx(p3e + 0.2 * (1 + 1.5 * 0.00108 - p3e), rel=REL)

    # Arrivals (lead 3: released in week w, they arrive in week w + 2): every H100 at the lead time; the H200s
    # ordered in week 0 split 6 in week 2 and 10 a week late, and the 2 left from week 1 arrive in week 4.
    infos = run(env, s, 3)
    assert [i["arrived"].tolist() for i in infos] == [[16.0, 6.0], [8.0, 16.0], [0.0, 2.0]]
    assert infos[-1]["fleet"].tolist() == [16.0 + 24.0, 24.0]


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
    assert [i["hbm_drawn"].tolist() for i in infos] == [[0.0] * 4] * 4  # SRAM chips draw no stacks; H100s got none
    assert [i["hbm_allocation"].tolist() for i in infos] == [[0.0] * 4] * 4


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
    week's shift, then slot 0, then arrives; its $ value (the deployed price paid) travels with it."""
    s = tiny()
    env = start(s, paths(s))
    env.step(action(s, order=[0.125, 0.0]))
    price = 27500 * 0.85 ** (104 / 52) * 1.8  # 35,763.75
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
    book0 = [200 * 42_075 * (1 - 52 / 260), 50 * 22_500 * (1 - 52 / 260)]  # the aged fleet at its deployed cost
    dep0 = [200 * 42_075 / 260, 50 * 22_500 / 260]
    site_cost = (200 * 1260 + 50 * 1350) / 1000 * 12_000  # 319.5 kW
    site_dep = site_cost / 780

    info = env.step(action(s))[4]
    # floor(200 x 0.01 + 0.3) = floor(2.3) = 2; floor(50 x 0.01 + 0.6) = floor(1.1) = 1
    assert info["failed"].tolist() == [2.0, 1.0]
    assert info["fleet"].tolist() == [198.0, 49.0]
    assert info["write_off"] == pytest.approx(book0[0] * 2 / 200 + book0[1] * 1 / 50, rel=REL)  # 67,320 + 18,000
    dep1 = [dep0[0] * 198 / 200, dep0[1] * 49 / 50]
    assert info["depreciation"] == pytest.approx(dep1[0] + dep1[1] + site_dep, rel=REL)  # chips and the site
    book1 = [book0[0] * 198 / 200 - dep1[0], book0[1] * 49 / 50 - dep1[1]]
    st = env.unwrapped.state
    assert st.book_value[0].tolist() == pytest.approx(book1, rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx(dep1, rel=REL)
    assert st.site_kw[0] == pytest.approx(319.5, rel=REL)  # the site is kept when chips fail
    # Profit: no revenue (nothing scheduled, so no power either), maintenance on the surviving fleet, and the
    # capital charge on the end-of-week book values of the chips and the site.
    maintenance = (198 * 27500 + 49 * 12500) * 1.8 * 0.03 / 52
    assert info["maintenance"] == pytest.approx(maintenance, rel=REL)
    capital = book1[0] + book1[1] + site_cost * (1 - 52 / 780) - site_dep
    assert info["capital_charge"] == pytest.approx(capital * CC, rel=REL)
    assert info["profit"] == pytest.approx(-maintenance - (dep1[0] + dep1[1] + site_dep) - info["write_off"]
                                           - capital * CC, rel=REL)

    info = env.step(action(s))[4]
    # floor(198 x 0.01 + 0.95) = floor(2.93) = 2; floor(49 x 0.01 + 0.4) = floor(0.89) = 0
    assert info["failed"].tolist() == [2.0, 0.0]
    assert info["write_off"] == pytest.approx(book1[0] * 2 / 198, rel=REL)
    assert env.unwrapped.state.fleet[0].tolist() == [196.0, 49.0]


def test_depreciation_and_book_value():
    """Book value falls by a constant depreciation rate, cost / (years x 52) a week; a chip adds the price
    paid for it to the book (and price / (years x 52) to the rate) only when it arrives, not while it is
    queued or in transit. ``depreciation`` also holds the site's, which grows with the order (not on arrival)."""
    s = tiny()
    env = start(s, paths(s))
    paid = 8 * 27500 * 0.85 ** (104 / 52) * 1.8  # 8 H100 ordered in week 0, all released then, arriving in week 2
    # Their 10.08 kW of site (the site holds the owned 30.96 kW, none spare) is built and paid with the order in
    # week 0, and depreciated over 780 weeks from that week, while the chips are still on their way.
    build = 8 * 1260 / 1000 * 12_000  # 120,960
    dep0 = DEP0[0] + DEP0[1]
    site_dep = [(371_520 + build) / 780] * 4
    infos = [env.step(action(s, order=[0.125, 0.0]))[4], *run(env, s, 3)]
    assert [i["depreciation"] - d for i, d in zip(infos, site_dep)] == pytest.approx(
        [dep0, dep0, dep0 + paid / 260, dep0 + paid / 260], rel=REL)
    book = BOOK0[0] + BOOK0[1] - 2 * dep0 + paid - 2 * (dep0 + paid / 260)
    st = env.unwrapped.state
    assert st.book_value[0].sum() == pytest.approx(book, rel=REL)
    assert st.book_value[0, 0] == pytest.approx(BOOK0[0] - 4 * DEP0[0] + paid * (1 - 2 / 260), rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx([DEP0[0] + paid / 260, DEP0[1]], rel=REL)
    assert st.site_book_value[0] == pytest.approx(SITE0 - 4 * SITE_DEP + build * (1 - 4 / 780), rel=REL)
    # Depreciation is a cost in profit but not a cash flow: cash fell by the capex (chips and site) and
    # maintenance only.
    maintenance = [MAINTENANCE0] * 2 + [(24 * 27500 + 8 * 12500) * 1.8 * 0.03 / 52] * 2
    assert infos[0]["facility_capex"] == pytest.approx(build, rel=REL)
    assert [i["facility_capex"] for i in infos[1:]] == pytest.approx([0.0] * 3, abs=1e-6)  # none when they arrive
    assert st.cash[0] == pytest.approx(2e7 - paid - build - sum(maintenance), rel=REL)


def test_depreciation_stops_when_the_book_value_is_used_up():
    """Straight-line depreciation over half a year (26 weeks) charges book / 26 a week until the book value is
    used up, then nothing: the book never goes negative, so a later failure could never book a gain. (A new
    fleet and a site that costs nothing, so ``depreciation`` is the chips' alone.)"""
    s = tiny(depreciation_years=0.5, weeks=30, initial_fleet_age_weeks=0, facility_capex_usd_per_kw=0)
    env = start(s, paths(s))
    book0 = 16 * 27500 * 0.85 ** (104 / 52) * 1.8 + 8 * 12500 * 0.85 * 1.8  # bought at week 0: 725,220
    assert env.unwrapped.state.book_value[0].sum() == pytest.approx(book0, rel=REL)
    infos = run(env, s, 30)
    charges = [i["depreciation"] for i in infos]
    assert charges[:25] == pytest.approx([book0 / 26] * 25, rel=REL)
    assert sum(charges) == pytest.approx(book0, rel=REL)
    assert charges[27:] == [0.0, 0.0, 0.0]
    assert (env.unwrapped.state.book_value >= 0).all()


def test_credit_limit_capital_charge_and_bankruptcy():
    """Orders are scaled down, in whole order units, to fit cash + credit limit together with the site they
    need, built and paid with them; there is no interest: cash moves by capex, site builds, maintenance (and
    revenue, power, sales), and the cost of the capital tied up is charged in the reward only. The episode
    terminates (bankrupt) when cash < -credit limit, with the terminal settlement: chips marked to resale
    less book, half of undelivered prepaid orders lost."""
    s = tiny(initial_cash_usd=100_000, credit_limit_usd=735_000, maintenance_per_year=0.52,
             initial_fleet={"H100-SXM": 16, "MI300X": 0}, hbm={"our_allocation_share": 0.0, "price_elasticity": 0.0})
    env = start(s, paths(s))
    price = 27500 * 0.85 ** (104 / 52) * 1.8  # 35,763.75
    maintenance = 16 * 27500 * 1.8 * 0.52 / 52  # 7,920 a week
    book0 = 16 * 42_075 * (1 - 52 / 260)
    dep = 16 * 42_075 / 260
    site_cost = 16 * 1.26 * 12_000  # 20.16 kW, all of it held for the 16 owned: none spare
    site_dep = site_cost / 780

    # Week 0: 64 H100 with their 64 x 1.26 kW of site would cost 64 x (35,763.75 + 15,120) = 3,256,560 >
    # 100,000 + 735,000 of headroom: scaled by 835,000 / 3,256,560, 64 x 0.256 = 16.4 chips, rounded down to
    # 2 units of 8 = 16. Their 16 x 1.26 = 20.16 kW of site is built and paid now: 241,920.
    _, reward, terminated, _, info = env.step(action(s, order=[1.0, 0.0]))
    assert math.floor(64 * (835_000 / (64 * (price + 1.26 * 12_000))) / 8) * 8 == 16
    assert info["ordered"].tolist() == [16.0, 0.0] and info["orders_clipped"].tolist() == [48.0, 0.0]
    assert info["capex"] == pytest.approx(16 * price, rel=REL)
    build = 16 * 1.26 * 12_000  # 241,920, depreciated over 780 weeks from this week
    assert info["facility_capex"] == pytest.approx(build, rel=REL)
    cash1 = 100_000 - 16 * price - build - maintenance  # -722,060
    assert info["cash"] == pytest.approx(cash1, rel=REL) and not terminated
    # The reward is the week's economic profit / reward_scale: capex is not a cost; depreciation (of the owned
    # 16 and the site, new part included) is, and so is the capital charge on their book values and the 16
    # chips prepaid.
    capital = book0 - dep + 16 * price + site_cost * (1 - 52 / 780) - site_dep + build * (1 - 1 / 780)
    assert info["capital_employed"] == pytest.approx(capital, rel=REL)
    assert reward == pytest.approx((-maintenance - dep - site_dep - build / 780 - capital * CC) / 1e5, rel=REL)

    # Week 1: headroom 735,000 - 722,060 = 12,940 buys not one unit; no interest on the overdraft.
    _, _, terminated, _, info = env.step(action(s, order=[1.0, 0.0]))
    assert info["ordered"].tolist() == [0.0, 0.0] and info["orders_clipped"].tolist() == [64.0, 0.0]
    assert info["capex"] == 0.0 and info["facility_capex"] == 0.0
    assert info["opex"] == pytest.approx(maintenance, rel=REL)
    cash2 = cash1 - maintenance  # -729,980
    assert info["cash"] == pytest.approx(cash2, rel=REL) and not terminated and not info["bankrupt"]
    assert info["terminal_settlement"] == 0.0

    # Week 2: -729,980 - 7,920 = -737,900 < -735,000: bankrupt.
    _, reward, terminated, truncated, info = env.step(action(s))
    assert info["cash"] == pytest.approx(cash2 - maintenance, rel=REL)
    assert info["cash"] < -735_000
    assert terminated and info["bankrupt"] and not truncated
    assert bool(env.unwrapped.state.bankrupt[0])
    # Settlement: 16 H100 at the resale price (week 2's deployed price x exp(-0.27 x age / 52), the age at the
    # start of the week, 54 weeks, as a sale that week would use) less their book, and half of the 16 chips
    # prepaid and still queued. The site is not settled: it stays at book.
    resale = 27500 * 0.85 ** (106 / 52) * 1.8 * math.exp(-0.27 * 54 / 52)
    book = book0 - 3 * dep
    settlement = 16 * resale - book - (1 - 0.5) * 16 * price
    assert info["terminal_settlement"] == pytest.approx(settlement, rel=REL)
    site = site_cost * (1 - 52 / 780) - 3 * site_dep + build * (1 - 3 / 780)
    capital = book + 16 * price + site
    assert reward == pytest.approx(
        (-maintenance - dep - site_dep - build / 780 - capital * CC + settlement) / 1e5, rel=REL)
    assert info["net_worth"] == pytest.approx(info["cash"] + 16 * resale + 0.5 * 16 * price + site, rel=REL)


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
    # value_per_job_usd (H100-hours of 1e21 FLOPs at $2.40 x 0.83) x FLOPs / flops_per_job
    per_job = 1e21 / (s.arrays["train_flops_per_chip_s"][0] * 3600) * 2.40 * 0.83
    value = [per_job * f / 1e21 for f in flops]

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
    # All 8 chips busy: power = 8 x 1,260 W (system power) x PUE 1.25 for a week at $0.08/kWh.
    assert info["power_cost"] == pytest.approx(8 * 1260 * 1.25 * WEEK_S / 3.6e6 * 0.08, rel=REL)

    info = env.step(action(s, train=[1.0, 0.0]))[4]  # week 2: A (2 weeks left) finishes first, B gets the rest
    assert info["training_jobs_completed"] == 1 and info["training_jobs_missed"] == 0
    assert info["revenue"] == pytest.approx(value[0], rel=REL) == info["revenue_training"]
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


def _h100_b200(**overrides) -> envs.Scenario:
    """H100 and B200 serving chat under a 9.5 ms TPOT SLO, which B200 meets (in replicas of 8) and H100 cannot
    meet at any batch (34 ms, alone), and a 0.1 s TTFT SLO, which an idle H100 prefill replica misses."""
    s = tiny(**_merge({"chips": ["H100-SXM", "B200"], "initial_fleet": {"H100-SXM": 16, "B200": 16},
                       "classes": {"chat": {"tpot_slo_s": 0.0095, "ttft_slo_s": 0.1}}}, overrides))
    a = s.arrays
    assert a["tpot_s"][0, 0] > 0.0095 >= a["tpot_s"][0, 1]
    assert a["prefill_latency_s"][0, 0] > 0.1 > a["prefill_latency_s"][0, 1]
    assert a["replica_chips"].tolist() == [[1.0, 8.0]] and a["system_power_w"].tolist() == [1260.0, 1800.0]
    assert (a["efficiency_by_year"] == 1.0).all()  # NVIDIA's software factors are flat in 2025
    return s


def test_serving_capacity_admission_control_peaks_and_revenue():
    """Shares become whole replicas (floor to ``replica_chips``). Prefill capacity = sum of prefill chips x
    prefill rate x output/input tokens; decode capacity counts only decode chips whose TPOT meets the SLO.
    Admission control per chip type: each type's prefill replicas take load up to their own rho_max_k, where
    their M/D/1 mean TTFT, service_k + rho x service_k / (2 (1 - rho)) + crossing x KV bytes / link rate,
    meets the SLO; admissible = sum of rho_max_k x each type's prefill capacity. Capacity = min(admissible,
    decode, KV transfer); the week's load peaks at 1.9 x its mean and what exceeds capacity is shed
    (:func:`peaks`). The load spreads over the types in proportion to their admissible capacity, so the
    reported TTFT is their admissible-capacity-weighted mean at rho_k = rho_max_k x served / admissible.
    Revenue = served x (output price + input price x input/output tokens) x week seconds."""
    s = _h100_b200()
    a = s.arrays
    pr, dr = a["prefill_rate"][0], a["serving_decode_rate"][0]
    latency, kv = a["prefill_latency_s"][0], a["kv_bytes_per_request"][0]
    env = start(s, paths(s, demand=[10_000.0, 20_000.0]))

    # H100: a quarter prefill (4 chips), three quarters decode (12); B200: half and half, 8 and 8 (a replica each).
    act = action(s, prefill=[0.25, 0.5], decode=[0.75, 0.5])
    info = env.step(act)[4]
    assert info["prefill_chips"].tolist() == [[4.0, 8.0]] and info["decode_chips"].tolist() == [[12.0, 8.0]]
    prefill_work = [4 * pr[0], 8 * pr[1]]
    cap = [w * 256 / 1024 for w in prefill_work]  # each type's prefill in output-token equivalents
    prefill_cap = cap[0] + cap[1]  # ~24,400
    decode_all = [12 * dr[0], 8 * dr[1]]
    decode_ok = 8 * dr[1]  # H100's replicas are too slow for the TPOT SLO: they take none of the class
    assert info["prefill_capacity"][0] == pytest.approx(prefill_cap, rel=REL)
    assert info["decode_capacity"][0] == pytest.approx(decode_ok, rel=REL)  # ~19,900 tokens/s
    p_share = [w / sum(prefill_work) for w in prefill_work]
    d_share = [w / sum(decode_all) for w in decode_all]
    crossing = 1 - (min(p_share[0], d_share[0]) + min(p_share[1], d_share[1]))  # ~0.27 of KV caches move
    assert info["kv_crossing"][0] == pytest.approx(crossing, rel=REL)
    kv_req = p_share[0] * kv[0] + p_share[1] * kv[1]
    transfer_s = crossing * kv_req / 50e9
    # An idle H100 prefill replica (~152 ms) already misses the 0.1 s SLO: it admits nothing. B200's (~21 ms)
    # admit up to ~0.88, below the queue's 0.99 cap.
    rho_max = [max_load(latency[0], 0.1 - transfer_s), max_load(latency[1], 0.1 - transfer_s)]
    assert rho_max[0] == 0.0 and 0 < rho_max[1] < 0.99
    admissible = rho_max[0] * cap[0] + rho_max[1] * cap[1]  # ~15,500 tokens/s
    transfer_cap = 12 * 50e9 / (crossing * kv_req) * 256  # 12 prefill chips' links, ~3.4e6 tokens/s
    capacity = admissible
    assert capacity < min(decode_ok, transfer_cap)
    served = peaks(capacity, 10_000, 1.9)  # 1.55x the mean demand, below its 1.9x peak: ~9,600 served
    assert served < 10_000
    assert info["served"][0] == pytest.approx(served, rel=REL)
    assert info["unmet"][0] == pytest.approx(10_000 - served, rel=REL)
    assert info["slo_attainment"][0] == pytest.approx(served / 10_000, rel=REL)
    # TTFT: only B200 takes load (weight rho_max x cap / admissible = 1), at rho = rho_max x served / admissible.
    rho = rho_max[1] * served / admissible  # ~0.55
    ttft = latency[1] + rho * latency[1] / (2 * (1 - rho)) + transfer_s
    assert info["ttft_s"][0] == pytest.approx(ttft, rel=REL)
    assert info["ttft_s"][0] <= 0.1  # admitted load meets the SLO
    assert info["revenue"] == pytest.approx(served * (0.4e-6 + 0.4e-6 * 1024 / 256) * WEEK_S, rel=REL)
    st = env.unwrapped.state
    assert st.last_served_fraction[0, 0] == pytest.approx(served / 10_000, rel=REL)
    assert st.last_admissible_load[0, 0] == pytest.approx(admissible / prefill_cap, rel=REL)  # ~0.63

    # Week 1: demand doubles to 20,000, 0.77x it is capacity: more is shed, at week 1's price (-10% a year).
    info = env.step(act)[4]
    served = peaks(capacity, 20_000, 1.9)
    assert capacity / 20_000 < 1 and served < capacity
    assert info["served"][0] == pytest.approx(served, rel=REL)
    assert info["revenue"] == pytest.approx(served * 2.0e-6 * 0.9 ** (1 / 52) * WEEK_S, rel=REL)
    assert env.unwrapped.state.last_served_fraction[0, 0] == pytest.approx(served / 20_000, rel=REL)


def test_prefill_power_follows_the_load_each_chip_type_admits():
    """Power is paid on the busy share of each chip. A chip type's prefill replicas run at the load they admit,
    rho_k = rho_max_k x served / admissible (the rule the TTFT uses), so in the split of
    :func:`test_serving_capacity_admission_control_peaks_and_revenue` the H100 prefill replicas, which admit
    nothing, idle, and B200's run at served / B200's own prefill capacity."""
    s = _h100_b200()
    a = s.arrays
    env = start(s, paths(s, demand=10_000.0))
    info = env.step(action(s, prefill=[0.25, 0.5], decode=[0.75, 0.5]))[4]
    served = info["served"][0]  # worked by hand in the test above
    cap_b200 = 8 * a["prefill_rate"][0, 1] * 256 / 1024
    decode_ok = 8 * a["serving_decode_rate"][0, 1]
    busy = [0.0, 8 * served / cap_b200 + 8 * served / decode_ok]  # H100 prefill and decode idle
    assert info["utilisation"].tolist() == pytest.approx([busy[0] / 16, busy[1] / 16], rel=REL)
    assert info["power_cost"] == pytest.approx((busy[0] * 1260 + busy[1] * 1800) * 1.25 * WEEK_S / 3.6e6 * 0.08,
                                               rel=REL)


def test_admission_control_tpot_and_ttft_shed_what_misses_the_slo():
    """A class is served only by decode replicas whose TPOT meets its SLO (else none of its load) and only up
    to the prefill load whose mean TTFT meets its SLO: none when an idle prefill replica already misses it;
    at most the queue's cap of 0.99 when the SLO is loose."""
    s = _h100_b200()
    a = s.arrays
    # All decode on H100 (34 ms TPOT against 9.5 ms): no decode capacity, nothing served, nothing earned, and
    # the H100 decode replicas take no load (no power), though B200 prefill alone would admit it.
    env = start(s, paths(s, demand=5_000.0))
    info = env.step(action(s, prefill=[0.0, 1.0], decode=[1.0, 0.0]))[4]
    assert info["decode_chips"].tolist() == [[16.0, 0.0]] and info["prefill_capacity"][0] > 5_000
    assert info["decode_capacity"][0] == 0.0 and info["served"][0] == 0.0 and info["revenue"] == 0.0
    assert info["utilisation"].tolist() == [0.0, 0.0] and info["power_cost"] == 0.0
    # B200 prefill's own limit, every KV cache crossing to the H100s: rho_max(latency, 0.1 s - KV bytes / link).
    rho_b200 = max_load(a["prefill_latency_s"][0, 1], 0.1 - a["kv_bytes_per_request"][0, 1] / 50e9)
    assert rho_b200 > 0 and env.unwrapped.state.last_admissible_load[0, 0] == pytest.approx(rho_b200, rel=REL)

    # All prefill on H100, whose prefill alone takes longer than the 0.1 s TTFT SLO: rho_max = 0 and
    # nothing is admitted, though B200 decode could serve it all.
    env = start(s, paths(s, demand=5_000.0))
    info = env.step(action(s, prefill=[1.0, 0.0], decode=[0.0, 1.0]))[4]
    assert a["prefill_latency_s"][0, 0] > 0.1
    assert info["decode_capacity"][0] == pytest.approx(16 * a["serving_decode_rate"][0, 1], rel=REL)
    assert info["served"][0] == 0.0 and info["revenue"] == 0.0
    assert env.unwrapped.state.last_admissible_load[0, 0] == 0.0

    # A 2 s TTFT SLO and B200 prefill (~21 ms) with B200 decode (no KV crossing): q = 2 / 0.021 ~ 97,
    # 2 (q - 1) / (2q - 1) ~ 0.995, capped at 0.99, so the admissible load (admissible / prefill capacity,
    # one chip type) reads 0.99.
    s = _h100_b200(classes={"chat": {"ttft_slo_s": 2.0}})
    a = s.arrays
    env = start(s, paths(s, demand=1e6))
    info = env.step(action(s, prefill=[0.0, 0.5], decode=[0.0, 0.5]))[4]
    q = 2.0 / a["prefill_latency_s"][0, 1]
    assert 2 * (q - 1) / (2 * q - 1) > 0.99
    assert env.unwrapped.state.last_admissible_load[0, 0] == pytest.approx(0.99, rel=REL)
    prefill_cap = 8 * a["prefill_rate"][0, 1] * 256 / 1024
    assert 0.99 * prefill_cap < 8 * a["serving_decode_rate"][0, 1]
    assert info["served"][0] == pytest.approx(peaks(0.99 * prefill_cap, 1e6, 1.9), rel=REL)


def test_kv_transfer_cap_on_disaggregated_serving():
    """When prefill and decode run on different chip types the KV cache of every request crosses a link:
    served is capped at (prefill chips x link bytes/s) / (crossing x KV bytes per request) x output tokens,
    and TTFT pays crossing x KV bytes / link rate for the transfer. (Chat on llama-3.1-8b, whose prefill on
    a WSE-3 outruns a 50 GB/s link; no peaks, so served is the least capacity.)"""
    s = tiny(chips=["H100-SXM", "WSE-3"], initial_fleet={"H100-SXM": 8, "WSE-3": 1},
             classes={"chat": {"model": "llama-3.1-8b", "peak_to_mean": 1.0}})
    a = s.arrays
    assert a["replica_chips"].tolist() == [[1.0, 1.0]] and (a["efficiency_by_year"] == 1.0).all()
    pr, dr = a["prefill_rate"][0], a["serving_decode_rate"][0]
    latency, kv = a["prefill_latency_s"][0], a["kv_bytes_per_request"][0]
    assert a["tpot_s"][0, 0] <= 0.05  # H100 decode meets chat's TPOT SLO
    env = start(s, paths(s, demand=2e5))
    # The WSE-3 prefills, all 8 H100 decode: every KV cache moves (crossing 1).
    info = env.step(action(s, prefill=[0.0, 1.0], decode=[1.0, 0.0]))[4]
    prefill_cap = 1 * pr[1] * 256 / 1024  # ~121,000 tokens/s
    decode_cap = 8 * dr[0]  # ~149,000 tokens/s
    transfer_cap = 1 * 50e9 / (1.0 * kv[1]) * 256  # one 50 GB/s link, 134 MB a request: ~95,400 tokens/s
    rho_max = max_load(latency[1], 1.0 - kv[1] / 50e9)  # a 2 ms prefill against a 1 s SLO: the 0.99 cap
    assert rho_max == 0.99
    assert transfer_cap < min(rho_max * prefill_cap, decode_cap, 2e5)  # the link is what binds
    assert info["kv_crossing"][0] == 1.0
    assert info["served"][0] == pytest.approx(transfer_cap, rel=REL)
    assert info["unmet"][0] == pytest.approx(2e5 - transfer_cap, rel=REL)
    rho = transfer_cap / prefill_cap
    ttft = latency[1] + rho * latency[1] / (2 * (1 - rho)) + 1.0 * kv[1] / 50e9
    assert info["ttft_s"][0] == pytest.approx(ttft, rel=REL)
    assert info["revenue"] == pytest.approx(transfer_cap * 2.0e-6 * WEEK_S, rel=REL)


def test_backlog_carry_over_is_capped_at_four_weeks_of_demand():
    """A carry-over class's unmet demand returns next week: backlog = min(unmet x carry_over, 4 x this week's
    exogenous demand), and next week's demand to serve is exogenous demand + backlog. Other classes lose it.
    (No peaks, as for the batch class: served is the capacity.)"""
    s = tiny(initial_fleet={"H100-SXM": 0, "MI300X": 8}, classes={"chat": {"carry_over": True, "peak_to_mean": 1.0}})
    a = s.arrays
    eff_p, eff_d = a["efficiency_by_year"][0, 1, 0], a["efficiency_by_year"][1, 1, 0]  # AMD's 2025 software
    # 2 MI300X prefill, 6 decode, on the same chip type (no KV crossing): prefill admits rho_max of its
    # capacity, the MI300X's latency / efficiency against the 1 s TTFT SLO (~0.90), ~2,700 tokens/s, which binds.
    cap = max_load(a["prefill_latency_s"][0, 1] / eff_p, 1.0) * 2 * a["prefill_rate"][0, 1] * eff_p * 256 / 1024
    assert cap < 6 * a["serving_decode_rate"][0, 1] * eff_d
    demand = [1e6] * 5 + [5e5]
    env = start(s, paths(s, demand=demand))
    infos = run(env, s, 6, prefill=[0.0, 0.25], decode=[0.0, 0.75])
    assert [i["served"][0] for i in infos] == pytest.approx([cap] * 6, rel=REL)
    short = 1e6 - cap
    # Backlog after weeks 0-3: 1, 2, 3, 4 weeks' shortfall (4 x 997,300 < 4e6); week 4: 5 x 997,300 > 4e6.
    # Week 5: demand halves and the cap with it: min(5e5 + 4e6 - cap, 4 x 5e5) = 2e6.
    backlog = [short, 2 * short, 3 * short, 4 * short, 4e6, 2e6]
    demand_eff = [d + b for d, b in zip(demand, [0.0, *backlog[:-1]])]
    assert [i["demand"][0] for i in infos] == pytest.approx(demand_eff, rel=REL)
    assert [i["unmet"][0] for i in infos] == pytest.approx([d - cap for d in demand_eff], rel=REL)
    assert env.unwrapped.state.backlog[0, 0] == pytest.approx(2e6, rel=REL)

    s = tiny(initial_fleet={"H100-SXM": 0, "MI300X": 8}, classes={"chat": {"peak_to_mean": 1.0}})  # no carry-over
    env = start(s, paths(s, demand=demand))
    infos = run(env, s, 2, prefill=[0.0, 0.25], decode=[0.0, 0.75])
    assert [i["demand"][0] for i in infos] == [1e6, 1e6]
    assert env.unwrapped.state.backlog[0, 0] == 0.0


def test_capital_charge_on_book_values_prepaid_orders_and_the_site():
    """The capital charge is cost_of_capital / 52 x (chips' book value + orders prepaid, queued or in transit,
    at the price paid + the site's book value), all at the end of the week. It is in the reward (profit =
    accounting profit - capital charge) but not in cash; ``facility_cost`` is the site's share of the costs,
    its depreciation plus its capital charge. The site an order needs is built and booked with the order."""
    s = tiny()
    env = start(s, paths(s))
    price = 27500 * 0.85 ** (104 / 52) * 1.8  # 35,763.75 deployed
    build = 8 * 1260 / 1000 * 12_000  # the order's 10.08 kW of site, none spare: 120,960 in week 0
    maintenance = MAINTENANCE0
    site_dep = SITE_DEP + build / 780  # the new site depreciates from the week it is built
    depreciation = DEP0[0] + DEP0[1] + site_dep
    cash = 2e7
    for week in range(2):
        # Week 0: 8 H100 ordered and released into the pipeline (40 stacks of 100); week 1: still in transit.
        _, reward, _, _, info = env.step(action(s, order=[0.125 if week == 0 else 0.0, 0.0]))
        weeks = week + 1  # weeks of depreciation taken by the end of this one
        site = SITE0 - weeks * SITE_DEP + build * (1 - weeks / 780)
        capital = (BOOK0[0] + BOOK0[1] - weeks * (DEP0[0] + DEP0[1])) + 8 * price + site
        assert info["capital_employed"] == pytest.approx(capital, rel=REL)
        assert info["capital_charge"] == pytest.approx(capital * 0.11 / 52, rel=REL)
        assert info["facility_cost"] == pytest.approx(site_dep + site * 0.11 / 52, rel=REL)
        assert info["depreciation"] == pytest.approx(depreciation, rel=REL)
        assert info["accounting_profit"] == pytest.approx(-maintenance - depreciation, rel=REL)  # nothing served
        assert info["profit"] == pytest.approx(-maintenance - depreciation - capital * 0.11 / 52, rel=REL)
        assert reward == pytest.approx(info["profit"] / 1e5, rel=REL)
        cash -= (8 * price + build if week == 0 else 0.0) + maintenance  # the charge is not paid out of cash
        assert info["cash"] == pytest.approx(cash, rel=REL)
        assert info["terminal_settlement"] == 0.0 and info["net_worth"] == pytest.approx(cash + capital, rel=REL)
    # With no cost of capital, the reward is the accounting profit.
    s = tiny(cost_of_capital_per_year=0.0)
    info = start(s, paths(s)).step(action(s, order=[0.125, 0.0]))[4]
    assert info["capital_charge"] == 0.0 and info["profit"] == pytest.approx(-maintenance - depreciation, rel=REL)


def test_terminal_settlement_marks_chips_to_resale_and_refunds_half_of_undelivered_orders():
    """The last week's profit adds the terminal settlement: sum over chip types of fleet x resale price -
    book value, less (1 - order_refund_fraction) x the prepaid value of orders not delivered. The resale
    price is the deployed price of a new chip in the last week x exp(-0.27 x mean age / 52), the age at the
    start of the week (before its +1), as a sale that week would fetch. Net worth then counts chips at resale,
    refunds at half and the site at book."""
    s = tiny(weeks=4, hbm={"price_elasticity": 0.0})  # the HBM index stays at 1
    env = start(s, paths(s))
    paid_h = 8 * 27500 * 0.85 ** (104 / 52) * 1.8  # 8 H100 ordered in week 0, arriving in week 2
    paid_m = 16 * 12500 * 0.85 ** (54 / 52) * 1.8  # 16 MI300X ordered in week 2: they arrive in week 4, too late
    infos = [env.step(action(s, order=[0.125, 0.0]))[4], *run(env, s, 1), env.step(action(s, order=[0.0, 0.25]))[4]]
    assert [i["terminal_settlement"] for i in infos] == [0.0, 0.0, 0.0]
    # Week 2's MI300X: 128 stacks wanted, 100 allocated: floor(16 x 100 / 128) = 12 in transit, 4 queued.
    assert infos[2]["in_transit"].tolist() == [0.0, 12.0] and infos[2]["in_queue"].tolist() == [0.0, 4.0]
    _, reward, terminated, truncated, info = env.step(action(s))
    assert truncated and not terminated
    # Ages at the start of week 3: H100 54 x 16 / 24 = 36 after the arrival in week 2, then 37; MI300X 55.
    resale = [27500 * 0.85 ** (107 / 52) * 1.8 * math.exp(-0.27 * 37 / 52),
              12500 * 0.85 ** (55 / 52) * 1.8 * math.exp(-0.27 * 55 / 52)]
    assert info["resale_price"].tolist() == pytest.approx(resale, rel=REL)  # what a sale this week fetches
    book = [BOOK0[0] - 4 * DEP0[0] + paid_h * (1 - 2 / 260), BOOK0[1] - 4 * DEP0[1]]
    st = env.unwrapped.state
    assert st.book_value[0].tolist() == pytest.approx(book, rel=REL)
    assert st.queue_value[0, 1] + st.pipeline_value[0, 1].sum() == pytest.approx(paid_m, rel=REL)
    settlement = 24 * resale[0] - book[0] + 8 * resale[1] - book[1] - (1 - 0.5) * paid_m
    assert info["terminal_settlement"] == pytest.approx(settlement, rel=REL)
    # The rest of the week: maintenance, depreciation (chips and a site grown with each order, by the H100s'
    # 10.08 kW in week 0 and the MI300Xs' 21.6 kW in week 2, none spare) and the capital charge, which still
    # counts the prepaid MI300X. The site is not settled: it stays at book, orders cancelled or not.
    build = [8 * 1260 / 1000 * 12_000, 16 * 1350 / 1000 * 12_000]  # 120,960 and 259,200
    assert [i["facility_capex"] for i in infos] == pytest.approx([build[0], 0.0, build[1]], rel=REL, abs=1e-6)
    site = SITE0 - 4 * SITE_DEP + build[0] * (1 - 4 / 780) + build[1] * (1 - 2 / 780)
    depreciation = DEP0[0] + paid_h / 260 + DEP0[1] + SITE_DEP + (build[0] + build[1]) / 780
    maintenance = (24 * 27500 + 8 * 12500) * 1.8 * 0.03 / 52
    capital = book[0] + book[1] + paid_m + site
    assert info["accounting_profit"] == pytest.approx(-maintenance - depreciation, rel=REL)
    assert info["profit"] == pytest.approx(-maintenance - depreciation - capital * CC + settlement, rel=REL)
    assert reward == pytest.approx(info["profit"] / 1e5, rel=REL)
    assert info["net_worth"] == pytest.approx(info["cash"] + 24 * resale[0] + 8 * resale[1] + 0.5 * paid_m + site,
                                              rel=REL)


def test_facility_is_built_to_the_it_load_in_cash_and_depreciated():
    """The site is built with each order, not when the chips arrive: the IT load (chips x system power) of the
    chips owned, queued and in transit, plus the order's, beyond the site's kW is built at $12,000 per kW that
    week, paid in cash, added to the site's book value and depreciated over 15 years from that week. It never
    shrinks when chips leave; the kW they free are spare, used by later orders before anything is built."""
    s = tiny(weeks=8, hbm={"price_elasticity": 0.0})
    env = start(s, paths(s))
    price = [27500 * 0.85 ** ((w + 104) / 52) * 1.8 for w in range(8)]  # an H100 at week w (HBM index 1)
    infos = [env.step(action(s, order=[0.125, 0.0]))[4], *run(env, s, 2),  # 8 H100 ordered, arriving in week 2
             env.step(action(s, sell=[0.5, 0.0]))[4],  # week 3: sell 12 of 24
             env.step(action(s, order=[0.25, 0.0]))[4],  # week 4: order 16, arriving in week 6
             *run(env, s, 2)]
    # Week 0: 16 H100 and 8 MI300X hold all of the 30.96 kW; the 8 H100 need 8 x 1.26 = 10.08 kW: built now.
    # Week 2: they arrive, nothing more. Week 3: 12 H100 sold, 25.92 kW in use, the site stays at 41.04 kW.
    # Week 4: 16 H100 need 20.16 kW, 41.04 - 25.92 = 15.12 of it spare: build 5.04 kW.
    build0 = 8 * 1260 / 1000 * 12_000  # 120,960
    build4 = (16 * 1260 - (41_040 - (12 * 1260 + 8 * 1350))) / 1000 * 12_000  # 60,480
    assert [i["facility_capex"] for i in infos] == pytest.approx([build0, 0, 0, 0, build4, 0, 0], rel=REL, abs=1e-6)
    assert [i["sold"][0] for i in infos] == [0, 0, 0, 12, 0, 0, 0]
    assert infos[2]["arrived"][0] == 8 and infos[6]["arrived"][0] == 16
    st = env.unwrapped.state
    assert st.site_kw[0] == pytest.approx((28 * 1260 + 8 * 1350) / 1000, rel=REL)  # 46.08 kW
    assert st.site_depreciation_rate[0] == pytest.approx((371_520 + build0 + build4) / 780, rel=REL)
    site = SITE0 - 7 * SITE_DEP + build0 * (1 - 7 / 780) + build4 * (1 - 3 / 780)
    assert st.site_book_value[0] == pytest.approx(site, rel=REL)
    site_charges = [SITE_DEP + build0 / 780] * 4 + [SITE_DEP + (build0 + build4) / 780] * 3
    built = np.array([build0] * 4 + [build0 + build4] * 3)  # by the end of each week
    assert [i["facility_cost"] for i in infos] == pytest.approx(
        [c + b * CC for c, b in zip(site_charges, SITE0 - np.cumsum(site_charges) + built)], rel=REL)
    # Cash: chips, the site builds, maintenance (on the fleet of each week), the sale's proceeds.
    resale = price[3] * math.exp(-0.27 * (54 * 16 / 24 + 1) / 52)  # age after week 2's arrivals: 37 weeks
    fleets = [16, 16, 24, 12, 12, 12, 28]
    maintenance = sum((f * 27500 + 8 * 12500) * 1.8 * 0.03 / 52 for f in fleets)
    cash = 2e7 - 8 * price[0] - 16 * price[4] - build0 - build4 - maintenance + 12 * resale
    assert st.cash[0] == pytest.approx(cash, rel=REL)


def test_secondary_market_sale_proceeds_gain_and_scaled_book():
    """A fine sale entry a > 0 sells floor(a x the fleet at the start of the week) chips of its type at the
    resale price (deployed price now x exp(-0.27 x mean age / 52)), after this week's arrivals. The proceeds
    are cash; the gain (proceeds - the sold share of the type's book value) is in profit; the book value and
    the depreciation rate keep the unsold share."""
    s = tiny(hbm={"price_elasticity": 0.0})  # the HBM index stays at 1
    env = start(s, paths(s))
    paid = 8 * 27500 * 0.85 ** (104 / 52) * 1.8  # 8 H100 ordered in week 0, arriving in week 2
    # Their 10.08 kW of site is built with the order. Orders come first in the week (step 1, sales step 3), so
    # the site counts the fleet before this week's sale: the 10.44 kW it frees are spare only from next week,
    # as its proceeds count toward cash + credit only from next week.
    build = 8 * 1260 / 1000 * 12_000  # 120,960

    # Week 0: sell a quarter of the 16 H100 and half the 8 MI300X, both 52 weeks old.
    _, reward, _, _, info = env.step(action(s, order=[0.125, 0.0], sell=[0.25, 0.5]))
    resale = [27500 * 0.85 ** (104 / 52) * 1.8 * math.exp(-0.27), 12500 * 0.85 * 1.8 * math.exp(-0.27)]
    assert info["sold"].tolist() == [4.0, 4.0] and info["fleet"].tolist() == [12.0, 4.0]
    assert info["resale_price"].tolist() == pytest.approx(resale, rel=REL)
    proceeds = 4 * resale[0] + 4 * resale[1]
    gain = proceeds - (BOOK0[0] * 4 / 16 + BOOK0[1] * 4 / 8)  # a loss: resale is below book
    assert info["sale_proceeds"] == pytest.approx(proceeds, rel=REL)
    assert info["sale_gain"] == pytest.approx(gain, rel=REL)
    dep = [DEP0[0] * 12 / 16, DEP0[1] * 4 / 8]
    book = [BOOK0[0] * 12 / 16 - dep[0], BOOK0[1] * 4 / 8 - dep[1]]
    st = env.unwrapped.state
    assert st.book_value[0].tolist() == pytest.approx(book, rel=REL)
    assert st.depreciation_rate[0].tolist() == pytest.approx(dep, rel=REL)
    assert st.site_kw[0] == pytest.approx(SITE_KW0 + 10.08, rel=REL)  # the site is kept, and grown for the order
    assert info["facility_capex"] == pytest.approx(build, rel=REL)
    site_dep = SITE_DEP + build / 780
    assert info["depreciation"] == pytest.approx(dep[0] + dep[1] + site_dep, rel=REL)
    maintenance = (12 * 27500 + 4 * 12500) * 1.8 * 0.03 / 52
    capital = book[0] + book[1] + paid + SITE0 - SITE_DEP + build * (1 - 1 / 780)
    assert info["profit"] == pytest.approx(gain - maintenance - dep[0] - dep[1] - site_dep - capital * CC, rel=REL)
    assert reward == pytest.approx(info["profit"] / 1e5, rel=REL)
    assert info["cash"] == pytest.approx(2e7 - paid - build + proceeds - maintenance, rel=REL)

    # Week 2: the 8 H100 arrive, 20 in all, mean age 54 x 12 / 20 = 32.4 weeks; a sale of half is half of
    # the 12 at the start of the week (6), and takes 6 / 20 of the book, which now holds the new chips.
    env.step(action(s))
    _, _, _, _, info = env.step(action(s, sell=[0.5, 0.0]))
    assert info["arrived"][0] == 8 and info["sold"].tolist() == [6.0, 0.0] and info["fleet"][0] == 14
    resale = 27500 * 0.85 ** (106 / 52) * 1.8 * math.exp(-0.27 * 32.4 / 52)
    assert info["resale_price"][0] == pytest.approx(resale, rel=REL)
    book_before = BOOK0[0] * 12 / 16 - 2 * dep[0] + paid
    assert info["sale_gain"] == pytest.approx(6 * resale - book_before * 6 / 20, rel=REL)
    dep_h = (dep[0] + paid / 260) * 14 / 20
    assert env.unwrapped.state.depreciation_rate[0, 0] == pytest.approx(dep_h, rel=REL)
    assert env.unwrapped.state.book_value[0, 0] == pytest.approx(book_before * 14 / 20 - dep_h, rel=REL)
    assert env.unwrapped.state.age_weeks[0, 0] == pytest.approx(33.4, rel=REL)


def test_fine_action_fractions_decode_to_whole_chips_exactly():
    """``fine_action`` builds the action that decodes to the given order and sale fractions: selling 0.7 of a
    fleet of 10 sells floor(0.7 x 10) = 7 chips; ordering 0.7 of 80 a week orders floor(56 / 8) = 7 units.
    The action is float32 (0.7 is 0.69999999), so whole numbers are floor(x (1 + 1e-6)), forgiving its
    rounding: floor(6.9999999) would sell 6 and floor(55.999999 / 8) order 6 units, 48 chips."""
    s = tiny(initial_fleet={"H100-SXM": 10, "MI300X": 8}, max_order_chips_per_week=80)
    env = start(s, paths(s))
    info = env.step(action(s, order=[0.7, 0.0], sell=[0.7, 0.0]))[4]
    assert info["sold"].tolist() == [7.0, 0.0]
    assert info["ordered"].tolist() == [56.0, 0.0]


def test_compact_sale_entry_sells_a_share_of_the_oldest_chip_type():
    """The compact action's sale entry (after the capacity target) maps a in [-1, 1] to u = (a + 1) / 2 and
    sells floor(max(2u - 1, 0) x 0.25 x fleet) of the chip type with the highest mean age: nothing in the
    lower half of its range, a quarter of that fleet at a = 1."""
    s = tiny()
    p = fn.params(s, variant="datacenter")
    state, _ = fn.reset(p, exogenous=paths(s))
    # Make the MI300X the older type (60 weeks against 52).
    rows = state.rows.copy()
    state = fn.State(rows, state.exo_rows, state.exogenous, p)
    state.age_weeks[0, 1] = 60.0  # a view into rows
    assert state.age_weeks[0].tolist() == [52.0, 60.0]
    sales = []
    for a in (-1.0, 0.0, 0.5, 1.0):
        # no chip weight, no target: no orders; no expansion or renting
        act = np.array([[-1.0, -1.0, -1.0, a, -1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
        orders, sold, *_ = fn.decode(p, state, act)
        assert orders.tolist() == [[0.0, 0.0]]
        sales.append(sold[0].tolist())
    # u = 0, 0.5, 0.75, 1: 2u - 1 = -1, 0, 0.5, 1 -> 0, 0, floor(0.5 x 0.25 x 8) = 1, floor(0.25 x 8) = 2 MI300X.
    assert sales == [[0.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 2.0]]


def test_served_with_peaks_closed_form_continuity_and_concavity():
    """``served_with_peaks``: with the week's load peak x u^(peak - 1) x its mean (u uniform), served is the
    integral of min(load, capacity) (:func:`peaks`, worked by hand): all of the demand from capacity = peak x
    demand up, min(capacity, demand) without peaks; continuous at the peak, concave and increasing below it,
    and never more than capacity or demand. (small: chat peaks at 1.9, agents 3.5, batch 1.)"""
    s = envs.load_scenario("small")
    assert [c.name for c in s.classes] == ["chat", "agents", "batch"]
    assert s.arrays["peak_to_mean"].tolist() == [1.9, 3.5, 1.0]
    p = fn.params(s, variant="fine")
    demand = np.full((1, 3), 1_000.0)

    def served(x):  # capacity x times the demand, every class
        return fn.served_with_peaks(p, x * demand, demand)[0]

    assert served(0.0).tolist() == [0.0, 0.0, 0.0]
    # At capacity = mean demand: chat 1 - (1 / 1.9)^(1 / 0.9) (1 - 1 / 1.9) = 0.7434 of demand, agents
    # 1 - (1 / 3.5)^(1 / 2.5) (1 - 1 / 3.5) = 0.5811, batch all of it.
    assert served(1.0).tolist() == pytest.approx(
        [1000 * (1 - (1 / 1.9) ** (1 / 0.9) * (1 - 1 / 1.9)), 1000 * (1 - (1 / 3.5) ** 0.4 * (1 - 1 / 3.5)), 1000],
        rel=REL)
    assert served(1.0).tolist() == pytest.approx([peaks(1000, 1000, 1.9), peaks(1000, 1000, 3.5), 1000], rel=REL)
    assert served(0.5).tolist() == pytest.approx([peaks(500, 1000, 1.9), peaks(500, 1000, 3.5), 500], rel=REL)
    assert served(2.0).tolist() == pytest.approx([1000, peaks(2000, 1000, 3.5), 1000], rel=REL)
    assert served(5.0).tolist() == [1000.0, 1000.0, 1000.0]
    # Continuity at capacity = peak x demand: all of it there, and within 1e-6 of it just below.
    assert fn.served_with_peaks(p, np.array([[1900.0, 3500.0, 1000.0]]), demand)[0].tolist() == [1000.0] * 3
    below = fn.served_with_peaks(p, np.array([[1900.0, 3500.0, 1000.0]]) * (1 - 1e-9), demand)[0]
    assert below.tolist() == pytest.approx([1000.0] * 3, rel=1e-6)
    # Increasing and concave in capacity, below capacity and demand (grid of x = 0 ... 4.5).
    xs = np.linspace(0.0, 4.5, 451)
    grid = fn.served_with_peaks(p, xs[:, None] * demand, np.repeat(demand, len(xs), axis=0))
    assert (np.diff(grid, axis=0) >= -1e-9).all()
    assert (np.diff(grid, 2, axis=0) <= 1e-9).all()
    assert (grid <= np.minimum(xs[:, None] * 1000.0, 1000.0) + 1e-9).all()
    # Scale-free: ten times the capacity and the demand serve ten times as much.
    assert fn.served_with_peaks(p, 10 * 0.7 * demand, 10 * demand)[0].tolist() == pytest.approx(
        (10 * served(0.7)).tolist(), rel=1e-12)


def test_token_price_counts_input_tokens_and_declines_yearly():
    """Revenue per output token served = output price + input price x input / output tokens, times
    (1 - the class's price_decline_per_year)^(week / 52). (Demand of 100 tokens/s against ~5,400 of capacity,
    far above its 1.9x peak: all of it is served.)"""
    s = tiny(weeks=60, initial_fleet={"H100-SXM": 0, "MI300X": 16},
             classes={"chat": {"input_price_per_mtok_usd": 0.1, "output_price_per_mtok_usd": 0.6,
                               "price_decline_per_year": 0.2}})
    env = start(s, paths(s, demand=100.0))
    infos = run(env, s, 53, prefill=[0.0, 0.25], decode=[0.0, 0.75])
    assert all(i["served"][0] == 100.0 for i in infos)
    per_token = 0.6e-6 + 0.1e-6 * 1024 / 256  # $1.00 per million output tokens
    for week in (0, 1, 26, 52):
        assert infos[week]["revenue"] == pytest.approx(100 * per_token * 0.8 ** (week / 52) * WEEK_S, rel=REL)
        assert infos[week]["revenue_per_class"][0] == pytest.approx(infos[week]["revenue"], rel=REL)
    assert infos[52]["revenue"] == pytest.approx(0.8 * infos[0]["revenue"], rel=REL)  # a year on: 20% less


def test_vendor_efficiency_by_year_scales_serving_capacity():
    """``efficiency_by_year`` (2, K, Y) multiplies each chip's prefill (row 0) and decode (row 1) rates, and
    divides its prefill latency and TPOT, in each episode year (week // 52): AMD's software matures, so the
    same MI300X serves more from week 52 on; H100's factors stay 1. (No peaks: served is the capacity.)"""
    s = tiny(weeks=60, initial_fleet={"H100-SXM": 0, "MI300X": 16}, classes={"chat": {"peak_to_mean": 1.0}})
    a = s.arrays
    eff = a["efficiency_by_year"]
    assert eff.shape == (2, 2, 2)
    assert (eff[:, 0] == 1.0).all() and (eff[:, 1, 1] > eff[:, 1, 0]).all() and (eff[:, 1, 0] > 1.0).all()
    pr, dr, latency = a["prefill_rate"][0, 1], a["serving_decode_rate"][0, 1], a["prefill_latency_s"][0, 1]
    env = start(s, paths(s, demand=1e6))
    infos = run(env, s, 53, prefill=[0.0, 0.25], decode=[0.0, 0.75])  # 4 prefill, 12 decode (replicas of 1)
    for week, year in ((0, 0), (51, 0), (52, 1)):
        prefill_cap = 4 * pr * eff[0, 1, year] * 256 / 1024
        decode_cap = 12 * dr * eff[1, 1, year]
        rho_max = max_load(latency / eff[0, 1, year], 1.0)  # same chip type: no KV transfer
        info = infos[week]
        assert info["prefill_capacity"][0] == pytest.approx(prefill_cap, rel=REL)
        assert info["decode_capacity"][0] == pytest.approx(decode_cap, rel=REL)
        assert rho_max * prefill_cap < decode_cap
        assert info["served"][0] == pytest.approx(rho_max * prefill_cap, rel=REL)
    assert infos[52]["served"][0] > infos[51]["served"][0] == infos[0]["served"][0]


def test_power_cap_scales_orders_down_to_the_spare_power():
    """With a power cap the site holds what was built: 42 kW of IT load, 30.96 of it the initial fleet's, leaves
    11.04 kW spare. An order of 64 H100s (64 x 1.26 kW = 80.64 kW) is scaled to 11.04 / 80.64 of it, 8.76 chips,
    then down to whole servers: 8 H100s, and 56 are cut for power. No site is built with the order."""
    s = tiny(site=POWER_CAP)
    env = start(s, paths(s))
    assert env.state.site_kw[0] == pytest.approx(0.0525 * 1000 / 1.25, rel=REL)  # 42 kW
    info = env.step(action(s, order=[1.0, 0.0]))[4]
    assert info["ordered"].tolist() == [8.0, 0.0]
    assert info["power_clipped"].tolist() == [56.0, 0.0]
    assert info["facility_capex"] == 0.0 and info["site_kw"] == pytest.approx(42.0, rel=REL)
    assert info["site_committed_kw"] == pytest.approx(30.96 + 8 * 1.26, rel=REL)
    # The committed load now leaves 42 - 41.04 = 0.96 kW: not one more H100 fits, whatever is ordered.
    info = env.step(action(s, order=[1.0, 1.0]))[4]
    assert info["ordered"].tolist() == [0.0, 0.0] and info["power_clipped"].tolist() == [64.0, 64.0]


def test_site_expansion_is_paid_when_ordered_and_ready_after_its_lead_time():
    """Two blocks of 20 kW (the weekly maximum, expansion entry a = 1) cost 2 x 20 x 12,000 = 480,000 at once.
    They are built over 3 weeks: ready at the end of week 2 (slot lead - 1 = 2 shifts twice), booked then and
    depreciated over 15 years (480,000 / 780 a week) from that week. While building, their cost is prepaid
    capital and carries the capital charge."""
    s = tiny(site=POWER_CAP)
    env = start(s, paths(s))
    cash0 = env.state.cash[0]
    infos = [env.step(action(s, expand=1.0 if t == 0 else 0.0))[4] for t in range(4)]
    assert infos[0]["site_blocks_ordered"] == 2 and infos[0]["facility_capex"] == pytest.approx(480_000, rel=REL)
    assert [i["site_building_kw"] for i in infos] == pytest.approx([40.0, 40.0, 0.0, 0.0], rel=REL)
    assert [i["site_kw"] for i in infos] == pytest.approx([42.0, 42.0, 82.0, 82.0], rel=REL)
    assert infos[0]["cash"] < cash0 - 480_000 + 1e-6  # paid now (the week's other flows are small and negative)
    # Capital employed: chips' book + prepaid site + site book. Week 0: the site book is the initial one after a
    # week's depreciation; week 2: the new blocks are booked and their first week's depreciation taken.
    site0, site_dep0 = 42.0 * 12_000 * (1 - 52 / 780), 42.0 * 12_000 / 780
    state = env.state
    assert state.site_book_value[0] == pytest.approx(site0 - 4 * site_dep0 + 480_000 - 2 * 480_000 / 780, rel=REL)
    chips_book = [i["capital_employed"] - i["site_building_kw"] * 12_000 for i in infos]
    assert infos[0]["capital_employed"] - chips_book[0] == pytest.approx(480_000, rel=REL)
    assert infos[0]["capital_charge"] == pytest.approx(CC * infos[0]["capital_employed"], rel=REL)


def test_a_site_block_not_ready_by_the_horizon_is_refunded_in_part():
    """A block ordered in the last week never powers anything: the settlement refunds half of it (the order
    refund fraction), so the episode's profit carries the other half, 0.5 x 240,000, as a loss."""
    s = tiny(site=POWER_CAP, weeks=4)
    plain, expanded = (start(s, paths(s)) for _ in range(2))
    for t in range(4):
        a = plain.step(action(s))[4]
        b = expanded.step(action(s, expand=0.5 if t == 3 else 0.0))[4]
    assert b["site_blocks_ordered"] == 1
    # The block's cost, less its refund, plus a week of capital charge on it, is the whole difference.
    assert a["profit"] - b["profit"] == pytest.approx(0.5 * 240_000 + CC * 240_000, rel=1e-6)


def test_renting_in_and_out_by_the_week():
    """H100s rent at $2.40 an hour: 2.40 x 168 = 403.20 a week at the start (the quoted rent; it moves with the
    chip's deployed price). Renting in 10 (a = 10 / 64 of the market's depth) costs 4,032; letting out 4 of the
    16 owned (a = 0.25) earns 4 x 403.20 x 0.8 = 1,290.24 and runs them flat out on our power: 4 x 1.26 kW x 1.25
    PUE x 168 h x $0.08 = 84.672. The week's serving fleet is 16 - 4 + 10 = 22 H100s."""
    s = tiny(rental=RENTAL)
    env = start(s, paths(s))
    week = 403.2
    # (the MI300X keeps the base scenario's $1.80 an hour: 302.40 a week)
    assert fn.rent_prices(env.params, np.array([0.0]), 1.0)[0].tolist() == pytest.approx([week, 302.4])
    info = env.step(action(s, train=[1.0, 0.0], rent_in=[10 / 64, 0.0], rent_out=[0.25, 0.0]))[4]
    assert info["rented_in"].tolist() == [10.0, 0.0] and info["rented_out"].tolist() == [4.0, 0.0]
    assert info["rent_cost"] == pytest.approx(10 * week, rel=REL)
    assert info["rent_income"] == pytest.approx(4 * week * 0.8, rel=REL)
    assert info["train_chips"].tolist() == [22.0, 0.0]
    assert info["power_cost"] == pytest.approx(4 * 1.26 * 1.25 * 168 * 0.08, rel=1e-9)  # nothing else is busy
    assert info["revenue"] == pytest.approx(4 * week * 0.8, rel=REL)  # no demand served: chat shares are 0
    # The rent moves with the deployed price: a year on the market (x 0.85) and an HBM index of 2 (x 1.45).
    assert fn.rent_prices(env.params, np.array([52.0]), 2.0)[0, 0] == pytest.approx(week * 0.85 * 1.45)


def test_cloud_only_chips_are_rented_never_bought():
    """TPUs and Trainium are sold only as cloud capacity: an order for them is refused as unavailable, but they
    can be rented once their rental market opens."""
    s = tiny(chips=["H100-SXM", "Trainium2"], initial_fleet={"H100-SXM": 16, "Trainium2": 0},
             rental={**RENTAL, "usd_per_chip_hour": {"H100-SXM": 2.40, "Trainium2": 2.24}})
    assert s.arrays["purchasable"].tolist() == [1.0, 0.0]
    env = start(s, paths(s))
    info = env.step(action(s, order=[0.0, 0.5], rent_in=[0.0, 0.5]))[4]
    assert info["orders_unavailable"].tolist() == [0.0, 32.0] and info["ordered"].tolist() == [0.0, 0.0]
    assert info["rented_in"].tolist() == [0.0, 32.0]
    assert info["rent_cost"] == pytest.approx(32 * 2.24 * 168, rel=REL)


def test_selling_can_be_switched_off():
    """``selling: false`` (the ablation's switch) ignores every sale."""
    s = tiny(selling=False)
    info = start(s, paths(s)).step(action(s, sell=[0.5, 0.5]))[4]
    assert info["sold"].tolist() == [0.0, 0.0] and info["sale_proceeds"] == 0.0


def test_cluster_contracts_hold_whole_chips_pay_weekly_and_break_when_short():
    """With ``training.clusters`` an offer of 8 H100s of throughput for 3 weeks (FLOPs = 8 x the H100's training
    FLOP/s x 3 weeks) needs 8 H100s, or ceil(8 x 3.956e14 / 5.228e14) = 7 MI300Xs. The rule (compact variants)
    takes the cluster worth least: 7 MI300X x 19,125 = 133,875 against 8 H100 x 35,763.75. It pays its value,
    value_per_job x FLOPs / flops_per_job (x 1: prices have not moved at week 0), in 3 weekly parts, and
    completes after the third. Accepted on the MI300X, it breaks (missed, no more pay) once selling 2 of the 8
    MI300Xs leaves 6 for its 7."""
    s = tiny(training={"clusters": True})
    h100 = s.training["h100_train_flops_per_s"]
    flops = 8 * h100 * WEEK_S * 3
    exo = paths(s, job_arrival=[1.0, 0.0], job_flops=flops)
    weekly = s.training["value_per_job_usd"] * flops / 1e21 / 3
    # declined: nothing is held or paid
    info = start(s, exo).step(action(s))[4]
    assert info["reserved_chips"].tolist() == [0.0, 0.0] and info["training_jobs_rejected"]
    # accepted on the H100: 8 held for weeks 0-2, paid each week, completed at the end of week 2
    env = start(s, exo)
    infos = [env.step(action(s, accept=0 if t == 0 else None))[4] for t in range(4)]
    assert [i["reserved_chips"].tolist() for i in infos] == [[8.0, 0.0]] * 3 + [[0.0, 0.0]]
    assert [i["revenue_training"] for i in infos] == pytest.approx([weekly] * 3 + [0.0], rel=REL)
    assert [i["training_jobs_completed"] for i in infos] == [0, 0, 1, 0]
    assert infos[0]["train_chips"].tolist() == [8.0, 0.0]  # they train flat out
    # the rule (compact variant, training_pace knob >= 0.5) picks the MI300X cluster
    p = fn.params(s, variant="datacenter")
    state, _ = fn.reset(p, exogenous=exo)
    assert fn.contract_offer(p, state)[0][0] == pytest.approx(8.0) and fn.contract_offer(p, state)[1][0] == 1
    # accepted on the MI300X (7 chips), then 2 of the 8 MI300X sold: the contract breaks in week 1
    env = start(s, exo)
    first = env.step(action(s, accept=1))[4]
    second = env.step(action(s, sell=[0.0, 0.25]))[4]
    assert first["reserved_chips"].tolist() == [0.0, 7.0]
    assert second["sold"].tolist() == [0.0, 2.0] and second["training_jobs_missed"] == 1
    assert second["reserved_chips"].tolist() == [0.0, 0.0] and second["revenue_training"] == 0.0


def _student() -> envs.Scenario:
    """TINY's two chips serving only the default scenario's RL student class (Llama 3.2 1B, bf16): 0.6 RL training
    tokens per token of demand hold its quality, a stale student keeps 30% of the demand, quality decays 5% a week
    and starts at 0.5; one-chip replicas, H100 decode 37,351 tokens/s per chip at year 0's efficiency."""
    return envs.load_scenario(_merge(TINY, {"base": "default", "name": "tiny-student",
                                            "drop_classes": ["chat", "agents", "batch", "video", "realtime"]}))


@pytest.mark.parametrize("knob, decode_h100", [(1.0, 0.75), (0.0, 0.75), (0.5, 1 / 16)])
def test_rl_student_update_share_costs_decode_and_buys_quality_and_demand(knob, decode_h100):
    """A student's training-capable decode chips spend share f = knob x 0.6 of their time on RL updates: they
    serve (1 - f) of their decode rate, and do f x chips x 395.6 TFLOP/s (H100 bf16 at 40% MFU) of updates over
    the week. Holding quality takes 6 x 1.24e9 parameters x 0.6 = 4.464e9 FLOPs per token of demand (2e5
    tokens/s): 8.93e14 FLOP/s. Effort = min(updates / that, 1); quality q' = 0.95 q + 0.05 effort; next week's
    demand is 2e5 x (0.3 + 0.7 q')."""
    s = _student()
    a = s.arrays
    assert a["update_flops_per_token"][0] == pytest.approx(6 * 1.24e9 * 0.6, rel=1e-3)
    env = start(s, paths(s))
    f = knob * 0.6
    info = env.step(action(s, prefill=[0.25, 0.0], decode=[decode_h100, 0.0], update=knob))[4]
    chips = info["decode_chips"][0, 0]
    assert chips == 16 * decode_h100
    assert info["update_share"] == pytest.approx(f, rel=1e-6)
    assert info["decode_capacity"][0] == pytest.approx(chips * a["decode_rate"][0, 0] * (1 - f), rel=1e-6)
    updates = chips * f * a["train_flops_per_chip_s"][0] * WEEK_S
    assert info["update_flops"] == pytest.approx(updates, rel=1e-6)
    effort = min(updates / (a["update_flops_per_token"][0] * 2e5 * WEEK_S), 1.0)
    quality = 0.95 * 0.5 + 0.05 * effort  # 0.525 at full effort, 0.475 without updates
    assert info["quality"][0] == pytest.approx(quality, rel=1e-6)
    assert info["demand"][0] == pytest.approx(2e5 * (0.3 + 0.7 * 0.5), rel=1e-9)  # this week: initial quality
    info = env.step(action(s, prefill=[0.25, 0.0], decode=[decode_h100, 0.0], update=knob))[4]
    assert info["demand"][0] == pytest.approx(2e5 * (0.3 + 0.7 * quality), rel=1e-6)


def test_rl_update_knob_decodes_to_its_share_and_old_train_fraction_is_refused():
    s = _student()
    params = fn.params(s, "datacenter")
    state, _ = fn.reset(params, 0)
    u = np.zeros((1, params.action_space.shape[0]), dtype=np.float32)
    u[0, -1] = 0.5  # the rl_updates knob, the last entry: u = 0.75
    assert fn.decode(params, state, u)[7][0] == pytest.approx(0.75 * 0.6, rel=1e-6)
    others = ["chat", "agents", "batch", "video", "realtime"]
    raw = _merge(TINY, {"base": "default", "name": "old", "drop_classes": others,
                        "classes": {"student": {"train_fraction": 0.3}}})
    with pytest.raises(envs.ScenarioError, match=r"train_fraction.*now a decision.*rl_updates"):
        envs.load_scenario(raw)
