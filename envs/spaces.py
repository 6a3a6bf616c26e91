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


def n_roles(scenario: Scenario) -> int:
    """Rows of an allocation: training, then prefill and decode of each class."""
    return 1 + 2 * scenario.n_classes


def action_space(scenario: Scenario, variant: str, discrete: bool = False) -> spaces.Space:
    if variant == "fine":
        if discrete:
            raise ValueError("the fine variant has a continuous action only; use discrete=False")
        return spaces.Box(-1.0, 1.0, shape=(scenario.n_chips * (2 + n_roles(scenario)),), dtype=np.float32)
    # Compact: K chip weights, the capacity target and the sale entry, then the knobs.
    n_orders = scenario.n_chips + 2 if variant in ("datacenter", "procurement") else 0
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
                sale_fraction: np.ndarray | None = None) -> np.ndarray:
    """The fine variant's action that decodes to these order fractions (K,) of the weekly maximum, shares
    (1+2C, K) of each chip type's fleet, and sale fractions (K,) of each type's fleet (default: none)."""
    if (shares.sum(0) > 1.0 + 1e-9).any() or (shares < 0).any():
        raise ValueError("each chip type's shares must be >= 0 and sum to at most 1")
    sales = np.zeros(scenario.n_chips) if sale_fraction is None else np.asarray(sale_fraction, dtype=float)
    if (sales < 0).any() or (sales > 1).any():
        raise ValueError("sale fractions must lie in [0, 1]")
    orders = np.where(order_fraction > 0, order_fraction, -1.0)
    return np.concatenate([orders, np.where(sales > 0, sales, -1.0), 2.0 * shares.reshape(-1) - 1.0]
                          ).astype(np.float32)
