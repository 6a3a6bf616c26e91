"""Capacity arithmetic shared by the compact action's decoder and the heuristics.

For demand D (tokens/s per class), one chip of type k covers a fraction 1 / W_k(D) of it, where
W_k(D) = sum_c D_c (I_c / O_c) / prefill_rate_ck + D_c / decode_rate_ck is the number of chips of
type k that would serve all of D colocated. A fleet covers sum_k N_k / W_k(D) of D ("coverage").
"""

from __future__ import annotations

import numpy as np

from envs.core import WEEK_S, State
from envs.scenario import Scenario


def prefill_and_decode_chips(scenario: Scenario, demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) chips of type k for the prefill and for the decode of ``demand`` (B, C); inf if a demanded
    class does not fit on that chip."""
    a = scenario.arrays
    prompt = demand * (a["input_tokens"] / a["output_tokens"])
    misfit = (demand > 0).astype(float) @ (1.0 - a["fits"]) > 0
    prefill = np.where(misfit, np.inf, prompt @ a["chip_s_per_prompt_token"])
    decode = np.where(misfit, np.inf, demand @ a["chip_s_per_output_token"])
    return prefill, decode


def chips_for_demand(scenario: Scenario, demand: np.ndarray) -> np.ndarray:
    """(B, K) W_k(D): chips of type k that serve ``demand`` (B, C) alone; inf if a demanded class does not fit."""
    prefill, decode = prefill_and_decode_chips(scenario, demand)
    return prefill + decode


def coverage(scenario: Scenario, chips: np.ndarray, demand: np.ndarray, work: np.ndarray | None = None) -> np.ndarray:
    """(B,) share of ``demand`` that ``chips`` (B, K) can serve; inf when there is no demand.

    ``work`` is ``chips_for_demand(scenario, demand)`` when the caller has it already.
    """
    work = chips_for_demand(scenario, demand) if work is None else work
    usable = np.isfinite(work) & (work > 0)
    cover = np.where(usable, chips / np.where(usable, work, 1.0), 0.0).sum(1)
    return np.where(demand.sum(1) > 0, cover, np.inf)


def owned_and_ordered(state: State) -> np.ndarray:
    """(B, K) chips owned, queued for HBM or in transit."""
    return state.fleet + state.queue + state.pipeline.sum(2)


def training_need(state: State) -> np.ndarray:
    """(B,) FLOP/s that active training jobs need to finish by their deadlines at an even pace."""
    active = state.job_flops > 0
    weeks = np.maximum(state.job_weeks_left, 1.0)
    return np.where(active, state.job_flops / (weeks * WEEK_S), 0.0).sum(1)
