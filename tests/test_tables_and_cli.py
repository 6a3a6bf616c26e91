"""Precomputed tables agree with the roofline; the CLI prints one row per chip."""

import numpy as np
import pytest

from hardware import Workload, build_serving_tables, estimate_serving, list_chips
from hardware.__main__ import main


def test_tables_match_direct_estimates():
    workloads = [Workload("chat", "llama-3.1-70b", "fp8", 1024, 256, 0.05),
                 Workload("batch", "llama-3.1-8b", "bf16", 2048, 512, None)]
    chips = ["H100", "MI300X", "LPU", "TPU-v5e"]
    t = build_serving_tables(chips, workloads)
    assert t.fits.shape == (2, 4) and t.fits.all()
    est = estimate_serving("MI300X", "llama-3.1-70b", precision="fp8", input_tokens=1024, output_tokens=256,
                           tpot_slo_s=0.05)
    assert t.decode_tokens_per_s_per_chip[0, 1] == pytest.approx(est.decode_tokens_per_s / est.n_chips)
    assert t.tpot_s[0, 1] <= 0.05
    assert t.precision[0, 2] == "int8"  # the LPU has no fp8 but runs 8-bit integers
    with pytest.raises(ValueError):
        t.decode_tokens_per_s_per_chip[0, 0] = 1.0  # tables are read-only


def test_tables_mark_models_that_need_too_many_chips():
    t = build_serving_tables(["LPU", "H200"], [Workload("big", "llama-3.1-405b", "fp8", 1024, 256)],
                             max_replica_chips=64)
    assert not t.fits[0, 0] and t.fits[0, 1]
    assert t.decode_tokens_per_s_per_chip[0, 0] == 0
    assert np.all(t.replica_chips[t.fits] >= 1)


def test_cli_prints_a_row_per_chip(capsys):
    assert main(["--model", "llama-3.1-70b", "--precision", "fp8"]) == 0
    out = capsys.readouterr().out
    for chip in list_chips():
        assert chip in out
    assert "bandwidth" in out and "compute" in out


def test_cli_shows_the_replica_the_environment_uses(capsys):
    """The CLI and the env's tables size replicas by the same rule (hardware.perf.best_replica)."""
    t = build_serving_tables(["H100-SXM"], [Workload("chat", "llama-3.1-70b", "fp8", 1024, 256)])
    assert t.replica_chips[0, 0] > 1  # the rule picks more than the smallest replica here
    assert main(["--model", "llama-3.1-70b", "--precision", "fp8"]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("H100-SXM "))
    assert int(row[2]) == t.replica_chips[0, 0]
    assert float(row[5].replace(",", "")) == pytest.approx(t.decode_tokens_per_s_per_chip[0, 0], rel=0.01)


def test_cli_rejects_an_unknown_model(capsys):
    assert main(["--model", "gpt-9"]) == 2
    assert "valid models" in capsys.readouterr().err


def test_cli_shows_no_chip_faster_per_user_than_its_layer_floor(capsys):
    assert main(["--model", "llama-3.1-8b"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "TPOT ms  floor ms" in lines[1]
    rows = [line.split() for line in lines[2:] if line.split() and line.split()[0] in list_chips()]
    assert len(rows) == len(list_chips())
    for row in rows:  # chip prec chips/rep batch prefill decode TTFT TPOT floor ...
        tpot, floor = float(row[7].replace(",", "")), float(row[8].replace(",", ""))
        assert tpot >= floor, row[0]
    wse = next(r for r in rows if r[0] == "WSE-3")
    assert float(wse[8]) == pytest.approx(32 * 5e-3)  # 32 layers x 5 us, in ms


def test_cli_year_changes_only_non_nvidia_chips(capsys):
    assert main(["--model", "llama-3.1-8b", "--year", "2024"]) == 0
    early = {line.split()[0]: line.split()[5] for line in capsys.readouterr().out.splitlines()[2:-2]}
    assert main(["--model", "llama-3.1-8b", "--year", "2026"]) == 0
    late = {line.split()[0]: line.split()[5] for line in capsys.readouterr().out.splitlines()[2:-2]}
    assert early["H100-SXM"] == late["H100-SXM"] and early["MI300X"] != late["MI300X"]
