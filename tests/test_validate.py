"""python -m hardware.validate: reading measurements, modelling each metric, summaries, errors, JSON."""

import json

import pytest

from hardware import estimate_serving, estimate_training
from hardware.validate import MeasurementError, Result, evaluate, main, read_measurements, summarise

HEADER = "id,chip,n_chips,model,precision,input_tokens,output_tokens,batch_size,metric,value"


def _csv(tmp_path, *rows, header=HEADER):
    """Write a measurements file with ``header`` and ``rows``."""
    path = tmp_path / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_each_metric_is_modelled_as_documented(tmp_path):
    rows = ["sys,H100,8,llama-3.1-70b,fp8,1000,1000,,output_tokens_per_s_system,1000,2,",
                  "user,H100,2,llama-3.1-70b,fp8,1000,1000,1,tokens_per_s_per_user,10,,",
                  "tpot,H100,2,llama-3.1-70b,fp8,1000,1000,64,tpot_s,0.05,,",
                  "ttft,H100,2,llama-3.1-70b,fp8,1000,1000,1,ttft_s,0.1,,",
                  "train,MI300X,64,llama-3.1-70b,bf16,8192,,,training_tokens_per_s_per_chip,100,,2024"]
    path = _csv(tmp_path, *rows, header=HEADER + ",replica_chips,year")
    got = {r.id: r.modelled for r in evaluate(read_measurements(path))}
    rep = estimate_serving("H100", "llama-3.1-70b", n_chips=2, precision="fp8", input_tokens=1000, output_tokens=1000)
    assert got["sys"] == pytest.approx(4 * rep.colocated_output_tokens_per_s)  # 8 chips = 4 replicas of 2
    alone = estimate_serving("H100", "llama-3.1-70b", n_chips=2, precision="fp8", batch_size=1,
                             input_tokens=1000, output_tokens=1000)
    assert got["user"] == pytest.approx(1 / alone.tpot_s)  # a lone user: pure decode steps
    assert got["ttft"] == pytest.approx(alone.ttft_s)
    busy = estimate_serving("H100", "llama-3.1-70b", n_chips=2, precision="fp8", batch_size=64,
                            input_tokens=1000, output_tokens=1000)
    assert got["tpot"] == pytest.approx(busy.colocated_tpot_s)  # a loaded server: prompts ride along
    assert got["train"] == pytest.approx(
        estimate_training("MI300X", "llama-3.1-70b", n_chips=64, seq_len=8192, year=2024) / 64)


def test_system_batch_is_shared_by_replicas_and_phase_can_be_forced(tmp_path):
    rows = ["a,H100,8,llama-3.1-70b,fp8,1000,1000,400,output_tokens_per_s_system,1,2,",
                  "b,H100,2,llama-3.1-70b,fp8,1000,1000,64,tpot_s,1,,separate"]
    path = _csv(tmp_path, *rows, header=HEADER + ",replica_chips,phase")
    got = {r.id: r.modelled for r in evaluate(read_measurements(path))}
    per_replica = estimate_serving("H100", "llama-3.1-70b", n_chips=2, precision="fp8", batch_size=100,
                                   input_tokens=1000, output_tokens=1000)
    assert got["a"] == pytest.approx(4 * per_replica.colocated_output_tokens_per_s)
    assert got["b"] == pytest.approx(estimate_serving("H100", "llama-3.1-70b", n_chips=2, precision="fp8",
                                                      batch_size=64, input_tokens=1000,
                                                      output_tokens=1000).tpot_s)


def test_summary_share_and_spearman_hand_worked():
    results = [Result("a", "tpot_s", 1.0, 1.0), Result("b", "tpot_s", 2.0, 3.0), Result("c", "tpot_s", 3.0, 2.0),
               Result("d", "tpot_s", 4.0, 4.4)]
    s = summarise(results)
    # errors: 0, -33%, +50%, -9%: two of four within 25%. Ranks (1,2,3,4) vs (1,3,2,4): rho = 1 - 6*2/(4*15) = 0.8.
    assert s == {"share_within_25pct": 0.5, "spearman": pytest.approx(0.8), "n": 4}
    assert summarise(results[:2])["spearman"] is None  # too few rows for a rank correlation
    assert summarise([Result(k, "tpot_s", m, 1.0) for k, m in zip("xyz", (1, 2, 3))])["spearman"] is None  # ties


@pytest.mark.parametrize(("row", "field", "message"), [
    ("x,H9000,1,llama-3.1-8b,fp8,10,10,,tpot_s,1", "chip", "valid chips"),
    ("x,H100,1,gpt-9,fp8,10,10,,tpot_s,1", "model", "valid models"),
    ("x,H100,1,llama-3.1-8b,fp8,10,10,,latency,1", "metric", "not one of"),
    ("x,H100,1,llama-3.1-8b,fp4,10,10,,tpot_s,1", "precision", "has no 'fp4' rate"),
    ("x,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,-2", "value", "positive finite"),
    ("x,H100,1.5,llama-3.1-8b,fp8,10,10,,tpot_s,1", "n_chips", "positive whole number"),
    ("x,H100,1,llama-3.1-8b,fp8,,10,,tpot_s,1", "input_tokens", "is empty"),
    (",H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1", "id", "every row needs an id"),
    ("x,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1,extra", "row", "1 more value"),
])
def test_bad_rows_name_the_row_and_the_field(tmp_path, row, field, message):
    good = "ok,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1"
    with pytest.raises(MeasurementError, match=rf"line 3 \(id .*\), field {field}: .*{message}"):
        read_measurements(_csv(tmp_path, good, row))


@pytest.mark.parametrize(("year", "message"), [("abc", "'abc' is not a number .* leave it empty for 2025"),
                                               ("1990", "1990 is outside 2015-2040, .* leave it empty for 2025")])
def test_a_bad_year_names_the_field(tmp_path, year, message):
    path = _csv(tmp_path, f"x,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1,{year}", header=HEADER + ",year")
    with pytest.raises(MeasurementError, match=rf"line 2 \(id 'x'\), field year: {message}"):
        read_measurements(path)


def test_a_spreadsheet_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("\ufeff" + HEADER + "\nx,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1\n", encoding="utf-8")
    assert [m.id for m in read_measurements(path)] == ["x"]


def test_every_bad_row_is_reported_at_once_and_duplicates_are_caught(tmp_path):
    path = _csv(tmp_path, "a,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1", "a,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1",
                "b,H100,0,llama-3.1-8b,fp8,10,10,,tpot_s,1")
    with pytest.raises(MeasurementError) as info:
        read_measurements(path)
    assert "line 3 (id 'a'), field id" in str(info.value) and "line 4 (id 'b'), field n_chips" in str(info.value)


def test_rows_the_model_cannot_run_name_the_field(tmp_path):
    path = _csv(tmp_path, "big,H100,1,llama-3.1-8b,fp8,1000,1000,100000,tpot_s,1",
                "nofit,H100,1,llama-3.1-405b,fp8,1000,1000,1,tpot_s,1")
    with pytest.raises(MeasurementError) as info:
        evaluate(read_measurements(path))
    assert "(id 'big'), field batch_size" in str(info.value)
    assert "(id 'nofit'), field n_chips" in str(info.value)
    # Training too large for the chips given: estimate_training says "use at least N chips".
    path = _csv(tmp_path, "t,H100,1,llama-3.1-70b,bf16,8192,,,training_tokens_per_s_per_chip,1")
    with pytest.raises(MeasurementError, match=r"\(id 't'\), field n_chips: .*chips"):
        evaluate(read_measurements(path))


def test_columns_are_checked(tmp_path):
    with pytest.raises(MeasurementError, match=r"missing column\(s\) \['value'\].*Required"):
        read_measurements(_csv(tmp_path, "a,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s", header=HEADER[:-6]))
    with pytest.raises(MeasurementError, match=r"unknown column\(s\) \['vendor'\].*optional"):
        read_measurements(_csv(tmp_path, "a,H100,1,llama-3.1-8b,fp8,10,10,,tpot_s,1,x", header=HEADER + ",vendor"))
    with pytest.raises(MeasurementError, match="replica_chips: 3 does not divide n_chips = 8"):
        read_measurements(_csv(tmp_path, "a,H100,8,llama-3.1-8b,fp8,10,10,,tpot_s,1,3",
                               header=HEADER + ",replica_chips"))


def test_cli_writes_json_atomically_and_rejects_bad_files(tmp_path, capsys):
    path = _csv(tmp_path, "a,H100,1,llama-3.1-8b,fp8,1000,200,1,tpot_s,0.01",
                "b,H200,1,llama-3.1-8b,fp8,1000,200,1,tpot_s,0.02",
                "c,B200,1,llama-3.1-8b,fp8,1000,200,1,tpot_s,0.03")
    out = tmp_path / "report.json"
    assert main(["--csv", str(path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["id"] for r in report["rows"]] == ["a", "b", "c"]
    assert set(report["rows"][0]) == {"id", "modelled", "published", "error"}
    assert set(report["summary"]) == {"share_within_25pct", "spearman", "n"} and report["summary"]["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "report.json"]  # no temporary file left
    assert "Spearman" in capsys.readouterr().out
    assert main(["--csv", str(tmp_path / "missing.csv")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_project_points_run_without_csv(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "calibration:" in out and "validation:" in out and "mlperf41-offline-h100" in out
