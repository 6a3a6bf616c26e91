"""Chip, model and efficiency catalogs, loaded from the TOML files in ``hardware/data``.

Each file is validated once at import. A figure in the data files is a ``{value, source}`` table;
estimates carry ``estimate = true`` and a ``reasoning``. Lookups are case-insensitive and accept
the aliases listed in the data files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomllib

DATA_DIR = Path(__file__).parent / "data"

PRECISIONS = ("bf16", "fp8", "int8", "fp4")
SEGMENTS = ("training", "inference", "both")
MEMORY_KINDS = ("HBM2", "HBM2e", "HBM3", "HBM3e", "HBM4", "HBM", "SRAM", "GDDR6", "LPDDR5X")
EXECUTIONS = ("kernel-launch", "static-dataflow")
_MONTH = re.compile(r"^(20\d\d)-(0[1-9]|1[0-2])$")


class CatalogError(ValueError):
    """A data file is malformed: the message names the file, the entry and the field."""


class UnknownNameError(KeyError):
    """A chip or model name that the catalog does not know; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class Figure:
    """One sourced number (or month string) from a data file."""

    value: Any
    source: str
    estimate: bool = False
    reasoning: str = ""


@dataclass(frozen=True)
class Chip:
    """An accelerator. Numeric fields are plain floats in SI-friendly units; ``figures`` keeps provenance."""

    name: str
    aliases: tuple[str, ...]
    vendor: str
    segment: str
    memory_kind: str
    execution: str
    memory_gb: float
    memory_bw_tbps: float
    hbm_stacks: int
    peak_tflops: Mapping[str, float]
    tdp_w: float
    price_usd: float
    interconnect_gbps: float
    available: str
    lead_time_weeks: float
    layer_floor_s: float
    hop_latency_s: float
    max_tensor_parallel: int | None
    figures: Mapping[str, Figure] = field(repr=False, compare=False)

    @property
    def uses_hbm(self) -> bool:
        return self.hbm_stacks > 0

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if p in self.peak_tflops)

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; raises ValueError if the chip lacks it."""
        if precision not in self.peak_tflops:
            raise ValueError(
                f"chip {self.name!r} has no {precision!r} rate; it supports {list(self.precisions)}"
            )
        return self.peak_tflops[precision] * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.memory_bw_tbps * 1e12


@dataclass(frozen=True)
class Model:
    """A transformer's shape. Counts are plain numbers; ``params`` and ``active_params`` are in units of one."""

    name: str
    aliases: tuple[str, ...]
    source: str
    params: float
    active_params: float
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    kv_per_token_per_layer: int
    context: int
    experts: int
    experts_per_token: int
    tied_embeddings: bool = False

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def attention_dim(self) -> int:
        return self.heads * self.head_dim

    def kv_bytes_per_token(self, kv_bytes_per_element: float) -> float:
        return self.layers * self.kv_per_token_per_layer * kv_bytes_per_element

    def shape_param_count(self) -> float:
        """Parameters implied by the shape (gated FFN; embeddings twice unless tied): a cross-check on ``params``."""
        d, a = self.hidden, self.attention_dim
        attention = 2 * d * a + 2 * d * self.kv_heads * self.head_dim
        ffn = 3 * d * self.ffn * self.experts
        embeddings = (1 if self.tied_embeddings else 2) * self.vocab * d
        return self.layers * (attention + ffn) + embeddings


def _figure(raw: Any, where: str) -> Figure:
    if not isinstance(raw, dict) or "value" not in raw:
        raise CatalogError(f"{where}: expected a table {{ value = ..., source = \"...\" }}, got {raw!r}")
    source = raw.get("source", "")
    if not isinstance(source, str) or not source.strip():
        raise CatalogError(f"{where}: every figure needs a non-empty 'source'")
    estimate = raw.get("estimate", False)
    reasoning = raw.get("reasoning", "")
    if estimate and not str(reasoning).strip():
        raise CatalogError(f"{where}: an estimate needs a 'reasoning' saying how it was reached")
    unknown = set(raw) - {"value", "source", "estimate", "reasoning"}
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}; allowed: value, source, estimate, reasoning")
    return Figure(raw["value"], source, bool(estimate), str(reasoning))


def _positive(fig: Figure, where: str, *, allow_zero: bool = False) -> float:
    value = fig.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogError(f"{where}: value must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise CatalogError(f"{where}: value must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _choice(entry: dict, key: str, allowed: tuple[str, ...], where: str) -> str:
    value = entry.get(key)
    if value not in allowed:
        raise CatalogError(f"{where}.{key}: {value!r} is not one of {list(allowed)}")
    return value


# Plausible ranges catch unit mistakes (GB vs GiB is fine; MB or TB is not).
_CHIP_RANGES = {
    "memory_gb": (0.1, 2000.0),
    "memory_bw_tbps": (0.1, 50000.0),
    "tdp_w": (30.0, 30000.0),
    "price_usd": (500.0, 5e6),
    "interconnect_gbps": (10.0, 10000.0),
    "lead_time_weeks": (1.0, 104.0),
}
# Latencies are written in microseconds; a value outside this range is a unit slip (ns or ms).
_LATENCY_RANGE_US = (0.05, 1000.0)


def _parse_chip(entry: dict, where: str) -> Chip:
    figures: dict[str, Figure] = {}
    numbers: dict[str, float] = {}
    for key, (low, high) in _CHIP_RANGES.items():
        if key not in entry:
            raise CatalogError(f"{where}: missing field {key!r}")
        fig = _figure(entry[key], f"{where}.{key}")
        value = _positive(fig, f"{where}.{key}")
        if not low <= value <= high:
            raise CatalogError(f"{where}.{key}: {value} is outside the plausible range [{low}, {high}]; check the unit")
        figures[key], numbers[key] = fig, value
    stacks = _figure(entry.get("hbm_stacks"), f"{where}.hbm_stacks")
    figures["hbm_stacks"] = stacks
    n_stacks = int(_positive(stacks, f"{where}.hbm_stacks", allow_zero=True))
    memory_kind = _choice(entry, "memory_kind", MEMORY_KINDS, where)
    if memory_kind.startswith("HBM") != (n_stacks > 0):
        raise CatalogError(f"{where}: memory_kind {memory_kind!r} and hbm_stacks {n_stacks} disagree")
    available = _figure(entry.get("available"), f"{where}.available")
    if not isinstance(available.value, str) or not _MONTH.match(available.value):
        raise CatalogError(f"{where}.available: expected 'YYYY-MM', got {available.value!r}")
    figures["available"] = available
    peaks_raw = entry.get("peak_tflops")
    if not isinstance(peaks_raw, dict) or "bf16" not in peaks_raw:
        raise CatalogError(f"{where}.peak_tflops: a table with at least 'bf16' is required")
    peaks: dict[str, float] = {}
    for precision, raw in peaks_raw.items():
        if precision not in PRECISIONS:
            raise CatalogError(f"{where}.peak_tflops.{precision}: unknown precision; allowed: {list(PRECISIONS)}")
        fig = _figure(raw, f"{where}.peak_tflops.{precision}")
        peaks[precision] = _positive(fig, f"{where}.peak_tflops.{precision}")
        figures[f"peak_tflops.{precision}"] = fig
    latencies = {}
    for key in ("layer_floor_us", "hop_latency_us"):
        if key not in entry:
            raise CatalogError(f"{where}: missing field {key!r} (microseconds; see the header of chips.toml)")
        fig = _figure(entry[key], f"{where}.{key}")
        value = _positive(fig, f"{where}.{key}")
        low, high = _LATENCY_RANGE_US
        if not low <= value <= high:
            raise CatalogError(f"{where}.{key}: {value} us is outside the plausible range [{low}, {high}]; "
                               "check the unit")
        figures[key], latencies[key] = fig, value * 1e-6
    max_tp = None
    if "max_tensor_parallel" in entry:
        fig = _figure(entry["max_tensor_parallel"], f"{where}.max_tensor_parallel")
        if isinstance(fig.value, bool) or not isinstance(fig.value, int) or fig.value < 1:
            raise CatalogError(f"{where}.max_tensor_parallel: expected a whole number >= 1, got {fig.value!r}")
        figures["max_tensor_parallel"], max_tp = fig, fig.value
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise CatalogError(f"{where}.aliases: expected a list of strings")
    return Chip(
        name=entry["name"],
        aliases=tuple(aliases),
        vendor=str(entry.get("vendor", "")),
        segment=_choice(entry, "segment", SEGMENTS, where),
        memory_kind=memory_kind,
        execution=_choice(entry, "execution", EXECUTIONS, where),
        hbm_stacks=n_stacks,
        peak_tflops=MappingProxyType(peaks),
        available=available.value,
        layer_floor_s=latencies["layer_floor_us"],
        hop_latency_s=latencies["hop_latency_us"],
        max_tensor_parallel=max_tp,
        figures=MappingProxyType(figures),
        **numbers,
    )


_MODEL_INTS = ("layers", "hidden", "ffn", "heads", "kv_heads", "head_dim", "vocab",
               "kv_per_token_per_layer", "context", "experts", "experts_per_token")


def _parse_model(entry: dict, where: str) -> Model:
    if not str(entry.get("source", "")).strip():
        raise CatalogError(f"{where}: every model needs a non-empty 'source'")
    ints = {}
    for key in _MODEL_INTS:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CatalogError(f"{where}.{key}: expected a positive integer, got {value!r}")
        ints[key] = value
    params, active = entry.get("params_b"), entry.get("active_params_b")
    for key, value in (("params_b", params), ("active_params_b", active)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise CatalogError(f"{where}.{key}: expected a positive number of billions, got {value!r}")
    if active > params:
        raise CatalogError(f"{where}: active_params_b {active} exceeds params_b {params}")
    if ints["experts_per_token"] > ints["experts"]:
        raise CatalogError(f"{where}: experts_per_token exceeds experts")
    tied = entry.get("tied_embeddings", False)
    if not isinstance(tied, bool):
        raise CatalogError(f"{where}.tied_embeddings: expected true or false, got {tied!r}")
    return Model(name=entry["name"], aliases=tuple(entry.get("aliases", [])), source=entry["source"],
                 params=params * 1e9, active_params=active * 1e9, tied_embeddings=tied, **ints)


def _load_entries(filename: str, key: str) -> list[dict]:
    path = DATA_DIR / filename
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get(key)
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path}: expected one or more [[{key}]] tables")
    for i, entry in enumerate(entries):
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise CatalogError(f"{path}: [[{key}]] number {i + 1} has no 'name'")
    return entries


def _index(items: list, kind: str) -> dict[str, Any]:
    index: dict[str, Any] = {}
    for item in items:
        for label in (item.name, *item.aliases):
            norm = _normalise(label)
            if norm in index and index[norm] is not item:
                raise CatalogError(f"{kind} name or alias {label!r} is used twice")
            index[norm] = item
    return index


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.lower())


def _load_efficiency() -> Mapping[str, Figure]:
    path = DATA_DIR / "efficiency.toml"
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    figures = {}
    for section, table in data.items():
        for key, raw in table.items():
            fig = _figure(raw, f"{path.name}:{section}.{key}")
            _positive(fig, f"{path.name}:{section}.{key}")
            figures[f"{section}.{key}"] = fig
    return MappingProxyType(figures)


_CHIPS = [_parse_chip(e, f"chips.toml:{e['name']}") for e in _load_entries("chips.toml", "chip")]
_MODELS = [_parse_model(e, f"models.toml:{e['name']}") for e in _load_entries("models.toml", "model")]
_CHIP_INDEX = _index(_CHIPS, "chip")
_MODEL_INDEX = _index(_MODELS, "model")
EFFICIENCY = _load_efficiency()


def efficiency(key: str) -> float:
    """A value from efficiency.toml, e.g. ``efficiency("compute.mfu")``."""
    return float(EFFICIENCY[key].value)


def list_chips() -> list[str]:
    """Canonical names of every chip in the catalog, in file order."""
    return [c.name for c in _CHIPS]


def list_models() -> list[str]:
    """Canonical names of every model in the catalog, in file order."""
    return [m.name for m in _MODELS]


def get_chip(name: str | Chip) -> Chip:
    """Look up a chip by name or alias (case-insensitive); a Chip passes through unchanged."""
    if isinstance(name, Chip):
        return name
    try:
        return _CHIP_INDEX[_normalise(name)]
    except (KeyError, AttributeError):
        raise UnknownNameError(f"unknown chip {name!r}; valid chips: {', '.join(list_chips())}") from None


def get_model(name: str | Model) -> Model:
    """Look up a model by name or alias (case-insensitive); a Model passes through unchanged."""
    if isinstance(name, Model):
        return name
    try:
        return _MODEL_INDEX[_normalise(name)]
    except (KeyError, AttributeError):
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(list_models())}") from None
