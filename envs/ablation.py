"""Switching one mechanism of a scenario off, for ablations: each switch is a scenario override.

``switched_off(scenario, mechanism)`` returns the scenario with that mechanism removed, or ``None``
where the scenario does not have it (``small`` has no premium tier to fold into the standard one).
The overrides, one per mechanism:

============================ =========================================================================
mechanism                    override that switches it off
============================ =========================================================================
``hbm_cap``                  ``hbm.our_allocation_share: 1`` (our orders may draw the whole market's HBM)
``sram_chips``               the SRAM chips (Groq LPU, Cerebras WSE-3) leave ``chips``
``disaggregation``           ``disaggregation: false`` (a request decodes on the chip type that prefilled it)
``power_cap``                ``site.power_cap: false`` (the site is built with each order, no limit)
``renting``                  ``rental.enabled: false``
``selling``                  ``selling: false``
``training_clusters``        ``training.clusters: false`` (jobs pool every training-capable chip)
``latency_tiers``            the premium class (``realtime``) takes the chat class's SLOs and prices
``hbm_generations``          ``hbm.pooled_generations: true`` (one HBM pool for every generation)
``agent_growth``             the ``agents`` and ``realtime`` classes keep their initial demand (no growth)
``rl_updates``               RL student classes start at full quality and never lose it (``rl_updates``:
                             ``initial_quality: 1``, ``decay_per_week: 0``), so no chip time need go to updates
============================ =========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from envs.scenario import Scenario, load_scenario, merge_override
from hardware import get_chip

PREMIUM_CLASS, STANDARD_CLASS = "realtime", "chat"
AGENT_CLASSES = ("agents", "realtime")


def _without_sram(s: Scenario) -> dict | None:
    kept = [c for c in s.chips if get_chip(c).memory_kind != "SRAM"]
    return {"chips": kept} if len(kept) < len(s.chips) else None


def _standard_tier(s: Scenario) -> dict | None:
    names = {c.name: c for c in s.classes}
    if PREMIUM_CLASS not in names or STANDARD_CLASS not in names:
        return None
    standard = names[STANDARD_CLASS]
    keys = ("tpot_slo_s", "ttft_slo_s", "input_price_per_mtok_usd", "output_price_per_mtok_usd")
    return {"classes": {PREMIUM_CLASS: {k: getattr(standard, k) for k in keys}}}


def _no_agent_growth(s: Scenario) -> dict | None:
    present = [c.name for c in s.classes if c.name in AGENT_CLASSES]
    if not present:
        return None
    return {"classes": {name: {"growth": {"kind": "exponential", "rate_per_year": 0.0}} for name in present}}


def _no_rl_updates(s: Scenario) -> dict | None:
    students = {c.name: c.rl_updates for c in s.classes if c.rl_updates}
    if not students:
        return None
    return {"classes": {name: {"rl_updates": {**updates, "initial_quality": 1.0, "decay_per_week": 0.0}}
                        for name, updates in students.items()}}


def _if(flag: Callable[[Scenario], bool], override: dict) -> Callable[[Scenario], dict | None]:
    return lambda s: override if flag(s) else None


MECHANISMS: dict[str, Callable[[Scenario], dict | None]] = {
    "hbm_cap": lambda s: {"hbm": {"our_allocation_share": 1.0}},
    "sram_chips": _without_sram,
    "disaggregation": _if(lambda s: s.disaggregation, {"disaggregation": False}),
    "power_cap": _if(lambda s: s.site["power_cap"], {"site": {"power_cap": False}}),
    "renting": _if(lambda s: s.rental["enabled"], {"rental": {"enabled": False}}),
    "selling": _if(lambda s: s.selling, {"selling": False}),
    "training_clusters": _if(lambda s: s.training.get("clusters", False), {"training": {"clusters": False}}),
    "latency_tiers": _standard_tier,
    "hbm_generations": _if(lambda s: not s.hbm.get("pooled_generations", True), {"hbm": {"pooled_generations": True}}),
    "agent_growth": _no_agent_growth,
    "rl_updates": _no_rl_updates,
}


def switched_off(scenario: str | Mapping[str, Any] | Scenario, mechanism: str) -> Scenario | None:
    """``scenario`` with ``mechanism`` switched off (see the module's table), or None if it has no such mechanism."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r}; choose one of {', '.join(MECHANISMS)}")
    s = load_scenario(scenario)
    override = MECHANISMS[mechanism](s)
    if override is None:
        return None
    return load_scenario({**merge_override(dict(s.raw), override), "name": f"{s.name}-no-{mechanism}"})

