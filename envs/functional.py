"""A functional, gymnax-style API over the compiled dynamics, for research code and for the envs.

    import envs
    params = envs.params("default", variant="datacenter")      # immutable: scenario, tables, spaces
    state, obs = envs.reset(params, seed=0, batch=64)            # or exogenous=Exogenous(...)
    state, obs, reward, info = envs.step(params, state, actions) # actions (B, A); state is never mutated

Everything works on batches of B datacenters. ``State`` is a batch of flat rows plus the
exogenous paths they follow; its fields (``state.fleet``, ``state.cash``, ...) are read-only views
named by :data:`envs.dynamics.STATE_FIELDS`. The Gymnasium single and vector environments, the
heuristics, the LP scheduler and the oracle are all built on these functions, so a model-based RL
or planning method that rolls the model forward here sees exactly what the environments do.

The helpers below (:func:`chip_prices`, :func:`coverage`, :func:`knob_shares`, ...) run the same
compiled code that the step runs.
"""

from __future__ import annotations

import functools
import operator
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import dynamics as dyn
from envs.exogenous import Exogenous, Trend, draw_exogenous, exogenous_trend
from envs.scenario import Scenario, load_scenario
from envs.spaces import action_space, check_action, observation_space


@dataclass(frozen=True, eq=False)  # eq=False keeps identity hashing, which cached_property needs
class Params:
    """Everything fixed for an episode: the scenario, the action variant and the kernels' tables."""

    scenario: Scenario
    variant: str
    discrete: bool
    tables: dyn.Tables
    offsets: dyn.Offsets
    state_shapes: tuple[tuple[int, ...], ...]
    info_shapes: tuple[tuple[int, ...], ...]
    initial_row: np.ndarray
    action_space: spaces.Space
    observation_space: spaces.Box

    @property
    def weeks(self) -> int:
        return self.scenario.weeks

    @functools.cached_property
    def info_reader(self) -> InfoReader:
        """Names the raw info rows of this scenario (built once, it precomputes the layout)."""
        return InfoReader(self)

    @functools.cached_property
    def _step_constants(self) -> tuple[int, tuple[int, ...], str, int, int, int]:
        """(variant code, one action's shape, accepted dtype kinds, observation and info lengths, the reward's
        column): worked out once, since the single env steps through here every week."""
        return (dyn.VARIANTS.index(self.variant), tuple(self.action_space.shape), "iu" if self.discrete else "fiu",
                int(self.observation_space.shape[0]), int(self.offsets.info[-1]),
                int(self.offsets.info[dyn.INFO.reward]))

    @functools.cached_property
    def exogenous_trend(self) -> Trend:
        """The deterministic part of the scenario's exogenous paths, for :func:`envs.exogenous.draw_exogenous`."""
        return exogenous_trend(self.scenario)

    @functools.cached_property
    def _plain_tables(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """The tables and offsets as plain tuples, for :func:`envs.dynamics.step_rows_tuples`."""
        return tuple(self.tables), tuple(self.offsets)


def params(scenario: str | dict | Scenario | None = None, variant: str = "datacenter",
           discrete: bool = False) -> Params:
    """The immutable parameters of ``scenario`` (name, YAML path, dict or Scenario) for one action variant."""
    if variant not in dyn.VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {list(dyn.VARIANTS)}")
    scenario = load_scenario(scenario)
    dims = dyn.scenario_dims(scenario)
    offsets = dyn.scenario_offsets(scenario)
    tables = dyn.scenario_tables(scenario)
    _, state_shapes = dyn.layout(dyn.STATE_FIELDS, dims)
    _, info_shapes = dyn.layout(dyn.INFO_FIELDS, dims)
    return Params(scenario=scenario, variant=variant, discrete=discrete, tables=tables, offsets=offsets,
                  state_shapes=tuple(state_shapes), info_shapes=tuple(info_shapes),
                  initial_row=_initial_row(scenario, offsets, tables),
                  action_space=action_space(scenario, variant, discrete), observation_space=observation_space(scenario))


def _initial_row(scenario: Scenario, offsets: dyn.Offsets, tables: dyn.Tables) -> np.ndarray:
    """The state row of a datacenter at the start of an episode: the scenario's cash; the initial fleet,
    ``initial_fleet_age_weeks`` old, booked at what it cost then less straight-line depreciation since;
    a site sized to its IT load (or, with a power cap, to the scenario's grid power / PUE), as old; no orders
    in flight; every HBM generation's price index 1; every class served; RL students at their initial quality."""
    a, o = scenario.arrays, offsets.state
    row = np.zeros(int(o[-1]))

    def put(name: str, value: Any) -> None:
        i = getattr(dyn.STATE, name)
        row[o[i]:o[i + 1]] = value

    age = float(scenario.initial_fleet_age_weeks)
    fleet = a["initial_fleet"]
    paid = fleet * dyn.chip_prices_rows(np.array([-age]), np.ones((1, scenario.n_hbm_generations)), tables)[0]
    life = scenario.depreciation_years * dyn.WEEKS_PER_YEAR
    site_kw = float(fleet @ a["system_power_w"]) / dyn.W_PER_KW
    if scenario.site["power_cap"]:
        grid_it_kw = scenario.site["initial_grid_mw"] * dyn.W_PER_KW / scenario.pue
        if grid_it_kw < site_kw - 1e-6:
            raise ValueError(f"site.initial_grid_mw: {scenario.site['initial_grid_mw']} MW at PUE {scenario.pue} "
                             f"powers {grid_it_kw:.0f} kW of IT load, less than the initial fleet's {site_kw:.0f} kW; "
                             f"raise it to at least {site_kw * scenario.pue / dyn.W_PER_KW:.3f} MW")
        site_kw = grid_it_kw
    site_paid = site_kw * scenario.facility_capex_usd_per_kw
    site_life = scenario.facility_life_years * dyn.WEEKS_PER_YEAR
    put("cash", float(scenario.initial_cash_usd))
    put("fleet", fleet)
    put("age_weeks", np.where(fleet > 0, age, 0.0))
    put("book_value", paid * max(1.0 - age / life, 0.0))
    put("depreciation_rate", paid / life)
    put("site_kw", site_kw)
    put("site_book_value", site_paid * max(1.0 - age / site_life, 0.0))
    put("site_depreciation_rate", site_paid / site_life)
    put("hbm_price", 1.0)
    put("last_served_fraction", 1.0)
    put("last_admissible_load", dyn.MAX_UTILISATION_IN_QUEUE)  # the most the dynamics report
    put("quality", a["initial_quality"])
    return row


_KIND = {"f": np.float64, "i": np.int64, "b": bool}


@dataclass(frozen=True, eq=False)
class State:
    """B datacenters at the start of a week: ``rows`` (B, S) in the layout of ``envs.dynamics.STATE_FIELDS``,
    and the exogenous paths they follow (``exogenous``, and ``exo_rows`` packed for the kernels).

    Each declared field reads as an array with a leading batch axis: ``state.fleet`` (B, K),
    ``state.pipeline`` (B, K, L), ``state.week`` (B,) int, ``state.bankrupt`` (B,) bool, ...
    A step returns a new State; the arrays of the old one are not changed.
    """

    rows: np.ndarray
    exo_rows: np.ndarray
    exogenous: Exogenous
    params: Params

    @property
    def batch_size(self) -> int:
        return self.rows.shape[0]


def _field(index: int, name: str, kind: str) -> property:
    def read(self: State) -> np.ndarray:
        o = self.params.offsets.state
        view = self.rows[:, o[index]:o[index + 1]].reshape(self.rows.shape[0], *self.params.state_shapes[index])
        return view if kind == "f" else view.astype(_KIND[kind])

    return property(read, doc=f"``{name}`` of each datacenter (see envs.dynamics.STATE_FIELDS)")


for _i, (_name, _, _kind) in enumerate(dyn.STATE_FIELDS):
    setattr(State, _name, _field(_i, _name, _kind))


def episode_generator(seed: int) -> np.random.Generator:
    """The generator an env's ``reset(seed=seed)`` draws its exogenous path from (Gymnasium's seeding),
    shared by the vector env and by tuning, so a seed gives the same path everywhere."""
    return gym.utils.seeding.np_random(seed)[0]


def reset(params: Params, seed: int | np.random.Generator | None = None, exogenous: Exogenous | None = None,
          batch: int = 1) -> tuple[State, np.ndarray]:
    """(state, observation (B, O) float32) at the start of an episode.

    The exogenous paths are ``exogenous`` if given, else ``batch`` paths drawn from ``seed`` (an int
    or a numpy Generator; None draws fresh entropy).
    """
    if exogenous is None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        exogenous = draw_exogenous(params.scenario, rng, batch, params.exogenous_trend)
    elif seed is not None:
        raise ValueError("give reset() either a seed or exogenous paths, not both")
    B = exogenous.hbm_supply.shape[0]
    G = params.scenario.n_hbm_generations
    if exogenous.hbm_supply.shape[2:] != (G,):
        raise ValueError(f"exogenous HBM paths have shape {exogenous.hbm_supply.shape}; scenario "
                         f"{params.scenario.name!r} has {G} HBM pools {params.scenario.hbm_generations}, "
                         f"so they must be (B, T, {G})")
    state = State(np.tile(params.initial_row, (B, 1)), exogenous.pack(), exogenous, params)
    return state, observe(params, state)


def reset_rows(params: Params, state: State, mask: np.ndarray, exogenous: Exogenous) -> State:
    """``state`` with the datacenters in ``mask`` (B,) restarted on ``exogenous`` (one path per True entry).

    The rows are copied; the exogenous paths of the restarted datacenters are written into the
    state's path arrays in place, because copying every path would cost far more than the step.
    """
    for name in Exogenous.__dataclass_fields__:
        getattr(state.exogenous, name)[mask] = getattr(exogenous, name)
    state.exo_rows[mask] = exogenous.pack()
    rows = state.rows.copy()
    rows[mask] = params.initial_row
    return State(rows, state.exo_rows, state.exogenous, params)


def observe(params: Params, state: State, obs: np.ndarray | None = None,
            mask: np.ndarray | None = None) -> np.ndarray:
    """(B, O) float32 observations; with ``obs`` and ``mask``, only the rows in ``mask`` are recomputed, in place."""
    B = state.rows.shape[0]
    out = np.empty((B, params.observation_space.shape[0]), dtype=np.float32) if obs is None else obs
    rows = np.arange(B) if mask is None else np.flatnonzero(mask)
    dyn.observe_rows(state.rows, state.exo_rows, params.tables, params.offsets, rows, out)
    return out


def _as_actions(params: Params, action: Any, batch: int) -> np.ndarray:
    """(B, A) float64 actions of the right shape and kind (their values are checked by the kernels)."""
    arr = np.asarray(action)
    _, shape, kinds, _, _, _ = params._step_constants
    if arr.shape[1:] == shape and arr.shape[:1] == (batch,) and arr.dtype.kind in kinds:
        return arr.astype(np.float64).reshape(batch, -1)
    _reject(params, arr, batch)


def _reject(params: Params, action: Any, batch: int) -> None:
    arr = np.asarray(action)
    check_action(arr, params.action_space, batch)  # raises, naming what is wrong and what is allowed
    raise ValueError(f"action {arr.tolist()} is not a valid action of {params.action_space}")


def _checked_actions(params: Params, action: Any, batch: int) -> np.ndarray:
    """(B, A) float64 actions; anything malformed raises the error of :func:`envs.spaces.check_action`."""
    act = _as_actions(params, action, batch)
    if not dyn.valid_actions(act, params.discrete):
        _reject(params, action, batch)
    return act


def step_arrays(params: Params, state: State, action: Any) -> tuple[State, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`step` with info as the raw (B, I) array (see :func:`info_dict`); the environments' fast path."""
    B = state.rows.shape[0]
    act = _as_actions(params, action, B)
    variant, _, _, n_obs, n_info, reward_column = params._step_constants
    rows = np.empty_like(state.rows)
    obs = np.empty((B, n_obs), dtype=np.float32)
    info = np.empty((B, n_info))
    if B >= dyn.PARALLEL_FROM:
        valid = dyn.step_rows_parallel(variant, params.discrete, act, state.rows, state.exo_rows, params.tables,
                                       params.offsets, rows, obs, info)
    else:
        valid = dyn.step_rows_tuples(variant, params.discrete, act, state.rows, state.exo_rows,
                                     *params._plain_tables, rows, obs, info)
    if not valid:
        _reject(params, action, B)
    return State(rows, state.exo_rows, state.exogenous, params), obs, info[:, reward_column], info


def step_single(params: Params, state: State, action: Any,
                info_rows: InfoRows | None = None) -> tuple[State, np.ndarray, float, dict[str, Any]]:
    """:func:`step` of one datacenter (B = 1) with one unbatched action: (next state, observation (O,), reward,
    info of Python scalars and (K,), (C,) or (C, K) arrays). The single env's path: it runs every step, so it checks
    the action's shape and kind once, without batching it first, and writes the raw info into ``info_rows`` (the
    env keeps one, so the info's arrays are reused; a fresh one if None)."""
    arr = np.asarray(action)
    variant, shape, kinds, n_obs, _, _ = params._step_constants
    if arr.shape != shape or arr.dtype.kind not in kinds:
        _reject(params, arr[None], 1)
    row = (info_rows or InfoRows(params)).take()
    rows = np.empty(state.rows.shape)  # not empty_like: its dispatch costs more than the allocation
    obs = np.empty((1, n_obs), dtype=np.float32)
    if not dyn.step_rows_tuples(variant, params.discrete, arr.astype(np.float64)[None], state.rows, state.exo_rows,
                                *params._plain_tables, rows, obs, row.info):
        _reject(params, arr[None], 1)
    reward, info = params.info_reader.read(row)
    return State(rows, state.exo_rows, state.exogenous, params), obs[0], reward, info


def decode(params: Params, state: State, action: Any) -> tuple[np.ndarray, ...]:
    """(orders (B, K) chips wanted, sales (B, K) chips to sell, shares (B, 1 + 2C, K) of each chip type's serving
    fleet per role, site expansion blocks (B,), chips rented in (B, K) and let out (B, K), the cluster contract
    answer (B,) and the RL update share (B,)) that ``action``
    (B, A) asks for in ``state``, before the dynamics round, price, power and ration them."""
    act = _checked_actions(params, action, state.rows.shape[0])
    return dyn.decode_rows(dyn.VARIANTS.index(params.variant), params.discrete, act, state.rows, state.exo_rows,
                           params.tables, params.offsets)


def step(params: Params, state: State, action: Any) -> tuple[State, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One week for every datacenter: (next state, observation (B, O), reward (B,), info of (B, ...) arrays).

    ``action`` is (B, *action_space.shape). A datacenter is done when ``info["bankrupt"]``
    (terminated) or when ``state.week`` reaches ``params.weeks`` (truncated).
    """
    state, obs, reward, info = step_arrays(params, state, action)
    return state, obs, reward, info_dict(params, info)


class InfoRow(NamedTuple):
    """A raw info row (1, I) for :func:`step_single`, the arrays of its info (views of it) and a dict naming them."""

    info: np.ndarray
    arrays: tuple[np.ndarray, ...]
    named: dict[str, Any]


class InfoReader:
    """Turns raw info rows into dicts of named values (arrays for a batch, Python scalars for one row)."""

    def __init__(self, params: Params):
        offsets = params.offsets.info
        spec = [(name, int(offsets[i]), shape, kind)
                for i, ((name, _, kind), shape) in enumerate(zip(dyn.INFO_FIELDS, params.info_shapes))
                if i != dyn.INFO.reward]
        floats = [(n, o) for n, o, shape, kind in spec if shape == () and kind == "f"]
        self._floats = floats
        self._others = [(n, o, _KIND[kind]) for n, o, shape, kind in spec if shape == () and kind != "f"]
        self._arrays = [(n, slice(o, o + int(np.prod(shape))), shape) for n, o, shape, _ in spec if shape]
        self._width = int(offsets[-1])
        # The single env reads a row's scalars every step, so the recipe is precomputed: one ``tolist`` (the
        # reward's column, popped after, included), the ints and bools retyped by position.
        scalars = dyn.INFO_FIELDS[:dyn.N_INFO_SCALARS]
        self._ints = tuple(i for i, (_, _, kind) in enumerate(scalars) if kind == "i")
        self._bools = tuple(i for i, (_, _, kind) in enumerate(scalars) if kind == "b")
        self._scalar_names = tuple(name for name, _, _ in scalars if name != "reward")
        vectors = [(n, s) for n, s, shape in self._arrays if len(shape) == 1]
        self._array_names = (*(n for n, _ in vectors), *(n for n, _, shape in self._arrays if len(shape) > 1))
        # One C call cuts every vector from the row (INFO_FIELDS declares dozens, so it returns a tuple): half
        # the time of a Python slice per vector.
        self._vectors = operator.itemgetter(*(s for _, s in vectors))
        self._matrices = [(s, shape) for _, s, shape in self._arrays if len(shape) > 1]

    def batch(self, info: np.ndarray) -> dict[str, np.ndarray]:
        """Every info entry as a (B, ...) array."""
        B = info.shape[0]
        out = {name: info[:, o] for name, o in self._floats}
        out.update({name: info[:, o].astype(kind) for name, o, kind in self._others})
        out.update({name: info[:, s].reshape(B, *shape) for name, s, shape in self._arrays})
        return out

    def empty_row(self) -> InfoRow:
        """A new raw info row for :func:`step_single`, its arrays cut and named."""
        info = np.empty((1, self._width))
        row = info[0]
        arrays = (*self._vectors(row), *(row[s].reshape(shape) for s, shape in self._matrices))
        named = dict.fromkeys(self._scalar_names)  # the scalars' places come first, as they always have
        named.update(zip(self._array_names, arrays))
        return InfoRow(info, arrays, named)

    def read(self, row: InfoRow) -> tuple[float, dict[str, Any]]:
        """(the reward, the info: Python scalars and the row's (K,), (C,) or (C, K) arrays) of a row the kernels
        wrote. The dict is new; its arrays are the row's."""
        values = row.info[0, :dyn.N_INFO_SCALARS].tolist()
        for j in self._ints:
            values[j] = int(values[j])
        for j in self._bools:
            values[j] = values[j] > 0.0
        reward = values.pop(dyn.INFO.reward)
        info = row.named.copy()
        info.update(zip(self._scalar_names, values))
        return reward, info


class InfoRows:
    """Where :func:`step_single` writes one caller's raw info (a single env keeps one): rows reused while nothing
    outside holds them or their arrays.

    An info dict holds dozens of arrays cut from its row, and making them took a third of a single env's step in
    Python; a reused row keeps its arrays, so a step only copies a dict and sets the scalars. A row is reused only
    when ``sys.getrefcount`` shows that no info handed out from it, none of its arrays and no view of them (a numpy
    view of a view holds the row itself) is held anywhere; otherwise a fresh row replaces it, so an info a caller
    keeps never changes. Two rows alternate, so a caller that keeps each step's info until the next (as vector envs
    do) still reuses them.
    """

    def __init__(self, params: Params):
        self._reader = params.info_reader
        self._rows: list[InfoRow | None] = [None, None]
        self._next = 0
        self._free = 0  # the references of a row nothing outside holds (every row's are the same); 0 before the first

    def __getstate__(self) -> dict[str, Any]:
        # A copy (pickle, deepcopy) would cut a row's arrays off the row they view; the copy makes its own rows.
        return {**self.__dict__, "_rows": [None, None], "_free": 0}

    def take(self) -> InfoRow:
        """A row to write the next step's info into."""
        i = self._next
        self._next = 1 - i
        row = self._rows[i]
        if row is not None and _references(row) == self._free:
            return row
        row = self._rows[i] = self._reader.empty_row()
        if not self._free:
            self._free = _references(row)
        return row


def _references(row: InfoRow) -> int:
    """The references to a row's buffer and arrays, summed: more than a new row's exactly when something else holds
    one of them."""
    return sum(map(sys.getrefcount, (row.info, *row.arrays)))


def info_dict(params: Params, info: np.ndarray) -> dict[str, np.ndarray]:
    """The raw (B, I) info of :func:`step_arrays` as named (B, ...) arrays."""
    return params.info_reader.batch(info)


# --- Helpers policies share with the dynamics (the same compiled code) ----------------------------
def _hbm_indices(params: Params, hbm_price: Any, batch: int) -> np.ndarray:
    """(B, G) HBM price indices from (B, G), a scalar for all, or (B,) when there is one pool."""
    G = params.scenario.n_hbm_generations
    arr = np.asarray(hbm_price, dtype=np.float64)
    if arr.ndim == 1 and G == 1:
        arr = arr[:, None]
    if arr.ndim not in (0, 2) or (arr.ndim == 2 and arr.shape[0] not in (1, batch)) \
            or (arr.ndim == 2 and arr.shape[1] != G):
        raise ValueError(f"hbm_price: expected one index per HBM generation {params.scenario.hbm_generations}, "
                         f"shape ({batch}, {G}), or a scalar; got shape {arr.shape}")
    return np.ascontiguousarray(np.broadcast_to(arr, (batch, G)))


def chip_prices(params: Params, week: np.ndarray, hbm_price: np.ndarray) -> np.ndarray:
    """(B, K) deployed price of one chip (chip, server, network and storage) at weeks ``week`` (B,) and HBM
    price indices ``hbm_price`` (B, G), one per HBM generation (``state.hbm_price``): what an order pays per
    chip. Each HBM chip's price moves with its own generation's index."""
    week = _weeks(week)
    return dyn.chip_prices_rows(week, _hbm_indices(params, hbm_price, week.shape[0]), params.tables)


def rent_prices(params: Params, week: np.ndarray, hbm_price: np.ndarray) -> np.ndarray:
    """(B, K) $ a week to rent one chip of each type in the cloud at weeks ``week`` (B,) and HBM price indices
    ``hbm_price`` (B, G); 0 where the chip has no rental market (yet)."""
    week = _weeks(week)
    return dyn.rent_prices_rows(week, _hbm_indices(params, hbm_price, week.shape[0]), params.tables)


def capacity_rules(params: Params, state: State, expansion: float, rent_in: float, rent_out: float,
                   orders: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the compact action's expansion, rent-in and rent-out entries (u in [0, 1], one value for every row)
    decide in ``state`` with chips ``orders`` (B, K) wanted: (site blocks (B,), chips rented in (B, K), chips
    let out (B, K))."""
    B = state.rows.shape[0]
    return dyn.capacity_rule_rows(np.full(B, float(expansion)), np.full(B, float(rent_in)),
                                  np.full(B, float(rent_out)), np.asarray(orders, dtype=np.float64).reshape(B, -1),
                                  state.rows, state.exo_rows, params.tables, params.offsets)


def contract_offer(params: Params, state: State) -> tuple[np.ndarray, np.ndarray]:
    """(the week's cluster training contract offer in H100s (B,), 0 if none; the chip type the acceptance rule
    would reserve it on (B,), -1 if none has enough free chips)."""
    return dyn.contract_offer_rows(state.rows, state.exo_rows, params.tables, params.offsets)


def resale_prices(params: Params, state: State) -> np.ndarray:
    """(B, K) what one used chip of each type fetches on the secondary market this week."""
    return dyn.resale_prices_rows(state.week.astype(np.float64), state.hbm_price, state.age_weeks, params.tables)


def available_mask(params: Params, week: np.ndarray) -> np.ndarray:
    """(B, K) True where the chip can be bought at week ``week`` (B,): it is on the market and sold (not only
    rented out as cloud capacity)."""
    return ((_weeks(week)[:, None] >= params.tables.chip[dyn.CHIP.available_week])
            & (params.tables.chip[dyn.CHIP.purchasable] > 0))


def demand_with_backlog(params: Params, state: State) -> np.ndarray:
    """(B, C) what each fleet is asked to serve this week: exogenous demand plus the carried-over backlog."""
    return dyn.state_rows_helpers(state.rows, state.exo_rows, params.tables, params.offsets)[0]


def owned_and_ordered(params: Params, state: State) -> np.ndarray:
    """(B, K) chips owned, queued for HBM or in transit."""
    return dyn.state_rows_helpers(state.rows, state.exo_rows, params.tables, params.offsets)[1]


def training_need(params: Params, state: State) -> np.ndarray:
    """(B,) FLOP/s that the active training jobs need to finish by their deadlines at an even pace."""
    return dyn.state_rows_helpers(state.rows, state.exo_rows, params.tables, params.offsets)[2]


def _weeks(week: Any, batch: int | None = None) -> np.ndarray:
    """``week`` as a float64 (B,) array (a scalar spread over ``batch`` rows), refusing NaN, infinite and negative
    weeks, which the kernels would otherwise read as some other week."""
    weeks = np.asarray(week, dtype=np.float64).reshape(-1)
    if batch is not None:
        weeks = np.broadcast_to(weeks, (batch,)).copy()
    if not (np.isfinite(weeks).all() and (weeks >= 0).all()):
        raise ValueError(f"week must be finite and >= 0 (weeks since the episode began), got {week!r}")
    return weeks


class ServingFactors(NamedTuple):
    """What the step reads about serving at each of B weeks (:func:`serving_factors`)."""

    prefill_efficiency: np.ndarray  # (B, K) the vendors' software efficiency that year: prefill rate multiple
    decode_efficiency: np.ndarray  # (B, K) the same for decode
    decode_meets_slo: np.ndarray  # (B, C, K) bool: chip k's decode meets class c's TPOT SLO that year
    price_multiple: np.ndarray  # (B, C) each class's token price then, as a multiple of its week-0 price


def serving_factors(params: Params, week: Any) -> ServingFactors:
    """:class:`ServingFactors` at ``week`` (B,) or a scalar (B = 1), read from the tables the step reads."""
    eff_p, eff_d, meets, price = dyn.serving_factors_rows(_weeks(week), params.tables)
    return ServingFactors(eff_p, eff_d, meets > 0, price)


def prefill_and_decode_chips(params: Params, demand: np.ndarray, week: Any) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) chips of type k for the prefill and for the decode of ``demand`` (B, C) at ``week`` (B,) or a
    scalar (the vendors' software efficiency of that year); inf where a demanded class does not fit that chip."""
    demand = np.asarray(demand, dtype=np.float64)
    return dyn.work_rows(_weeks(week, demand.shape[0]), demand, params.tables)


def chips_for_demand(params: Params, demand: np.ndarray, week: Any) -> np.ndarray:
    """(B, K) W_k(D): chips of type k that serve ``demand`` (B, C) alone, colocated, at ``week``; inf if a
    class does not fit."""
    prefill, decode = prefill_and_decode_chips(params, demand, week)
    return prefill + decode


def coverage(params: Params, chips: np.ndarray, demand: np.ndarray, week: Any,
             work: np.ndarray | None = None) -> np.ndarray:
    """(B,) share of ``demand`` (B, C) that ``chips`` (B, K) can serve at ``week``, sum_k N_k / W_k(D); inf
    without demand. ``work`` is ``chips_for_demand(params, demand, week)`` when the caller has it already."""
    demand = np.asarray(demand, dtype=np.float64)
    work = chips_for_demand(params, demand, week) if work is None else work
    return dyn.coverage_rows(np.asarray(chips, dtype=np.float64), demand, np.asarray(work, dtype=np.float64))


def knob_shares(params: Params, fleet: np.ndarray, demand: np.ndarray, knobs: np.ndarray, need: np.ndarray,
                week: Any) -> np.ndarray:
    """(B, 1 + 2C, K) shares of each chip type's fleet from the knobs (B, N_KNOBS) in [0, 1] at ``week``; see
    :func:`envs.dynamics._knob_shares` for what each knob does. ``need`` (B,) is :func:`training_need`."""
    f64 = np.float64
    fleet = np.asarray(fleet, dtype=f64)
    return dyn.knob_shares_rows(_weeks(week, fleet.shape[0]), fleet, np.asarray(demand, dtype=f64),
                                np.asarray(knobs, dtype=f64), np.asarray(need, dtype=f64), params.tables)


def served_with_peaks(params: Params, capacity: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Mean tokens/s served of each class (last axis) given ``capacity`` and mean ``demand`` of the same shape,
    when load peaks at the class's peak-to-mean factor and load above capacity is shed."""
    demand = np.asarray(demand, dtype=np.float64)
    capacity = np.broadcast_to(np.asarray(capacity, dtype=np.float64), demand.shape).copy()
    return dyn.served_with_peaks_array(capacity, demand, params.tables.cls[dyn.CLASS.peak_to_mean].copy())


def failed_chips(fleet: np.ndarray, p_fail: float, u: np.ndarray) -> np.ndarray:
    """Chips failing in a week: ``fleet`` x the weekly rate ``p_fail``, rounded stochastically with uniforms ``u``."""
    fleet = np.asarray(fleet, dtype=np.float64)
    return dyn.failed_chips_array(fleet, float(p_fail), np.broadcast_to(np.asarray(u, dtype=np.float64),
                                                                        fleet.shape).copy())


def hbm_market_path(params: Params, supply: np.ndarray, other: np.ndarray,
                    stacks_ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(our HBM allocation (T, G), HBM price index at the start of each week (T, G)) of each HBM generation
    over a path of its ``supply``, ``other`` buyers' demand and our ``stacks_ordered`` each week (all (T, G),
    e.g. ``exogenous.hbm_supply[0]``; see :func:`generation_stacks`), from an index of 1."""
    f64 = np.float64
    return dyn.hbm_market_path(np.ascontiguousarray(supply, dtype=f64), np.ascontiguousarray(other, dtype=f64),
                               np.ascontiguousarray(stacks_ordered, dtype=f64), params.tables)


def generation_stacks(params: Params) -> np.ndarray:
    """(K, G) HBM stacks each chip draws from each generation's pool (one nonzero entry per HBM chip; SRAM
    and GDDR chips' rows are zero): ``orders @ generation_stacks(params)`` is the stacks orders need per pool."""
    a = params.scenario.arrays
    generation = a["hbm_generation"].astype(int)
    out = np.zeros((params.scenario.n_chips, params.scenario.n_hbm_generations))
    hbm = generation >= 0
    out[np.flatnonzero(hbm), generation[hbm]] = a["hbm_stacks"][hbm]
    return out


def action_masks(params: Params, state: State) -> np.ndarray:
    """(B, sum(nvec)) bool valid levels of the discrete variants (for MaskablePPO).

    A chip weight above level 0 is masked when the chip is not on sale, or when one order unit of it
    costs more than cash plus credit. A capacity target level is masked when the level below it
    already orders more than cash plus credit can pay for even in the cheapest chip on sale: the
    dynamics would scale it down to the same spend, so the higher levels are redundant.
    """
    if not params.discrete:
        raise AttributeError("action_masks() exists only for the discrete variants (a MultiDiscrete action space)")
    B, K = state.rows.shape[0], params.scenario.n_chips
    masks = []
    if params.variant != "scheduling":
        headroom = np.maximum(state.cash + params.scenario.credit_limit_usd, 0.0)
        prices = chip_prices(params, state.week, state.hbm_price)
        on_sale = available_mask(params, state.week)
        affordable = prices * params.tables.chip[dyn.CHIP.order_unit] <= headroom[:, None]
        weights = np.ones((B, K, dyn.LEVELS), dtype=bool)
        weights[:, :, 1:] = (on_sale & affordable)[:, :, None]
        # one pass for both
        demand, on_hand, _ = dyn.state_rows_helpers(state.rows, state.exo_rows, params.tables, params.offsets)
        work = chips_for_demand(params, demand, state.week)
        owned = coverage(params, on_hand, demand, state.week, work)
        usable = on_sale & np.isfinite(work) & (work > 0)
        cheapest = np.where(usable, work * prices, np.inf).min(1)  # $ per unit of coverage
        targets = np.arange(dyn.LEVELS) / (dyn.LEVELS - 1) * dyn.MAX_COVERAGE
        shortfall = np.maximum(targets[None, :] - owned[:, None], 0.0)
        cost = np.where(shortfall > 0, shortfall * cheapest[:, None], 0.0)
        target = np.ones((B, dyn.LEVELS), dtype=bool)
        target[:, 1:] = cost[:, :-1] < headroom[:, None]
        sale = np.ones((B, dyn.LEVELS), dtype=bool)  # selling is always possible
        # Expansion and renting levels above 0 mean nothing where the scenario has no power cap or rental market.
        expand = np.ones((B, dyn.LEVELS), dtype=bool)
        expand[:, 1:] = params.tables.scalar[dyn.SCALAR.power_capped] > 0
        rent = np.ones((B, dyn.LEVELS), dtype=bool)
        rent[:, 1:] = params.tables.scalar[dyn.SCALAR.max_rent_chips_per_week] > 0
        masks += [weights.reshape(B, K * dyn.LEVELS), target, sale, expand, rent, rent.copy()]
    if params.variant != "procurement":
        masks.append(np.ones((B, dyn.N_KNOBS * dyn.LEVELS), dtype=bool))
    return np.concatenate(masks, axis=1)
