"""Compare every chip in the catalog on one model: ``python -m hardware --model llama-3.1-70b --precision fp8``."""

from __future__ import annotations

import argparse
import sys

from hardware.catalog import get_chip, get_model, list_chips, list_models
from hardware.perf import (
    WEIGHT_BYTES,
    best_replica,
    cost_per_million_tokens,
    decode_latency_floor_s,
    serving_precision,
)
from hardware.vendors import DEFAULT_YEAR, check_year

_COLUMNS = ("chip", "prec", "chips/rep", "batch", "prefill tok/s/chip", "decode tok/s/chip",
            "TTFT ms", "TPOT ms", "floor ms", "$/M tok", "J/tok", "prefill", "decode")


def _num(x: float) -> str:
    """Three significant figures, thousands separated, so 0.43 and 12,500 both read well."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hardware", description=__doc__)
    parser.add_argument("--model", default="llama-3.1-70b", help=f"one of {', '.join(list_models())}")
    parser.add_argument("--precision", default="fp8", choices=list(WEIGHT_BYTES),
                        help="weights precision; chips without it use another of the same width, else bf16 (marked *)")
    parser.add_argument("--input-tokens", type=int, default=1024)
    parser.add_argument("--output-tokens", type=int, default=256)
    parser.add_argument("--tpot-slo-ms", type=float, default=None, help="cap the batch so TPOT meets this")
    parser.add_argument("--max-replica-chips", type=int, default=4096,
                        help="skip chips that need more chips than this per replica")
    parser.add_argument("--year", type=float, default=None,
                        help=f"year of the vendors' software efficiency (default {DEFAULT_YEAR:.0f})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        model = get_model(args.model)
        year = check_year(args.year)  # before the loop: a bad --year is one error, not one per chip
    except (KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    slo = None if args.tpot_slo_ms is None else args.tpot_slo_ms / 1e3
    rows = []
    for name in list_chips():
        chip = get_chip(name)
        precision = serving_precision(chip, args.precision)
        try:
            est = best_replica(chip, model, precision=precision, input_tokens=args.input_tokens,
                               output_tokens=args.output_tokens, tpot_slo_s=slo, max_chips=args.max_replica_chips,
                               year=year)
            if est is None:
                rows.append((name, precision, f">{args.max_replica_chips}") + ("",) * 10)
                continue
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        mark = "" if precision == args.precision else "*"
        rows.append((name, precision + mark, str(est.n_chips), str(est.batch_size),
                     _num(est.prefill_tokens_per_s_per_chip), _num(est.decode_tokens_per_s_per_chip),
                     _num(est.ttft_s * 1e3), _num(est.tpot_s * 1e3),
                     _num(decode_latency_floor_s(chip, model, est.n_chips) * 1e3),
                     _num(cost_per_million_tokens(est)), _num(est.joules_per_token),
                     est.prefill_bound, est.decode_bound))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    print(f"{model.name} at {args.precision}, {args.input_tokens} in / {args.output_tokens} out"
          + (f", TPOT SLO {args.tpot_slo_ms} ms" if slo else ", largest batch that fits")
          + f", {year:g} software")
    print("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print("floor ms: least TPOT of the replica (layers x layer floor + pipeline hops); 1/floor caps tokens/s per user")
    print("$/M tok: colocated replica, capital over 4 years + energy at 60% utilisation "
          "(assumptions in hardware/data/efficiency.toml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
