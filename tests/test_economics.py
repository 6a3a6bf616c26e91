"""Acceptance tests of the economic-profit reward, on the ``small`` scenario and seeded exogenous paths.

* An order that cannot arrive before the horizon lowers the return by exactly what it loses: the part
  of the price not refunded at the end, plus the capital charge on the prepaid order for each week it
  was outstanding, plus the depreciation and capital charge of the site built with it (worked by hand
  from the scenario's figures).
* Over a whole episode the rewards add up to the change in net worth less the capital charges: the
  weekly accounting profit is the change in cash plus capital employed, and the terminal settlement
  marks that capital to what it fetches at the end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import envs
from envs.spaces import fine_action

SMALL = envs.load_scenario("small")
# The small scenario's figures the hand arithmetic writes as literals.
assert SMALL.chips == ("H100-SXM", "MI300X", "Groq-LPU") and SMALL.weeks == 26 and SMALL.base_lead_weeks == 12
assert SMALL.arrays["list_price"].tolist() == [27500.0, 12500.0, 20000.0]
assert SMALL.arrays["available_week"].tolist() == [-104.0, -52.0, -47.0]
assert SMALL.arrays["system_capex_multiple"].tolist() == [1.8, 1.8, 1.5]
assert SMALL.arrays["order_unit"].tolist() == [8.0, 8.0, 64.0] and SMALL.max_order_chips_per_week == 128
assert (SMALL.price_decline_per_year, SMALL.cost_of_capital_per_year, SMALL.order_refund_fraction) == (0.15, 0.11, 0.5)
assert SMALL.reward_scale_usd == 1e5 and SMALL.hbm["hbm_cost_share"] == 0.45
assert SMALL.arrays["system_power_w"].tolist() == [1260.0, 1350.0, 350.0]
assert SMALL.initial_fleet == {"H100-SXM": 256}
assert (SMALL.facility_capex_usd_per_kw, SMALL.facility_life_years) == (12_000, 15)


def _scenario(**overrides) -> envs.Scenario:
    """``small`` with its site built with each order and no rental market (the economics tested here), unless
    ``overrides`` say otherwise."""
    return envs.load_scenario({"base": "small", "name": "small-test", "site": {"power_cap": False},
                               "rental": {"enabled": False}, **overrides})


def _exogenous(s: envs.Scenario, seed: int) -> envs.Exogenous:
    return envs.draw_exogenous(s, np.random.default_rng(seed), 1)


def _serving_shares(s: envs.Scenario) -> np.ndarray:
    """(1 + 2C, K) a fixed split of every chip type's fleet: training, then prefill and decode of each class."""
    column = np.array([0.1, 0.15, 0.05, 0.1, 0.3, 0.1, 0.2])  # train | prefill chat, agents, batch | decode ...
    return np.repeat(column[:, None], s.n_chips, axis=1)


def _episode(s: envs.Scenario, exo: envs.Exogenous, late_order: tuple[int, float] | None):
    """Rewards and infos of an episode of a fixed policy: 16 MI300X ordered in week 0, every fleet split by
    :func:`_serving_shares`; with ``late_order`` = (chip, fraction), that chip is also ordered two weeks
    before the horizon."""
    env = envs.DatacenterEnv(scenario=s, variant="fine")
    env.reset(options={"exogenous": exo})
    rewards, infos = [], []
    for week in range(s.weeks):
        order = np.zeros(s.n_chips)
        if week == 0:
            order[1] = 16 / 128
        if late_order is not None and week == s.weeks - 2:
            order[late_order[0]] = late_order[1]
        _, reward, terminated, truncated, info = env.step(fine_action(s, order, _serving_shares(s)))
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    assert len(rewards) == s.weeks and truncated
    return rewards, infos


# (scenario overrides, chip, order fraction, its price at week 24 worked by hand, its IT load in kW)
LATE_ORDERS = {
    # An SRAM chip: it draws no HBM stacks, so the order leaves the HBM price index (and so every HBM chip's
    # price) untouched. One rack of 64 Groq cards at week 24: 20,000 x 0.85^((24 + 47) / 52) x 1.5 each.
    "groq": ({}, 2, 0.5, 64 * 20_000 * 0.85 ** ((24 + 47) / 52) * 1.5, 64 * 0.35),
    # An HBM chip with the HBM price elasticity at 0: the index stays at 1 whatever is queued. 16 H100 at
    # 27,500 x 0.85^((24 + 104) / 52) x 1.8 each.
    "h100": ({"hbm": {"price_elasticity": 0.0}}, 0, 16 / 128, 16 * 27_500 * 0.85 ** ((24 + 104) / 52) * 1.8,
             16 * 1.26),
}
POWER_KW = [1.26, 1.35, 0.35]  # system power per chip (H100, MI300X, Groq)


@pytest.mark.parametrize("case", sorted(LATE_ORDERS))
def test_an_order_that_cannot_arrive_before_the_end_lowers_the_return(case):
    """Ordering chips two weeks before the horizon (lead time 12 weeks) pays for chips that never arrive: at
    the end the order is cancelled for half its price (order_refund_fraction 0.5), and the capital charge
    (11% / 52 a week) is paid on the prepaid order at the end of weeks 24 and 25. The site the order needs is
    built and paid with it in week 24 (its kW beyond what the site holds for the chips owned and on order, at
    $12,000 a kW); it is not settled but kept at book, so the return loses its depreciation (15 years) and
    capital charge for weeks 24 and 25. Nothing else changes: the exogenous path and every other action are
    the same."""
    overrides, chip, fraction, paid, kw = LATE_ORDERS[case]
    s = _scenario(**overrides)
    exo = _exogenous(s, seed=3)
    base, base_infos = _episode(s, exo, None)
    late, late_infos = _episode(s, exo, (chip, fraction))
    assert late_infos[24]["capex"] == pytest.approx(base_infos[24]["capex"] + paid, rel=1e-9)
    assert late_infos[24]["ordered"][chip] == round(fraction * 128)
    assert late_infos[25]["in_queue"][chip] + late_infos[25]["in_transit"][chip] == round(fraction * 128)
    assert sum(b["served"].sum() for b in base_infos) > 0  # the policy serves, so revenue is in both returns
    # The site at the start of week 24: the initial fleet's 256 x 1.26 kW plus what was built since (the week-0
    # MI300X order's); it holds the kW of the chips owned, queued and in transit then, and failed chips leave
    # some spare. The order's kW beyond the spare are built.
    site_kw = 256 * 1.26 + sum(i["facility_capex"] for i in base_infos[:24]) / 12_000
    end23 = base_infos[23]
    held_kw = sum((f + q + t) * w for f, q, t, w in zip(end23["fleet"], end23["in_queue"], end23["in_transit"],
                                                         POWER_KW))
    build = max(kw - max(site_kw - held_kw, 0.0), 0.0) * 12_000
    assert 0 < build < kw * 12_000  # some of the order's site is built, some of it was spare
    assert late_infos[24]["facility_capex"] == pytest.approx(base_infos[24]["facility_capex"] + build, rel=1e-9)
    site_week = [build / 780 + 0.11 / 52 * build * (1 - w / 780) for w in (1, 2)]  # depreciation + capital charge
    expected = (-(1 - 0.5) * paid - 2 * 0.11 / 52 * paid - sum(site_week)) / 1e5
    assert sum(late) - sum(base) == pytest.approx(expected, rel=1e-9)
    # Week by week: the same until the order; then the capital charges and the site's depreciation; then the lost
    # half at the end.
    assert late[:24] == base[:24]
    assert late[24] - base[24] == pytest.approx(-(0.11 / 52 * paid + site_week[0]) / 1e5, rel=1e-6)
    assert late_infos[25]["terminal_settlement"] - base_infos[25]["terminal_settlement"] == pytest.approx(
        -0.5 * paid, rel=1e-9)


def _net_worth_at_reset(env: envs.DatacenterEnv) -> float:
    st = env.unwrapped.state
    return float(st.cash[0] + st.book_value[0].sum() + st.queue_value[0].sum() + st.pipeline_value[0].sum()
                 + st.site_book_value[0])


@pytest.mark.parametrize("case", ["horizon", "bankruptcy"])
def test_rewards_add_up_to_the_change_in_net_worth_less_capital_charges(case):
    """sum(reward) x reward_scale = net worth at the end (``info["net_worth"]`` of the last step: cash + capital
    employed + the terminal settlement) - net worth at reset (cash + chips' book + prepaid orders + the
    site's book) - sum of the capital charges, for seeded random fine actions that order, sell and serve,
    whether the episode runs to the horizon or ends in bankruptcy. Each week, cash + capital employed moves
    by the accounting profit."""
    # Orders (with their site) are scaled to cash + credit, so they cannot bankrupt the operator themselves: the
    # bankruptcy case also makes maintenance (60% a year of the fleet's deployed list price) outrun revenue.
    s = SMALL if case == "horizon" else _scenario(initial_cash_usd=2e6, credit_limit_usd=3e6, maintenance_per_year=0.6)
    rng = np.random.default_rng(11)
    env = envs.DatacenterEnv(scenario=s, variant="fine")
    env.reset(options={"exogenous": _exogenous(s, seed=5)})
    K = s.n_chips
    worth0 = _net_worth_at_reset(env)
    before = worth0
    rewards, charges, totals = [], [], {"ordered": 0.0, "sold": 0.0, "served": 0.0, "arrived": 0.0}
    for _ in range(s.weeks):
        act = rng.uniform(-1.0, 1.0, env.action_space.shape)  # shares: u / max(1, sum of u) of each fleet
        act[:K] = rng.uniform(-1.0, 0.3 if case == "horizon" else 1.0, K)  # up to 0.3 x 128 chips of a type
        act[K:2 * K] = rng.uniform(-0.3, 0.05, K)  # sell up to 5% of a fleet, one week in seven
        _, reward, terminated, truncated, info = env.step(act.astype(np.float32))
        rewards.append(reward)
        charges.append(info["capital_charge"])
        for key in totals:
            totals[key] += float(np.sum(info[key]))
        if terminated or truncated:
            break
        after = info["cash"] + info["capital_employed"]
        assert after - before == pytest.approx(info["accounting_profit"], abs=1e-6 * 1e5)
        assert info["terminal_settlement"] == 0.0
        before = after
    assert (terminated, truncated) == ((False, True) if case == "horizon" else (True, False))
    if case == "horizon":
        assert len(rewards) == 26 and all(v > 0 for v in totals.values()), totals
    else:
        assert len(rewards) < 26 and info["bankrupt"] and totals["ordered"] > 0
    assert info["terminal_settlement"] != 0.0
    assert info["net_worth"] == pytest.approx(info["cash"] + info["capital_employed"] + info["terminal_settlement"],
                                              rel=1e-12)
    change = info["net_worth"] - worth0 - math.fsum(charges)
    assert math.fsum(rewards) * 1e5 == pytest.approx(change, rel=1e-9)
