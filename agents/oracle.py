"""Perfect-foresight oracle: the whole horizon as one mixed-integer LP (HiGHS), replayed in the env.

Given the episode's exogenous path (demand, HBM supply and others' demand, job arrivals: all
fixed by the seed), the program chooses weekly orders o[t,k], allocations (training chips,
prefill and decode chips per class), served tokens s[t,c], carried-over batch work, site capacity,
training FLOPs per job and a binary "job completed" per job, to maximise the episode's economic
profit with the environment's own accounting (revenue at each class's input and output token prices,
power, maintenance, straight-line depreciation of chips and site, failure write-offs, the capital
charge on chips at book value, orders in transit and the site, and the terminal settlement at resale
value) and its constraints (cash >= -credit, chips on sale, lead time, each HBM generation's allocation
and SRAM wafer caps, SLO-admissible prefill and decode capacity, the share of load served under each
class's peaks).

Relaxations, stated: orders and chips are continuous (the replay rounds orders to whole order
units); failures take their expected value (the env rounds stochastically); each HBM generation's
price path is computed from the plan's own HBM draw and the program solved again; training-job slots are
not limited; the share served under peaks is approximated from above by tangents; the KV-transfer
link is not modelled; chips are sold only at the horizon, each cohort at its own age (the env
marks a chip type at its mean age); the oracle never sells chips during the episode. Orders are
kept within each week's HBM allocation of their generation, so nothing waits in the HBM queue. The program's objective
is therefore an estimate of the best return for the seed; ``tests/test_agents.py`` checks that the
replayed plan earns it to within 3% on the default scenario and 15% on the small one (whose 26
weeks and 256 chips make expected failures and whole replicas cost 7-13% there, measured on seeds 1-5).

The program plans a :class:`Window`: any start week and state, over any number of weeks, along given arrays. The
oracle's window is the whole episode from its initial state along the true path; ``agents.mpc`` solves windows
from the env's state along forecasts.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import coo_matrix

from agents.base import Plan, Policy, to_action
from agents.lp_scheduler import EXA, SolverError, peak_cuts, serving_rates, token_prices, whole_replica_shares
from envs.datacenter import DatacenterEnv
from envs.dynamics import BACKLOG_WEEKS, MAX_UPDATE_SHARE, STATE, W_PER_KW, WEEK_S, WEEKS_PER_YEAR
from envs.exogenous import Exogenous
from envs.functional import Params, chip_prices, failed_chips, generation_stacks, hbm_market_path, rent_prices

TIME_LIMIT_S = 120.0
LUMPY_SHARE = 0.005
LUMPY_STACKS = 0.1  # an HBM chip whose order unit needs more than this share of its generation's weekly allocation
MIP_GAP = 1e-2  # relative optimality gap at which HiGHS stops (1%: contract acceptance is binary, and at 0.1% the
#   default scenario's solve took ~60 s against ~9 s, for the same replayed return on seed 20000)
JOB_MARGIN = 1.03  # plan 3% more FLOPs than a job needs: whole chips and failures shave the replay's rate
_MONEY = ("cash", "queue_value", "pipeline_value", "book_value", "depreciation_rate", "site_book_value",
          "site_depreciation_rate", "job_value")  # state fields in $, which the program counts in reward_scale


@contextmanager
def _quiet_stdout():
    """Silence the process's stdout (file descriptor 1) for the block: HiGHS's MIP solver prints debugging lines
    from C++ that its options do not turn off."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stdout has no descriptor to silence
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class _Program:
    """A sparse (MI)LP assembled variable block by variable block."""

    def __init__(self):
        self.n = 0
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: dict[int, float] = {}
        self.constant = 0.0  # costs that no decision changes (e.g. write-offs of the initial fleet); gains < 0

    def var(self, shape, low=0.0, high=np.inf, integer=False) -> np.ndarray:
        size = int(np.prod(shape))
        idx = np.arange(self.n, self.n + size).reshape(shape)
        self.n += size
        self.lower.append(np.broadcast_to(np.asarray(low, float), shape).reshape(-1))
        self.upper.append(np.broadcast_to(np.asarray(high, float), shape).reshape(-1))
        self.integer.append(np.full(size, int(integer)))
        return idx

    def row(self, terms: list[tuple[int, float]], low: float, high: float) -> None:
        r = len(self.lb)
        for col, val in terms:
            if val != 0.0:
                self.rows.append(r)
                self.cols.append(int(col))
                self.vals.append(float(val))
        self.lb.append(low)
        self.ub.append(high)

    def add_cost(self, col: int, value: float) -> None:
        self.cost[int(col)] = self.cost.get(int(col), 0.0) + value

    def solve(self, time_limit: float) -> np.ndarray:
        c = np.zeros(self.n)
        for col, v in self.cost.items():
            c[col] = v
        a = coo_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.lb), self.n)).tocsr()
        with _quiet_stdout():
            res = milp(c, constraints=LinearConstraint(a, self.lb, self.ub), integrality=np.concatenate(self.integer),
                       bounds=(np.concatenate(self.lower), np.concatenate(self.upper)),
                       options={"time_limit": time_limit, "mip_rel_gap": MIP_GAP})
        if res.x is None or res.status not in (0, 1):
            raise SolverError(f"the oracle's program has no solution: HiGHS status {res.status} ({res.message}); "
                              f"on a loaded machine, raise the time limit (OraclePolicy(env, time_limit=...))")
        if res.status == 1:  # the time limit ran out with a feasible plan: use it, and say how far from optimal
            bound = getattr(res, "mip_dual_bound", None)
            logging.getLogger(__name__).warning(
                "the oracle's MILP hit its %.0f s time limit; using the best plan found (objective %.4g, bound %s)",
                time_limit, -res.fun, "unknown" if bound is None else f"{-bound:.4g}")
        self.objective = -(res.fun + self.constant)
        return res.x


@dataclass(frozen=True)
class OraclePlan:
    orders: np.ndarray  # (T, K) chips
    sales: np.ndarray  # (T, K) chips of the initial fleet sold
    blocks: np.ndarray  # (T,) site expansion blocks ordered (power-capped sites)
    rent_in: np.ndarray  # (T, K) chips rented from the cloud market
    rent_out: np.ndarray  # (T, K) chips let out to it
    train: np.ndarray  # (T, K) chips (with cluster contracts: the chips they hold)
    accept: np.ndarray  # (T,) the chip type each week's cluster contract offer is accepted on, -1: declined
    prefill: np.ndarray  # (T, C, K) chips
    decode: np.ndarray  # (T, C, K) chips serving
    updating: np.ndarray  # (T, C, K) decode chips of RL student classes spending their time on RL updates
    served: np.ndarray  # (T, C) tokens/s
    allocation: np.ndarray  # (T, G) HBM stacks of each generation our orders may draw each week (the plan keeps
    #   within it)
    objective: float  # predicted return (sum of rewards)
    solve_seconds: float


@dataclass(frozen=True)
class Window:
    """What the horizon program plans: the weeks from ``week`` on, from the state ``row`` (the layout of
    ``envs.dynamics.STATE_FIELDS``), along an exogenous path for them, true (the oracle) or forecast (MPC). Its
    length is that of ``demand``; the program settles the books at its end as the env does at the episode's."""

    week: int
    row: np.ndarray
    demand: np.ndarray  # (T, C) exogenous demand, tokens/s
    allocation: np.ndarray  # (T, G) HBM stacks of each generation our orders may draw
    hbm_price: np.ndarray  # (T, G) each generation's price index
    job_arrival: np.ndarray  # (T,) training jobs or contract offers arriving: 1 certain (its acceptance is a
    #   binary), w in (0, 1) an expected arrival (its acceptance a share of at most w), 0 none
    job_flops: np.ndarray  # (T,) their FLOPs


def true_window(env: DatacenterEnv, orders: np.ndarray, accepted: np.ndarray, week: int = 0,
                row: np.ndarray | None = None) -> Window:
    """The episode's true path from ``week`` to its end, from ``row`` (default: the initial state): HBM prices
    from our ``orders`` (T, K) over the whole episode, FLOP jobs where ``accepted`` (T,) (contract offers
    wherever they arrive)."""
    params, exo = env.params, env.exogenous
    arrivals = exo.job_arrival[0] > 0 if env.scenario.training["clusters"] else accepted
    return Window(week=week, row=params.initial_row if row is None else row, demand=exo.demand[0, week:],
                  allocation=_allocation(params, exo)[week:],
                  hbm_price=_hbm_price_path(params, exo, orders)[week:],
                  job_arrival=np.asarray(arrivals, dtype=float)[week:], job_flops=exo.job_flops[0, week:])


def _hbm_price_path(params: Params, exo: Exogenous, orders: np.ndarray) -> np.ndarray:
    """(T, G) each HBM generation's price index at the start of each week, given our orders (they join the
    demand for their generation)."""
    stacks = orders @ generation_stacks(params)
    return hbm_market_path(params, exo.hbm_supply[0], exo.other_hbm_demand[0], stacks)[1]


def solve_oracle(env: DatacenterEnv, time_limit: float = TIME_LIMIT_S, passes: int = 4) -> OraclePlan:
    """Plan the episode that ``env`` (just reset, fine variant) is in, from its exogenous path.

    Two things depend on the plan itself: the HBM price path (our orders join HBM demand) and
    which training jobs the env accepts (an arrival finding every job slot busy is turned away).
    Each pass solves the program, replays the plan in a copy of the env, and feeds both back,
    until the accepted jobs stop changing.
    """
    start = time.perf_counter()
    scenario, exo, params = env.scenario, env.exogenous, env.params
    orders = np.zeros((scenario.weeks, scenario.n_chips))
    accepted = exo.job_arrival[0] > 0
    for _ in range(passes):
        plan = _solve(params, true_window(env, orders, accepted), time_limit)
        orders = plan.orders
        replayed = _replay(env, plan)
        if np.array_equal(replayed, accepted):
            break
        accepted = replayed
    return replace(plan, solve_seconds=time.perf_counter() - start)


def _replay(env: DatacenterEnv, plan: OraclePlan) -> np.ndarray:
    """Which job arrivals a copy of ``env`` accepts when it follows ``plan``."""
    scratch = copy.deepcopy(env)
    scratch.render_mode = None
    accepted = np.zeros(scratch.scenario.weeks, dtype=bool)
    for t in range(scratch.scenario.weeks):
        _, _, terminated, _, info = scratch.step(to_action(scratch, _week_plan(scratch, plan)))
        accepted[t] = info["training_jobs_accepted"]
        if terminated:
            break
    return accepted


def _solve(params: Params, window: Window, time_limit: float) -> OraclePlan:
    """The horizon program over ``window``: week w of the plan is the env's week ``window.week`` + w."""
    scenario = params.scenario
    a = scenario.arrays
    T, K, C = window.demand.shape[0], scenario.n_chips, scenario.n_classes
    weeks = window.week + np.arange(T)  # the env's weeks
    hbm_price = window.hbm_price
    L = max(int(scenario.base_lead_weeks), 1)
    p_fail = scenario.failure_rate_per_year / WEEKS_PER_YEAR
    keep = 1.0 - p_fail
    dep_weeks = scenario.depreciation_years * WEEKS_PER_YEAR
    site_weeks = scenario.facility_life_years * WEEKS_PER_YEAR
    scale = scenario.reward_scale_usd
    coc = scenario.cost_of_capital_per_year / WEEKS_PER_YEAR
    prices = chip_prices(params, weeks, hbm_price)  # (T, K) deployed price per chip
    rents = rent_prices(params, weeks, hbm_price) / scale  # (T, K) weekly rent per chip; 0 = no market
    depth = float(scenario.rental["max_chips_per_week"])
    fee = scenario.rental["rent_out_fee"]
    site_cfg = scenario.site
    capped = bool(site_cfg["power_cap"])
    E = max(int(site_cfg["expansion_lead_weeks"]), 1)
    block_kw = site_cfg["expansion_block_mw"] * W_PER_KW / scenario.pue
    block_cost = block_kw * scenario.facility_capex_usd_per_kw / scale
    allocation = window.allocation
    pools = generation_stacks(params)  # (K, G) stacks each chip draws from each generation
    demand = window.demand
    on_sale = (weeks[:, None] >= a["available_week"][None, :]) & (a["purchasable"][None, :] > 0)
    # Rates change only with the episode year (the vendors' software efficiency).
    # (decode at the full rate: RL student update time is planned as chips of its own, xu below)
    years = weeks // WEEKS_PER_YEAR
    by_year = {int(y): serving_rates(params, y * WEEKS_PER_YEAR, update_share=0.0) for y in np.unique(years)}
    rates = [by_year[int(y)] for y in years]
    maintenance = a["list_price"] * a["system_capex_multiple"] * scenario.maintenance_per_year / WEEKS_PER_YEAR
    flops_per_chip_week = a["train_flops_per_chip_s"] * WEEK_S / EXA
    kw = a["system_power_w"] / W_PER_KW
    facility = scenario.facility_capex_usd_per_kw / scale  # per kW
    decode_any = np.max([r[1] for r in rates], axis=0)
    prefill_any = np.max([r[0] for r in rates], axis=0)

    # Where the window starts: its state row as the environment books it (the episode's initial row for the
    # oracle; the env's state for MPC), in units of reward_scale for money.
    so = params.offsets.state

    def initial(name: str) -> np.ndarray:
        i = getattr(STATE, name)
        return window.row[so[i]:so[i + 1]] / (scale if name in _MONEY else 1.0)

    fleet0, book0, dep0 = initial("fleet"), initial("book_value"), initial("depreciation_rate")
    site0, site_book0, site_dep0 = initial("site_kw")[0], initial("site_book_value")[0], initial(
        "site_depreciation_rate")[0]
    age0, q0, backlog0 = initial("age_weeks"), initial("quality"), initial("backlog")
    # Chips bought before the window: those in transit land in week j of it (pipeline slot j); those waiting for
    # HBM stacks or wafers count as released now, landing in week L - 1 (the plans keep orders within the HBM
    # allocation, so that queue stays short). Rows past the window never land in it. Site blocks under
    # construction likewise land in week j (site pipeline slot j).
    landing, landing_value = np.zeros((max(T, L), K)), np.zeros((max(T, L), K))
    landing[:L], landing_value[:L] = initial("pipeline").reshape(K, L).T, initial("pipeline_value").reshape(K, L).T
    landing[L - 1] += initial("queue")
    landing_value[L - 1] += initial("queue_value")
    site_landing = np.zeros(max(T, E))
    site_landing[:E] = initial("site_pipeline")
    # Training already taken on: FLOP jobs in their slots, and cluster contracts running.
    slot_flops, slot_weeks, slot_value = initial("job_flops"), initial("job_weeks_left"), initial("job_value")
    slot_chips, slot_type = initial("job_chips"), initial("job_type").astype(int)
    running = np.zeros(T)  # contracts running each week of the window
    running_chips = np.zeros((T, K))  # the chips they hold
    running_pay = np.zeros(T)  # and what they pay
    for j in np.flatnonzero(slot_chips > 0):
        running[:int(slot_weeks[j])] += 1.0
        running_chips[:int(slot_weeks[j]), slot_type[j]] += slot_chips[j]
        running_pay[:int(slot_weeks[j])] += slot_value[j]
    # (at most the chips expected to survive without sales or orders: a contract the expected failures would
    # break holds what is left, so that the program stays feasible)
    survivors = keep ** np.arange(1, T + 1)[:, None] * (fleet0 + np.cumsum(landing[:T], axis=0))
    running_chips = np.minimum(running_chips, survivors)

    prog = _Program()
    cap = float(scenario.max_order_chips_per_week)
    order_high = np.where(on_sale, np.minimum(cap, np.where(np.isfinite(a["sram_cap"]), a["sram_cap"], cap)), 0.0)
    # Orders of lumpy chips (an order unit worth more than LUMPY_SHARE of the initial fleet, e.g. a
    # $2.5M CS-3) are whole units: relaxed, the plan would buy a tenth of a wafer. Others stay continuous.
    unit = a["order_unit"]
    fleet_value = max(float(a["initial_fleet"] @ a["list_price"]), 1.0)
    lumpy = unit * a["list_price"] > LUMPY_SHARE * fleet_value
    # So are orders of chips whose order unit takes a large bite of their HBM generation's weekly allocation
    # (eight MI300X need 64 stacks of an HBM3 allocation of a few hundred): rounding a relaxed plan to whole units
    # within the allocation would lose much of it every week.
    for k in range(K):
        g = int(a["hbm_generation"][k])
        weekly = allocation[on_sale[:, k], g] if g >= 0 else np.zeros(0)
        if weekly.size and unit[k] * a["hbm_stacks"][k] > LUMPY_STACKS * np.median(weekly):
            lumpy[k] = True
    o = prog.var((T, K), 0.0, order_high)
    for k in np.flatnonzero(lumpy):
        units = prog.var(T, 0.0, np.floor(order_high[:, k] / unit[k]), integer=True)
        for t in range(T):
            prog.row([(o[t, k], 1.0), (units[t], -unit[k])], 0.0, 0.0)
    fleet = prog.var((T, K))  # after this week's arrivals and failures
    xt = prog.var((T, K), 0.0, np.where(a["train_flops_per_chip_s"] > 0, np.inf, 0.0))
    xp = prog.var((T, C, K), 0.0, np.where(prefill_any > 0, np.inf, 0.0))
    xd = prog.var((T, C, K), 0.0, np.where(decode_any > 0, np.inf, 0.0))
    # RL student classes: decode chips of training-capable types spending their time on RL updates, and the
    # students' quality at the start of each week (demand = D x (floor + (1 - floor) q), as in the env).
    updating = a["student_updating"]
    xu = prog.var((T, C, K), 0.0, np.where(updating & (decode_any > 0), np.inf, 0.0))
    students = np.flatnonzero(a["update_flops_per_token"] > 0)
    quality = prog.var((T + 1, C), 0.0, 1.0)
    effort = prog.var((T, C), 0.0, 1.0)
    for c in range(C):
        prog.row([(quality[0, c], 1.0)], q0[c], q0[c])
    floor = a["quality_floor"]
    s = prog.var((T, C), 0.0, np.inf)
    xcap = prog.var((T, C), 0.0, np.inf)  # capacity of each class: the least of prefill and decode
    colocated = not scenario.disaggregation
    # Without disaggregated serving, each chip type's capacity is the least of its own prefill and decode.
    ycap = prog.var((T, C, K), 0.0, np.inf) if colocated else None
    backlog = prog.var((T, C), 0.0, np.where(a["carry_over"] > 0, BACKLOG_WEEKS * demand, 0.0))
    cash = prog.var(T, -scenario.credit_limit_usd / scale, np.inf)  # in units of reward_scale
    dep = prog.var((T, K))
    book = prog.var((T, K), -np.inf, np.inf)
    site = prog.var(T)  # kW of IT load the site holds
    build = prog.var(T)  # kW built this week
    site_dep = prog.var(T)
    site_book = prog.var(T, -np.inf, np.inf)
    rin = prog.var((T, K), 0.0, np.where(rents > 0, depth, 0.0))  # chips rented in for the week
    rout = prog.var((T, K), 0.0, np.where(rents > 0, depth, 0.0))  # chips let out for the week
    # Site blocks are relaxed to continuous, and their running total rounded up for the replay: whole blocks cost
    # the MILP minutes, and a block is small beside the fleet (1 MW of IT load, $12M, in the default scenario).
    blocks = prog.var(T, 0.0, float(site_cfg["max_blocks_per_week"]) if capped else 0.0)

    # Training jobs: those in slots train in the window's first weeks; a job arriving at step t0 trains in steps
    # t0+1 .. t0+deadline. Each pays on completion: z = 1 (a binary; for an expected arrival of weight w < 1,
    # a share z <= w of it).
    tr = scenario.training
    clusters = bool(tr["clusters"])
    taken = [(np.arange(min(int(slot_weeks[j]), T)), slot_flops[j], slot_value[j], 1.0)
             for j in np.flatnonzero(slot_flops > 0)] if not clusters else []
    arriving = [] if clusters else [
        (np.arange(t0 + 1, min(t0 + 1 + tr["deadline_weeks"], T)), window.job_flops[t0],
         tr["value_per_job_usd"] * window.job_flops[t0] / tr["flops_per_job"] / scale, window.job_arrival[t0])
        for t0 in np.flatnonzero(window.job_arrival > 0)]
    jobs = []  # (y variables, window, z, value)
    for train_weeks, flops, value, weight in taken + arriving:
        if not len(train_weeks):
            continue
        y = prog.var(len(train_weeks))
        z = int(prog.var(1, 0.0, min(weight, 1.0), integer=weight >= 1.0)[0])
        prog.row([(yi, 1.0) for yi in y] + [(z, -JOB_MARGIN * flops / EXA)], 0.0, np.inf)
        prog.add_cost(z, -value)
        jobs.append((y, train_weeks, z, value))
    # Cluster contracts: the offer at t0 is accepted on at most one training-capable chip type k (binary
    # take[t0, k]), which then holds n_k whole chips in weeks t0 .. t0 + weeks - 1 and is paid each of them.
    contracts = []  # (t0, {k: take variable}, chips (K,), weekly pay, active weeks)
    if clusters:
        capable = np.flatnonzero(a["train_flops_per_chip_s"] > 0)
        mean_index = hbm_price.mean(axis=1) if hbm_price.ndim == 2 else hbm_price
        for t0 in np.flatnonzero(window.job_arrival > 0):
            h100s = window.job_flops[t0] / (tr["h100_train_flops_per_s"] * WEEK_S * tr["deadline_weeks"])
            chips = np.zeros(K)
            chips[capable] = np.ceil(h100s * tr["h100_train_flops_per_s"] / a["train_flops_per_chip_s"][capable]
                                     - 1e-6)
            weight = min(window.job_arrival[t0], 1.0)
            take = {int(k): int(prog.var(1, 0.0, weight, integer=weight >= 1.0)[0]) for k in capable}
            prog.row([(v, 1.0) for v in take.values()], -np.inf, weight)
            market = (1.0 - scenario.price_decline_per_year) ** (weeks[t0] / WEEKS_PER_YEAR) * (
                1.0 + scenario.hbm["hbm_cost_share"] * (mean_index[t0] - 1.0))
            pay = tr["value_per_job_usd"] * window.job_flops[t0] / tr["flops_per_job"] * market / tr[
                "deadline_weeks"] / scale
            active_weeks = np.arange(t0, min(t0 + int(tr["deadline_weeks"]), T))
            for v in take.values():
                prog.add_cost(v, -pay * len(active_weeks))
            contracts.append((int(t0), take, chips, pay, active_weeks))
    prog.constant -= running_pay.sum()  # running contracts' pay (a gain)

    prog.constant += p_fail * book0.sum()  # write-off of initial chips failing in week 0 (a cost)
    # Chips bought before the window: the write-off of those failing the week they land, the capital charge
    # while in transit, and a refund of part of what is paid for those landing after the window.
    prog.constant += p_fail * landing_value[:T].sum() + coc * float(np.minimum(np.arange(len(landing)), T)
                                                                      @ landing_value.sum(axis=1))
    prog.constant += (1.0 - scenario.order_refund_fraction) * landing_value[T:].sum()
    if capped:  # likewise site blocks under construction
        block_value = facility * site_landing  # $ / reward_scale paid for them
        prog.constant += coc * float(np.minimum(np.arange(len(site_landing)), T) @ block_value)
        prog.constant += (1.0 - scenario.order_refund_fraction) * block_value[T:].sum()
    # Selling: chips of the initial fleet may be sold on the secondary market (after the week's arrivals, before
    # its failures, as the env does), at the resale price of their age, carrying their own book value with them.
    age_decay = scenario.resale_age_decay_per_year / WEEKS_PER_YEAR
    per_chip = fleet0 > 0
    book_pc = np.where(per_chip, book0 / np.maximum(fleet0, 1.0), 0.0)
    dep_pc = np.where(per_chip, dep0 / np.maximum(fleet0, 1.0), 0.0)
    sell = prog.var((T, K), 0.0, np.where(per_chip & bool(scenario.selling), fleet0, 0.0)[None, :].repeat(T, 0))
    # what one chip of the initial fleet fetches if sold in week t (its age then: age0 + t)
    initial_resale = prices / scale * np.exp(-age_decay * (age0[None, :] + np.arange(T)[:, None]))
    last = T - 1
    resale_now = chip_prices(params, np.array([float(weeks[last])]), hbm_price[last:last + 1])[0] / scale
    for t in range(T):
        prefill_out, decode_out, power = rates[t]
        # Each HBM generation's allocation: nothing waits in the queue.
        for g in range(pools.shape[1]):
            drawing = np.flatnonzero(pools[:, g])
            if drawing.size:
                prog.row([(o[t, k], pools[k, g]) for k in drawing], -np.inf, allocation[t, g])
        src = t - (L - 1)
        for k in range(K):
            arr = [(o[src, k], 1.0)] if src >= 0 else []
            arr_value = [(o[src, k], prices[src, k] / scale)] if src >= 0 else []
            # fleet after arrivals and expected failures
            prev = [(fleet[t - 1, k], 1.0)] if t else []
            const = keep * ((0.0 if t else fleet0[k]) + landing[t, k])
            prog.row([(fleet[t, k], 1.0), (sell[t, k], keep)] + [(c, -keep * v) for c, v in prev + arr], const, const)
            if per_chip[k]:
                # no more of the initial cohort is sold than survives; each sale gains its resale less its book
                prog.row([(sell[tau, k], 1.0) for tau in range(t + 1)], -np.inf, fleet0[k] * keep ** t)
                book_now = max(book_pc[k] - t * dep_pc[k], 0.0)
                resale = initial_resale[t, k]
                # (and gives up the chip's mark at the horizon, which the constant below counts for every
                # initial chip expected to survive)
                lost_mark = keep ** (T - t) * resale_now[k] * np.exp(-age_decay * (age0[k] + T - 1))
                prog.add_cost(sell[t, k], book_now * (1.0 - p_fail) - resale + lost_mark)
            prog.row([(xt[t, k], 1.0)] + [(xp[t, c, k], 1.0) for c in range(C)]
                     + [(xd[t, c, k], 1.0) for c in range(C)] + [(xu[t, c, k], 1.0) for c in students]
                     + [(fleet[t, k], -1.0), (rin[t, k], -1.0),
                                                                  (rout[t, k], 1.0)], -np.inf, 0.0)
            prog.row([(rout[t, k], 1.0), (fleet[t, k], -1.0)], -np.inf, 0.0)  # only chips we own are let out
            # renting: the rent in is paid; chips let out earn the rent less the fee and run on our power
            prog.add_cost(rin[t, k], rents[t, k])
            prog.add_cost(rout[t, k], -rents[t, k] * (1.0 - fee) + power[k] / scale)
            # depreciation rate and book value (units of reward_scale), as the env keeps them
            prev = [(dep[t - 1, k], 1.0)] if t else []
            const = keep * ((0.0 if t else dep0[k]) + landing_value[t, k] / dep_weeks)
            prog.row([(dep[t, k], 1.0), (sell[t, k], -keep * dep_pc[k])] + [(c, -keep * v) for c, v in prev]
                     + [(c, -keep * v / dep_weeks) for c, v in arr_value], const, const)
            prev = [(book[t - 1, k], 1.0)] if t else []
            const = keep * ((0.0 if t else book0[k]) + landing_value[t, k])
            prog.row([(book[t, k], 1.0), (dep[t, k], 1.0), (sell[t, k], keep * max(book_pc[k] - t * dep_pc[k], 0.0))]
                     + [(c, -keep * v) for c, v in prev + arr_value], const, const)
            # economic profit: maintenance, power, depreciation, write-off of this week's failures, and the
            # capital charge on the chips' book value
            prog.add_cost(fleet[t, k], maintenance[k] / scale)
            prog.add_cost(dep[t, k], 1.0)
            prog.add_cost(book[t, k], coc)
            for c_, v in prev + arr_value:
                prog.add_cost(c_, p_fail * v)
            prog.add_cost(xt[t, k], power[k] / scale)
            for c in range(C):
                prog.add_cost(xp[t, c, k], power[k] / scale)
                prog.add_cost(xd[t, c, k], power[k] / scale)
                prog.add_cost(xu[t, c, k], power[k] / scale)
        # Orders paid and still in transit carry the capital charge too.
        for tau in range(max(t - L + 2, 0), t + 1):
            for k in range(K):
                prog.add_cost(o[tau, k], coc * prices[tau, k] / scale)
        # The site: without a power cap it grows to the IT load of the chips owned and on order, built and paid
        # with the order. With a cap, expansion blocks ordered (and paid) at week tau are ready E - 1 weeks
        # later, and chips may be ordered only into the power the site has spare for them.
        prev_site = [(site[t - 1], 1.0)] if t else []
        const_site = 0.0 if t else site0
        prog.row([(site[t], 1.0), (build[t], -1.0)] + [(c, -v) for c, v in prev_site], const_site, const_site)
        if capped:
            ready = t - (E - 1)
            prog.row([(build[t], 1.0)] + ([(blocks[ready], -block_kw)] if ready >= 0 else []), site_landing[t],
                     site_landing[t])
            # Committed load (the fleet before its expected failures, so the replay's luckier fleet still
            # fits, plus the chips in transit and this week's order) within the power built by last week.
            committed = [(o[tau, k], kw[k]) for tau in range(max(t - L + 1, 0), t + 1) for k in range(K)]
            bought = float(landing[t:].sum(axis=0) @ kw)  # chips bought before the window, landing now or later
            if t:
                committed += [(fleet[t - 1, k], kw[k] / keep) for k in range(K)] + [(site[t - 1], -1.0)]
                prog.row(committed, -np.inf, 0.0 - bought)
            else:
                prog.row(committed, -np.inf, site0 - float(fleet0 @ kw) - bought)
            for tau in range(max(t - E + 2, 0), t + 1):  # blocks paid and still being built
                prog.add_cost(blocks[tau], coc * block_cost)
        else:
            in_transit = [(o[tau, k], -kw[k]) for tau in range(max(t - L + 2, 0), t + 1) for k in range(K)]
            prog.row([(site[t], 1.0)] + [(fleet[t, k], -kw[k]) for k in range(K)] + in_transit,
                     float(landing[t + 1:].sum(axis=0) @ kw), np.inf)
        prev = [(site_dep[t - 1], 1.0)] if t else []
        const = 0.0 if t else site_dep0
        prog.row([(site_dep[t], 1.0), (build[t], -facility / site_weeks)] + [(c, -v) for c, v in prev], const, const)
        prev = [(site_book[t - 1], 1.0)] if t else []
        const = 0.0 if t else site_book0
        prog.row([(site_book[t], 1.0), (site_dep[t], 1.0), (build[t], -facility)] + [(c, -v) for c, v in prev],
                 const, const)
        prog.add_cost(site_dep[t], 1.0)
        prog.add_cost(site_book[t], coc)
        price = token_prices(params, weeks[t])
        for c in students:
            # quality moves toward update FLOPs done / those that hold it, at the decay rate; at most
            # MAX_UPDATE_SHARE of the class's training-capable decode chips update (the env's largest share)
            held = a["update_flops_per_token"][c] * demand[t, c] * WEEK_S
            fade = a["quality_decay"][c]
            if held > 0:  # effort: update FLOPs done / those that hold quality, at most 1
                prog.row([(effort[t, c], 1.0)] + [(xu[t, c, k], -a["train_flops_per_chip_s"][k] * WEEK_S / held)
                                                   for k in range(K)], -np.inf, 0.0)
                prog.row([(quality[t + 1, c], 1.0), (quality[t, c], fade - 1.0), (effort[t, c], -fade)], -np.inf, 0.0)
            else:
                prog.row([(quality[t + 1, c], 1.0), (quality[t, c], -1.0)], -np.inf, 0.0)
            trainable = np.flatnonzero(updating[c])
            prog.row([(xu[t, c, k], 1.0 - MAX_UPDATE_SHARE) for k in trainable]
                     + [(xd[t, c, k], -MAX_UPDATE_SHARE) for k in trainable], -np.inf, 0.0)
        for c in range(C):
            carried = [(backlog[t - 1, c], 1.0)] if t else []
            # this week's demand: D for most classes, D x (floor + (1 - floor) q) for RL students
            wants = [(quality[t, c], -(1.0 - floor[c]) * demand[t, c])] if c in students else []
            base = demand[t, c] * (floor[c] if c in students else 1.0) + (0.0 if t else backlog0[c])
            prog.row([(s[t, c], 1.0)] + [(cb, -1.0) for cb, _ in carried] + wants, -np.inf, base)
            if colocated:
                prog.row([(xcap[t, c], 1.0)] + [(ycap[t, c, k], -1.0) for k in range(K)], -np.inf, 0.0)
                for k in range(K):
                    prog.row([(ycap[t, c, k], 1.0), (xp[t, c, k], -prefill_out[c, k])], -np.inf, 0.0)
                    prog.row([(ycap[t, c, k], 1.0), (xd[t, c, k], -decode_out[c, k])], -np.inf, 0.0)
            else:
                prog.row([(xcap[t, c], 1.0)] + [(xp[t, c, k], -prefill_out[c, k]) for k in range(K)], -np.inf, 0.0)
                prog.row([(xcap[t, c], 1.0)] + [(xd[t, c, k], -decode_out[c, k]) for k in range(K)], -np.inf, 0.0)
            # Peaks: the share of demand served is concave in capacity (tangent cuts; the env's own formula).
            wanted = [(s[t, c], 1.0)]
            for slope, intercept in peak_cuts(float(a["peak_to_mean"][c])):
                prog.row(wanted + [(xcap[t, c], -slope)] + [(cb, -intercept) for cb, _ in carried]
                         + [(v, intercept * w) for v, w in wants], -np.inf, intercept * base)
            if a["carry_over"][c] > 0:  # carried work is at most this week's unmet demand
                prog.row([(backlog[t, c], 1.0), (s[t, c], 1.0)] + [(cb, -1.0) for cb, _ in carried] + wants,
                         -np.inf, base)
            prog.add_cost(s[t, c], -price[c] * WEEK_S / scale)
        training = [(y[list(span).index(t)], 1.0) for y, span, _, _ in jobs if t in span]
        if training:
            prog.row(training + [(xt[t, k], -flops_per_chip_week[k]) for k in range(K)], -np.inf, 0.0)
        if clusters:
            active = [c for c in contracts if t in c[4]]
            # at most `slots` contracts at once; each chip type's training chips are exactly its clusters, and
            # they are owned chips (1% spare, so a luckier failure draw in the replay cannot break a contract)
            # (contracts running at the window's start hold their chips too, without the spare)
            prog.row([(v, 1.0) for c in active for v in c[1].values()], -np.inf, float(tr["slots"]) - running[t])
            for k in range(K):
                held = [(c[1][k], -c[2][k]) for c in active if k in c[1]]
                prog.row([(xt[t, k], 1.0), *held], running_chips[t, k], running_chips[t, k])
                prog.row([(xt[t, k], 1.0), (rout[t, k], 1.0), (fleet[t, k], -0.99)], -np.inf,
                         0.01 * running_chips[t, k])
        # Money. Cash gets a job's value in the last week of its window at the latest (the env pays
        # on completion, possibly earlier), so the plan's cash is never above the replay's.
        prev_cash = [(cash[t - 1], 1.0)] if t else []
        const_cash = 0.0 if t else initial("cash")[0]
        capex = [(o[t, k], prices[t, k] / scale) for k in range(K)]
        inflow = ([(sell[t, k], initial_resale[t, k]) for k in range(K)]
                  + [(s[t, c], price[c] * WEEK_S / scale) for c in range(C)]
                  + [(z, value) for _, span, z, value in jobs if span[-1] == t]
                  + [(v, c[3]) for c in contracts if t in c[4] for v in c[1].values()])
        outflow = ([(fleet[t, k], maintenance[k] / scale) for k in range(K)]
                   + [(xt[t, k], power[k] / scale) for k in range(K)]
                   + [(xp[t, c, k], power[k] / scale) for c in range(C) for k in range(K)]
                   + [(xd[t, c, k], power[k] / scale) for c in range(C) for k in range(K)]
                   + [(xu[t, c, k], power[k] / scale) for c in students for k in range(K)]
                   + [(rin[t, k], rents[t, k]) for k in range(K)]
                   + [(rout[t, k], power[k] / scale - rents[t, k] * (1.0 - fee)) for k in range(K)]
                   + ([(blocks[t], block_cost)] if capped else [(build[t], facility)]))
        prog.row([(cash[t], 1.0)] + [(c_, -v) for c_, v in prev_cash + inflow] + capex + outflow,
                 const_cash + running_pay[t], const_cash + running_pay[t])
        # the env scales expansions and orders down to cash plus credit
        prog.row(capex + ([(blocks[t], block_cost)] if capped else []) + [(c_, -v) for c_, v in prev_cash], -np.inf,
                 const_cash + scenario.credit_limit_usd / scale)

    # The end of the horizon settles the books: chips at resale value less book value (each cohort at its own
    # age, a relaxation of the env's mean age), orders still in transit refunded in part.
    prog.constant -= float(np.sum(fleet0 * keep ** T * resale_now * np.exp(-age_decay * (age0 + T - 1))))  # a gain
    landed = np.arange(T)  # chips bought before the window, marked from the week they land
    prog.constant -= float(np.sum(landing[:T] * keep ** (T - landed)[:, None] * resale_now
                                  * np.exp(-age_decay * (last - landed))[:, None]))
    for k in range(K):
        prog.add_cost(book[last, k], 1.0)
        for arrival in range(L - 1, T):
            tau = arrival - (L - 1)
            survive = keep ** (T - arrival)
            prog.add_cost(o[tau, k], -survive * resale_now[k] * np.exp(-age_decay * (last - arrival)))
        for tau in range(max(T - L + 1, 0), T):  # never arrives: refunded in part
            prog.add_cost(o[tau, k], (1.0 - scenario.order_refund_fraction) * prices[tau, k] / scale)
    if capped:  # site blocks not ready by the horizon are cancelled for the refund fraction too
        for tau in range(max(T - E + 1, 0), T):
            prog.add_cost(blocks[tau], (1.0 - scenario.order_refund_fraction) * block_cost)

    x = prog.solve(time_limit)
    # Whole blocks: the cumulative plan rounded up, so the site is never later or smaller than planned.
    whole_blocks = np.diff(np.ceil(np.cumsum(x[blocks]) - 1e-6), prepend=0.0)
    accept = np.full(T, -1)
    for t0, take, _, _, _ in contracts:
        chosen = [k for k, v in take.items() if x[v] > 0.5]
        if chosen:
            accept[t0] = chosen[0]
    return OraclePlan(orders=x[o], sales=x[sell], blocks=whole_blocks, accept=accept, rent_in=x[rin],
                      rent_out=x[rout], train=x[xt],
                      prefill=x[xp], decode=x[xd], updating=x[xu], served=x[s], allocation=allocation,
                      objective=prog.objective,
                      solve_seconds=0.0)


class OraclePolicy(Policy):
    """Replays the perfect-foresight plan of the current episode (solved at its first step).

    Reads the episode's whole exogenous path through ``env.exogenous``: this is the one policy
    allowed to see the future. Acts on the fine variants (explicit role shares).
    """

    name = "oracle"

    def __init__(self, env, time_limit: float = TIME_LIMIT_S):
        super().__init__(env)
        if self.env.variant != "fine":
            raise ValueError(f"the oracle sets explicit role shares; use a ChipAlloc/DatacenterFine-* environment "
                             f"(got variant {self.env.variant!r})")
        self.time_limit = time_limit
        self.plan_: OraclePlan | None = None
        self.solve_seconds: list[float] = []  # wall time of each solve (one an episode)
        self._exo_id = None

    def plan(self) -> Plan:
        env = self.env
        if self.plan_ is None or self._exo_id != id(env.exogenous):
            if int(env.state.week[0]) != 0:
                raise RuntimeError("the oracle plans whole episodes: give it the environment right after reset()")
            self.plan_ = solve_oracle(env, self.time_limit)
            self.solve_seconds.append(self.plan_.solve_seconds)
            self._exo_id = id(env.exogenous)
        return _week_plan(env, self.plan_)


def _week_plan(env: DatacenterEnv, plan: OraclePlan, t: int | None = None, fleet: np.ndarray | None = None) -> Plan:
    """This week's orders (whole units within the HBM allocation) and shares: week ``t`` of the plan (default:
    the env's week, for plans that start the episode). ``fleet`` is this week's fleet after its failures (K,);
    by default the env's own failure draw, which only the oracle may read."""
    scenario, s = env.scenario, env.state
    t = int(s.week[0]) if t is None else t
    unit = scenario.arrays["order_unit"]
    orders = np.round(plan.orders[t] / unit) * unit
    # Whole order units may overshoot a generation's HBM allocation this week; trim that generation's largest
    # order until they fit.
    pools = generation_stacks(env.params)
    for g in range(pools.shape[1]):
        while orders @ pools[:, g] > plan.allocation[t, g] + 1e-6:
            k = int(np.argmax(orders * pools[:, g]))
            orders[k] -= unit[k]
    if fleet is None:  # the failure draws are part of the exogenous path, so this week's fleet is known exactly
        arriving = s.fleet[0] + s.pipeline[0, :, 0]
        p_fail = scenario.failure_rate_per_year / WEEKS_PER_YEAR
        fleet = arriving - failed_chips(arriving, p_fail, env.exogenous.failure_u[0, int(s.week[0])])
    # Whole chips: rent in what the plan uses (rounded up), let out whole chips of those the fleet has.
    rent_in = np.ceil(plan.rent_in[t] - 1e-6)
    rent_out = np.minimum(np.floor(plan.rent_out[t] + 1e-6), fleet)
    serving = fleet - rent_out + rent_in
    train = plan.train[t]
    accept = int(plan.accept[t]) if plan.accept[t] >= 0 else None
    if scenario.training["clusters"]:  # the contracts' clusters are held apart; the shares split the rest
        serving = np.maximum(serving - np.round(train), 0.0)
        train = np.zeros_like(train)
    # RL students: the env splits each training-capable decode chip's time at one share; the plan's update
    # chips join the decode chips, at the share they make of them.
    updating = plan.updating[t].sum()
    update_knob = float(np.clip(updating / max(_update_base(scenario, plan, t), 1e-9), 0.0, MAX_UPDATE_SHARE)
                        / MAX_UPDATE_SHARE) if updating > 1e-9 else 0.0
    shares = whole_replica_shares(scenario, serving, train, plan.prefill[t], plan.decode[t] + plan.updating[t])
    # Sales are whole chips, a fraction of the fleet at the start of the week (as the fine action reads them).
    sold = np.round(plan.sales[t])
    sales = np.where(s.fleet[0] > 0, np.minimum(sold * (1 + 1e-6) / np.maximum(s.fleet[0], 1.0), 1.0), 0.0)
    return Plan(np.where(orders > 0, orders + 1e-6 * unit, 0.0), shares=shares, sales_fraction=sales,
                expansion_blocks=plan.blocks[t], rent_in_chips=rent_in, rent_out_chips=rent_out,
                accept_type=accept, update_knob=update_knob)


def _update_base(scenario, plan: OraclePlan, t: int) -> float:
    """Decode chips of week t that the env's update share applies to: RL student classes' on training-capable
    types, serving or updating."""
    a = scenario.arrays
    updating = a["student_updating"]
    return float(((plan.decode[t] + plan.updating[t]) * updating).sum())


def _allocation(params: Params, exo: Exogenous) -> np.ndarray:
    """(T, G) HBM stacks of each generation our orders may draw each week of the episode (the transition's
    allocation rule)."""
    supply = exo.hbm_supply[0]
    return hbm_market_path(params, supply, exo.other_hbm_demand[0], np.zeros_like(supply))[0]
