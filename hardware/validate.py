"""Check the model against measurements: ``python -m hardware.validate [--csv FILE] [--json PATH]``.

Each CSV row is one published measurement with the columns

    id, chip, n_chips, model, precision, input_tokens, output_tokens, batch_size, metric, value

and, optionally, ``replica_chips``, ``phase``, ``year`` and ``source``. ``metric`` is one of METRICS:

* ``output_tokens_per_s_system``: output tokens/s of all ``n_chips`` chips, split into replicas
  of ``replica_chips`` chips (empty: the size that maximises the system's throughput), each
  running prefill and decode together (chunked prefill).
* ``tokens_per_s_per_user``, ``tpot_s``, ``ttft_s``: one replica of ``replica_chips`` chips
  (empty: all ``n_chips``). ``phase`` says how the measurement was taken: ``separate`` (decode
  steps carry no prompts and the TTFT is one prefill on an idle replica, as in a phase-split
  profile or a lone user) or ``colocated`` (prompts are chunked into the decode steps, as in a
  loaded server); empty means ``separate`` for a batch of one and ``colocated`` otherwise.
* ``training_tokens_per_s_per_chip``: training throughput per chip, ``input_tokens`` being the
  sequence length (``output_tokens`` and ``batch_size`` may be empty).

``batch_size`` is the number of sequences in flight across the system, shared evenly by its
replicas; empty means the throughput-maximising batch that fits. ``year`` selects the vendor's
software efficiency (empty: 2025). Without ``--csv`` the project's own points are run:
``data/calibration_points.csv`` (the model was set against these) and
``data/validation_points.csv`` (it was not).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr

from hardware.catalog import DATA_DIR, Chip, Model, get_chip, get_model
from hardware.perf import WEIGHT_BYTES, best_replica, estimate_serving, estimate_training
from hardware.vendors import DEFAULT_YEAR, YEAR_RANGE

REQUIRED_COLUMNS = ("id", "chip", "n_chips", "model", "precision", "input_tokens", "output_tokens",
                    "batch_size", "metric", "value")
OPTIONAL_COLUMNS = ("replica_chips", "phase", "year", "source")
PHASES = ("separate", "colocated")
METRICS = ("output_tokens_per_s_system", "tokens_per_s_per_user", "tpot_s", "ttft_s",
           "training_tokens_per_s_per_chip")
TOLERANCE = 0.25
PROJECT_FILES = {"calibration": DATA_DIR / "calibration_points.csv",
                 "validation": DATA_DIR / "validation_points.csv"}
_PRECISION_ALIASES = {"fp16": "bf16"}  # same width and, on every chip here, the same rate


class MeasurementError(ValueError):
    """One or more bad rows; the message names each row, its id and the field."""


@dataclass(frozen=True)
class Measurement:
    id: str
    chip: Chip
    n_chips: int
    model: Model
    precision: str
    input_tokens: int
    output_tokens: int | None
    batch_size: int | None
    metric: str
    value: float
    replica_chips: int | None = None
    phase: str | None = None
    year: float | None = None
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class Result:
    id: str
    metric: str
    modelled: float
    published: float

    @property
    def error(self) -> float:
        return self.modelled / self.published - 1.0


class _RowError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _count(raw: dict, field: str, *, optional: bool = False) -> int | None:
    text = (raw.get(field) or "").strip()
    if not text:
        if optional:
            return None
        raise _RowError(field, "is empty; a positive whole number is required")
    try:
        value = float(text)
    except ValueError:
        raise _RowError(field, f"{text!r} is not a number; a positive whole number is required") from None
    if not value.is_integer() or value < 1:
        raise _RowError(field, f"{text!r} is not a positive whole number")
    return int(value)


def _parse(raw: dict, line: int) -> Measurement:
    ident = (raw.get("id") or "").strip()
    if not ident:
        raise _RowError("id", "is empty; every row needs an id")
    try:
        chip = get_chip((raw.get("chip") or "").strip())
    except KeyError as exc:
        raise _RowError("chip", str(exc)) from None
    try:
        model = get_model((raw.get("model") or "").strip())
    except KeyError as exc:
        raise _RowError("model", str(exc)) from None
    metric = (raw.get("metric") or "").strip()
    if metric not in METRICS:
        raise _RowError("metric", f"{metric!r} is not one of {list(METRICS)}")
    precision = (raw.get("precision") or "").strip().lower()
    precision = _PRECISION_ALIASES.get(precision, precision)
    if precision not in WEIGHT_BYTES:
        raise _RowError("precision", f"{precision!r} is not one of {list(WEIGHT_BYTES) + list(_PRECISION_ALIASES)}")
    if precision not in chip.peak_tflops:
        raise _RowError("precision", f"{chip.name} has no {precision!r} rate; it supports {list(chip.precisions)}")
    training = metric == "training_tokens_per_s_per_chip"
    text = (raw.get("value") or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise _RowError("value", f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise _RowError("value", f"{text!r} must be a positive finite number")
    year_text = (raw.get("year") or "").strip()
    try:
        year = float(year_text) if year_text else None
    except ValueError:
        raise _RowError("year", f"{year_text!r} is not a number (e.g. 2025 or 2025.5); leave it empty for "
                                f"{DEFAULT_YEAR:.0f}") from None
    if year is not None and not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise _RowError("year", f"{year_text} is outside {YEAR_RANGE[0]:.0f}-{YEAR_RANGE[1]:.0f}, the years the vendor "
                                f"factors cover; leave it empty for {DEFAULT_YEAR:.0f}")
    phase = (raw.get("phase") or "").strip().lower() or None
    if phase is not None and phase not in PHASES:
        raise _RowError("phase", f"{phase!r} is not one of {list(PHASES)} (or empty)")
    n_chips = _count(raw, "n_chips")
    replica = _count(raw, "replica_chips", optional=True)
    if replica is not None and n_chips % replica:
        raise _RowError("replica_chips", f"{replica} does not divide n_chips = {n_chips}")
    return Measurement(
        id=ident, chip=chip, n_chips=n_chips, model=model, precision=precision,
        input_tokens=_count(raw, "input_tokens"),
        output_tokens=_count(raw, "output_tokens", optional=training),
        batch_size=_count(raw, "batch_size", optional=True),
        metric=metric, value=value, replica_chips=replica, phase=phase, year=year,
        source=(raw.get("source") or "").strip(), line=line,
    )


def read_measurements(path: str | Path) -> list[Measurement]:
    """Rows of ``path``; raises MeasurementError naming every bad row and field, or a missing column."""
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")  # -sig: spreadsheets save CSV with a byte-order mark
    except OSError as exc:
        raise MeasurementError(f"{path}: cannot be read ({exc.strerror})") from None
    with fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown:
            raise MeasurementError(
                f"{path}: " + "; ".join(filter(None, [
                    f"missing column(s) {missing}" if missing else "",
                    f"unknown column(s) {unknown}" if unknown else ""]))
                + f". Required: {list(REQUIRED_COLUMNS)}; optional: {list(OPTIONAL_COLUMNS)}")
        reader.fieldnames = columns
        rows, problems, seen = [], [], set()
        for raw in reader:
            line = reader.line_num
            try:
                if None in raw:  # csv.DictReader files values beyond the header under None
                    raise _RowError("row", f"{len(raw[None])} more value(s) than there are columns")
                row = _parse(raw, line)
                if row.id in seen:
                    raise _RowError("id", f"{row.id!r} is used by an earlier row; ids must be unique")
                seen.add(row.id)
                rows.append(row)
            except _RowError as exc:
                problems.append(f"{path.name} line {line} (id {(raw.get('id') or '').strip()!r}), "
                                f"field {exc.field}: {exc}")
    if problems:
        raise MeasurementError("\n".join(problems))
    if not rows:
        raise MeasurementError(f"{path}: no measurement rows")
    return rows


def _replica_size(m: Measurement) -> int:
    """The chips per replica: as given, else all chips for latency metrics, else the best split for throughput."""
    if m.replica_chips is not None:
        return m.replica_chips
    if m.metric != "output_tokens_per_s_system":
        return m.n_chips
    best = best_replica(m.chip, m.model, precision=m.precision, input_tokens=m.input_tokens,
                        output_tokens=m.output_tokens, max_chips=m.n_chips, year=m.year)
    return m.n_chips if best is None else best.n_chips  # None: estimate_serving then says how many chips


def modelled_value(m: Measurement) -> float:
    """The model's figure for ``m.metric`` under ``m``'s conditions; ValueError if the setting is impossible."""
    if m.metric == "training_tokens_per_s_per_chip":
        return estimate_training(m.chip, m.model, n_chips=m.n_chips, precision=m.precision,
                                 seq_len=m.input_tokens, year=m.year) / m.n_chips
    size = _replica_size(m)
    replicas = m.n_chips // size
    batch = None if m.batch_size is None else max(1, math.ceil(m.batch_size / replicas))
    est = estimate_serving(m.chip, m.model, n_chips=size, precision=m.precision, batch_size=batch,
                           input_tokens=m.input_tokens, output_tokens=m.output_tokens, year=m.year)
    # A phase-split profile or a lone user: no other prompts share the decode steps.
    separate = m.phase == "separate" or (m.phase is None and est.batch_size == 1)
    tpot = est.tpot_s if separate else est.colocated_tpot_s
    return {
        "output_tokens_per_s_system": replicas * est.colocated_output_tokens_per_s,
        "tokens_per_s_per_user": 1.0 / tpot,
        "tpot_s": tpot,
        "ttft_s": est.ttft_s if separate else est.colocated_ttft_s,
    }[m.metric]


def evaluate(measurements: Iterable[Measurement]) -> list[Result]:
    """Modelled beside published for every row; MeasurementError names rows the model cannot run."""
    results, problems = [], []
    for m in measurements:
        try:
            results.append(Result(m.id, m.metric, modelled_value(m), m.value))
        except ValueError as exc:
            text = str(exc)
            field = ("batch_size" if "batch_size" in text else
                     "n_chips" if "fit" in text or "chips" in text else "input_tokens")
            problems.append(f"line {m.line} (id {m.id!r}), field {field}: {text}")
    if problems:
        raise MeasurementError("\n".join(problems))
    return results


def summarise(results: list[Result]) -> dict:
    """Share of rows within ±25%, Spearman rank correlation of modelled vs published (None under 3 rows), n."""
    n = len(results)
    share = sum(abs(r.error) <= TOLERANCE for r in results) / n if n else 0.0
    rho = None
    modelled, published = [r.modelled for r in results], [r.published for r in results]
    # A rank correlation needs three rows and some spread on both sides; otherwise it is undefined.
    if n >= 3 and len(set(modelled)) > 1 and len(set(published)) > 1:
        rho = float(spearmanr(modelled, published).statistic)
    return {"share_within_25pct": share, "spearman": rho, "n": n}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4g}"


def _print(sets: dict[str, list[Result]]) -> None:
    rows = [(name, r.id, r.metric, _fmt(r.modelled), _fmt(r.published), f"{r.error:+.1%}")
            for name, results in sets.items() for r in results]
    head = ("set", "id", "metric", "modelled", "published", "error")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    groups = dict(sets) if len(sets) > 1 else {}
    groups["all"] = [r for results in sets.values() for r in results]
    for name, results in groups.items():
        s = summarise(results)
        rho = "n/a (under 3 rows)" if s["spearman"] is None else f"{s['spearman']:.3f}"
        print(f"{name}: n={s['n']}, within ±25%: {s['share_within_25pct']:.0%}, Spearman rank correlation: {rho}")


def write_json(path: str | Path, sets: dict[str, list[Result]]) -> None:
    """Write the report atomically: a temporary file in the same folder, then os.replace."""
    everything = [r for results in sets.values() for r in results]
    report = {"rows": [{"id": r.id, "modelled": r.modelled, "published": r.published, "error": r.error}
                       for r in everything],
              "summary": summarise(everything)}
    if len(sets) > 1:
        report["summary_by_set"] = {name: summarise(results) for name, results in sets.items()}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def project_results() -> dict[str, list[Result]]:
    """The project's calibration and validation points, evaluated."""
    return {name: evaluate(read_measurements(path)) for name, path in PROJECT_FILES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardware.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", help="measurements to check (default: the project's own points)")
    parser.add_argument("--json", help="also write rows and summary to this JSON file")
    args = parser.parse_args(argv)
    try:
        sets = ({"file": evaluate(read_measurements(args.csv))} if args.csv else project_results())
    except MeasurementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(sets)
    if args.json:
        try:
            write_json(args.json, sets)
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
