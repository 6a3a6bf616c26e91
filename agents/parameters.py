"""Named, bounded parameters of a policy: documented defaults, validation, and the vector a tuner searches.

A policy declares its parameters as an ordered ``{name: Param}`` mapping; :func:`resolve` turns what a caller
gives into a complete, validated ``{name: value}`` dict, and :func:`to_vector` / :func:`from_vector` map it to
and from the box :func:`bounds` that :func:`agents.tuning.optimise` searches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Param:
    """One parameter: its documented default and the closed interval of values it may take."""

    default: float
    low: float
    high: float
    doc: str = ""

    def __post_init__(self):
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} is outside [{self.low}, {self.high}]")


Declared = Mapping[str, Param]


def defaults(declared: Declared) -> dict[str, float]:
    return {name: p.default for name, p in declared.items()}


def resolve(declared: Declared, given: Mapping[str, float] | None, owner: str,
            base: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every declared parameter's value: ``base`` (the defaults when None) overlaid by ``given``.

    Raises ValueError naming ``owner``, the parameter and its range for an unknown name, a value that is
    not a finite number, or one outside its bounds."""
    values = dict(defaults(declared) if base is None else base)
    for name, value in (given or {}).items():
        if name not in declared:
            accepted = ", ".join(declared) or "none"
            raise ValueError(f"{owner} has no parameter {name!r}; its parameters are: {accepted}")
        p = declared[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise ValueError(f"{owner} parameter {name!r} must be a finite number, got {value!r}")
        if not p.low <= value <= p.high:
            raise ValueError(f"{owner} parameter {name!r} = {value} is outside [{p.low}, {p.high}] ({p.doc})")
        values[name] = float(value)
    return values


def bounds(declared: Declared) -> list[tuple[float, float]]:
    return [(p.low, p.high) for p in declared.values()]


def to_vector(declared: Declared, values: Mapping[str, float]) -> np.ndarray:
    return np.array([values[name] for name in declared], dtype=float)


def from_vector(declared: Declared, x: np.ndarray) -> dict[str, float]:
    # Clipped: scipy's candidates sit inside the box, but float rounding must not make resolve() refuse them.
    return {name: float(np.clip(v, p.low, p.high)) for (name, p), v in zip(declared.items(), x)}
