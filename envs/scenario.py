"""Scenario files: YAML in ``envs/scenarios`` (or a path, or a dict), validated into immutable parameters.

A scenario may name a ``base`` scenario and override any part of it; ``drop_classes`` removes
workload classes of the base. Every market and demand figure must have a ``provenance`` entry
(a source, or ``"ASSUMPTION: reasoning"``); a missing entry is a validation error.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from envs.dynamics import HOURS_PER_WEEK, NEUTRAL_UPDATE_SHARE, WEEKS_PER_YEAR
from hardware import Workload, build_serving_tables, get_chip, vendor_efficiency
from hardware.catalog import MEMORY_KINDS, UnknownNameError, efficiency, get_model
from hardware.perf import WEIGHT_BYTES

H100 = "H100-SXM"  # training contracts are priced per H100-hour of market rent

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIO_NAMES = ("default", "hbm_shortage", "agent_surge", "small", "power_limited", "realtime_agents")
GROWTH_KINDS = ("exponential", "logistic")
# HBM generations a scenario's ``hbm.generation_mix`` may name: the catalog's HBM memory kinds, newest last
# ("HBM" alone, a chip whose generation its sources do not state, is not a generation).
HBM_GENERATIONS = tuple(k for k in MEMORY_KINDS if k.startswith("HBM") and k != "HBM")
POOLED = "pooled"  # the one generation of a scenario with ``hbm.pooled_generations: true``
MIX_YEARS = (2000.0, 2100.0)  # the years a generation mix may list


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1.5e8`` (no dot, no exponent sign) as a string; scientific notation reads as a float here."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$|^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*$"),
    list("-+0123456789"),
)


class ScenarioError(ValueError):
    """An invalid scenario: the message names the field, the value and what is allowed."""


# field -> (type, low, high); None bounds are open. Market and demand figures need provenance.
_TOP = {
    "weeks": (int, 4, 520), "initial_cash_usd": (float, 0, None), "credit_limit_usd": (float, 0, None),
    "cost_of_capital_per_year": (float, 0, 1), "max_order_chips_per_week": (int, 1, 1_000_000),
    "facility_capex_usd_per_kw": (float, 0, 1e6), "facility_life_years": (float, 1, 60),
    "order_refund_fraction": (float, 0, 1), "resale_age_decay_per_year": (float, 0, 5),
    "initial_fleet_age_weeks": (int, 0, 520),
    "base_lead_weeks": (int, 0, 104), "price_decline_per_year": (float, 0, 0.9),
    "maintenance_per_year": (float, 0, 1), "failure_rate_per_year": (float, 0, 1),
    "depreciation_years": (float, 0.5, 20), "energy_usd_per_kwh": (float, 0, 5), "pue": (float, 1, 3),
    "reward_scale_usd": (float, 1, None),
}
_HBM = {
    "supply_stacks_per_week": (float, 1, None), "supply_growth_per_year": (float, -0.9, 10),
    "our_allocation_share": (float, 0, 1), "other_demand_ratio": (float, 0, 10),
    "other_demand_growth_per_year": (float, -0.9, 10), "price_elasticity": (float, 0, 50),
    "price_smoothing": (float, 0, 1), "hbm_cost_share": (float, 0, 1),
    "shock_probability_per_week": (float, 0, 1), "shock_depth": (float, 0, 1), "shock_weeks": (int, 1, 104),
}
_TRAINING = {
    "arrivals_per_week": (float, 0, 100), "flops_per_job": (float, 1e15, 1e30),
    "rent_usd_per_h100_hour": (float, 0, 1_000), "contract_rent_multiple": (float, 0, 100),
    "deadline_weeks": (int, 1, 520), "slots": (int, 1, 16),
}
_CLASS = {
    "input_tokens": (int, 1, 1_000_000), "output_tokens": (int, 1, 1_000_000), "tpot_slo_s": (float, 1e-4, 60),
    "ttft_slo_s": (float, 1e-3, 86_400), "input_price_per_mtok_usd": (float, 0, 1_000),
    "output_price_per_mtok_usd": (float, 0, 1_000), "price_decline_per_year": (float, 0, 0.99),
    "peak_to_mean": (float, 1, 10), "demand_tokens_per_s": (float, 0, 1e12), "noise": (float, 0, 2),
}
# RL student classes: their decode chips spend a decided share of their time on RL updates, which keep the
# student's quality, and quality brings demand (see envs.dynamics, step 8b).
_RL_UPDATES = {"update_tokens_per_served_token": (float, 1e-6, 100), "quality_floor": (float, 0, 1),
               "decay_per_week": (float, 0, 1), "initial_quality": (float, 0, 1)}
_SHOCKS = {"probability_per_week": (float, 0, 1), "magnitude": (float, 0, 0.99), "weeks": (int, 1, 104)}
# Site power: with power_cap the site holds what was built; without it, it is built with each order (no limit).
_SITE = {"initial_grid_mw": (float, 0, 1e5), "expansion_block_mw": (float, 1e-3, 1e4),
         "expansion_lead_weeks": (int, 0, 520), "max_blocks_per_week": (int, 0, 1000)}
_SITE_OFF = {"power_cap": False, "initial_grid_mw": 0.0, "expansion_block_mw": 1.0, "expansion_lead_weeks": 0,
             "max_blocks_per_week": 0}
# Renting from and to the cloud market (by the week, at the chips' market rent).
_RENTAL = {"rent_out_fee": (float, 0, 1), "max_chips_per_week": (int, 0, 10_000_000)}
_RENTAL_OFF = {"enabled": False, "usd_per_chip_hour": {}, "rent_out_fee": 0.0, "max_chips_per_week": 0}
# Vendors that sell their accelerators only as cloud capacity (TPUs, Trainium, Inferentia): rented, never bought.
CLOUD_ONLY_VENDORS = ("Google", "AWS")
_PRECISIONS = tuple(WEIGHT_BYTES)
_PER_CHIP = ("initial_fleet", "order_unit_chips", "sram_chips_per_week", "system_capex_multiple",
             "system_power_multiple")
_TOP_KEYS = {"name", "base", "description", "start", "chips", "hbm", "training", "classes", "demand_shocks",
             "provenance", "drop_classes", "site", "rental", "selling", "disaggregation", *_PER_CHIP, *_TOP}


@dataclass(frozen=True)
class ClassParams:
    name: str
    model: str
    precision: str
    input_tokens: int
    output_tokens: int
    tpot_slo_s: float
    ttft_slo_s: float
    input_price_per_mtok_usd: float
    output_price_per_mtok_usd: float
    price_decline_per_year: float
    peak_to_mean: float
    demand_tokens_per_s: float
    growth: Mapping[str, Any]
    noise: float
    carry_over: bool
    rl_updates: Mapping[str, float] | None  # None: not an RL student class
    update_flops_per_token: float  # RL-update FLOPs that hold quality, per token of demand (0: none)


@dataclass(frozen=True)
class Scenario:
    """Validated scenario: the raw mapping plus the arrays the dynamics read. Immutable.

    ``raw`` holds only fields a scenario file may set, so ``load_scenario(dict(scenario.raw))``
    validates again; figures derived from them (a training job's contract value) are kept apart.
    """

    name: str
    description: str
    raw: Mapping[str, Any]
    start: dt.date
    weeks: int
    chips: tuple[str, ...]
    classes: tuple[ClassParams, ...]
    arrays: Mapping[str, np.ndarray]
    value_per_job_usd: float  # a training contract of flops_per_job FLOPs pays this (derived from market rent)
    hbm_generations: tuple[str, ...] = (POOLED,)  # the HBM pools, in the order of the dynamics' G axis

    @property
    def training(self) -> Mapping[str, Any]:
        """The training section, with the derived ``value_per_job_usd`` and the H100's training rate, in FLOP/s at
        the training MFU (``h100_train_flops_per_s``: a cluster contract's size is stated in H100s)."""
        return {**self.raw["training"], "value_per_job_usd": self.value_per_job_usd,
                "h100_train_flops_per_s": get_chip(H100).peak_flops("bf16") * efficiency("training.mfu")}

    @property
    def n_chips(self) -> int:
        return len(self.chips)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_hbm_generations(self) -> int:
        return len(self.hbm_generations)

    def __getattr__(self, key: str) -> Any:
        # Scalars of the scenario file read as attributes: scenario.credit_limit_usd, scenario.hbm["..."]
        raw = object.__getattribute__(self, "raw")
        if key in raw:
            return raw[key]
        raise AttributeError(key)


# A growth path is replaced whole (its keys depend on its kind, so merging could mix two kinds), and so is a
# generation mix (its shares add up across generations, so a variant gives the whole mix).
_REPLACED_WHOLE = ("growth", "generation_mix")


def merge_override(base: dict, override: Mapping) -> dict:
    """``base`` with ``override`` merged in: nested mappings merge; a growth path, a generation mix or any other
    value is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key not in _REPLACED_WHOLE:
            out[key] = merge_override(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(spec: str | Path | Mapping | None, seen: tuple[str, ...] = ()) -> dict:
    if spec is None:
        spec = "default"
    if isinstance(spec, Mapping):
        raw = dict(spec)
    else:
        path = SCENARIO_DIR / f"{spec}.yaml" if str(spec) in SCENARIO_NAMES else Path(spec)
        if not path.is_file():
            raise ScenarioError(f"scenario {str(spec)!r} is neither a registered name ({', '.join(SCENARIO_NAMES)}) "
                                f"nor an existing YAML file")
        try:
            raw = yaml.load(path.read_text(), Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ScenarioError(f"{path}: a scenario file must hold a mapping, got {type(raw).__name__}")
    base = raw.get("base")
    if base is None:
        if "drop_classes" in raw:
            raise ScenarioError("drop_classes: only a scenario with a 'base' can drop its base's classes")
        return raw
    if not isinstance(base, (str, Path)):
        raise ScenarioError(f"base: expected a scenario name ({', '.join(SCENARIO_NAMES)}) or a YAML path, "
                            f"got {base!r}")
    if base in seen:
        raise ScenarioError(f"scenario 'base' chain loops: {' -> '.join((*seen, base))}")
    merged = merge_override(_read(base, (*seen, str(base))), {k: v for k, v in raw.items() if k != "base"})
    dropped = raw.get("drop_classes", [])
    if not isinstance(dropped, list) or not all(isinstance(name, str) for name in dropped):
        raise ScenarioError(f"drop_classes: expected a list of class names, got {dropped!r}")
    for name in dropped:
        if name not in merged.get("classes", {}):
            raise ScenarioError(f"drop_classes: {name!r} is not a class of base {base!r}")
        merged["classes"].pop(name)
    merged.pop("drop_classes", None)
    return merged


def _number(section: Mapping, key: str, spec: tuple, where: str) -> float | int:
    kind, low, high = spec
    if key not in section:
        raise ScenarioError(f"{where}{key}: missing (required)")
    value = section[key]
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or not np.isfinite(value):
        raise ScenarioError(f"{where}{key}: expected a finite {'integer' if kind is int else 'number'}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScenarioError(f"{where}{key}: {value!r} is outside the allowed range [{low}, {high}]")
    return kind(value)


def _check_keys(section: Mapping, allowed: set, where: str) -> None:
    if not isinstance(section, Mapping):
        raise ScenarioError(f"{where.rstrip('.')}: expected a mapping, got {section!r}")
    unknown = set(section) - allowed
    if unknown:
        raise ScenarioError(f"{where}{sorted(unknown)[0]}: unknown field; allowed: {sorted(allowed)}")


def _is_count(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value)) and value >= 0


def _chip_mapping(raw: Mapping, key: str, chips: tuple[str, ...], fill: float) -> np.ndarray:
    """A per-chip number: a scalar for all, or a mapping of chip name (or ``default``) to number.

    Chips the mapping does not name get its ``default`` entry, else ``fill``. Catalog chips this
    scenario does not offer are ignored (a variant may drop chips of its base); unknown names are errors.
    """
    value = raw.get(key, {})
    if _is_count(value):
        return np.full(len(chips), float(value))
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{key}: expected a finite number >= 0 or a mapping of chip name to one, got {value!r}")
    numbers = {}
    for name, v in value.items():
        if not _is_count(v):
            raise ScenarioError(f"{key}.{name}: expected a finite number >= 0, got {v!r}")
        if name == "default":
            continue
        try:
            numbers[get_chip(name).name] = float(v)
        except UnknownNameError as exc:
            raise ScenarioError(f"{key}.{name}: {exc}") from None
    fallback = float(value.get("default", fill))
    return np.array([numbers.get(chip, fallback) for chip in chips])


def _parse_class(name: str, raw: Mapping) -> ClassParams:
    where = f"classes.{name}."
    if "train_fraction" in raw:
        raise ScenarioError(f"{where}train_fraction: the share of a student's chips spent on RL updates is now a "
                            f"decision; describe the class with rl_updates: {{{', '.join(_RL_UPDATES)}}} instead")
    _check_keys(raw, {"model", "precision", "growth", "carry_over", "rl_updates", *_CLASS}, where)
    try:
        model = get_model(raw.get("model", ""))
    except UnknownNameError as exc:
        raise ScenarioError(f"{where}model: {exc}") from None
    if raw.get("precision") not in _PRECISIONS:
        raise ScenarioError(f"{where}precision: {raw.get('precision')!r} is not one of {list(_PRECISIONS)}")
    numbers = {k: _number(raw, k, spec, where) for k, spec in _CLASS.items()}
    if numbers["input_tokens"] + numbers["output_tokens"] > model.context:
        raise ScenarioError(f"{where}input_tokens + output_tokens exceeds {model.name}'s context")
    growth = raw.get("growth")
    if not isinstance(growth, Mapping) or growth.get("kind") not in GROWTH_KINDS:
        raise ScenarioError(f"{where}growth.kind: must be one of {list(GROWTH_KINDS)}, got {growth!r}")
    if growth["kind"] == "exponential":
        _check_keys(growth, {"kind", "rate_per_year"}, f"{where}growth.")
        _number(growth, "rate_per_year", (float, -0.99, 100), f"{where}growth.")
    else:
        _check_keys(growth, {"kind", "ceiling_multiple", "midpoint_week", "steepness", "uncertainty"},
                    f"{where}growth.")
        _number(growth, "ceiling_multiple", (float, 1, 1e6), f"{where}growth.")
        _number(growth, "midpoint_week", (float, -520, 1040), f"{where}growth.")
        _number(growth, "steepness", (float, 1e-4, 10), f"{where}growth.")
        _number(growth, "uncertainty", (float, 0, 5), f"{where}growth.")
    carry = raw.get("carry_over", False)
    if not isinstance(carry, bool):
        raise ScenarioError(f"{where}carry_over: expected true or false, got {carry!r}")
    updates = raw.get("rl_updates")
    if updates is not None:
        if not isinstance(updates, Mapping):
            raise ScenarioError(f"{where}rl_updates: expected a mapping with {list(_RL_UPDATES)}, got {updates!r}")
        _check_keys(updates, set(_RL_UPDATES), f"{where}rl_updates.")
        updates = {k: _number(updates, k, spec, f"{where}rl_updates.") for k, spec in _RL_UPDATES.items()}
    # An RL update of a dense model costs about 6 x parameters FLOPs per training token (forward and backward).
    update_flops = 6.0 * model.params * updates["update_tokens_per_served_token"] if updates else 0.0
    return ClassParams(name=name, model=model.name, precision=raw["precision"], growth=dict(growth), carry_over=carry,
                       rl_updates=updates, update_flops_per_token=update_flops, **numbers)


def _year(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
            and MIX_YEARS[0] <= value <= MIX_YEARS[1])


def _check_generation_mix(mix: object) -> dict[str, dict[float, float]]:
    """The mix ``{generation: {year: share}}`` checked: known generations, years, shares in [0, 1], and the
    shares of any one time adding up to at most 1 (the rest is output of generations the scenario leaves out)."""
    where = "hbm.generation_mix"
    if not isinstance(mix, Mapping) or not mix:
        raise ScenarioError(f"{where}: expected a mapping of HBM generation to {{year: share of world HBM output}}, "
                            f"e.g. {{HBM3e: {{2025: 0.9, 2027: 0.3}}}}; got {mix!r}")
    out = {}
    for name, points in mix.items():
        if name not in HBM_GENERATIONS:
            raise ScenarioError(f"{where}.{name}: unknown HBM generation; allowed: {list(HBM_GENERATIONS)}")
        if not isinstance(points, Mapping) or not points:
            raise ScenarioError(f"{where}.{name}: expected a mapping of year to share (e.g. {{2025: 0.9}}), "
                                f"got {points!r}")
        for year, share in points.items():
            if not _year(year):
                raise ScenarioError(f"{where}.{name}: {year!r} is not a year between {MIX_YEARS[0]:.0f} and "
                                    f"{MIX_YEARS[1]:.0f} (2026 is 1 Jan 2026, 2026.5 mid-2026)")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not np.isfinite(share):
                raise ScenarioError(f"{where}.{name}.{year}: expected a finite number, got {share!r}")
            if not 0.0 <= share <= 1.0:
                raise ScenarioError(f"{where}.{name}.{year}: {share!r} is outside the allowed range [0, 1]")
        out[name] = {float(y): float(v) for y, v in sorted(points.items())}
    for year in sorted({y for points in out.values() for y in points}):
        total = sum(_share_at(points, year) for points in out.values())
        if total > 1.0 + 1e-9:
            raise ScenarioError(f"{where}: the shares add up to {total:.4g} at {year:g}; the generations' shares of "
                                f"one time must add up to at most 1")
    return out


def _share_at(points: Mapping[float, float], years: float | np.ndarray) -> np.ndarray:
    """A generation's share at ``years``: linear between the listed years, the first and last value outside them."""
    return np.interp(years, list(points), list(points.values()))


def _hbm_generations(section: Mapping, chips: tuple[str, ...], start: dt.date,
                     weeks: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, dict]:
    """The HBM pools of a scenario: (their names, (T, G) share of world HBM output of each in each week, (K,) each
    chip's pool (-1 for chips without HBM), the validated ``generation_mix`` and ``pooled_generations`` fields).

    Every HBM chip draws from its memory generation's pool; ``pooled_generations: true`` puts them all in one
    pool holding the whole world output (the model before generations, kept for ablations).
    """
    pooled = section.get("pooled_generations", False)
    if not isinstance(pooled, bool):
        raise ScenarioError(f"hbm.pooled_generations: expected true or false, got {pooled!r}")
    fields: dict[str, Any] = {"pooled_generations": pooled}
    mix = None
    if "generation_mix" in section:
        mix = _check_generation_mix(section["generation_mix"])
        fields["generation_mix"] = section["generation_mix"]
    specs = [get_chip(c) for c in chips]
    if pooled:
        return (POOLED,), np.ones((weeks, 1)), np.array([0.0 if c.uses_hbm else -1.0 for c in specs]), fields
    if mix is None:
        raise ScenarioError("hbm.generation_mix: missing (required unless hbm.pooled_generations is true); give "
                            "each HBM generation's share of world HBM output by year, e.g. {HBM3e: {2025: 0.9}}")
    names = tuple(g for g in HBM_GENERATIONS if g in mix)
    years = start.year + (start.month - 1) / 12.0 + np.arange(weeks) / WEEKS_PER_YEAR
    shares = np.stack([_share_at(mix[g], years) for g in names], axis=1)
    generation = []
    for c in specs:
        if not c.uses_hbm:
            generation.append(-1.0)
            continue
        if c.memory_kind not in HBM_GENERATIONS:
            raise ScenarioError(f"chips: {c.name} has memory_kind {c.memory_kind!r} (its generation is not stated), "
                                f"so it has no generation's pool to draw from; set hbm.pooled_generations: true or "
                                f"drop the chip")
        if c.memory_kind not in names or shares[:, names.index(c.memory_kind)].max() <= 0.0:
            raise ScenarioError(f"hbm.generation_mix.{c.memory_kind}: chip {c.name} uses {c.memory_kind}, which has "
                                f"no supply in the scenario's weeks ({years[0]:.2f}-{years[-1]:.2f}); give "
                                f"{c.memory_kind} a share above 0 in those years, or drop the chip")
        generation.append(float(names.index(c.memory_kind)))
    return names, shares, np.array(generation), fields


def _required_provenance(classes: tuple[ClassParams, ...], site: Mapping, rental: Mapping,
                         generation_mix: bool = False) -> list[str]:
    keys = [k for k in _TOP if k != "weeks"] + [*_PER_CHIP, "demand_shocks"]
    keys += [f"hbm.{k}" for k in _HBM] + [f"training.{k}" for k in (*_TRAINING, "model")]
    if generation_mix:
        keys.append("hbm.generation_mix")
    if site["power_cap"]:
        keys += [f"site.{k}" for k in _SITE]
    if rental["enabled"]:
        keys += [f"rental.{k}" for k in (*_RENTAL, "usd_per_chip_hour")]
    for c in classes:
        keys += [f"classes.{c.name}.{k}" for k in ("input_tokens", "output_tokens", "tpot_slo_s", "ttft_slo_s",
                                                   "input_price_per_mtok_usd", "output_price_per_mtok_usd",
                                                   "price_decline_per_year", "peak_to_mean", "demand_tokens_per_s",
                                                   "growth", "noise")]
        if c.rl_updates:
            keys += [f"classes.{c.name}.rl_updates.{k}" for k in _RL_UPDATES]
    return keys


def load_scenario(spec: str | Path | Mapping | Scenario | None = None) -> Scenario:
    """Load and validate a scenario by registered name, YAML path or mapping (``None`` = default)."""
    if isinstance(spec, Scenario):
        return spec
    raw = _read(spec)
    _check_keys(raw, _TOP_KEYS, "")
    for key in ("name", "start", "chips", "classes", "hbm", "training"):
        if key not in raw:
            raise ScenarioError(f"{key}: missing (required)")
    if not isinstance(raw["name"], str) or not raw["name"].strip():
        raise ScenarioError(f"name: expected a non-empty string, got {raw['name']!r}")
    top = {k: _number(raw, k, spec, "") for k, spec in _TOP.items()}
    try:
        start = dt.date.fromisoformat(f"{raw['start']}-01")
    except (TypeError, ValueError):
        raise ScenarioError(f"start: expected 'YYYY-MM', got {raw['start']!r}") from None
    if not isinstance(raw["chips"], list) or not raw["chips"]:
        raise ScenarioError("chips: expected a non-empty list of chip names")
    try:
        chips = tuple(get_chip(c).name for c in raw["chips"])
    except UnknownNameError as exc:
        raise ScenarioError(f"chips: {exc}") from None
    if len(set(chips)) != len(chips):
        raise ScenarioError(f"chips: a chip is listed twice: {list(chips)}")
    _check_keys(raw["hbm"], {*_HBM, "generation_mix", "pooled_generations"}, "hbm.")
    hbm = {k: _number(raw["hbm"], k, spec, "hbm.") for k, spec in _HBM.items()}
    generations, mix, chip_generation, hbm_raw = _hbm_generations(raw["hbm"], chips, start, top["weeks"])
    hbm.update(hbm_raw)
    _check_keys(raw["training"], {"model", "clusters", *_TRAINING}, "training.")
    training = {k: _number(raw["training"], k, spec, "training.") for k, spec in _TRAINING.items()}
    # With clusters, a contract reserves whole chips of one type for its weeks, if accepted; without, jobs are
    # FLOPs trained on every training-capable chip, accepted whenever a slot is free.
    training["clusters"] = raw["training"].get("clusters", False)
    if not isinstance(training["clusters"], bool):
        raise ScenarioError(f"training.clusters: expected true or false, got {training['clusters']!r}")
    try:
        training_model = get_model(raw["training"].get("model", "")).name
    except UnknownNameError as exc:
        raise ScenarioError(f"training.model: {exc}") from None
    if not isinstance(raw["classes"], Mapping) or not raw["classes"]:
        raise ScenarioError("classes: expected a mapping of one or more workload classes")
    classes = tuple(_parse_class(n, c) for n, c in raw["classes"].items())
    shocks_raw = raw.get("demand_shocks", {"probability_per_week": 0.0, "magnitude": 0.0, "weeks": 1})
    _check_keys(shocks_raw, set(_SHOCKS), "demand_shocks.")
    shocks = {k: _number(shocks_raw, k, spec, "demand_shocks.") for k, spec in _SHOCKS.items()}
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, Mapping):
        raise ScenarioError(f"provenance: expected a mapping of field to source, got {provenance!r}")
    site, rental = _parse_site(raw.get("site")), _parse_rental(raw.get("rental"), chips)
    switches = {name: raw.get(name, True) for name in ("selling", "disaggregation")}
    for name, value in switches.items():
        if not isinstance(value, bool):
            raise ScenarioError(f"{name}: expected true or false, got {value!r}")
    for key in _required_provenance(classes, site, rental, "generation_mix" in hbm):
        text = provenance.get(key) or provenance.get(key.split(".")[0])
        if not isinstance(text, str) or not text.strip():
            raise ScenarioError(f"provenance.{key}: every market and demand figure needs a source "
                                f"(or 'ASSUMPTION: reasoning')")
    initial = np.floor(_chip_mapping(raw, "initial_fleet", chips, 0.0))
    arrays = _build_arrays(raw, start, top["weeks"], chips, classes, initial, rental)
    # The HBM pools: each chip's generation (-1 without HBM), each generation's share of world output each week,
    # and the largest supply each generation reaches at the starting world output (the observation's scale).
    arrays = {**arrays, "hbm_generation": chip_generation, "hbm_mix": mix,
              "hbm_supply_scale": hbm["supply_stacks_per_week"] * mix.max(axis=0)}
    for value in arrays.values():
        value.setflags(write=False)
    # A training contract pays its H100-hours (at the training MFU) at market rent times the contract multiple.
    h100_flops_per_hour = get_chip(H100).peak_flops("bf16") * efficiency("training.mfu") * 3600.0
    value_per_job = (training["flops_per_job"] / h100_flops_per_hour * training["rent_usd_per_h100_hour"]
                     * training["contract_rent_multiple"])
    validated = {**raw, **top, "hbm": hbm,
                 "training": {**training, "model": training_model},
                 "demand_shocks": shocks, "site": site, "rental": rental, **switches}
    return Scenario(name=str(raw["name"]), description=str(raw.get("description", "")).strip(), raw=validated,
                    start=start, weeks=top["weeks"], chips=chips, classes=classes, arrays=arrays,
                    value_per_job_usd=float(value_per_job), hbm_generations=generations)


def _flag(section: Mapping, key: str, where: str) -> bool:
    value = section.get(key)
    if not isinstance(value, bool):
        raise ScenarioError(f"{where}{key}: expected true or false, got {value!r}")
    return value


def _parse_site(raw: Mapping | None) -> dict:
    """The site's power: off (no cap: the site is built with each order) unless ``power_cap: true``."""
    if raw is None:
        return dict(_SITE_OFF)
    _check_keys(raw, {"power_cap", *_SITE}, "site.")
    if not _flag(raw, "power_cap", "site."):
        return {**_SITE_OFF, **{k: v for k, v in raw.items() if k in _SITE}, "power_cap": False}
    return {"power_cap": True, **{k: _number(raw, k, spec, "site.") for k, spec in _SITE.items()}}


def _parse_rental(raw: Mapping | None, chips: tuple[str, ...]) -> dict:
    """The cloud rental market: off unless ``enabled: true``; ``usd_per_chip_hour`` maps chip names to their
    on-demand rent (chips it does not name have no rental market)."""
    if raw is None:
        return dict(_RENTAL_OFF)
    _check_keys(raw, {"enabled", "usd_per_chip_hour", *_RENTAL}, "rental.")
    if not _flag(raw, "enabled", "rental."):
        return dict(_RENTAL_OFF)
    numbers = {k: _number(raw, k, spec, "rental.") for k, spec in _RENTAL.items()}
    rents = raw.get("usd_per_chip_hour")
    if not isinstance(rents, Mapping) or not rents:
        raise ScenarioError(f"rental.usd_per_chip_hour: expected a mapping of chip name to $ per chip-hour, "
                            f"got {rents!r}")
    named = {}
    for name, value in rents.items():
        if not _is_count(value) or value <= 0:
            raise ScenarioError(f"rental.usd_per_chip_hour.{name}: expected a finite number > 0, got {value!r}")
        try:
            named[get_chip(name).name] = float(value)
        except UnknownNameError as exc:
            raise ScenarioError(f"rental.usd_per_chip_hour.{name}: {exc}") from None
    return {"enabled": True, "usd_per_chip_hour": {c: named[c] for c in chips if c in named}, **numbers}


def _efficiency_by_year(chips: tuple[str, ...], start: dt.date, weeks: int, table_year: float) -> np.ndarray:
    """(2, K, Y) prefill (MFU) and decode (MBU) multipliers of each chip in each year of the episode, from the
    vendors' software-efficiency factors at the middle of that year relative to the tables' year."""
    years = int(np.ceil(weeks / WEEKS_PER_YEAR))
    out = np.ones((2, len(chips), years))
    for k, chip in enumerate(chips):
        base_mfu, base_mbu = vendor_efficiency(chip, table_year)
        for y in range(years):
            mfu, mbu = vendor_efficiency(chip, table_year + y + 0.5)
            out[0, k, y], out[1, k, y] = mfu / base_mfu, mbu / base_mbu
    return out


def _build_arrays(raw, start, weeks, chips, classes, initial, rental):
    specs = [get_chip(c) for c in chips]
    available = []
    for c in specs:
        year, month = (int(x) for x in c.available.split("-"))
        days = (dt.date(year, month, 1) - start).days
        available.append(int(np.ceil(days / 7)))
    workloads = [Workload(c.name, c.model, c.precision, c.input_tokens, c.output_tokens, c.tpot_slo_s)
                 for c in classes]
    # The tables hold each chip's software at the start of the episode; the multipliers move it to the middle
    # of each episode year (so year 0 already differs from 1 where a vendor's software improves that year).
    table_year = start.year + (start.month - 1) / 12.0
    tables = build_serving_tables(list(chips), workloads, year=table_year)
    training_capable = np.array([c.segment != "inference" for c in specs])
    flagship = np.array([c.vendor == "NVIDIA" and c.uses_hbm for c in specs], dtype=float)
    arrays = {
        "available_week": np.array(available, dtype=float),
        "list_price": np.array([c.price_usd for c in specs]),
        "system_capex_multiple": _chip_mapping(raw, "system_capex_multiple", chips, 1.0),
        "tdp_w": np.array([c.tdp_w for c in specs]),
        "system_power_w": np.array([c.tdp_w for c in specs]) * _chip_mapping(raw, "system_power_multiple", chips, 1.0),
        "hbm_stacks": np.array([c.hbm_stacks for c in specs], dtype=float),
        "memory_gb": np.array([c.memory_gb for c in specs]),
        "order_unit": np.maximum(np.floor(_chip_mapping(raw, "order_unit_chips", chips, 1.0)), 1.0),
        # Only SRAM chips have a wafer cap; HBM chips queue for HBM stacks instead.
        "sram_cap": np.where([not c.uses_hbm for c in specs], _chip_mapping(raw, "sram_chips_per_week", chips, np.inf),
                             np.inf),
        "initial_fleet": initial,
        "train_flops_per_chip_s": np.where(training_capable, [c.peak_flops("bf16") for c in specs], 0.0)
        * efficiency("training.mfu"),
        "nvidia_hbm": flagship,
        "purchasable": np.array([c.vendor not in CLOUD_ONLY_VENDORS for c in specs], dtype=float),
        "fits": tables.fits.astype(float),
        "replica_chips": tables.replica_chips,
        "prefill_rate": tables.prefill_tokens_per_s_per_chip,
        "decode_rate": tables.decode_tokens_per_s_per_chip,
        "prefill_latency_s": tables.prefill_latency_s,
        "tpot_s": tables.tpot_s,
        "kv_bytes_per_request": tables.kv_bytes_per_request,
        "input_tokens": np.array([c.input_tokens for c in classes], dtype=float),
        "output_tokens": np.array([c.output_tokens for c in classes], dtype=float),
        "tpot_slo_s": np.array([c.tpot_slo_s for c in classes]),
        "ttft_slo_s": np.array([c.ttft_slo_s for c in classes]),
        "input_price_per_token": np.array([c.input_price_per_mtok_usd for c in classes]) / 1e6,
        "output_price_per_token": np.array([c.output_price_per_mtok_usd for c in classes]) / 1e6,
        "price_decline_per_year": np.array([c.price_decline_per_year for c in classes]),
        "peak_to_mean": np.array([c.peak_to_mean for c in classes]),
        "demand0": np.array([c.demand_tokens_per_s for c in classes]),
        "noise": np.array([c.noise for c in classes]),
        "carry_over": np.array([c.carry_over for c in classes], dtype=float),
        "update_flops_per_token": np.array([c.update_flops_per_token for c in classes]),
        "quality_floor": np.array([c.rl_updates["quality_floor"] if c.rl_updates else 1.0 for c in classes]),
        "quality_decay": np.array([c.rl_updates["decay_per_week"] if c.rl_updates else 0.0 for c in classes]),
        "initial_quality": np.array([c.rl_updates["initial_quality"] if c.rl_updates else 1.0 for c in classes]),
        "latency_class": np.array([c.ttft_slo_s < 60 for c in classes], dtype=float),
    }
    # Derived once here so the per-step transition does not recompute them.
    # Capacity sizing (coverage, chips needed) counts a student's training-capable decode chips at the neutral
    # update share; the transition applies the share decided each week.
    # (C, K) RL student class x training-capable chip type: the decode chips an update share applies to. One
    # mask for the env's sizing, the LP scheduler's rates and the oracle's update chips.
    updating = arrays["student_updating"] = (arrays["update_flops_per_token"] > 0)[:, None] & training_capable[None, :]
    arrays["serving_decode_rate"] = arrays["decode_rate"] * np.where(updating, 1.0 - NEUTRAL_UPDATE_SHARE, 1.0)
    for name, rate in (("prefill", arrays["prefill_rate"]), ("decode", arrays["serving_decode_rate"])):
        # A class that fits no chip gets no capacity anyway; 1.0 keeps the allocator's arithmetic finite.
        arrays[f"median_{name}_rate"] = np.array([np.median(r[f]) if f.any() else 1.0
                                                  for r, f in zip(rate, tables.fits)])
    arrays["kv_link_bytes_per_s"] = np.array(efficiency("network.kv_transfer_gbps") * 1e9)
    for name, rate in (("prompt", arrays["prefill_rate"]), ("output", arrays["serving_decode_rate"])):
        arrays[f"chip_s_per_{name}_token"] = np.where(tables.fits, 1.0 / np.where(tables.fits, rate, 1.0), 0.0)
    arrays["efficiency_by_year"] = _efficiency_by_year(chips, start, weeks, table_year)
    # A chip's weekly rent moves with its deployed price: the quoted rent (at the start of the episode, or at
    # launch for chips launched later) per dollar of the deployed price then, with no HBM premium.
    quoted_years = np.maximum(-arrays["available_week"], 0.0) / WEEKS_PER_YEAR
    quoted_price = (arrays["list_price"] * (1.0 - float(raw.get("price_decline_per_year", 0.0))) ** quoted_years
                    * arrays["system_capex_multiple"])
    rent = np.array([rental["usd_per_chip_hour"].get(c, 0.0) for c in chips])
    arrays["rent_per_price"] = rent * HOURS_PER_WEEK / quoted_price
    for value in arrays.values():
        value.setflags(write=False)
    return arrays

