"""A batch of B datacenters behind one interface, stepped by the compiled kernels or by the reference.

``CompiledSimulator`` (the default backend) runs :mod:`envs.compiled`; ``ReferenceSimulator``
runs the array-API reference (:mod:`envs.core`, :mod:`envs.spaces`) on NumPy. Both validate
actions with the same errors and expose ``state`` (:class:`envs.core.State`) and ``exogenous``,
so the environments and policies do not depend on which one steps them.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.compiled import (
    I_REWARD,
    INFO_FIELDS,
    N_INFO_SCALARS,
    S_BANKRUPT,
    S_WEEK,
    STATE_FIELDS,
    VARIANT_CODES,
    layout,
    observe_rows,
    pack_exogenous,
    scenario_tables,
    step_batch,
    valid_actions,
)
from envs.core import Exogenous, State, initial_state, step
from envs.scenario import Scenario
from envs.spaces import check_action, decode, observation_size, observe

BACKENDS = ("compiled", "reference")


def _take_rows(exo: Exogenous, mask: np.ndarray, rows: Exogenous) -> None:
    """Overwrite the paths of the datacenters in ``mask`` with ``rows`` (one per True entry)."""
    for name in Exogenous.__dataclass_fields__:
        getattr(exo, name)[mask] = getattr(rows, name)


class ReferenceSimulator:
    """The array-API reference transition on NumPy (about 0.5 ms a step whatever B is)."""

    def __init__(self, scenario: Scenario, variant: str, discrete: bool, action_space: spaces.Space,
                 batch: int | None):
        self.scenario, self.variant, self.discrete = scenario, variant, discrete
        self.action_space, self.batch = action_space, batch
        self.state: State | None = None
        self.exogenous: Exogenous | None = None

    def reset(self, exo: Exogenous) -> np.ndarray:
        self.exogenous = exo
        self.state = initial_state(self.scenario, exo.demand.shape[0])
        return self.observe()

    def reset_rows(self, mask: np.ndarray, rows: Exogenous) -> None:
        _take_rows(self.exogenous, mask, rows)
        self.state = self.state.where(mask, initial_state(self.scenario, mask.shape[0]))

    def observe(self, obs: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        fresh = observe(self.scenario, self.state, self.exogenous)
        if obs is None:
            return fresh
        obs[mask] = fresh[mask]
        return obs

    def week_and_bankrupt(self) -> tuple[np.ndarray, np.ndarray]:
        return self.state.week, self.state.bankrupt

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        act = check_action(action, self.action_space, self.batch)
        act = act if self.batch is not None else act[None]
        orders, shares = decode(self.scenario, self.variant, act, self.state, self.exogenous, self.discrete)
        self.state, reward, info = step(self.scenario, self.state, orders, shares, self.exogenous)
        return self.observe(), reward, info

    @staticmethod
    def batch_info(info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return info

    @staticmethod
    def info_of(info: dict[str, np.ndarray], i: int) -> dict[str, Any]:
        return {k: v[i].item() if np.ndim(v[i]) == 0 else v[i].copy() for k, v in info.items()}


class CompiledSimulator:
    """The Numba kernels of :mod:`envs.compiled`: microseconds a datacenter."""

    def __init__(self, scenario: Scenario, variant: str, discrete: bool, action_space: spaces.Space,
                 batch: int | None):
        self.scenario, self.variant, self.discrete = scenario, variant, discrete
        self.action_space, self.batch = action_space, batch
        dims = {"K": scenario.n_chips, "C": scenario.n_classes, "J": scenario.training["slots"],
                "L": max(int(scenario.base_lead_weeks), 1)}
        self._dims = np.array([dims[d] for d in "KCJL"], dtype=np.int64)
        self._tables = scenario_tables(scenario)
        self._state_offsets, self._state_shapes = layout(STATE_FIELDS, dims)
        self._info_offsets, info_shapes = layout(INFO_FIELDS, dims)
        self._initial = self._pack(initial_state(scenario, 1))[0]
        self._n_obs = observation_size(scenario)
        self._shape = action_space.shape if batch is None else (batch, *action_space.shape)
        self._kinds = "iu" if isinstance(action_space, spaces.MultiDiscrete) else "fiu"
        # How info rows become dicts: scalars by kind, then arrays (the single env skips reshaping vectors).
        spec = [(name, int(self._info_offsets[i]), shape, kind)
                for i, ((name, _, kind), shape) in enumerate(zip(INFO_FIELDS, info_shapes)) if i != I_REWARD]
        self._floats = [(n, o) for n, o, shape, kind in spec if shape == () and kind == "f"]
        self._float_names = tuple(n for n, _ in self._floats)
        self._float_values = operator.itemgetter(*(o for _, o in self._floats))
        self._others = [(n, o, int if kind == "i" else bool) for n, o, shape, kind in spec
                        if shape == () and kind != "f"]
        self._arrays = [(n, slice(o, o + int(np.prod(shape))), shape) for n, o, shape, _ in spec if shape]
        self._vectors = [(n, s) for n, s, shape in self._arrays if len(shape) == 1]
        self._matrices = [(n, s, shape) for n, s, shape in self._arrays if len(shape) > 1]
        self._rows: np.ndarray | None = None
        self._exo: np.ndarray | None = None
        self._state: State | None = None
        self.exogenous: Exogenous | None = None

    def _pack(self, state: State) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(state, name), dtype=np.float64).reshape(state.cash.shape[0], -1)
                               for name, _ in STATE_FIELDS], axis=1)

    @property
    def state(self) -> State | None:
        """The current state as :class:`envs.core.State` (views of this week's row buffer, which steps replace)."""
        if self._state is None and self._rows is not None:
            rows, off = self._rows, self._state_offsets
            B = rows.shape[0]
            fields = {name: rows[:, off[i]:off[i + 1]].reshape(B, *shape)
                      for i, ((name, _), shape) in enumerate(zip(STATE_FIELDS, self._state_shapes))}
            fields["week"] = fields["week"].astype(np.int64)
            fields["bankrupt"] = fields["bankrupt"] > 0
            self._state = State(**fields)
        return self._state

    def reset(self, exo: Exogenous) -> np.ndarray:
        self.exogenous, self._exo = exo, pack_exogenous(exo)
        self._rows, self._state = np.tile(self._initial, (exo.demand.shape[0], 1)), None
        return self.observe()

    def reset_rows(self, mask: np.ndarray, rows: Exogenous) -> None:
        _take_rows(self.exogenous, mask, rows)
        self._exo[mask] = pack_exogenous(rows)
        self._rows, self._state = self._rows.copy(), None
        self._rows[mask] = self._initial

    def observe(self, obs: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """(B, O) observations; with ``obs`` and ``mask``, only the rows in ``mask`` are recomputed, in place."""
        B = self._rows.shape[0]
        out = np.empty((B, self._n_obs), dtype=np.float32) if obs is None else obs
        rows = np.arange(B) if mask is None else np.flatnonzero(mask)
        observe_rows(self._rows, self._exo, *self._tables, self._state_offsets, self._dims, rows, out)
        return out

    def week_and_bankrupt(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) weeks elapsed and (B,) bankruptcy flags, without building the whole State."""
        off = self._state_offsets
        return self._rows[:, off[S_WEEK]].astype(np.int64), self._rows[:, off[S_BANKRUPT]] > 0

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arr = np.asarray(action)
        if arr.shape != self._shape or arr.dtype.kind not in self._kinds:
            self._reject(arr)
        act = arr.astype(np.float64).reshape(self._rows.shape[0], -1)
        if not valid_actions(act, self.discrete):
            self._reject(arr)
        rows = np.empty_like(self._rows)
        obs = np.empty((rows.shape[0], self._n_obs), dtype=np.float32)
        info = np.empty((rows.shape[0], int(self._info_offsets[-1])))
        step_batch(VARIANT_CODES[self.variant], self.discrete, act, self._rows, self._exo, *self._tables,
                   self._state_offsets, self._info_offsets, self._dims, rows, obs, info)
        self._rows, self._state = rows, None
        return obs, info[:, self._info_offsets[I_REWARD]], info

    def _reject(self, action: np.ndarray) -> None:
        check_action(action, self.action_space, self.batch)  # raises, naming what is wrong and what is allowed
        raise ValueError(f"action {action.tolist()} is not a valid action of {self.action_space}")

    def batch_info(self, info: np.ndarray) -> dict[str, np.ndarray]:
        B = info.shape[0]
        out = {name: info[:, o] for name, o in self._floats}
        out.update({name: info[:, o].astype(kind) for name, o, kind in self._others})
        out.update({name: info[:, s].reshape(B, *shape) for name, s, shape in self._arrays})
        return out

    def info_of(self, info: np.ndarray, i: int) -> dict[str, Any]:
        row = info[i]
        values = row[:N_INFO_SCALARS].tolist()
        out = dict(zip(self._float_names, self._float_values(values)))
        for name, o, kind in self._others:
            out[name] = kind(values[o])
        for name, s in self._vectors:
            out[name] = row[s]
        for name, s, shape in self._matrices:
            out[name] = row[s].reshape(shape)
        return out


def make_simulator(backend: str, scenario: Scenario, variant: str, discrete: bool, action_space: spaces.Space,
                   batch: int | None) -> CompiledSimulator | ReferenceSimulator:
    """The simulator of ``backend`` ("compiled" or "reference") for ``batch`` datacenters (None: a single env)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
    cls = CompiledSimulator if backend == "compiled" else ReferenceSimulator
    return cls(scenario, variant, discrete, action_space, batch)
