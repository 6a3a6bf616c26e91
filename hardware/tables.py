"""Per-scenario lookup tables, built once from the roofline so the environment never calls it per step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.catalog import get_chip, get_model
from hardware.perf import (
    KV_BYTES,
    best_replica,
    serving_precision,
)


@dataclass(frozen=True)
class Workload:
    """An inference workload: a model served at a precision with given prompt/output lengths and TPOT SLO."""

    name: str
    model: str
    precision: str
    input_tokens: int
    output_tokens: int
    tpot_slo_s: float | None = None


@dataclass(frozen=True)
class ServingTables:
    """Arrays of shape (n_workloads, n_chips). A chip lacking a workload's precision runs it at
    ``serving_precision`` (same width if it can, else bf16).

    ``fits`` is False where even ``max_replica_chips`` chips cannot hold the model; every other
    array is 0 there.
    """

    chips: tuple[str, ...]
    workloads: tuple[str, ...]
    fits: np.ndarray
    precision: np.ndarray
    replica_chips: np.ndarray
    batch_size: np.ndarray
    prefill_tokens_per_s_per_chip: np.ndarray
    decode_tokens_per_s_per_chip: np.ndarray
    prefill_latency_s: np.ndarray
    tpot_s: np.ndarray
    prefill_joules_per_token: np.ndarray
    decode_joules_per_token: np.ndarray
    kv_bytes_per_request: np.ndarray


def build_serving_tables(chips: list[str], workloads: list[Workload], *,
                         max_replica_chips: int = 4096, year: float | None = None) -> ServingTables:
    """Evaluate the roofline for every (workload, chip) pair once, at the replica size of
    :func:`hardware.perf.best_replica`, with the vendors' software efficiency of ``year``
    (None: ``hardware.vendors.DEFAULT_YEAR``, 2025; rebuild per year to follow software maturing)."""
    shape = (len(workloads), len(chips))
    out = {k: np.zeros(shape) for k in ("replica_chips", "batch_size", "prefill_tokens_per_s_per_chip",
                                         "decode_tokens_per_s_per_chip", "prefill_latency_s", "tpot_s",
                                         "prefill_joules_per_token", "decode_joules_per_token",
                                         "kv_bytes_per_request")}
    fits = np.zeros(shape, dtype=bool)
    precision = np.empty(shape, dtype=object)
    for i, w in enumerate(workloads):
        model = get_model(w.model)
        for j, name in enumerate(chips):
            chip = get_chip(name)
            prec = serving_precision(chip, w.precision)
            precision[i, j] = prec
            est = best_replica(chip, model, precision=prec, input_tokens=w.input_tokens,
                               output_tokens=w.output_tokens, tpot_slo_s=w.tpot_slo_s, max_chips=max_replica_chips,
                               year=year)
            if est is None:
                continue
            n = est.n_chips
            fits[i, j] = True
            out["replica_chips"][i, j] = n
            out["batch_size"][i, j] = est.batch_size
            out["prefill_tokens_per_s_per_chip"][i, j] = est.prefill_tokens_per_s_per_chip
            out["decode_tokens_per_s_per_chip"][i, j] = est.decode_tokens_per_s_per_chip
            out["prefill_latency_s"][i, j] = est.ttft_s
            out["tpot_s"][i, j] = est.tpot_s
            out["prefill_joules_per_token"][i, j] = est.prefill_joules_per_token
            out["decode_joules_per_token"][i, j] = est.decode_joules_per_token
            out["kv_bytes_per_request"][i, j] = w.input_tokens * model.kv_bytes_per_token(KV_BYTES[prec])
    for arr in out.values():
        arr.setflags(write=False)
    fits.setflags(write=False)
    return ServingTables(chips=tuple(chips), workloads=tuple(w.name for w in workloads), fits=fits,
                         precision=precision, **out)

