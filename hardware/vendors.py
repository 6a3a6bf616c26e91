"""Vendor software efficiency by year, from ``data/vendors.toml``.

A chip reaches ``peak x compute.mfu x mfu_factor`` FLOP/s and ``peak x bandwidth.mbu x mbu_factor``
bytes/s, where the factors belong to its vendor and change with the year as software matures
(NVIDIA = 1 by construction: the global factors are calibrated on it).

>>> vendor_efficiency("MI300X", 2024)
(0.5, 0.85)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from hardware.catalog import CatalogError, Chip, _figure, _load_entries, get_chip, list_chips

DEFAULT_YEAR = 2025.0  # the year used when a caller passes year=None: the default scenario starts in Jan 2025
YEAR_RANGE = (2015.0, 2040.0)


@dataclass(frozen=True)
class VendorCurve:
    """One vendor's (year, mfu_factor, mbu_factor) points, sorted by year."""

    vendor: str
    years: tuple[float, ...]
    mfu: tuple[float, ...]
    mbu: tuple[float, ...]

    def at(self, year: float) -> tuple[float, float]:
        """Factors at ``year``: linear between listed years, held constant outside them."""
        ys = self.years
        if year <= ys[0]:
            return self.mfu[0], self.mbu[0]
        if year >= ys[-1]:
            return self.mfu[-1], self.mbu[-1]
        i = next(k for k in range(1, len(ys)) if year <= ys[k])
        w = (year - ys[i - 1]) / (ys[i] - ys[i - 1])
        return (self.mfu[i - 1] + w * (self.mfu[i] - self.mfu[i - 1]),
                self.mbu[i - 1] + w * (self.mbu[i] - self.mbu[i - 1]))


def _factor(raw: object, where: str) -> float:
    fig = _figure(raw, where)
    value = fig.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1.5:
        raise CatalogError(f"{where}: a factor must be a number in (0, 1.5], got {value!r}")
    return float(value)


def check_year(year: float | None) -> float:
    """``year`` as a float (``DEFAULT_YEAR`` for None); raises ValueError for anything else."""
    if year is None:
        return DEFAULT_YEAR
    if isinstance(year, bool) or not isinstance(year, (int, float)) or not math.isfinite(year) \
            or not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise ValueError(f"year must be a number between {YEAR_RANGE[0]:.0f} and {YEAR_RANGE[1]:.0f} "
                         f"(e.g. 2025 or 2025.5), or None for {DEFAULT_YEAR:.0f}; got {year!r}")
    return float(year)


def _parse_vendor(entry: dict, where: str) -> VendorCurve:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"{where}: every [[vendor]] needs a 'name'")
    points = entry.get("point")
    if not isinstance(points, list) or not points:
        raise CatalogError(f"{where} ({name}): at least one [[vendor.point]] with year, mfu and mbu is required")
    rows = []
    for i, p in enumerate(points):
        at = f"{where} ({name}) point {i + 1}"
        unknown = set(p) - {"year", "mfu", "mbu"}
        if unknown:
            raise CatalogError(f"{at}: unknown keys {sorted(unknown)}; allowed: year, mfu, mbu")
        if p.get("year") is None:
            raise CatalogError(f"{at}.year: missing")
        try:
            year = check_year(p["year"])
        except ValueError as exc:
            raise CatalogError(f"{at}.year: {exc}") from None
        rows.append((year, _factor(p.get("mfu"), f"{at}.mfu"), _factor(p.get("mbu"), f"{at}.mbu")))
    rows.sort()
    if len({r[0] for r in rows}) != len(rows):
        raise CatalogError(f"{where} ({name}): a year is listed twice")
    years, mfu, mbu = zip(*rows)
    return VendorCurve(name, years, mfu, mbu)


def _load() -> dict[str, VendorCurve]:
    entries = _load_entries("vendors.toml", "vendor")  # parses the TOML and checks every entry has a name
    curves = [_parse_vendor(e, f"vendors.toml [[vendor]] {i + 1}") for i, e in enumerate(entries)]
    by_name = {c.vendor: c for c in curves}
    if len(by_name) != len(curves):
        raise CatalogError("vendors.toml: a vendor is listed twice")
    missing = sorted({get_chip(c).vendor for c in list_chips()} - set(by_name))
    if missing:
        raise CatalogError(f"vendors.toml: no software-efficiency entry for vendor(s) {missing} used in chips.toml")
    return by_name


VENDORS = _load()


@lru_cache(maxsize=4096)
def vendor_factors(vendor: str, year: float) -> tuple[float, float]:
    """(mfu_factor, mbu_factor) of a vendor named in vendors.toml at an already-checked ``year``."""
    return VENDORS[vendor].at(year)


def vendor_efficiency(chip: str | Chip, year: float | None = None) -> tuple[float, float]:
    """(mfu_factor, mbu_factor) of ``chip``'s vendor in ``year`` (None: ``DEFAULT_YEAR``)."""
    return vendor_factors(get_chip(chip).vendor, check_year(year))
