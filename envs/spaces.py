"""The observation and action spaces, action validation, and the encoding helpers policies use.

The decoding of actions and the observation themselves are compiled with the dynamics
(:func:`envs.dynamics._decode`, :func:`envs.dynamics._observe`).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.dynamics import LEVELS, N_KNOBS, OBS_CLIP, WEIGHT_SHARPNESS, observation_size, scenario_dims
from envs.scenario import Scenario


def chip_weight(u: np.ndarray) -> np.ndarray:
    """Order weight of a compact action's chip entry u in [0, 1] (0 at u = 0, ~1 at u = 1)."""
    return np.exp(WEIGHT_SHARPNESS * (u - 1.0)) - np.exp(-WEIGHT_SHARPNESS)


def weight_entry(share: np.ndarray) -> np.ndarray:
    """Inverse of :func:`chip_weight` for relative shares in [0, 1] (the largest share maps to u = 1)."""
    top = 1.0 - np.exp(-WEIGHT_SHARPNESS)
    return np.clip(1.0 + np.log(share * top + np.exp(-WEIGHT_SHARPNESS)) / WEIGHT_SHARPNESS, 0.0, 1.0)


def observation_space(scenario: Scenario) -> spaces.Box:
    n = observation_size(scenario_dims(scenario))
    return spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(n,), dtype=np.float32)


N_CAPACITY_ENTRIES = 5  # compact entries after the chip weights: target, sale, expansion, rent in, rent out


def fine_size(scenario: Scenario) -> int:
    """Entries of the fine action: orders, sales, rent-in, rent-out (K each), one expansion, contract acceptance
    (K), one RL update share, then the shares."""
    return 5 * scenario.n_chips + 2 + n_roles(scenario) * scenario.n_chips


def n_roles(scenario: Scenario) -> int:
    """Rows of an allocation: training, then prefill and decode of each class."""
    return 1 + 2 * scenario.n_classes


def action_space(scenario: Scenario, variant: str, discrete: bool = False) -> spaces.Space:
    if variant == "fine":
        if discrete:
            raise ValueError("the fine variant has a continuous action only; use discrete=False")
        return spaces.Box(-1.0, 1.0, shape=(fine_size(scenario),), dtype=np.float32)
    # Compact: K chip weights, the capacity target, the sale, expansion, rent-in and rent-out entries, then the knobs.
    n_orders = scenario.n_chips + N_CAPACITY_ENTRIES if variant in ("datacenter", "procurement") else 0
    n_knobs = N_KNOBS if variant in ("datacenter", "scheduling") else 0
    if discrete:
        return spaces.MultiDiscrete([LEVELS] * (n_orders + n_knobs))
    return spaces.Box(-1.0, 1.0, shape=(n_orders + n_knobs,), dtype=np.float32)


def check_action(action, space: spaces.Space, batch: int | None = None) -> np.ndarray:
    """Reject NaN, inf, wrong shape, dtype or range with an error naming what is allowed."""
    arr = np.asarray(action)
    shape = space.shape if batch is None else (batch, *space.shape)
    if arr.shape != shape:
        raise ValueError(f"action has shape {arr.shape}; this environment expects {shape} ({space})")
    if isinstance(space, spaces.MultiDiscrete):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action dtype {arr.dtype} is not an integer type; expected integers for {space}")
        if (arr < 0).any() or (arr >= space.nvec).any():
            raise ValueError(f"action {arr.tolist()} is outside {space}: each entry must be in [0, nvec)")
        return arr
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"action dtype {arr.dtype} is not numeric; expected float32 in [-1, 1]")
    if not np.isfinite(arr).all():
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}; every entry must be a finite number in [-1, 1]")
    if (arr < -1.0 - 1e-6).any() or (arr > 1.0 + 1e-6).any():
        raise ValueError(f"action {arr.tolist()} is outside [-1, 1]; rescale it (or clip it yourself) before step()")
    return arr.astype(np.float64)


def fine_action(scenario: Scenario, order_fraction: np.ndarray, shares: np.ndarray,
                sale_fraction: np.ndarray | None = None, rent_in_fraction: np.ndarray | None = None,
                rent_out_fraction: np.ndarray | None = None, expansion_fraction: float = 0.0,
                accept_type: int | None = None, update_knob: float = 0.5) -> np.ndarray:
    """The fine variant's action that decodes to these order fractions (K,) of the weekly maximum, shares
    (1+2C, K) of each chip type's serving fleet, sale and rent-out fractions (K,) of each type's fleet,
    rent-in fractions (K,) of the rental market's weekly depth and an expansion fraction of the weekly
    maximum of site blocks (default: none of these), the chip type to accept the week's cluster contract on,
    and the RL update knob in [0, 1] (its share is knob x MAX_UPDATE_SHARE; default neutral)."""
    if (shares.sum(0) > 1.0 + 1e-9).any() or (shares < 0).any():
        raise ValueError("each chip type's shares must be >= 0 and sum to at most 1")
    K = scenario.n_chips
    parts = []
    for name, value in (("sale", sale_fraction), ("rent-in", rent_in_fraction), ("rent-out", rent_out_fraction)):
        fraction = np.zeros(K) if value is None else np.asarray(value, dtype=float)
        if fraction.shape != (K,) or (fraction < 0).any() or (fraction > 1).any():
            raise ValueError(f"{name} fractions must be {K} numbers in [0, 1], got {value!r}")
        parts.append(np.where(fraction > 0, fraction, -1.0))
    if not 0.0 <= expansion_fraction <= 1.0:
        raise ValueError(f"the expansion fraction must lie in [0, 1], got {expansion_fraction!r}")
    orders = np.where(order_fraction > 0, order_fraction, -1.0)
    expansion = [expansion_fraction if expansion_fraction > 0 else -1.0]
    accept = -np.ones(K)
    if accept_type is not None:
        if not 0 <= int(accept_type) < K:
            raise ValueError(f"accept_type must be a chip index in [0, {K}), got {accept_type!r}")
        accept[int(accept_type)] = 1.0
    if not 0.0 <= update_knob <= 1.0:
        raise ValueError(f"the RL update knob must lie in [0, 1], got {update_knob!r}")
    return np.concatenate([orders, *parts, expansion, accept, [2.0 * update_knob - 1.0],
                           2.0 * shares.reshape(-1) - 1.0]).astype(np.float32)
