"""The datacenter model, written once: its constants, its data layout and its compiled weekly step.

Everything the environments, the heuristics, the LP scheduler and the oracle compute about the
dynamics comes from this module. It holds:

* the model's named constants (time units, caps and floors, the compact action's encoding);
* the one declaration of every table the kernels read: the scenario's parameters (per chip, per
  class and chip, per class, per HBM generation, scalars), the state of a datacenter, the info it
  reports, and the columns of its exogenous path. Row offsets and index names are generated from these
  declarations; no index is numbered by hand;
* the Numba kernels: action decoding, the transition and the observation for one datacenter,
  the batch loops over B datacenters, and batched helpers that policies call from Python.

Each datacenter is one flat float64 row (see ``STATE_FIELDS``), so a kernel costs microseconds.
:mod:`envs.functional` wraps the kernels in a gymnax-style API; ``NUMBA_DISABLE_JIT=1`` runs them
as plain Python for stepping through with a debugger. Numba's on-disk cache tracks only the
source file of a kernel, which is why everything a kernel reads is defined in this file.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

# --- Units and model constants --------------------------------------------------------------------
WEEK_S = 7 * 24 * 3600.0  # seconds in a week: demand is in tokens/s, one step is a week
WEEKS_PER_YEAR = 52.0  # yearly rates (depreciation, failures, interest, price declines) per weekly step
J_PER_KWH = 3.6e6  # joules in a kilowatt-hour, for energy bills
TOKENS_PER_MTOK = 1e6  # prices are quoted per million tokens
BACKLOG_WEEKS = 4.0  # carried-over demand is capped at this many weeks of current demand (ASSUMPTION)
SELL_MAX_SHARE = 0.25  # the compact action sells at most this share of a chip type's fleet a week (ASSUMPTION:
#   the secondary market absorbs a quarter of a fleet a week at the resale price)
HBM_PRICE_FLOOR = 0.5  # the HBM price index never falls below half its starting level (ASSUMPTION)
MAX_TRAINING_SHARE = 0.9  # the training pace knob gives at most this share of each chip type to training
AFFINITY_SHARPNESS = 4.0  # how strongly "specialise" concentrates each role on its best chips
MAX_UTILISATION_IN_QUEUE = 0.99  # the TTFT queueing model's load cap (an M/D/1 queue diverges at 1)
W_PER_KW = 1000.0
HOURS_PER_WEEK = 168.0  # rental prices are quoted per chip-hour
MAX_SITE_MULTIPLE = 3.0  # the compact expansion entry's largest site target, in multiples of the committed IT load
MAX_RENT_COVERAGE = 1.5  # the compact rent-in entry's largest target, in multiples of current demand covered
SCHEDULING_SITE_ENTRY = 0.5  # Scheduling-v0's fixed plan keeps the site at 1.5x the committed IT load
# RL student classes: the rl_updates knob (or fine entry) u in [0, 1] gives u x MAX_UPDATE_SHARE of the class's
# training-capable decode chips' time to RL updates; the neutral u = 0.5 gives NEUTRAL_UPDATE_SHARE (ASSUMPTION:
# the 30% of a student's chip time that the first wave charged as a constant).
MAX_UPDATE_SHARE = 0.6
NEUTRAL_UPDATE_SHARE = 0.5 * MAX_UPDATE_SHARE
# Actions arrive as float32, so a share such as 0.7 of 10 chips decodes to 6.9999999; whole numbers are
# taken after forgiving this relative slack, a few float32 rounding steps.
WHOLE_SLACK = 1e-6

# --- The action encoding -------------------------------------------------------------------------
N_KNOBS = 5
KNOBS = namedtuple("Knobs", ["training_pace", "prefill_bias", "specialisation", "latency_priority",
                             "rl_updates"])(*range(N_KNOBS))
VARIANTS = ("datacenter", "procurement", "scheduling", "fine")
VARIANT = namedtuple("Variant", VARIANTS)(*range(len(VARIANTS)))
LEVELS = 5  # discrete variants: each entry takes 5 levels, 0, 1/4, 1/2, 3/4, 1 of its range
MAX_COVERAGE = 3.0  # the largest capacity target of the compact action, in multiples of current demand
# Chip weights are exponential in the action, so one chip can take nearly all of an order without the
# other entries sitting exactly at -1: weight(u) = exp(SHARPNESS (u - 1)) - exp(-SHARPNESS), 0 at u = 0.
WEIGHT_SHARPNESS = 6.0
# Procurement-v0's fixed schedule: training at 1.2x the pace jobs need, balanced prefill/decode,
# half-specialised placement, neutral latency priority, the neutral RL update share.
PROCUREMENT_KNOBS = np.array([0.6, 0.5, 0.5, 0.5, 0.5])
# Scheduling-v0's fixed purchase plan: every quarter, buy the newest NVIDIA HBM GPU on sale, as many
# chips as this share of the fleet (within the weekly maximum); the agent only schedules.
SCHEDULING_PLAN_EVERY_WEEKS = 13
SCHEDULING_PLAN_GROWTH = 0.25
OBS_CLIP = 10.0  # every observation entry is clipped to [-OBS_CLIP, OBS_CLIP]


# --- Declarations -------------------------------------------------------------------------------
def _index(name: str, names: tuple[str, ...]) -> Any:
    """A namedtuple instance mapping each name to its position; Numba reads its fields as constants."""
    return namedtuple(name, names)(*range(len(names)))


# Parameter tables, one row per name: per chip (P, K), per class and chip (P, C, K), per class (P, C).
# Each name is a key of ``Scenario.arrays``.
CHIP_FIELDS = ("available_week", "list_price", "system_capex_multiple", "system_power_w", "hbm_stacks", "order_unit",
               "sram_cap", "train_flops_per_chip_s", "nvidia_hbm", "purchasable", "rent_per_price",
               "hbm_generation")  # hbm_generation: HBM pool index, -1: no HBM
# decode_rate: a replica's full decode rate per chip; a student's training-capable chips serve (1 - share) of it.
CLASS_CHIP_FIELDS = ("fits", "replica_chips", "prefill_rate", "decode_rate", "prefill_latency_s", "tpot_s",
                     "kv_bytes_per_request", "chip_s_per_prompt_token", "chip_s_per_output_token")
CLASS_FIELDS = ("input_tokens", "output_tokens", "tpot_slo_s", "ttft_slo_s", "input_price_per_token",
                "output_price_per_token", "price_decline_per_year", "peak_to_mean", "demand0", "carry_over",
                "latency_class", "median_prefill_rate", "median_decode_rate", "update_flops_per_token",
                "quality_floor", "quality_decay")
# Per HBM generation (P, G): the supply the observation divides by (the world's starting output x the
# generation's largest share of it in the episode).
GENERATION_FIELDS = ("hbm_supply_scale",)


def fleet_scale(scenario: Any) -> float:
    """The chip count that observations of fleet and orders are divided by."""
    return 4.0 * max(float(scenario.arrays["initial_fleet"].sum()), float(scenario.max_order_chips_per_week))


# Scalars: name -> how to read it from a validated Scenario.
SCALAR_SOURCES = {
    "weeks": lambda s: s.weeks,
    "credit_limit_usd": lambda s: s.credit_limit_usd,
    "our_allocation_share": lambda s: s.hbm["our_allocation_share"],
    "supply_stacks_per_week": lambda s: s.hbm["supply_stacks_per_week"],
    "base_lead_weeks": lambda s: s.base_lead_weeks,
    "depreciation_years": lambda s: s.depreciation_years,
    "failure_rate_per_year": lambda s: s.failure_rate_per_year,
    "price_elasticity": lambda s: s.hbm["price_elasticity"],
    "price_smoothing": lambda s: s.hbm["price_smoothing"],
    "hbm_cost_share": lambda s: s.hbm["hbm_cost_share"],
    "price_decline_per_year": lambda s: s.price_decline_per_year,
    "pue": lambda s: s.pue,
    "energy_usd_per_kwh": lambda s: s.energy_usd_per_kwh,
    "maintenance_per_year": lambda s: s.maintenance_per_year,
    "cost_of_capital_per_year": lambda s: s.cost_of_capital_per_year,
    "facility_capex_usd_per_kw": lambda s: s.facility_capex_usd_per_kw,
    "facility_life_years": lambda s: s.facility_life_years,
    "order_refund_fraction": lambda s: s.order_refund_fraction,
    "resale_age_decay_per_year": lambda s: s.resale_age_decay_per_year,
    "reward_scale_usd": lambda s: s.reward_scale_usd,
    "kv_link_bytes_per_s": lambda s: float(s.arrays["kv_link_bytes_per_s"]),
    "value_per_job_usd": lambda s: s.training["value_per_job_usd"],
    "flops_per_job": lambda s: s.training["flops_per_job"],
    "deadline_weeks": lambda s: s.training["deadline_weeks"],
    "slots": lambda s: s.training["slots"],
    "max_order_chips_per_week": lambda s: s.max_order_chips_per_week,
    "max_hbm_stacks": lambda s: float(s.arrays["hbm_stacks"].max()),
    "power_capped": lambda s: float(s.site["power_cap"]),
    "site_block_kw": lambda s: s.site["expansion_block_mw"] * W_PER_KW / s.pue,
    "site_max_blocks_per_week": lambda s: s.site["max_blocks_per_week"],
    "site_lead_weeks": lambda s: s.site["expansion_lead_weeks"],
    "max_rent_chips_per_week": lambda s: s.rental["max_chips_per_week"] if s.rental["enabled"] else 0.0,
    "rent_out_fee": lambda s: s.rental["rent_out_fee"],
    "selling": lambda s: float(s.selling),
    "disaggregation": lambda s: float(s.disaggregation),
    "training_clusters": lambda s: float(s.training["clusters"]),
    "h100_train_flops": lambda s: s.training["h100_train_flops_per_s"],
    "fleet_scale": fleet_scale,
}

# One row per datacenter: (name, shape in terms of K chips, C classes, J job slots, L transit weeks, G HBM
# generations, kind).
# The kind says how Python views the field: float ("f"), int ("i") or bool ("b").
STATE_FIELDS = (
    ("week", "", "i"),  # weeks elapsed
    ("cash", "", "f"),
    ("fleet", "K", "f"),  # working chips
    ("age_weeks", "K", "f"),  # mean age of the working chips
    ("queue", "K", "f"),  # ordered chips waiting for HBM stacks or SRAM wafer capacity
    ("queue_value", "K", "f"),  # $ paid for them
    ("pipeline", "KL", "f"),  # chips in transit; slot 0 arrives at the end of this week
    ("pipeline_value", "KL", "f"),
    ("book_value", "K", "f"),
    ("depreciation_rate", "K", "f"),  # $ per week
    ("hbm_price", "G", "f"),  # HBM contract price index of each generation, 1 = start of episode
    ("site_kw", "", "f"),  # facility capacity built, kW of IT load
    ("site_book_value", "", "f"),
    ("site_depreciation_rate", "", "f"),  # $ per week
    ("site_pipeline", "E", "f"),  # kW of IT load under construction; slot 0 is ready at the end of this week
    ("backlog", "C", "f"),  # carried-over demand, tokens/s averaged over a week
    ("job_flops", "J", "f"),  # remaining FLOPs of each training job (0 = empty slot)
    ("job_weeks_left", "J", "f"),
    ("job_value", "J", "f"),  # pay on completion (FLOP jobs) or each week (cluster contracts)
    ("job_chips", "J", "f"),  # chips a cluster contract reserves (0 = empty slot; cluster mode only)
    ("job_type", "J", "f"),  # their chip type
    ("last_served_fraction", "C", "f"),
    ("last_admissible_load", "C", "f"),
    ("last_utilisation", "K", "f"),
    ("quality", "C", "f"),  # RL student classes: model quality in [0, 1] (1 for other classes)
    ("bankrupt", "", "b"),
)

# One info row per datacenter, scalars first (the single env reads them in one call).
INFO_FIELDS = (
    ("revenue", "", "f"), ("revenue_training", "", "f"), ("capex", "", "f"), ("facility_capex", "", "f"),
    ("opex", "", "f"), ("power_cost", "", "f"), ("maintenance", "", "f"), ("depreciation", "", "f"),
    ("write_off", "", "f"), ("sale_proceeds", "", "f"), ("sale_gain", "", "f"), ("capital_charge", "", "f"),
    ("capital_employed", "", "f"), ("facility_cost", "", "f"), ("terminal_settlement", "", "f"),
    ("accounting_profit", "", "f"),
    ("profit", "", "f"), ("cash", "", "f"), ("net_worth", "", "f"), ("hbm_price_mean", "", "f"),
    ("hbm_exposure", "", "f"),
    ("usd_per_mtok", "", "f"), ("training_flops_done", "", "f"), ("training_jobs_completed", "", "i"),
    ("training_jobs_missed", "", "i"), ("training_jobs_accepted", "", "b"), ("training_jobs_rejected", "", "b"),
    ("bankrupt", "", "b"), ("reward", "", "f"), ("site_kw", "", "f"), ("site_building_kw", "", "f"),
    ("site_committed_kw", "", "f"), ("site_blocks_ordered", "", "i"), ("rent_cost", "", "f"),
    ("rent_income", "", "f"), ("update_share", "", "f"), ("update_flops", "", "f"),
    ("hbm_supply", "G", "f"), ("hbm_allocation", "G", "f"), ("hbm_drawn", "G", "f"), ("hbm_price", "G", "f"),
    ("revenue_per_class", "C", "f"), ("demand", "C", "f"), ("served", "C", "f"), ("unmet", "C", "f"),
    ("prefill_capacity", "C", "f"), ("decode_capacity", "C", "f"), ("slo_attainment", "C", "f"),
    ("ttft_s", "C", "f"), ("kv_crossing", "C", "f"), ("quality", "C", "f"), ("utilisation", "K", "f"),
    ("fleet", "K", "f"),
    ("ordered", "K", "f"), ("orders_unavailable", "K", "f"), ("orders_clipped", "K", "f"), ("arrived", "K", "f"),
    ("failed", "K", "f"), ("sold", "K", "f"), ("in_queue", "K", "f"), ("in_transit", "K", "f"),
    ("train_chips", "K", "f"), ("resale_price", "K", "f"), ("power_clipped", "K", "f"), ("rented_in", "K", "f"),
    ("rented_out", "K", "f"), ("rent_price", "K", "f"), ("reserved_chips", "K", "f"),
    ("prefill_chips", "CK", "f"), ("decode_chips", "CK", "f"),
)

# The exogenous path of one datacenter, one row per week (the fields of envs.exogenous.Exogenous).
EXO_FIELDS = (
    ("demand", "C", "f"),  # tokens/s per class
    ("hbm_supply", "G", "f"),  # stacks/week of each generation reaching the market
    ("other_hbm_demand", "G", "f"),  # stacks/week of each generation everyone else wants
    ("hbm_shock", "G", "f"),  # 1 while a supply shock hits the generation
    ("job_arrival", "", "f"),  # 1 if a training job arrives
    ("job_flops", "", "f"),
    ("failure_u", "K", "f"),  # uniforms for the stochastic rounding of failures
)

CHIP = _index("ChipParams", CHIP_FIELDS)
CLASS_CHIP = _index("ClassChipParams", CLASS_CHIP_FIELDS)
CLASS = _index("ClassParams", CLASS_FIELDS)
GENERATION = _index("GenerationParams", GENERATION_FIELDS)
SCALAR = _index("ScalarParams", tuple(SCALAR_SOURCES))
STATE = _index("StateFields", tuple(f[0] for f in STATE_FIELDS))
INFO = _index("InfoFields", tuple(f[0] for f in INFO_FIELDS))
EXO = _index("ExoFields", tuple(f[0] for f in EXO_FIELDS))
N_INFO_SCALARS = sum(1 for f in INFO_FIELDS if f[1] == "")


class Tables(NamedTuple):
    """A scenario's parameters as the kernels read them (float64; rows named by the declarations above).

    The first N_PRIMARY_TABLES fields are the model's inputs; the rest are worked out from them once per scenario
    by :func:`with_derived` (each holds what a step would otherwise recompute from the same figures every week, with
    the same float operations, so reading it changes no result). After replacing a primary field, call
    :func:`with_derived` again.
    """

    chip: np.ndarray  # (len(CHIP_FIELDS), K)
    class_chip: np.ndarray  # (len(CLASS_CHIP_FIELDS), C, K)
    cls: np.ndarray  # (len(CLASS_FIELDS), C)
    scalar: np.ndarray  # (len(SCALAR_SOURCES),)
    efficiency: np.ndarray  # (2, K, Y): prefill and decode rate multipliers of each chip in each year of the episode
    generation: np.ndarray  # (len(GENERATION_FIELDS), G)
    list_price_path: np.ndarray  # (weeks + 1, K): each chip's list price after its time on the market, by whole week
    class_price_path: np.ndarray  # (weeks + 1, C): each class's token price multiple (its yearly decline), by week
    decode_meets_slo: np.ndarray  # (Y, C, K): 1 where chip k's decode TPOT in episode year y meets class c's SLO
    prompt_per_output: np.ndarray  # (C,): input tokens per output token of each class


N_PRIMARY_TABLES = 6  # Tables' fields that are model inputs; the others are derived from them


class Offsets(NamedTuple):
    """Where each declared field starts in its row (one extra entry: the row length), and the sizes."""

    state: np.ndarray
    info: np.ndarray
    exo: np.ndarray
    dims: np.ndarray  # K, C, J, L, E, G


def scenario_dims(scenario: Any) -> dict[str, int]:
    """The sizes the declarations are written in: K chips, C classes, J job slots, L transit weeks, E weeks
    to build a site expansion, G HBM generations (one pool each; 1 with ``hbm.pooled_generations``)."""
    return {"K": scenario.n_chips, "C": scenario.n_classes, "J": int(scenario.training["slots"]),
            "L": max(int(scenario.base_lead_weeks), 1), "E": max(int(scenario.site["expansion_lead_weeks"]), 1),
            "G": scenario.n_hbm_generations}


def layout(fields: tuple, dims: dict[str, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Offsets (n_fields + 1,) of ``fields`` in a row, and each field's shape, for sizes ``dims``."""
    shapes = [tuple(dims[d] for d in f[1]) for f in fields]
    offsets = np.zeros(len(fields) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([math.prod(s) for s in shapes])
    return offsets, shapes


def scenario_tables(scenario: Any) -> Tables:
    a = scenario.arrays
    primary = (np.stack([a[k] for k in CHIP_FIELDS]).astype(np.float64),
               np.stack([a[k] for k in CLASS_CHIP_FIELDS]).astype(np.float64),
               np.stack([a[k] for k in CLASS_FIELDS]).astype(np.float64),
               np.array([float(read(scenario)) for read in SCALAR_SOURCES.values()], dtype=np.float64),
               np.ascontiguousarray(a["efficiency_by_year"], dtype=np.float64),
               np.stack([a[k] for k in GENERATION_FIELDS]).astype(np.float64))
    return with_derived(primary)


def with_derived(tables: Tables | tuple[np.ndarray, ...]) -> Tables:
    """``tables``' primary fields (the first N_PRIMARY_TABLES) with the derived ones worked out from them."""
    chip, class_chip, cls, scalar, efficiency, generation = tuple(tables)[:N_PRIMARY_TABLES]
    return Tables(chip, class_chip, cls, scalar, efficiency, generation,
                  *_derived_tables(chip, class_chip, cls, scalar, efficiency))


@njit(cache=True)
def _derived_tables(pk, pck, pc, ps, eff):
    """(list_price_path, class_price_path, decode_meets_slo, prompt_per_output) of :class:`Tables`: compiled, so that
    each entry is the float the kernels' own formula gives (the same ``pow`` and division)."""
    weeks, K, C, Y = int(ps[SCALAR.weeks]), pk.shape[1], pc.shape[1], eff.shape[2]
    list_price, class_price = np.empty((weeks + 1, K)), np.empty((weeks + 1, C))
    for w in range(weeks + 1):
        for k in range(K):
            list_price[w, k] = _list_price_formula(float(w), pk, ps, k)
        for c in range(C):
            class_price[w, c] = _class_price_formula(float(w), pc, c)
    meets = np.zeros((Y, C, K))
    for y in range(Y):
        for c in range(C):
            for k in range(K):
                if pck[CLASS_CHIP.tpot_s, c, k] / eff[1, k, y] <= pc[CLASS.tpot_slo_s, c]:
                    meets[y, c, k] = 1.0
    prompt_per_output = np.empty(C)
    for c in range(C):
        prompt_per_output[c] = pc[CLASS.input_tokens, c] / pc[CLASS.output_tokens, c]
    return list_price, class_price, meets, prompt_per_output


# --- Zero-cost arrays for the kernels ---------------------------------------------------------------
# A compiled call pays for each array it is handed or makes: atomic reference counts on every pass, and a malloc and
# a free for each new one. The batch loops hand the kernels borrowed arrays, and the kernels keep their temporaries in
# their stack frames, so that a datacenter's step makes no heap allocation and counts no references.
@intrinsic
def _borrowed(typingctx, array):
    """``array`` without a reference count of its own (a null meminfo): Numba then skips the atomic reference
    counting on it and on every view taken of it. Only for arrays that the caller holds alive until the kernel
    returns, and never to be returned or stored."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return array(array), codegen


def _frame_array(zeroed: bool):
    """An intrinsic that returns a float64 C-order array of ``shape`` (an int or a tuple of ints) whose data live in
    the stack frame of the compiled function that calls it: no heap allocation and no reference count (a null
    meminfo), where ``np.empty`` costs a malloc, a free and atomic counts on every pass. The array lives until that
    function returns, so it must never be returned, stored or made inside a loop (each call grows the frame)."""

    def typer(typingctx, shape):
        dims = (shape,) if isinstance(shape, types.Integer) else tuple(shape) if isinstance(shape, types.BaseTuple) \
            else ()
        if not dims or not all(isinstance(d, types.Integer) for d in dims):
            return None
        array_type = types.Array(types.float64, len(dims), "C")

        def codegen(context, builder, signature, args):
            intp = context.get_value_type(types.intp)
            values = [args[0]] if len(dims) == 1 else cgutils.unpack_tuple(builder, args[0], len(dims))
            sizes = [context.cast(builder, v, d, types.intp) for v, d in zip(values, dims)]
            count = intp(1)
            for size in sizes:
                count = builder.mul(count, size)
            itemsize = intp(8)
            data = builder.alloca(context.get_data_type(types.float64), size=count)
            if zeroed:
                cgutils.memset(builder, data, builder.mul(count, itemsize), 0)
            strides, stride = [], itemsize
            for size in reversed(sizes):
                strides.insert(0, stride)
                stride = builder.mul(stride, size)
            array = context.make_array(array_type)(context, builder)
            populate_array(array, data=data, shape=sizes, strides=strides, itemsize=itemsize, meminfo=None)
            return array._getvalue()

        return array_type(shape), codegen

    return intrinsic(typer)


_frame_empty = _frame_array(zeroed=False)  # np.empty(shape), in the caller's stack frame
_frame_zeros = _frame_array(zeroed=True)  # np.zeros(shape), in the caller's stack frame


@njit(cache=True)
def _borrowed_offsets(o):
    """``o`` with every offset array :func:`_borrowed`."""
    return Offsets(_borrowed(o.state), _borrowed(o.info), _borrowed(o.exo), _borrowed(o.dims))


@njit(cache=True)
def _borrowed_tables(p):
    """``p`` with every table :func:`_borrowed`."""
    return Tables(_borrowed(p.chip), _borrowed(p.class_chip), _borrowed(p.cls), _borrowed(p.scalar),
                  _borrowed(p.efficiency), _borrowed(p.generation), _borrowed(p.list_price_path),
                  _borrowed(p.class_price_path), _borrowed(p.decode_meets_slo), _borrowed(p.prompt_per_output))


def scenario_offsets(scenario: Any) -> Offsets:
    dims = scenario_dims(scenario)
    return Offsets(layout(STATE_FIELDS, dims)[0], layout(INFO_FIELDS, dims)[0], layout(EXO_FIELDS, dims)[0],
                   np.array([dims[d] for d in "KCJLEG"], dtype=np.int64))


# --- Kernels for one datacenter ----------------------------------------------------------------
# Small helpers that take arrays and are called inside (chip, class) loops are inlined into their callers
# (inline="always"): a compiled call with array arguments costs two atomic reference counts per array, which
# Numba drops once the body is inlined. Inlining leaves every float operation, and its order, as written.
@njit(cache=True, inline="always")
def _quality_demand(row, so, x, xo, pc, c):
    """Class c's demand this week: the exogenous demand, scaled for an RL student class by its quality q as
    floor + (1 - floor) x q (a better student wins more of the work it is built for)."""
    floor = pc[CLASS.quality_floor, c]
    return x[xo[EXO.demand] + c] * (floor + (1.0 - floor) * row[so[STATE.quality] + c])


@njit(cache=True)
def _demand_with_backlog(row, so, x, xo, pc, out):
    """``out`` (C,), filled with this week's demand (the exogenous row ``x``, scaled by quality) plus the
    carried-over backlog.

    This helper and the others that take ``out`` write into an array the caller owns, so that the step can hand
    them arrays in its own stack frame (:func:`_frame_empty`) and the batch helpers their rows of output."""
    for c in range(out.shape[0]):
        out[c] = _quality_demand(row, so, x, xo, pc, c) + row[so[STATE.backlog] + c]
    return out


@njit(cache=True)
def _update_cuts(share, pk, pc, out):
    """``out`` (C, K), filled with the share of each class's decode chips of each type spent on RL updates:
    ``share`` for an RL student class on a training-capable chip, else 0 (an inference-only chip serves a student at
    its full rate, and cannot update it). Worked out once, before the (class, chip) loops that read it."""
    C, K = pc.shape[1], pk.shape[1]
    for c in range(C):
        for k in range(K):
            out[c, k] = share if pc[CLASS.update_flops_per_token, c] > 0 and pk[CHIP.train_flops_per_chip_s, k] > 0 \
                else 0.0
    return out


@njit(cache=True)
def _year(week, eff):
    """The episode year of ``week``: the column of the efficiency tables ``eff`` (2, K, Y) in force then."""
    return min(max(int(week // WEEKS_PER_YEAR), 0), eff.shape[2] - 1)


@njit(cache=True)
def _efficiency(week, eff):
    """(prefill (K,), decode (K,)) rate multipliers of each chip in the episode year of ``week``: vendors'
    serving software matures, so the same chip serves more over time (tables ``eff`` (2, K, Y))."""
    y = _year(week, eff)
    return eff[0, :, y], eff[1, :, y]


@njit(cache=True)
def _work_for_demand(dem, pck, prompt_per_output, eff_p, eff_d, prefill_work, decode_work):
    """``prefill_work`` (K,) and ``decode_work`` (K,), filled with the chips of each type that serve the prefill and
    the decode of ``dem`` (C,) alone at this year's efficiency; inf where a demanded class does not fit the chip."""
    for k in range(pck.shape[2]):
        prefill_work[k], decode_work[k] = _work_of_chip(dem, pck, prompt_per_output, eff_p, eff_d, k)


@njit(cache=True, inline="always")
def _work_of_chip(dem, pck, prompt_per_output, eff_p, eff_d, k):
    """(prefill, decode) chips of type k for ``dem`` (C,) (see :func:`_work_for_demand`)."""
    misfit, prefill, decode = 0.0, 0.0, 0.0
    for c in range(pck.shape[1]):
        if dem[c] > 0:
            misfit += 1.0 - pck[CLASS_CHIP.fits, c, k]
        prefill += dem[c] * prompt_per_output[c] * pck[CLASS_CHIP.chip_s_per_prompt_token, c, k]
        decode += dem[c] * pck[CLASS_CHIP.chip_s_per_output_token, c, k]
    if misfit > 0:
        return np.inf, np.inf
    return prefill / eff_p[k], decode / eff_d[k]


@njit(cache=True)
def _chips_for_demand(dem, pck, prompt_per_output, eff_p, eff_d, out):
    """``out`` (K,), filled with W_k(D): chips of type k that serve demand ``dem`` (C,) colocated; inf if a
    demanded class does not fit.

    A fleet of N_k chips covers sum_k N_k / W_k(D) of D (:func:`_coverage`).
    """
    for k in range(out.shape[0]):
        prefill, decode = _work_of_chip(dem, pck, prompt_per_output, eff_p, eff_d, k)
        out[k] = prefill + decode
    return out


@njit(cache=True)
def _coverage(chips, dem, work):
    """Share of demand ``dem`` that ``chips`` (K,) serve; inf when there is no demand."""
    cover, total = 0.0, 0.0
    for k in range(chips.shape[0]):
        if math.isfinite(work[k]) and work[k] > 0:
            cover += chips[k] / work[k]
    for c in range(dem.shape[0]):
        total += dem[c]
    return cover if total > 0 else np.inf


@njit(cache=True, inline="always")
def _available(week, pk, k):
    return week >= pk[CHIP.available_week, k]


@njit(cache=True, inline="always")
def _path_row(week, path):
    """The row of a by-week path table (:class:`Tables`) that holds ``week``, or -1 if it is not a whole week there."""
    w = int(week) if 0.0 <= week < path.shape[0] else -1
    return w if w == week else -1


@njit(cache=True, inline="always")
def _list_price_formula(week, pk, ps, k):
    """Chip k's list price at ``week``, falling at the yearly price decline from the week it came on the market."""
    years = max(week - pk[CHIP.available_week, k], 0.0) / WEEKS_PER_YEAR
    return pk[CHIP.list_price, k] * (1.0 - ps[SCALAR.price_decline_per_year]) ** years


@njit(cache=True, inline="always")
def _class_price_formula(week, pc, c):
    """Class c's token prices at ``week`` as a multiple of their starting level (their yearly decline)."""
    return (1.0 - pc[CLASS.price_decline_per_year, c]) ** (week / WEEKS_PER_YEAR)


@njit(cache=True, inline="always")
def _class_price_multiple(week, p, c):
    """:func:`_class_price_formula`, read from the path table at whole weeks of the episode (a ``pow`` saved)."""
    w = _path_row(week, p.class_price_path)
    return p.class_price_path[w, c] if w >= 0 else _class_price_formula(week, p.cls, c)


@njit(cache=True, inline="always")
def _chip_price(week, hbm_price, pk, ps, list_price_path, k):
    """Deployed price of one chip k: its chip price (the list price falling with time on the market, the HBM
    share moving with its HBM generation's price index, of ``hbm_price`` (G,)) times the system multiple of
    its form factor (server, network, storage). The list price is read from its path table (Tables.list_price_path)
    at whole weeks of the episode (a ``pow`` saved) and worked out at any other week."""
    w = _path_row(week, list_price_path)
    price = list_price_path[w, k] if w >= 0 else _list_price_formula(week, pk, ps, k)
    g = int(pk[CHIP.hbm_generation, k])
    index = hbm_price[g] if g >= 0 else 1.0
    return price * (1.0 + ps[SCALAR.hbm_cost_share] * (index - 1.0)) * pk[CHIP.system_capex_multiple, k]


@njit(cache=True, inline="always")
def _wear(age_weeks, ps):
    """Share of a new chip's price that a used one of mean age ``age_weeks`` fetches (the used-GPU index's
    decline net of the new-price decline; see the scenario's provenance)."""
    return math.exp(-ps[SCALAR.resale_age_decay_per_year] * age_weeks / WEEKS_PER_YEAR)


@njit(cache=True)
def _resale_price(week, hbm_price, age_weeks, pk, ps, list_price_path, k):
    """What a used chip k of mean age ``age_weeks`` fetches: today's deployed price of a new one, less wear."""
    return _chip_price(week, hbm_price, pk, ps, list_price_path, k) * _wear(age_weeks, ps)


@njit(cache=True, inline="always")
def _hbm_allocation(supply, other, ps):
    """HBM stacks of one generation our orders may draw this week: our share of its supply, shrunk when its
    market is short."""
    fill = min(supply / max(other, 1.0), 1.0)
    return ps[SCALAR.our_allocation_share] * supply * fill


@njit(cache=True, inline="always")
def _next_hbm_price(hbm_price, supply, other, stacks_needed, ps):
    """One generation's HBM price index a week later: it moves toward its excess-demand target (with a floor).
    A generation with neither supply nor demand (not yet made, or no longer) has no market: its index holds."""
    if supply <= 0.0 and other + stacks_needed <= 0.0:
        return hbm_price
    excess = (other + stacks_needed) / max(supply, 1.0) - 1.0
    target = max(1.0 + ps[SCALAR.price_elasticity] * excess, HBM_PRICE_FLOOR)
    return hbm_price + ps[SCALAR.price_smoothing] * (target - hbm_price)


@njit(cache=True)
def _whole(x):
    """Whole units in ``x`` >= 0, forgiving float32 rounding of the action (WHOLE_SLACK)."""
    return math.floor(x * (1.0 + WHOLE_SLACK))


@njit(cache=True)
def _failed_chips(fleet, p_fail, u):
    """Chips failing this week: ``fleet`` x the weekly rate, rounded stochastically with the pre-drawn uniform."""
    return min(math.floor(fleet * p_fail + u), fleet)


@njit(cache=True)
def _max_prefill_load(service_s, budget_s):
    """Largest prefill load rho whose M/D/1 mean TTFT, service x (1 + rho / (2 (1 - rho))), stays within
    ``budget_s``; 0 when even an idle replica misses it."""
    if service_s <= 0:
        return MAX_UTILISATION_IN_QUEUE if budget_s >= 0 else 0.0
    q = budget_s / service_s
    if q <= 1.0:
        return 0.0
    return min(2.0 * (q - 1.0) / (2.0 * q - 1.0), MAX_UTILISATION_IN_QUEUE)


@njit(cache=True)
def _served_with_peaks(capacity, demand, peak):
    """Mean tokens/s served over a week whose load peaks at ``peak`` x its mean ``demand``, with ``capacity``.

    Load above capacity at any moment is shed (admission control), not served late. The load's profile
    over the week is peak x u^(peak - 1) for u uniform on [0, 1] (mean 1, maximum ``peak``), which gives
    a closed form: with x = capacity / demand < peak, served / demand = x (1 - u* (1 - 1 / peak)),
    u* = (x / peak)^(1 / (peak - 1)). It is concave in capacity, so there is no cliff.
    """
    if demand <= 0 or capacity <= 0:
        return 0.0
    x = capacity / demand
    if peak <= 1.0 + 1e-9:
        return min(x, 1.0) * demand
    if x >= peak:
        return demand
    u = (x / peak) ** (1.0 / (peak - 1.0))
    return demand * x * (1.0 - u * (1.0 - 1.0 / peak))


@njit(cache=True, inline="always")
def _in_transit(row, so, L, k):
    total = 0.0
    for j in range(L):
        total += row[so[STATE.pipeline] + k * L + j]
    return total


@njit(cache=True, inline="always")
def _owned_and_ordered_chip(row, so, k, in_transit):
    """Chips of type k owned, queued for HBM or in transit (``in_transit``: :func:`_in_transit` of k)."""
    return row[so[STATE.fleet] + k] + row[so[STATE.queue] + k] + in_transit


@njit(cache=True)
def _owned_and_ordered(row, so, L, out):
    """``out`` (K,), filled with the chips owned, queued for HBM or in transit."""
    for k in range(out.shape[0]):
        out[k] = _owned_and_ordered_chip(row, so, k, _in_transit(row, so, L, k))
    return out


@njit(cache=True)
def _training_need(row, so, J):
    """FLOP/s that the active training jobs need to finish by their deadlines at an even pace."""
    need = 0.0
    for j in range(J):
        flops = row[so[STATE.job_flops] + j]
        if flops > 0:
            need += flops / (max(row[so[STATE.job_weeks_left] + j], 1.0) * WEEK_S)
    return need


@njit(cache=True)
def _knob_shares(fleet, dem, knobs, need, pk, pck, pc, prompt_per_output, eff_p, eff_d, shares):
    """The built-in allocator: four knobs in [0, 1] -> ``shares`` (1 + 2C, K), filled with each chip type's split.

    Rows of the result: 0 training, 1..C prefill of each class, C+1..2C decode of each class.
    training_pace: training-capable chips get 2 x knob x the FLOP/s that active jobs need (``need``)
        to meet their deadlines at an even pace (0.5 = on pace), spread in proportion over them, at
        most MAX_TRAINING_SHARE of each type.
    prefill_bias: 0.5 gives prefill and decode capacity in proportion to their work.
    specialisation: 0 splits every chip type across all roles alike (colocated); 1 gives each role
        to the chip types with a comparative advantage in it (compute-rich chips prefill,
        bandwidth-rich chips decode: disaggregated serving).
    latency_priority: 0.5 neutral; higher favours latency classes over batch work.
    rl_updates: RL student classes spend knob x MAX_UPDATE_SHARE of their training-capable decode chips' time
        on RL updates (0.5 = NEUTRAL_UPDATE_SHARE); their decode needs are sized at the rate left to serve.
    """
    C, K = pck.shape[1], pck.shape[2]
    cuts = _update_cuts(knobs[KNOBS.rl_updates] * MAX_UPDATE_SHARE, pk, pc, _frame_empty((C, K)))
    fleet_flops = 0.0
    for k in range(K):
        fleet_flops += fleet[k] * pk[CHIP.train_flops_per_chip_s, k]
    pace = 2.0 * knobs[KNOBS.training_pace] * need / max(fleet_flops, 1e-9)
    train = _frame_empty(K)
    for k in range(K):
        train[k] = min(pace, MAX_TRAINING_SHARE) * (1.0 if pk[CHIP.train_flops_per_chip_s, k] > 0 else 0.0)
    # "Chips needed" are counted at the serving fleet's own average rate, so needs of different roles
    # are comparable whatever mix of chips (a wafer-scale CS-3 or an 80 GB GPU) is owned.
    mean_p, mean_d = _frame_empty(C), _frame_empty(C)
    for c in range(C):
        owned, sum_p, sum_d = 0.0, 0.0, 0.0
        for k in range(K):
            weight = fleet[k] * (1.0 - train[k]) * pck[CLASS_CHIP.fits, c, k]
            owned += weight
            sum_p += weight * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k]
            sum_d += weight * pck[CLASS_CHIP.decode_rate, c, k] * (1.0 - cuts[c, k]) * eff_d[k]
        mean_p[c] = sum_p / max(owned, 1e-9) if owned > 0 else pc[CLASS.median_prefill_rate, c]
        mean_d[c] = sum_d / max(owned, 1e-9) if owned > 0 else pc[CLASS.median_decode_rate, c]
    gamma = AFFINITY_SHARPNESS * knobs[KNOBS.specialisation]
    # The neutral specialisation (0.5: the zero action, Procurement-v0's fixed knob) gives exponent 1, and x ** 1.0 is
    # x exactly (pow is exact when its result is representable), so the 2C K pows below are skipped there.
    exponent = 0.5 * gamma
    total_p, total_d = _frame_zeros(K), _frame_zeros(K)
    for c in range(C):
        need_p = dem[c] * prompt_per_output[c] / mean_p[c] * 2.0 * knobs[KNOBS.prefill_bias]
        need_d = dem[c] / mean_d[c] * 2.0 * (1.0 - knobs[KNOBS.prefill_bias])
        lat = pc[CLASS.latency_class, c]
        priority = lat * (0.5 + knobs[KNOBS.latency_priority]) + (1.0 - lat) * (1.5 - knobs[KNOBS.latency_priority])
        for k in range(K):
            fits = pck[CLASS_CHIP.fits, c, k]
            if fits == 0.0:
                shares[1 + c, k] = shares[1 + C + c, k] = 0.0
                continue
            # Comparative advantage: the ratio of the chip's prefill and decode strengths, each relative
            # to the fleet's average chip for that class; advantage ** gamma with advantage = sqrt(rel_p / rel_d).
            rel_p = pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k] / mean_p[c] * fits
            rel_d = pck[CLASS_CHIP.decode_rate, c, k] * (1.0 - cuts[c, k]) * eff_d[k] / mean_d[c] * fits
            tilt = 1.0
            if rel_d > 0 and gamma != 0.0:
                tilt = max(rel_p / max(rel_d, 1e-12), 1e-24)
                if exponent != 1.0:
                    tilt = tilt ** exponent
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
def _oldest_chip(row, so, K):
    """The chip type with the highest mean age among those owned (-1 if none is owned)."""
    oldest, age = -1, -1.0
    for k in range(K):
        if row[so[STATE.fleet] + k] > 0 and row[so[STATE.age_weeks] + k] > age:
            oldest, age = k, row[so[STATE.age_weeks] + k]
    return oldest


@njit(cache=True)
def _committed_kw(owned, pk, K):
    """kW of IT load of the ``owned`` (K,) chips owned, queued and in transit (:func:`_owned_and_ordered`): what the
    site must power once they arrive."""
    kw = 0.0
    for k in range(K):
        kw += owned[k] * pk[CHIP.system_power_w, k] / W_PER_KW
    return kw


@njit(cache=True)
def _site_building_kw(row, so, E):
    total = 0.0
    for j in range(E):
        total += row[so[STATE.site_pipeline] + j]
    return total


@njit(cache=True, inline="always")
def _weekly_rent(week, price, pk, k):
    """$ a week to rent one chip k in the cloud at week ``week``: its quoted rent, moving with the chip's deployed
    ``price`` (which falls with time on the market and rises with HBM scarcity); 0 where it cannot be rented."""
    if pk[CHIP.rent_per_price, k] <= 0 or not _available(week, pk, k):
        return 0.0
    return pk[CHIP.rent_per_price, k] * price


@njit(cache=True)
def _week_prices(row, so, pk, ps, list_price_path, G, prices, rents):
    """``prices`` (K,) and ``rents`` (K,), filled with each chip's deployed price and weekly rent at the row's week
    and HBM price indices, worked out once a step for everything that prices chips that week."""
    week = row[so[STATE.week]]
    hbm_price = row[so[STATE.hbm_price]:so[STATE.hbm_price] + G]
    for k in range(prices.shape[0]):
        prices[k] = _chip_price(week, hbm_price, pk, ps, list_price_path, k)
        rents[k] = _weekly_rent(week, prices[k], pk, k)
    return prices, rents


@njit(cache=True)
def _expansion_blocks(u, row, so, owned, orders, pk, ps, K, E):
    """Site blocks the compact expansion entry ``u`` in [0, 1] orders: enough to lift the site built and under
    construction to u x MAX_SITE_MULTIPLE x the IT load of the chips committed (``owned`` (K,), see
    :func:`_owned_and_ordered`) and wanted (``orders``)."""
    if ps[SCALAR.power_capped] == 0.0 or ps[SCALAR.site_block_kw] <= 0:
        return 0.0
    load = _committed_kw(owned, pk, K)
    for k in range(K):
        load += max(orders[k], 0.0) * pk[CHIP.system_power_w, k] / W_PER_KW
    gap = u * MAX_SITE_MULTIPLE * load - row[so[STATE.site_kw]] - _site_building_kw(row, so, E)
    if gap <= 0:
        return 0.0
    return min(math.ceil(gap / ps[SCALAR.site_block_kw]), ps[SCALAR.site_max_blocks_per_week])


@njit(cache=True)
def _rent_in_chips(u, row, so, rents, dem, work, ps, rent):
    """``rent`` (K,), filled with the chips the compact rent-in entry ``u`` rents for the week: the shortfall
    between u x MAX_RENT_COVERAGE of demand ``dem`` and the coverage of the fleet, from the rentable chip with the
    lowest rent per unit of coverage (the next cheapest past the market's weekly depth), at this week's ``rents``."""
    K = rent.shape[0]
    rent[:] = 0.0
    fleet = row[so[STATE.fleet]:so[STATE.fleet] + K]
    shortfall = u * MAX_RENT_COVERAGE - _coverage(fleet, dem, work)
    if not (shortfall > 0 and math.isfinite(shortfall)):
        return rent
    cost = _frame_empty(K)
    cost[:] = np.inf
    for k in range(K):
        price = rents[k]
        if price > 0 and math.isfinite(work[k]) and work[k] > 0:
            cost[k] = price * work[k]
    # Cheapest first (ties: the lower index), each type once; a scan, since K is small and a sort allocates.
    while shortfall > 0:
        k, lowest = -1, np.inf
        for i in range(K):
            if cost[i] < lowest:
                k, lowest = i, cost[i]
        if k < 0:
            break
        cost[k] = np.inf
        take = min(_whole(shortfall * work[k]), ps[SCALAR.max_rent_chips_per_week])
        rent[k] = take
        shortfall -= take / work[k]
    return rent


@njit(cache=True)
def _rent_out_chips(u, row, so, rents, ps, out):
    """``out`` (K,), filled with the chips the compact rent-out entry ``u`` lets out: u x the idle chips (last
    week's unused share of the fleet) of each type that has a rental market this week (``rents`` (K,) > 0), within
    the market's weekly depth."""
    for k in range(out.shape[0]):
        out[k] = 0.0
        if rents[k] > 0:
            idle = row[so[STATE.fleet] + k] * max(1.0 - row[so[STATE.last_utilisation] + k], 0.0)
            out[k] = min(_whole(u * idle), ps[SCALAR.max_rent_chips_per_week])
    return out


@njit(cache=True)
def _offer_h100s(x, xo, ps):
    """H100s of training throughput the week's contract offer asks for, for ``deadline_weeks`` (0: no offer)."""
    if x[xo[EXO.job_arrival]] <= 0:
        return 0.0
    return x[xo[EXO.job_flops]] / (ps[SCALAR.h100_train_flops] * WEEK_S * ps[SCALAR.deadline_weeks])


@njit(cache=True, inline="always")
def _cluster_chips(h100s, pk, ps, k):
    """Whole chips of training-capable type k that match ``h100s`` H100s of training throughput."""
    return float(math.ceil(h100s * ps[SCALAR.h100_train_flops] / pk[CHIP.train_flops_per_chip_s, k] - WHOLE_SLACK))


@njit(cache=True)
def _reserved_chips(row, so, J, out):
    """``out`` (K,), filled with the chips of each type that accepted cluster contracts hold."""
    out[:] = 0.0
    for j in range(J):
        if row[so[STATE.job_chips] + j] > 0:
            out[int(row[so[STATE.job_type] + j])] += row[so[STATE.job_chips] + j]
    return out


@njit(cache=True)
def _cluster_type(h100s, free, prices, pk, ps, K):
    """The chip type a contract for ``h100s`` H100s reserves by rule: of the training-capable types with enough
    ``free`` chips (K,), the one whose cluster is worth least at this week's ``prices`` (K,); -1 if none fits."""
    best, cost = -1, np.inf
    for k in range(K):
        if pk[CHIP.train_flops_per_chip_s, k] > 0:
            n = _cluster_chips(h100s, pk, ps, k)
            value = n * prices[k]
            if n <= free[k] and value < cost:
                best, cost = k, value
    return best


@njit(cache=True)
def _decode(variant, discrete, act, row, so, dem, owned, rents, p, dims, orders, sales, shares, rent_in, rent_out):
    """(orders (K,), sales (K,), shares (1 + 2C, K), site blocks, rent in (K,), rent out (K,), accept, RL update
    share) from one datacenter's action, the arrays filled in place (``orders`` and the four after it): chips
    wanted, chips to sell, each chip type's split over roles, site expansion blocks to order, chips to rent in from
    and out to the cloud market this week, and what to do with the week's cluster training contract offer (-1
    decline, -2 accept on the chip type the rule picks, k >= 0 accept on chip type k; only read when training runs
    on clusters), and the share of RL student classes' training-capable decode chips' time spent on RL updates
    (u x MAX_UPDATE_SHARE of the rl_updates knob or the fine entry).

    Compact variants (datacenter, procurement): K chip weight entries, a capacity target, a sale entry, an
    expansion entry, a rent-in and a rent-out entry, then (datacenter) four knobs; each entry maps [-1, 1] (or
    a discrete level) to u in [0, 1]. With cluster training contracts the training_pace knob is the
    acceptance: an offer is accepted (on the rule's chip type, :func:`_cluster_type`) when it is >= 0.5.
    The order buys the shortfall between the target (u x MAX_COVERAGE x
    demand) and the coverage of the chips owned and on order, split over the chips on sale by weight, each
    share sized in that chip's own capacity. The sale entry sells max(2u - 1, 0) x SELL_MAX_SHARE of the
    oldest chip type's fleet (its lower half sells nothing). The expansion entry, the rent-in and the
    rent-out entry follow :func:`_expansion_blocks`, :func:`_rent_in_chips` and :func:`_rent_out_chips`.
    Scheduling: a fixed purchase and expansion plan plus the knobs. Fine: K order entries (a > 0 buys a x
    the weekly maximum), K sale entries (a > 0 sells that share of the type's fleet), K rent-in entries (a > 0
    rents a x the market's weekly depth), K rent-out entries (a > 0 lets out that share of the type's fleet),
    one expansion entry (a > 0 orders a x the weekly maximum of blocks), K acceptance entries (the week's
    contract offer is accepted on the chip type of the largest entry, if it is > 0), one RL update entry
    (u x MAX_UPDATE_SHARE, u = (a + 1) / 2, so a = 0 is the neutral share), then (1 + 2C) x K share
    entries, row-major by role; u = (a + 1) / 2 and each chip type's shares are u / max(1, sum of its u).
    """
    pk, pck, pc, ps = p.chip, p.class_chip, p.cls, p.scalar
    K, C, J, E = dims[0], dims[1], dims[2], dims[4]
    R = 1 + 2 * C
    week = row[so[STATE.week]]
    eff_p, eff_d = _efficiency(week, p.efficiency)
    orders[:] = 0.0
    sales[:] = 0.0
    if variant == VARIANT.fine:
        for k in range(K):
            orders[k] = max(act[k], 0.0) * ps[SCALAR.max_order_chips_per_week]
            sales[k] = _whole(max(act[K + k], 0.0) * row[so[STATE.fleet] + k])
            rent_in[k] = _whole(max(act[2 * K + k], 0.0) * ps[SCALAR.max_rent_chips_per_week])
            rent_out[k] = _whole(max(act[3 * K + k], 0.0) * row[so[STATE.fleet] + k])
            total = 0.0
            for r in range(R):
                shares[r, k] = (act[5 * K + 2 + r * K + k] + 1.0) / 2.0
                total += shares[r, k]
            for r in range(R):
                shares[r, k] /= max(1.0, total)
        blocks = _whole(max(act[4 * K], 0.0) * ps[SCALAR.site_max_blocks_per_week]) \
            if ps[SCALAR.power_capped] > 0 else 0.0
        accept, strongest = -1, 0.0
        for k in range(K):
            if act[4 * K + 1 + k] > strongest:
                accept, strongest = k, act[4 * K + 1 + k]
        update_share = (act[5 * K + 1] + 1.0) / 2.0 * MAX_UPDATE_SHARE
        return orders, sales, shares, blocks, rent_in, rent_out, accept, update_share
    u = _frame_empty(act.shape[0])
    for i in range(act.shape[0]):
        u[i] = act[i] / (LEVELS - 1) if discrete else (act[i] + 1.0) / 2.0
    if variant == VARIANT.scheduling:
        newest, newest_week, fleet_total = 0, -np.inf, 0.0
        for k in range(K):
            fleet_total += row[so[STATE.fleet] + k]
            if _available(week, pk, k) and pk[CHIP.purchasable, k] > 0 and pk[CHIP.nvidia_hbm, k] > 0 \
                    and pk[CHIP.available_week, k] > newest_week:
                newest, newest_week = k, pk[CHIP.available_week, k]
        if int(week) % SCHEDULING_PLAN_EVERY_WEEKS == 0 and newest_week > -np.inf:
            orders[newest] = min(SCHEDULING_PLAN_GROWTH * fleet_total, ps[SCALAR.max_order_chips_per_week])
        blocks = _expansion_blocks(SCHEDULING_SITE_ENTRY, row, so, owned, orders, pk, ps, K, E)
        rent_in[:] = 0.0
        rent_out[:] = 0.0
    else:
        work = _chips_for_demand(dem, pck, p.prompt_per_output, eff_p, eff_d, _frame_empty(K))
        weights = _frame_zeros(K)
        total = 0.0
        for k in range(K):
            if _available(week, pk, k) and pk[CHIP.purchasable, k] > 0 and math.isfinite(work[k]) and work[k] > 0:
                weights[k] = math.exp(WEIGHT_SHARPNESS * (u[k] - 1.0)) - math.exp(-WEIGHT_SHARPNESS)
                total += weights[k]
        shortfall = max(u[K] * MAX_COVERAGE - _coverage(owned, dem, work), 0.0)
        if total > 0 and math.isfinite(shortfall):
            for k in range(K):
                if weights[k] != 0.0:
                    orders[k] = shortfall * (weights[k] / total) * work[k]
        oldest = _oldest_chip(row, so, K)
        if oldest >= 0:
            # Only the upper half of the entry's range sells, so a neutral (zero) action keeps the fleet.
            sales[oldest] = _whole(max(2.0 * u[K + 1] - 1.0, 0.0) * SELL_MAX_SHARE * row[so[STATE.fleet] + oldest])
        blocks = _expansion_blocks(u[K + 2], row, so, owned, orders, pk, ps, K, E)
        _rent_in_chips(u[K + 3], row, so, rents, dem, work, ps, rent_in)
        _rent_out_chips(u[K + 4], row, so, rents, ps, rent_out)
    if variant == VARIANT.procurement:
        knobs = _frame_empty(N_KNOBS)
        knobs[:] = PROCUREMENT_KNOBS
    else:
        knobs = u[u.shape[0] - N_KNOBS:]
    fleet = row[so[STATE.fleet]:so[STATE.fleet] + K]
    _knob_shares(fleet, dem, knobs, _training_need(row, so, J), pk, pck, pc, p.prompt_per_output, eff_p, eff_d,
                 shares)
    accept = -2 if knobs[KNOBS.training_pace] >= 0.5 else -1
    return orders, sales, shares, blocks, rent_in, rent_out, accept, knobs[KNOBS.rl_updates] * MAX_UPDATE_SHARE


@njit(cache=True)
def _transition(row, new, info, o, exo, dem, owned, prices, rents, orders, sales, shares, blocks, rent_in, rent_out,
                accept, update_share, p):
    """One week of one datacenter: writes the next state row ``new`` and the info row.

    ``dem`` is this week's demand plus backlog; ``owned`` (K,) the chips owned, queued and in transit
    (:func:`_owned_and_ordered`); ``prices`` and ``rents`` (K,) this week's deployed chip prices
    and weekly rents (:func:`_week_prices`); ``orders`` (K,) are chips wanted, ``sales`` (K,) chips to
    sell, ``shares`` (1 + 2C, K) split each chip type's serving fleet (owned, less rented out, plus rented
    in) into training, prefill and decode of each class, ``blocks`` is the site expansion blocks to order,
    ``rent_in`` / ``rent_out`` (K,) chips rented from and let out to the cloud market this week, and ``accept``
    the answer to the week's cluster contract offer (see :func:`_decode`), ``update_share`` the share of RL student
    classes' training-capable decode chips' time spent on RL updates.
    Infeasible decisions follow these rules, reported in info: chips not on the market (or sold only as
    cloud capacity) are not ordered; with a power cap, orders beyond the site's spare power are scaled
    down; expansions and then orders beyond cash plus credit are scaled down (whole blocks, whole order
    units) until they fit; rent-in beyond the market's weekly depth, or of chips with no rental market,
    and rent-out beyond the fleet are cut.
    """
    pk, pck, pc, ps = p.chip, p.class_chip, p.cls, p.scalar
    so, io, xo = o.state, o.info, o.exo
    K, C, J, L, E = o.dims[0], o.dims[1], o.dims[2], o.dims[3], o.dims[4]
    G = o.dims[5]
    T = exo.shape[0]
    week = row[so[STATE.week]]
    t = min(int(week), T - 1)
    x = exo[t]
    eff_p, eff_d = _efficiency(week, p.efficiency)
    slo_ok = p.decode_meets_slo[_year(week, p.efficiency)]  # (C, K) decode replicas fast enough for the TPOT SLO
    for i in range(row.shape[0]):  # (an explicit loop: ``new[:] = row`` compiles to a slower broadcasting copy)
        new[i] = row[i]
    fleet, age = new[so[STATE.fleet]:so[STATE.fleet] + K], new[so[STATE.age_weeks]:so[STATE.age_weeks] + K]
    queue, queue_value = new[so[STATE.queue]:so[STATE.queue] + K], new[so[STATE.queue_value]:so[STATE.queue_value] + K]
    pipeline = new[so[STATE.pipeline]:so[STATE.pipeline] + K * L].reshape((K, L))
    pipeline_value = new[so[STATE.pipeline_value]:so[STATE.pipeline_value] + K * L].reshape((K, L))
    book = new[so[STATE.book_value]:so[STATE.book_value] + K]
    dep = new[so[STATE.depreciation_rate]:so[STATE.depreciation_rate] + K]
    cash, hbm_price = row[so[STATE.cash]], row[so[STATE.hbm_price]:so[STATE.hbm_price] + G]

    # 1. Orders: whole order units of chips on sale, paid now at the deployed price. Without a power cap the
    #    site capacity they will need (the facility capex per kW of IT load beyond what the site holds for
    #    the chips owned and on order) is built and paid with them. With a power cap the site is what was
    #    built: orders must fit the power it has spare for chips not yet committed, and expansion blocks are
    #    ordered (and paid) ahead, ready after the build lead time. Both are scaled down to cash plus credit.
    capped = ps[SCALAR.power_capped] > 0
    wanted = _frame_empty(K)
    capex_wanted, wanted_kw, committed_kw = 0.0, 0.0, 0.0
    for k in range(K):
        unit = pk[CHIP.order_unit, k]
        want = _whole(max(orders[k], 0.0) / unit) * unit
        unavailable = 0.0 if _available(week, pk, k) and pk[CHIP.purchasable, k] > 0 else want
        wanted[k] = want - unavailable
        info[io[INFO.orders_unavailable] + k] = unavailable
        kw = pk[CHIP.system_power_w, k] / W_PER_KW
        wanted_kw += wanted[k] * kw
        committed_kw += owned[k] * kw
    site_kw = new[so[STATE.site_kw]]
    spare_kw = max(site_kw - committed_kw, 0.0)
    power_scale = 1.0
    if capped and wanted_kw > spare_kw:
        power_scale = spare_kw / wanted_kw
    for k in range(K):
        unit = pk[CHIP.order_unit, k]
        fits = math.floor(wanted[k] * power_scale * (1.0 + WHOLE_SLACK) / unit) * unit if power_scale < 1.0 \
            else wanted[k]
        info[io[INFO.power_clipped] + k] = wanted[k] - fits
        wanted[k] = fits
        capex_wanted += wanted[k] * prices[k]
    headroom = max(cash + ps[SCALAR.credit_limit_usd], 0.0)
    block_cost = ps[SCALAR.site_block_kw] * ps[SCALAR.facility_capex_usd_per_kw]
    n_blocks = 0.0
    if capped and blocks > 0 and block_cost > 0:
        n_blocks = min(_whole(blocks), math.floor(headroom / block_cost))
    expansion_capex = n_blocks * block_cost
    headroom -= expansion_capex
    if capped:
        site_wanted = 0.0
    else:
        wanted_kw = 0.0
        for k in range(K):
            wanted_kw += wanted[k] * pk[CHIP.system_power_w, k] / W_PER_KW
        site_wanted = max(wanted_kw - spare_kw, 0.0) * ps[SCALAR.facility_capex_usd_per_kw]
    # Scaling the order down scales its site need down at least as much, so the scaled order fits.
    total_wanted = capex_wanted + site_wanted
    scale = headroom / max(total_wanted, 1e-9) if total_wanted > headroom else 1.0
    capex, bought_kw = 0.0, 0.0
    for k in range(K):
        unit = pk[CHIP.order_unit, k]
        bought = math.floor(wanted[k] * scale / unit) * unit
        capex += bought * prices[k]
        bought_kw += bought * pk[CHIP.system_power_w, k] / W_PER_KW
        queue[k] += bought
        queue_value[k] += bought * prices[k]
        info[io[INFO.ordered] + k] = bought
        info[io[INFO.orders_clipped] + k] = wanted[k] - bought
    site_pipeline = new[so[STATE.site_pipeline]:so[STATE.site_pipeline] + E]
    build_kw = 0.0
    if capped:
        # Expansion blocks join the build pipeline; slot 0 is ready (and booked) at the end of the week.
        site_pipeline[max(int(ps[SCALAR.site_lead_weeks]) - 1, 0)] += n_blocks * ps[SCALAR.site_block_kw]
        build_kw = site_pipeline[0]
        for j in range(E - 1):
            site_pipeline[j] = site_pipeline[j + 1]
        site_pipeline[E - 1] = 0.0
        booked = build_kw * ps[SCALAR.facility_capex_usd_per_kw]
    else:
        # The site is built (paid and booked) with the order, ahead of the chips; it never shrinks.
        build_kw = committed_kw + bought_kw - site_kw
        build_kw = build_kw if build_kw > 1e-9 else 0.0  # re-adding the same loads can leave a rounding residue
        booked = build_kw * ps[SCALAR.facility_capex_usd_per_kw]
        expansion_capex = booked
    facility_capex = expansion_capex
    if build_kw > 0:
        new[so[STATE.site_kw]] = site_kw + build_kw
        new[so[STATE.site_book_value]] += booked
        new[so[STATE.site_depreciation_rate]] += booked / (ps[SCALAR.facility_life_years] * WEEKS_PER_YEAR)

    # 2. Supply: each HBM generation's allocation shrinks when its market is short, and the queued chips of a
    #    generation are released in proportion to it; SRAM chips have a wafer cap.
    supply = x[xo[EXO.hbm_supply]:xo[EXO.hbm_supply] + G]
    other = x[xo[EXO.other_hbm_demand]:xo[EXO.other_hbm_demand] + G]
    # (per-step arrays that end up in the info or the next state are worked out in place there: no allocation)
    allocation = info[io[INFO.hbm_allocation]:io[INFO.hbm_allocation] + G]
    hbm_drawn = info[io[INFO.hbm_drawn]:io[INFO.hbm_drawn] + G]
    hbm_drawn[:] = 0.0
    stacks_needed, hbm_share = _frame_zeros(G), _frame_empty(G)
    for k in range(K):
        g = int(pk[CHIP.hbm_generation, k])
        if g >= 0:
            stacks_needed[g] += queue[k] * pk[CHIP.hbm_stacks, k]
    for g in range(G):
        allocation[g] = _hbm_allocation(supply[g], other[g], ps)
        hbm_share[g] = min(allocation[g] / max(stacks_needed[g], 1e-9), 1.0)
    slot = max(int(ps[SCALAR.base_lead_weeks]) - 1, 0)
    write_off, sale_proceeds, sale_gain = 0.0, 0.0, 0.0
    p_fail = ps[SCALAR.failure_rate_per_year] / WEEKS_PER_YEAR
    for k in range(K):
        stacks = pk[CHIP.hbm_stacks, k]
        g = int(pk[CHIP.hbm_generation, k])
        release = math.floor(queue[k] * hbm_share[g]) if g >= 0 else min(queue[k], pk[CHIP.sram_cap, k])
        if g >= 0:
            hbm_drawn[g] += release * stacks
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
        dep[k] += arrived_value / (ps[SCALAR.depreciation_years] * WEEKS_PER_YEAR)
        info[io[INFO.arrived] + k] = arrived
        # 4. Sales on the secondary market at the resale price; the gain or loss against book value is booked.
        resale = prices[k] * _wear(age[k], ps)  # this week's new price (computed for the orders) less wear
        sold = min(max(sales[k], 0.0), fleet[k]) if ps[SCALAR.selling] > 0 else 0.0
        kept = 1.0 - sold / max(fleet[k], 1e-9) if fleet[k] > 0 else 0.0
        sale_proceeds += sold * resale
        sale_gain += sold * resale - book[k] * (1.0 - kept)
        fleet[k] -= sold
        book[k] *= kept
        dep[k] *= kept
        info[io[INFO.sold] + k] = sold
        info[io[INFO.resale_price] + k] = resale
        # 5. Failures: stochastic rounding with the pre-drawn uniform; their book value is written off.
        failed = _failed_chips(fleet[k], p_fail, x[xo[EXO.failure_u] + k])
        kept = 1.0 - failed / max(fleet[k], 1e-9) if fleet[k] > 0 else 0.0
        write_off += book[k] * (1.0 - kept)
        fleet[k] -= failed
        book[k] *= kept
        dep[k] *= kept
        info[io[INFO.failed] + k] = failed
        info[io[INFO.in_queue] + k] = queue[k]
        info[io[INFO.in_transit] + k] = _in_transit(new, so, L, k)

    # 6. Each generation's HBM price index moves toward its excess-demand target.
    new_hbm_price = new[so[STATE.hbm_price]:so[STATE.hbm_price] + G]
    price_mean, supply_total = 0.0, 0.0
    for g in range(G):
        new_hbm_price[g] = _next_hbm_price(hbm_price[g], supply[g], other[g], stacks_needed[g], ps)
        price_mean += new_hbm_price[g] * supply[g]
        supply_total += supply[g]
    # (the market's average index, weighted by this week's supply of each generation)
    price_mean = price_mean / supply_total if supply_total > 0 else np.mean(new_hbm_price)

    # 6b. Cluster training contracts: each holds whole chips of one type for its weeks and pays weekly. A contract
    #     whose type's fleet can no longer hold its cluster (failures, sales) breaks and is missed. The week's
    #     offer, if accepted and a slot is free, reserves chips of the type chosen (or the rule's) if enough
    #     are free; its pay follows market rent: the contract value at the start, moving as chip prices do.
    clusters = ps[SCALAR.training_clusters] > 0
    reserved = info[io[INFO.reserved_chips]:io[INFO.reserved_chips] + K]
    reserved[:] = 0.0
    revenue_training, completed_n, missed_n, train_used = 0.0, 0.0, 0.0, 0.0
    arrived_job, can_take = False, False
    if clusters:
        job_chips = new[so[STATE.job_chips]:so[STATE.job_chips] + J]
        job_type = new[so[STATE.job_type]:so[STATE.job_type] + J]
        c_weeks = new[so[STATE.job_weeks_left]:so[STATE.job_weeks_left] + J]
        c_value = new[so[STATE.job_value]:so[STATE.job_value] + J]
        for j in range(J):
            if job_chips[j] > 0:
                k = int(job_type[j])
                if reserved[k] + job_chips[j] <= fleet[k]:
                    reserved[k] += job_chips[j]
                else:
                    missed_n += 1.0
                    job_chips[j], c_weeks[j], c_value[j] = 0.0, 0.0, 0.0
        h100s = _offer_h100s(x, xo, ps)
        arrived_job = h100s > 0
        slot = -1
        for j in range(J):
            if job_chips[j] <= 0 and slot < 0:
                slot = j
        if arrived_job and slot >= 0 and accept != -1:
            free = fleet - reserved
            k = _cluster_type(h100s, free, prices, pk, ps, K) if accept < 0 else accept
            if k >= 0 and pk[CHIP.train_flops_per_chip_s, k] > 0 and _cluster_chips(h100s, pk, ps, k) <= free[k]:
                mean_index = 0.0
                for g in range(G):
                    mean_index += hbm_price[g] / G
                market = (1.0 - ps[SCALAR.price_decline_per_year]) ** (week / WEEKS_PER_YEAR) \
                    * (1.0 + ps[SCALAR.hbm_cost_share] * (mean_index - 1.0))
                job_chips[slot] = _cluster_chips(h100s, pk, ps, k)
                job_type[slot] = k
                c_weeks[slot] = ps[SCALAR.deadline_weeks]
                c_value[slot] = ps[SCALAR.value_per_job_usd] * x[xo[EXO.job_flops]] / ps[SCALAR.flops_per_job] \
                    * market / ps[SCALAR.deadline_weeks]
                reserved[k] += job_chips[slot]
                can_take = True
        for j in range(J):
            if job_chips[j] > 0:
                revenue_training += c_value[j]
                train_used += job_chips[j] * pk[CHIP.train_flops_per_chip_s, int(job_type[j])] * WEEK_S
                c_weeks[j] -= 1.0
                if c_weeks[j] <= 0:
                    completed_n += 1.0
                    job_chips[j], c_weeks[j], c_value[j] = 0.0, 0.0, 0.0

    # 7. Renting: chips rented in serve beside the fleet for the week at the cloud's weekly rent; chips let out
    #    leave it for the week and earn that rent less the marketplace's fee (their power is still ours).
    serving = _frame_empty(K)
    own_serving = _frame_empty(K)
    rent_cost, rent_income, let_out_kw = 0.0, 0.0, 0.0
    for k in range(K):
        rent = rents[k]
        took = min(_whole(max(rent_in[k], 0.0)), ps[SCALAR.max_rent_chips_per_week]) if rent > 0 else 0.0
        let = min(_whole(max(rent_out[k], 0.0)), fleet[k] - reserved[k], ps[SCALAR.max_rent_chips_per_week]) \
            if rent > 0 else 0.0
        rent_cost += took * rent
        rent_income += let * rent * (1.0 - ps[SCALAR.rent_out_fee])
        let_out_kw += let * pk[CHIP.system_power_w, k] / W_PER_KW
        own_serving[k] = fleet[k] - let - reserved[k]
        serving[k] = own_serving[k] + took
        info[io[INFO.rented_in] + k] = took
        info[io[INFO.rented_out] + k] = let
        info[io[INFO.rent_price] + k] = rent

    # 8. Whole replicas from the shares of the serving fleet, then serving with admission control.
    train = info[io[INFO.train_chips]:io[INFO.train_chips] + K]
    prefill = info[io[INFO.prefill_chips]:io[INFO.prefill_chips + 1]]
    decode = info[io[INFO.decode_chips]:io[INFO.decode_chips + 1]]
    for k in range(K):
        if clusters:
            train[k] = reserved[k]  # contracts hold their clusters; the training shares are not used
        else:
            train[k] = _whole(shares[0, k] * serving[k] * (1.0 if pk[CHIP.train_flops_per_chip_s, k] > 0 else 0.0))
        for c in range(C):
            n = max(pck[CLASS_CHIP.replica_chips, c, k], 1.0)
            prefill[c * K + k] = _whole(shares[1 + c, k] * serving[k] * pck[CLASS_CHIP.fits, c, k] / n) * n
            decode[c * K + k] = _whole(shares[1 + C + c, k] * serving[k] * pck[CLASS_CHIP.fits, c, k] / n) * n
    # Decode rate per chip left to serve: RL student classes give update_share of their training-capable chips
    # (``cuts``, also read by steps 8b and 10).
    cuts, serve_d = _update_cuts(update_share, pk, pc, _frame_empty((C, K))), _frame_empty((C, K))
    for c in range(C):
        for k in range(K):
            serve_d[c, k] = pck[CLASS_CHIP.decode_rate, c, k] * (1.0 - cuts[c, k]) * eff_d[k]
    load_d = _frame_empty(C)
    prefill_busy = _frame_zeros((C, K))  # share of each chip type's prefill replicas busy with each class
    # Each chip type's prefill service time and M/D/1 load limit for the class at hand, worked out once for the three
    # loops over chip types that read them (rewritten for each class; read only where cap_k > 0).
    service, limit = _frame_empty(K), _frame_empty(K)
    revenue = 0.0
    link_rate = ps[SCALAR.kv_link_bytes_per_s]
    for c in range(C):
        demand, dem_eff = _quality_demand(row, so, x, xo, pc, c), dem[c]
        prefill_sum, decode_cap, decode_ok = 0.0, 0.0, 0.0
        for k in range(K):
            prefill_sum += prefill[c * K + k] * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k]
            rate_d = decode[c * K + k] * serve_d[c, k]
            decode_cap += rate_d
            # Admission control: decode replicas too slow for the class's TPOT SLO take none of its load.
            if slo_ok[c, k] > 0:
                decode_ok += rate_d
        # Prefill capacity in output-token equivalents: prompts/s x output tokens per prompt.
        out_per_in = pc[CLASS.output_tokens, c] / pc[CLASS.input_tokens, c]
        prefill_cap = prefill_sum * out_per_in
        overlap, kv_req, link = 0.0, 0.0, 0.0
        for k in range(K):
            p_share = prefill[c * K + k] * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k] / max(prefill_sum, 1e-9)
            d_share = decode[c * K + k] * serve_d[c, k] / max(decode_cap, 1e-9)
            overlap += min(p_share, d_share)
            kv_req += p_share * pck[CLASS_CHIP.kv_bytes_per_request, c, k]
            link += prefill[c * K + k]
        link *= link_rate
        crossing = min(max(1.0 - overlap, 0.0), 1.0)  # share of KV caches that move between chip types
        if ps[SCALAR.disaggregation] == 0.0:
            crossing = 0.0  # colocated only: each chip type serves the requests it prefills (capacity below)
        transfer_cap = link / max(crossing * kv_req, 1e-9) * pc[CLASS.output_tokens, c] if crossing > 0 else np.inf
        transfer_s = crossing * kv_req / link_rate
        # Admission control: each chip type's prefill replicas take load only up to where their M/D/1 mean
        # TTFT (service + queueing wait + the KV transfer) meets the SLO; load above that, or above decode or
        # link capacity, is shed.
        budget = pc[CLASS.ttft_slo_s, c] - transfer_s
        admissible = 0.0
        for k in range(K):
            cap_k = prefill[c * K + k] * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k] * out_per_in
            if cap_k > 0:
                service[k] = pck[CLASS_CHIP.prefill_latency_s, c, k] / eff_p[k]
                limit[k] = _max_prefill_load(service[k], budget)
                admissible += cap_k * limit[k]
        capacity = min(min(admissible, decode_ok), transfer_cap)
        if ps[SCALAR.disaggregation] == 0.0:
            # Without disaggregated serving a request's decode runs on the chip type that prefilled it, so each
            # type serves at most the lesser of its own admissible prefill and its own SLO-meeting decode.
            capacity = 0.0
            for k in range(K):
                cap_k = prefill[c * K + k] * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k] * out_per_in
                own_p = cap_k * limit[k] if cap_k > 0 else 0.0
                own_d = 0.0
                if slo_ok[c, k] > 0:
                    own_d = decode[c * K + k] * serve_d[c, k]
                capacity += min(own_p, own_d)
        served = _served_with_peaks(capacity, dem_eff, pc[CLASS.peak_to_mean, c])
        # Load spreads over chip types in proportion to their admissible capacity, so each runs at the same
        # fraction of its own load limit; the reported TTFT is their load-weighted mean.
        fraction = served / admissible if admissible > 0 else 0.0
        ttft = transfer_s
        for k in range(K):
            cap_k = prefill[c * K + k] * pck[CLASS_CHIP.prefill_rate, c, k] * eff_p[k] * out_per_in
            if cap_k > 0:
                weight = cap_k * limit[k] / admissible if admissible > 0 else cap_k / prefill_cap
                rho = limit[k] * fraction
                prefill_busy[c, k] = rho
                ttft += weight * (service[k] + rho * service[k] / (2.0 * (1.0 - rho)))
        price = (pc[CLASS.output_price_per_token, c]
                 + pc[CLASS.input_price_per_token, c] * pc[CLASS.input_tokens, c] / pc[CLASS.output_tokens, c])
        price *= _class_price_multiple(week, p, c)
        revenue_class = served * price * WEEK_S
        revenue += revenue_class
        unmet = dem_eff - served
        served_share = served / max(dem_eff, 1e-9) if dem_eff > 0 else 1.0
        new[so[STATE.backlog] + c] = min(unmet * pc[CLASS.carry_over, c], BACKLOG_WEEKS * demand)
        new[so[STATE.last_served_fraction] + c] = served_share
        new[so[STATE.last_admissible_load] + c] = admissible / max(prefill_cap, 1e-9) if prefill_cap > 0 else 0.0
        load_d[c] = served / max(decode_ok, 1e-9) if decode_ok > 0 else 0.0
        for key, value in ((INFO.revenue_per_class, revenue_class), (INFO.demand, dem_eff), (INFO.served, served),
                           (INFO.unmet, unmet), (INFO.prefill_capacity, prefill_cap),
                           (INFO.decode_capacity, decode_ok), (INFO.slo_attainment, served_share),
                           (INFO.ttft_s, ttft), (INFO.kv_crossing, crossing)):
            info[io[key] + c] = value

    # 8b. RL student classes: their decode chips' update time trains the students. Quality q moves toward the
    #     effort, the ratio of the update FLOPs done to those that hold it (update_flops_per_token x this week's
    #     exogenous demand) capped at 1, at the class's weekly decay rate; next week's demand follows quality.
    update_flops = 0.0
    for c in range(C):
        q = row[so[STATE.quality] + c]
        if pc[CLASS.update_flops_per_token, c] > 0:
            done = 0.0
            for k in range(K):
                done += decode[c * K + k] * cuts[c, k] * pk[CHIP.train_flops_per_chip_s, k]
            done *= WEEK_S
            update_flops += done
            held = pc[CLASS.update_flops_per_token, c] * x[xo[EXO.demand] + c] * WEEK_S
            decay = pc[CLASS.quality_decay, c]
            effort = min(done / held, 1.0) if held > 0 else q
            q = (1.0 - decay) * q + decay * effort
            new[so[STATE.quality] + c] = q
        info[io[INFO.quality] + c] = q

    # 9. Training: earliest deadline first over the job slots; paid on completion before the deadline.
    #    (FLOP jobs without clusters; cluster contracts were settled in step 6b)
    train_load = 1.0
    if not clusters:
        train_cap = 0.0
        for k in range(K):
            train_cap += train[k] * pk[CHIP.train_flops_per_chip_s, k]
        train_cap *= WEEK_S
        job_flops = new[so[STATE.job_flops]:so[STATE.job_flops] + J]
        weeks_left = new[so[STATE.job_weeks_left]:so[STATE.job_weeks_left] + J]
        job_value = new[so[STATE.job_value]:so[STATE.job_value] + J]
        order = np.arange(J)
        keys = _frame_empty(J)
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
        arrived_job = x[xo[EXO.job_arrival]] > 0
        can_take = arrived_job and any_empty
        if can_take:
            arriving = x[xo[EXO.job_flops]]
            job_flops[first_empty] = arriving
            job_value[first_empty] = ps[SCALAR.value_per_job_usd] * arriving / ps[SCALAR.flops_per_job]
            weeks_left[first_empty] = ps[SCALAR.deadline_weeks]
        train_load = train_used / max(train_cap, 1e-9) if train_cap > 0 else 0.0

    # 10-12. Utilisation, operating cost, capital, money. Chips at work are the serving fleet and the clusters.
    energy, maintenance, depreciation, fleet_stacks, fleet_total, book_total = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for k in range(K):
        busy_p, busy_d = 0.0, 0.0
        for c in range(C):
            busy_p += prefill[c * K + k] * prefill_busy[c, k]
            cut = cuts[c, k]  # update time is busy time
            if slo_ok[c, k] > 0:
                busy_d += decode[c * K + k] * (cut + (1.0 - cut) * load_d[c])
            else:
                busy_d += decode[c * K + k] * cut
        busy = busy_p + busy_d + train[k] * train_load
        working = serving[k] + reserved[k]
        utilisation = busy / max(working, 1e-9) if working > 0 else 0.0
        new[so[STATE.last_utilisation] + k] = utilisation
        info[io[INFO.utilisation] + k] = utilisation
        info[io[INFO.fleet] + k] = fleet[k]
        # Energy of our own chips at work (rented-in chips' power is in their rent), busy in proportion.
        energy += (own_serving[k] + reserved[k]) * utilisation * pk[CHIP.system_power_w, k]
        maintenance += fleet[k] * pk[CHIP.list_price, k] * pk[CHIP.system_capex_multiple, k]
        charge = min(dep[k], max(book[k], 0.0))  # straight line until the book value is used up
        depreciation += charge
        fleet_stacks += fleet[k] * pk[CHIP.hbm_stacks, k]
        fleet_total += fleet[k]
        book[k] -= charge
        book_total += book[k]
    site_charge = min(new[so[STATE.site_depreciation_rate]], max(new[so[STATE.site_book_value]], 0.0))
    new[so[STATE.site_book_value]] -= site_charge
    depreciation += site_charge
    energy += let_out_kw * W_PER_KW  # chips let out run flat out on our power
    energy_kwh = energy * ps[SCALAR.pue] * WEEK_S / J_PER_KWH
    power_cost = energy_kwh * ps[SCALAR.energy_usd_per_kwh]
    maintenance = maintenance * ps[SCALAR.maintenance_per_year] / WEEKS_PER_YEAR
    building_kw = 0.0
    for j in range(E):
        building_kw += site_pipeline[j]
    prepaid = building_kw * ps[SCALAR.facility_capex_usd_per_kw]  # site blocks paid for and under construction
    for k in range(K):
        prepaid += queue_value[k]
        for j in range(L):
            prepaid += pipeline_value[k, j]
    # The capital charge: the cost of capital on everything paid for and not yet recovered (chips at book
    # value, orders prepaid and waiting, the site). Financing costs enter the reward only through it; the
    # cash account is the free cash flow drawn against the credit line.
    capital = book_total + prepaid + new[so[STATE.site_book_value]]
    capital_charge = capital * ps[SCALAR.cost_of_capital_per_year] / WEEKS_PER_YEAR
    # The site's share of the costs (its depreciation and capital charge), reported beside energy.
    facility_cost = site_charge + new[so[STATE.site_book_value]] * ps[SCALAR.cost_of_capital_per_year] / WEEKS_PER_YEAR
    revenue = revenue + revenue_training + rent_income
    opex = power_cost + maintenance + rent_cost
    new_cash = cash - capex - facility_capex + sale_proceeds + revenue - opex
    accounting = revenue - opex - depreciation - write_off + sale_gain
    bankrupt = new_cash < -ps[SCALAR.credit_limit_usd]
    # 13. The end of the episode (the horizon or bankruptcy) settles the books: chips are marked to their
    #     resale value and orders not yet delivered are cancelled for the refund fraction of what was paid. The
    #     settlement marks chips at this week's price and their age this week, as a sale this week would; the chips
    #     then age a week.
    ending = bankrupt or week + 1.0 >= ps[SCALAR.weeks]
    settled = 0.0
    for k in range(K):
        if ending:
            settled += fleet[k] * prices[k] * _wear(age[k], ps) - book[k]
        age[k] = age[k] + 1.0 if fleet[k] > 0 else 0.0
    settlement = 0.0
    if ending:
        settlement = settled - (1.0 - ps[SCALAR.order_refund_fraction]) * prepaid
    profit = accounting - capital_charge + settlement
    tokens = 0.0
    for c in range(C):
        tokens += info[io[INFO.served] + c]
    tokens *= WEEK_S
    new[so[STATE.week]] = week + 1.0
    new[so[STATE.cash]] = new_cash
    for g in range(G):
        info[io[INFO.hbm_supply] + g] = supply[g]
        info[io[INFO.hbm_price] + g] = new_hbm_price[g]
    new[so[STATE.bankrupt]] = 1.0 if bankrupt else 0.0
    exposure = fleet_stacks / max(fleet_total * ps[SCALAR.max_hbm_stacks], 1.0)
    cost_of_tokens = opex + depreciation + capital_charge
    usd_per_mtok = cost_of_tokens / max(tokens, 1.0) * TOKENS_PER_MTOK if tokens > 0 else 0.0
    net_worth = new_cash + capital + settlement
    for key, value in ((INFO.revenue, revenue), (INFO.revenue_training, revenue_training), (INFO.capex, capex),
                       (INFO.facility_capex, facility_capex), (INFO.opex, opex), (INFO.power_cost, power_cost),
                       (INFO.maintenance, maintenance), (INFO.depreciation, depreciation),
                       (INFO.write_off, write_off), (INFO.sale_proceeds, sale_proceeds), (INFO.sale_gain, sale_gain),
                       (INFO.capital_charge, capital_charge), (INFO.capital_employed, capital),
                       (INFO.facility_cost, facility_cost),
                       (INFO.terminal_settlement, settlement), (INFO.accounting_profit, accounting),
                       (INFO.profit, profit), (INFO.cash, new_cash), (INFO.net_worth, net_worth)):
        info[io[key]] = value
    # (two tuples: Python builds a literal this long through a list, which Numba cannot type)
    for key, value in ((INFO.hbm_price_mean, price_mean), (INFO.hbm_exposure, exposure),
                       (INFO.usd_per_mtok, usd_per_mtok), (INFO.training_flops_done, train_used),
                       (INFO.training_jobs_completed, completed_n), (INFO.training_jobs_missed, missed_n),
                       (INFO.training_jobs_accepted, 1.0 if can_take else 0.0),
                       (INFO.training_jobs_rejected, 1.0 if arrived_job and not can_take else 0.0),
                       (INFO.bankrupt, 1.0 if bankrupt else 0.0),
                       (INFO.reward, profit / ps[SCALAR.reward_scale_usd])):
        info[io[key]] = value
    for key, value in ((INFO.site_kw, new[so[STATE.site_kw]]), (INFO.site_building_kw, building_kw),
                       (INFO.site_committed_kw, committed_kw + bought_kw), (INFO.site_blocks_ordered, n_blocks),
                       (INFO.rent_cost, rent_cost), (INFO.rent_income, rent_income),
                       (INFO.update_share, update_share), (INFO.update_flops, update_flops)):
        info[io[key]] = value


@njit(cache=True)
def _observe(row, obs, o, exo, p):
    """One datacenter's observation (float32), each block scaled to order one and clipped to ±OBS_CLIP.

    Blocks: [week / T, cash / credit limit, coverage of this week's demand (plus backlog) by the fleet
    and by fleet + orders, each / MAX_COVERAGE] | per chip: fleet, on order (queued + in transit),
    each / fleet_scale, on sale now (0/1), deployed price / list price, utilisation last week, mean
    age / depreciation life | per class: this week's demand / (10 x initial demand), its growth over
    four weeks (log ratio x 10), served fraction and admissible prefill load (share of the queueing
    cap) last week, quality (RL student classes; 1 for others) | per HBM generation: price index,
    supply / its supply scale (the initial world supply x the generation's largest share of it in the
    episode), our queued stacks / (10 x our share of that scale), shock flag | training: remaining
    FLOPs / (slots x job size), nearest deadline / deadline weeks | site: spare power (built less
    committed IT load) and power under construction, each / the site's built power | cluster
    contracts: this week's offer in H100s and the chips contracts hold, each / fleet_scale.
    """
    pk, pck, pc, ps = p.chip, p.class_chip, p.cls, p.scalar
    so, xo = o.state, o.exo
    K, C, J, L = o.dims[0], o.dims[1], o.dims[2], o.dims[3]
    G = o.dims[5]
    hbm_price = row[so[STATE.hbm_price]:so[STATE.hbm_price] + G]
    T = exo.shape[0]
    week = row[so[STATE.week]]
    t = min(int(week), T - 1)
    x, past = exo[t], exo[max(t - 4, 0)]
    eff_p, eff_d = _efficiency(week, p.efficiency)
    wanted = _demand_with_backlog(row, so, x, xo, pc, _frame_empty(C))
    work = _chips_for_demand(wanted, pck, p.prompt_per_output, eff_p, eff_d, _frame_empty(K))
    fleet = row[so[STATE.fleet]:so[STATE.fleet] + K]
    obs[0] = week / ps[SCALAR.weeks]
    obs[1] = row[so[STATE.cash]] / ps[SCALAR.credit_limit_usd]
    obs[2] = min(_coverage(fleet, wanted, work), OBS_CLIP) / MAX_COVERAGE
    owned = _frame_empty(K)  # :func:`_owned_and_ordered`, with each chip's in-transit sum taken once for both blocks
    for k in range(K):
        in_transit = _in_transit(row, so, L, k)
        owned[k] = _owned_and_ordered_chip(row, so, k, in_transit)
        obs[4 + K + k] = (row[so[STATE.queue] + k] + in_transit) / ps[SCALAR.fleet_scale]
    obs[3] = min(_coverage(owned, wanted, work), OBS_CLIP) / MAX_COVERAGE
    queued_stacks = _frame_zeros(G)
    life = ps[SCALAR.depreciation_years] * WEEKS_PER_YEAR
    for k in range(K):
        obs[4 + k] = fleet[k] / ps[SCALAR.fleet_scale]
        obs[4 + 2 * K + k] = 1.0 if _available(week, pk, k) else 0.0
        obs[4 + 3 * K + k] = _chip_price(week, hbm_price, pk, ps, p.list_price_path, k) / pk[CHIP.list_price, k]
        obs[4 + 4 * K + k] = row[so[STATE.last_utilisation] + k]
        obs[4 + 5 * K + k] = row[so[STATE.age_weeks] + k] / life
        g = int(pk[CHIP.hbm_generation, k])
        if g >= 0:
            queued_stacks[g] += row[so[STATE.queue] + k] * pk[CHIP.hbm_stacks, k]
    i = 4 + 6 * K
    for c in range(C):
        obs[i + c] = x[xo[EXO.demand] + c] / (10.0 * max(pc[CLASS.demand0, c], 1.0))
        obs[i + C + c] = 10.0 * math.log(max(x[xo[EXO.demand] + c], 1.0) / max(past[xo[EXO.demand] + c], 1.0))
        obs[i + 2 * C + c] = row[so[STATE.last_served_fraction] + c]
        obs[i + 3 * C + c] = row[so[STATE.last_admissible_load] + c]
        obs[i + 4 * C + c] = row[so[STATE.quality] + c]
    i += 5 * C
    nearest, remaining = np.inf, 0.0
    for j in range(J):
        remaining += row[so[STATE.job_flops] + j]
        if row[so[STATE.job_flops] + j] > 0:
            nearest = min(nearest, row[so[STATE.job_weeks_left] + j])
    for g in range(G):
        scale = max(p.generation[GENERATION.hbm_supply_scale, g], 1.0)
        obs[i + g] = hbm_price[g]
        obs[i + G + g] = x[xo[EXO.hbm_supply] + g] / scale
        obs[i + 2 * G + g] = queued_stacks[g] / max(ps[SCALAR.our_allocation_share] * scale, 1.0) / 10.0
        obs[i + 3 * G + g] = x[xo[EXO.hbm_shock] + g]
    i += 4 * G
    obs[i] = remaining / (ps[SCALAR.slots] * ps[SCALAR.flops_per_job])
    obs[i + 1] = (nearest if nearest < np.inf else ps[SCALAR.deadline_weeks]) / ps[SCALAR.deadline_weeks]
    site_kw = max(row[so[STATE.site_kw]], 1.0)
    obs[i + 2] = (row[so[STATE.site_kw]] - _committed_kw(owned, pk, K)) / site_kw
    obs[i + 3] = _site_building_kw(row, so, o.dims[4]) / site_kw
    reserved = 0.0
    for j in range(J):
        reserved += row[so[STATE.job_chips] + j]
    obs[i + 4] = _offer_h100s(x, xo, ps) / ps[SCALAR.fleet_scale]
    obs[i + 5] = reserved / ps[SCALAR.fleet_scale]
    # The entries are clipped after their float32 rounding, in place: rounding is monotonic and keeps +-OBS_CLIP, so
    # each comes out as if clipped first (no float64 scratch row to allocate).
    for n in range(obs.shape[0]):
        obs[n] = min(max(obs[n], -OBS_CLIP), OBS_CLIP)


def observation_size(dims: dict[str, int]) -> int:
    """Length of the observation for sizes ``dims`` (see :func:`_observe` for the blocks)."""
    return 4 + 6 * dims["K"] + 5 * dims["C"] + 4 * dims["G"] + 2 + 2 + 2


@njit(cache=True)
def _step_one(b, variant, discrete, actions, state, exo, p, o, new_state, obs, info):
    row, path, new = state[b], exo[b], new_state[b]
    t = min(int(row[o.state[STATE.week]]), exo.shape[1] - 1)
    K, C = o.dims[0], o.dims[1]
    dem = _demand_with_backlog(row, o.state, path[t], o.exo, p.cls, _frame_empty(C))
    owned = _owned_and_ordered(row, o.state, o.dims[3], _frame_empty(K))
    prices, rents = _week_prices(row, o.state, p.chip, p.scalar, p.list_price_path, o.dims[5], _frame_empty(K),
                                 _frame_empty(K))
    orders, sales, shares, blocks, rent_in, rent_out, accept, update_share = _decode(
        variant, discrete, actions[b], row, o.state, dem, owned, rents, p, o.dims, _frame_empty(K), _frame_empty(K),
        _frame_empty((1 + 2 * C, K)), _frame_empty(K), _frame_empty(K))
    _transition(row, new, info[b], o, path, dem, owned, prices, rents, orders, sales, shares, blocks,
                rent_in, rent_out, accept, update_share, p)
    _observe(new, obs[b], o, path, p)


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


# --- Batch loops ----------------------------------------------------------------------------------
PARALLEL_FROM = 256  # batches this large are split over the CPU cores; smaller ones run serially


@njit(cache=True)
def step_rows(variant, discrete, actions, state, exo, p, o, new_state, obs, info):
    """One week for every row of ``state`` (B, S): writes the next state, observation (B, O) and info (B, I).
    Returns False, and steps nothing, if any action entry is invalid (:func:`valid_actions`)."""
    if not valid_actions(actions, discrete):
        return False
    fixed = _borrowed_offsets(o)
    q = _borrowed_tables(p)
    for b in range(state.shape[0]):
        _step_one(b, variant, discrete, _borrowed(actions), _borrowed(state), _borrowed(exo), q, fixed,
                  _borrowed(new_state), _borrowed(obs), _borrowed(info))
    return True


@njit(cache=True, parallel=True)
def step_rows_parallel(variant, discrete, actions, state, exo, p, o, new_state, obs, info):
    """:func:`step_rows` with the rows split over the CPU cores (rows are independent)."""
    if not valid_actions(actions, discrete):
        return False
    # (the borrowed NamedTuples are made inside the loop, at no cost: Numba's parallel lowering cannot carry a
    # NamedTuple made outside the loop into its body)
    for b in prange(state.shape[0]):
        _step_one(b, variant, discrete, _borrowed(actions), _borrowed(state), _borrowed(exo), _borrowed_tables(p),
                  _borrowed_offsets(o), _borrowed(new_state), _borrowed(obs), _borrowed(info))
    return True


@njit(cache=True)
def step_rows_tuples(variant, discrete, actions, state, exo, tables, offsets, new_state, obs, info):
    """:func:`step_rows` with ``tables`` and ``offsets`` passed as plain tuples of their fields. Numba types a
    NamedTuple argument in Python on every call (about 2 us, a tenth of a single env's step) and a plain tuple
    in C, so small batches call this; the NamedTuples are rebuilt here at no cost."""
    return step_rows(variant, discrete, actions, state, exo, Tables(*tables), Offsets(*offsets), new_state, obs, info)


@njit(cache=True)
def observe_rows(state, exo, p, o, rows, obs):
    """Writes the observation (float32) of each row ``b`` in ``rows`` of ``state`` into ``obs[b]``."""
    fixed, q = _borrowed_offsets(o), _borrowed_tables(p)
    for b in rows:
        _observe(state[b], obs[b], fixed, exo[b], q)


# --- Batched helpers for policies (called from Python through envs.functional) ------------------
@njit(cache=True)
def rent_prices_rows(week, hbm_price, p):
    """(B, K) $ a week to rent one chip of each type at weeks ``week`` (B,) and HBM price indices (B, G); 0 where
    the chip has no rental market (yet)."""
    pk, ps = p.chip, p.scalar
    out = np.empty((week.shape[0], pk.shape[1]))
    for b in range(week.shape[0]):
        for k in range(pk.shape[1]):
            out[b, k] = _weekly_rent(week[b], _chip_price(week[b], hbm_price[b], pk, ps, p.list_price_path, k), pk, k)
    return out


@njit(cache=True)
def chip_prices_rows(week, hbm_price, p):
    """(B, K) deployed prices per chip at weeks ``week`` (B,) and HBM price indices ``hbm_price`` (B, G)."""
    pk, ps = p.chip, p.scalar
    out = np.empty((week.shape[0], pk.shape[1]))
    for b in range(week.shape[0]):
        for k in range(pk.shape[1]):
            out[b, k] = _chip_price(week[b], hbm_price[b], pk, ps, p.list_price_path, k)
    return out


@njit(cache=True)
def resale_prices_rows(week, hbm_price, age_weeks, p):
    """(B, K) what one used chip of each type fetches at weeks ``week`` (B,), HBM price indices ``hbm_price``
    (B, G) and mean ages ``age_weeks`` (B, K)."""
    pk, ps = p.chip, p.scalar
    out = np.empty((week.shape[0], pk.shape[1]))
    for b in range(week.shape[0]):
        for k in range(pk.shape[1]):
            out[b, k] = _resale_price(week[b], hbm_price[b], age_weeks[b, k], pk, ps, p.list_price_path, k)
    return out


@njit(cache=True)
def serving_factors_rows(week, p):
    """What the step reads about serving at weeks ``week`` (B,): the vendors' software efficiency of that year for
    prefill (B, K) and decode (B, K), 1 where a chip's decode meets each class's TPOT SLO then (B, C, K), and each
    class's token price multiple (B, C) (its yearly decline)."""
    B, C, K = week.shape[0], p.cls.shape[1], p.chip.shape[1]
    eff_p, eff_d, meets, price = np.empty((B, K)), np.empty((B, K)), np.empty((B, C, K)), np.empty((B, C))
    for b in range(B):
        eff_p[b], eff_d[b] = _efficiency(week[b], p.efficiency)
        meets[b] = p.decode_meets_slo[_year(week[b], p.efficiency)]
        for c in range(C):
            price[b, c] = _class_price_multiple(week[b], p, c)
    return eff_p, eff_d, meets, price


@njit(cache=True)
def work_rows(week, demand, p):
    """(prefill (B, K), decode (B, K)) chips of each type for the prefill and the decode of ``demand`` (B, C)
    at weeks ``week`` (B,) (the vendors' software efficiency of that year)."""
    B, K = demand.shape[0], p.class_chip.shape[2]
    prefill, decode = np.empty((B, K)), np.empty((B, K))
    for b in range(B):
        eff_p, eff_d = _efficiency(week[b], p.efficiency)
        _work_for_demand(demand[b], p.class_chip, p.prompt_per_output, eff_p, eff_d, prefill[b], decode[b])
    return prefill, decode


@njit(cache=True)
def coverage_rows(chips, demand, work):
    """(B,) share of ``demand`` (B, C) that ``chips`` (B, K) serve, given ``work`` (B, K) = W_k(demand)."""
    out = np.empty(chips.shape[0])
    for b in range(chips.shape[0]):
        out[b] = _coverage(chips[b], demand[b], work[b])
    return out


@njit(cache=True)
def knob_shares_rows(week, fleet, demand, knobs, need, p):
    """(B, 1 + 2C, K) shares of the built-in allocator (:func:`_knob_shares`) for each row at weeks ``week``."""
    B, C, K = fleet.shape[0], p.class_chip.shape[1], p.class_chip.shape[2]
    out = np.empty((B, 1 + 2 * C, K))
    for b in range(B):
        eff_p, eff_d = _efficiency(week[b], p.efficiency)
        _knob_shares(fleet[b], demand[b], knobs[b], need[b], p.chip, p.class_chip, p.cls, p.prompt_per_output, eff_p,
                     eff_d, out[b])
    return out


@njit(cache=True)
def decode_rows(variant, discrete, actions, state, exo, p, offsets):
    """(orders (B, K), sales (B, K), shares (B, 1 + 2C, K), site blocks (B,), rent in (B, K), rent out (B, K),
    contract acceptance (B,), RL update share (B,)) that valid ``actions`` (B, A) decode to."""
    o = _borrowed_offsets(offsets)
    B, K, C = state.shape[0], o.dims[0], o.dims[1]
    orders, sales, shares = np.empty((B, K)), np.empty((B, K)), np.empty((B, 1 + 2 * C, K))
    blocks, rent_in, rent_out = np.empty(B), np.empty((B, K)), np.empty((B, K))
    accept, update_share = np.empty(B, dtype=np.int64), np.empty(B)
    dem, owned, prices, rents = np.empty(C), np.empty(K), np.empty(K), np.empty(K)
    for b in range(B):
        row = state[b]
        t = min(int(row[o.state[STATE.week]]), exo.shape[1] - 1)
        _demand_with_backlog(row, o.state, exo[b, t], o.exo, p.cls, dem)
        _owned_and_ordered(row, o.state, o.dims[3], owned)
        _week_prices(row, o.state, p.chip, p.scalar, p.list_price_path, o.dims[5], prices, rents)
        _, _, _, blocks[b], _, _, accept[b], update_share[b] = _decode(
            variant, discrete, actions[b], row, o.state, dem, owned, rents, p, o.dims, orders[b], sales[b], shares[b],
            rent_in[b], rent_out[b])
    return orders, sales, shares, blocks, rent_in, rent_out, accept, update_share


@njit(cache=True)
def state_rows_helpers(state, exo, p, offsets):
    """Per row of ``state``: (demand plus backlog (B, C), owned and ordered (B, K), training need (B,))."""
    o = _borrowed_offsets(offsets)
    so, xo = o.state, o.exo
    K, C, J, L = o.dims[0], o.dims[1], o.dims[2], o.dims[3]
    B = state.shape[0]
    demand, owned, need = np.empty((B, C)), np.empty((B, K)), np.empty(B)
    for b in range(B):
        row = state[b]
        t = min(int(row[so[STATE.week]]), exo.shape[1] - 1)
        _demand_with_backlog(row, so, exo[b, t], xo, p.cls, demand[b])
        _owned_and_ordered(row, so, L, owned[b])
        need[b] = _training_need(row, so, J)
    return demand, owned, need


@njit(cache=True)
def failed_chips_array(fleet, p_fail, u):
    """Elementwise :func:`_failed_chips` of ``fleet`` and uniforms ``u`` (same shape)."""
    out = np.empty(fleet.shape)
    flat_fleet, flat_u, flat_out = fleet.ravel(), u.ravel(), out.ravel()
    for i in range(flat_fleet.shape[0]):
        flat_out[i] = _failed_chips(flat_fleet[i], p_fail, flat_u[i])
    return out


@njit(cache=True)
def served_with_peaks_array(capacity, demand, peak):
    """Elementwise :func:`_served_with_peaks` (``peak`` broadcast along the last axis of ``demand``)."""
    out = np.empty(demand.shape)
    flat_cap, flat_dem, flat_out = capacity.ravel(), demand.ravel(), out.ravel()
    C = peak.shape[0]
    for i in range(flat_dem.shape[0]):
        flat_out[i] = _served_with_peaks(flat_cap[i], flat_dem[i], peak[i % C])
    return out


@njit(cache=True)
def hbm_market_path(supply, other, stacks_ordered, p):
    """(allocation (T, G), price index at the start of each week (T, G)) of each HBM generation's market over
    weeks of ``supply``, ``other`` demand and our ``stacks_ordered`` (all (T, G)), starting from an index of 1."""
    ps = p.scalar
    T, G = supply.shape[0], supply.shape[1]
    allocation, price = np.empty((T, G)), np.empty((T, G))
    for g in range(G):
        index = 1.0
        for t in range(T):
            allocation[t, g] = _hbm_allocation(supply[t, g], other[t, g], ps)
            price[t, g] = index
            index = _next_hbm_price(index, supply[t, g], other[t, g], stacks_ordered[t, g], ps)
    return allocation, price


@njit(cache=True)
def capacity_rule_rows(u_expand, u_rent_in, u_rent_out, orders, state, exo, p, offsets):
    """The compact action's expansion, rent-in and rent-out rules (:func:`_expansion_blocks`,
    :func:`_rent_in_chips`, :func:`_rent_out_chips`) for entries ``u_*`` (B,) in [0, 1] and chips wanted
    ``orders`` (B, K): (site blocks (B,), rent in (B, K), rent out (B, K))."""
    o = _borrowed_offsets(offsets)
    so = o.state
    K, C, L, E = o.dims[0], o.dims[1], o.dims[3], o.dims[4]
    B = state.shape[0]
    blocks, rent_in, rent_out = np.empty(B), np.empty((B, K)), np.empty((B, K))
    dem, work, owned, prices, rents = np.empty(C), np.empty(K), np.empty(K), np.empty(K), np.empty(K)
    for b in range(B):
        row = state[b]
        t = min(int(row[so[STATE.week]]), exo.shape[1] - 1)
        _demand_with_backlog(row, so, exo[b, t], o.exo, p.cls, dem)
        eff_p, eff_d = _efficiency(row[so[STATE.week]], p.efficiency)
        _chips_for_demand(dem, p.class_chip, p.prompt_per_output, eff_p, eff_d, work)
        _owned_and_ordered(row, so, L, owned)
        blocks[b] = _expansion_blocks(u_expand[b], row, so, owned, orders[b], p.chip, p.scalar, K, E)
        _week_prices(row, so, p.chip, p.scalar, p.list_price_path, o.dims[5], prices, rents)
        _rent_in_chips(u_rent_in[b], row, so, rents, dem, work, p.scalar, rent_in[b])
        _rent_out_chips(u_rent_out[b], row, so, rents, p.scalar, rent_out[b])
    return blocks, rent_in, rent_out


@njit(cache=True)
def contract_offer_rows(state, exo, p, offsets):
    """Per row of ``state``: (the week's cluster contract offer in H100s (B,), 0 if none; the chip type the
    acceptance rule would reserve it on (B,), -1 if no type has enough free chips or there is no offer)."""
    o = _borrowed_offsets(offsets)
    so = o.state
    K, J, G = o.dims[0], o.dims[2], o.dims[5]
    B = state.shape[0]
    h100s, chosen = np.zeros(B), np.full(B, -1, dtype=np.int64)
    reserved, prices, rents = np.empty(K), np.empty(K), np.empty(K)
    for b in range(B):
        row = state[b]
        t = min(int(row[so[STATE.week]]), exo.shape[1] - 1)
        h100s[b] = _offer_h100s(exo[b, t], o.exo, p.scalar)
        if h100s[b] > 0:
            free = row[so[STATE.fleet]:so[STATE.fleet] + K] - _reserved_chips(row, so, J, reserved)
            _week_prices(row, so, p.chip, p.scalar, p.list_price_path, G, prices, rents)
            chosen[b] = _cluster_type(h100s[b], free, prices, p.chip, p.scalar, K)
    return h100s, chosen
