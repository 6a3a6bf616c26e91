"""Unit economics of the scenario's chips: ``python -m benchmarks.unit_economics [--scenario NAME]``.

Prints, per chip on sale at the start of the episode:
* the cost of one chip-hour over its depreciation life: depreciation, capital charge (on the average
  book value), facility (the site's depreciation and capital charge), energy at full load and
  maintenance, beside published rental prices (economics.md §4, §10);
* the payback of one chip bought at week 0 and serving one class at that class's market price,
  sized for its peaks (mean load = 1 / peak-to-mean of its admissible capacity) and at full load.
Every figure comes from the scenario and the environment's own tables (``envs.functional``).
"""

from __future__ import annotations

import argparse

import numpy as np

import envs
from agents.lp_scheduler import serving_rates, token_prices
from envs import functional as fn
from envs.dynamics import W_PER_KW

HOURS_PER_YEAR = 8760.0
# Published rental prices, $ per GPU-hour (economics.md §10 "Suggested defaults", 2025-26; low confidence
# for Blackwell): neocloud on-demand H100 $2.40, 1-year contract $2.00; H200 $3.00; B200 $4.50; MI300X $1.80.
PUBLISHED_RENT = {"H100-SXM": "2.40 (on demand) / 2.00 (1-yr)", "H200": "3.00", "B200": "4.50", "MI300X": "1.80"}


def chip_hour_costs(params: fn.Params) -> dict[str, dict[str, float]]:
    """$ per chip-hour of each chip on sale at week 0, over its depreciation life, at full load."""
    s = params.scenario
    a = s.arrays
    deployed = fn.chip_prices(params, np.zeros(1), 1.0)[0]
    kw = a["system_power_w"] / W_PER_KW
    facility = kw * s.facility_capex_usd_per_kw
    coc = s.cost_of_capital_per_year
    out = {}
    for k, chip in enumerate(s.chips):
        if a["available_week"][k] > 0:
            continue
        life_h = s.depreciation_years * HOURS_PER_YEAR
        row = {
            "deployed $": deployed[k],
            "depreciation": deployed[k] / life_h,
            "capital": coc * deployed[k] / 2.0 / HOURS_PER_YEAR,  # on the average book value over the life
            "facility": facility[k] / (s.facility_life_years * HOURS_PER_YEAR)
            + coc * facility[k] / 2.0 / HOURS_PER_YEAR,
            "energy": kw[k] * s.pue * s.energy_usd_per_kwh,
            "maintenance": deployed[k] * s.maintenance_per_year / HOURS_PER_YEAR,
        }
        row["total"] = sum(v for key, v in row.items() if key != "deployed $")
        out[chip] = row
    return out


def payback_years(params: fn.Params) -> dict[str, dict[str, tuple[float, float]]]:
    """Years for one chip bought at week 0 to earn back its deployed and site cost serving each class:
    (sized for the class's peaks, at full load); inf where it cannot serve the class within its SLOs."""
    s = params.scenario
    a = s.arrays
    prefill_out, decode_out, power = serving_rates(params, 0.0)
    price = token_prices(params, 0.0)
    deployed = fn.chip_prices(params, np.zeros(1), 1.0)[0]
    cost = deployed + a["system_power_w"] / W_PER_KW * s.facility_capex_usd_per_kw
    maintenance = deployed * s.maintenance_per_year
    out = {}
    for k, chip in enumerate(s.chips):
        if a["available_week"][k] > 0:
            continue
        out[chip] = {}
        for c, cls in enumerate(s.classes):
            # One chip split between prefill and decode so that both run at the same output rate.
            p, d = prefill_out[c, k], decode_out[c, k]
            tokens_per_s = p * d / (p + d) if p > 0 and d > 0 else 0.0
            result = []
            for load in (1.0 / a["peak_to_mean"][c], 1.0):
                net = (tokens_per_s * load * price[c] * 3600 - power[k] / (7 * 24) * load) * HOURS_PER_YEAR \
                    - maintenance[k]
                result.append(cost[k] / net if net > 0 else np.inf)
            out[chip][cls.name] = tuple(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    params = envs.params(parser.parse_args().scenario)
    print(f"{params.scenario.name}: cost of one chip-hour at week 0 ($), over a {params.scenario.depreciation_years:g}"
          f"-year life, at full load")
    costs = chip_hour_costs(params)
    cols = ("deployed $", "depreciation", "capital", "facility", "energy", "maintenance", "total")
    print(f"{'chip':<10}" + "".join(f"{c:>14}" for c in cols) + "   published rent $/h")
    for chip, row in costs.items():
        print(f"{chip:<10}" + f"{row['deployed $']:>14,.0f}" + "".join(f"{row[c]:>14.2f}" for c in cols[1:])
              + f"   {PUBLISHED_RENT.get(chip, 'n/a')}")
    print("\npayback of one chip bought at week 0, years (sized for peaks / at full load; '-' = cannot serve "
          "the class within its SLOs)")
    payback = payback_years(params)
    names = [c.name for c in params.scenario.classes]
    print(f"{'chip':<10}" + "".join(f"{n:>18}" for n in names))
    for chip, row in payback.items():
        cells = ["-" if not np.isfinite(row[n][1]) else f"{row[n][0]:.1f} / {row[n][1]:.1f}" for n in names]
        print(f"{chip:<10}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
