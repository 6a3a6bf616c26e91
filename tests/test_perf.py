"""The roofline model: hand-worked examples, physical properties, disaggregation, training, bad input."""

import dataclasses
import itertools
import math

import pytest

from hardware import (
    cost_per_million_tokens,
    estimate_disaggregated,
    estimate_serving,
    estimate_training,
    get_chip,
    largest_batch_within_tpot,
    list_chips,
    smallest_replica,
)
from hardware.perf import serving_precision

# Global factors from hardware/data/efficiency.toml, restated so the hand-worked numbers are visible.
MFU, MBU, LAUNCH, ALPHA = 0.5, 0.7, 4e-3, 13e-6


def test_decode_step_hand_worked_h100_llama8b():
    est = estimate_serving("H100", "llama-3.1-8b", n_chips=1, batch_size=1, input_tokens=1024, output_tokens=256)
    context = 1024 + 128
    kv = context * 32 * 2048 * 2 / (3.35e12 * MBU)
    weights = 8.03e9 * 2 / (3.35e12 * MBU)
    compute = (2 * 8.03e9 + 4 * 32 * 4096 * context) / (989e12 * MFU)
    assert est.tpot_s == pytest.approx(kv + max(weights, compute) + LAUNCH, rel=1e-9)
    assert est.decode_bound == "bandwidth"


def test_prefill_hand_worked_h100_llama8b():
    est = estimate_serving("H100", "llama-3.1-8b", n_chips=1, batch_size=1, input_tokens=2048, output_tokens=256)
    flops = 2 * 8.03e9 * 2048 + 2 * 32 * 4096 * 2048**2
    assert est.ttft_s == pytest.approx(flops / (989e12 * MFU) + LAUNCH, rel=1e-9)
    assert est.prefill_tokens_per_s == pytest.approx(989e12 * MFU / (flops / 2048), rel=1e-9)
    assert est.prefill_bound == "compute"


def test_tensor_parallel_adds_collectives_per_layer():
    one = estimate_serving("H200", "llama-3.1-8b", n_chips=1, batch_size=1)
    eight = estimate_serving("H200", "llama-3.1-8b", n_chips=8, batch_size=1)
    overhead_one = LAUNCH
    overhead_eight = LAUNCH + 2 * 32 * ALPHA
    assert eight.tpot_s - overhead_eight == pytest.approx((one.tpot_s - overhead_one) / 8, rel=1e-6)


def test_sram_chip_needs_hundreds_of_chips_for_70b():
    n = smallest_replica("LPU", "llama-3.1-70b", precision="int8", input_tokens=1024, output_tokens=256)
    per_chip = 0.23e9 * 0.9
    need = 70.6e9 + 1280 * 80 * 2048
    assert n == math.ceil(need / per_chip)
    assert n > 300
    assert smallest_replica("H200", "llama-3.1-70b", precision="fp8") == 1


@pytest.mark.parametrize("chip", list_chips())
def test_prefill_compute_bound_and_small_batch_decode_bandwidth_bound(chip):
    precision = serving_precision(chip, "fp8")
    est = estimate_serving(chip, "llama-3.1-70b", precision=precision, batch_size=1, input_tokens=2048)
    if get_chip(chip).memory_kind == "SRAM":
        # SRAM streams weights so fast that the fixed per-step latency dominates a batch of one.
        assert est.decode_bound == "overhead"
    else:
        assert est.decode_bound in ("bandwidth", "overhead")
        roofline = est.tpot_s  # more FLOP/s would not help a bandwidth-bound step
        faster = _scaled(chip, flops=4.0)
        assert estimate_serving(faster, "llama-3.1-70b", precision=precision, batch_size=1, n_chips=est.n_chips,
                                input_tokens=2048).tpot_s == pytest.approx(roofline, rel=0.02)
    assert est.prefill_bound == "compute"


def _scaled(chip, *, bw=1.0, flops=1.0):
    base = get_chip(chip)
    return dataclasses.replace(base, memory_bw_tbps=base.memory_bw_tbps * bw,
                               peak_tflops={p: v * flops for p, v in base.peak_tflops.items()})


@pytest.mark.parametrize("chip", ["H100", "MI300X", "TPU-v6e", "L40S", "LPU"])
@pytest.mark.parametrize("factor", [1.1, 2.0, 10.0])
def test_more_bandwidth_never_slows_decode(chip, factor):
    for batch in (1, 8):
        kwargs = dict(precision=serving_precision(chip, "fp8"), batch_size=batch,
                      n_chips=smallest_replica(chip, "llama-3.1-8b", precision=serving_precision(chip, "fp8")) * 2)
        base = estimate_serving(chip, "llama-3.1-8b", **kwargs)
        more = estimate_serving(_scaled(chip, bw=factor), "llama-3.1-8b", **kwargs)
        assert more.decode_tokens_per_s >= base.decode_tokens_per_s


@pytest.mark.parametrize("chip", ["H100", "MI300X", "TPU-v6e", "L40S", "LPU"])
@pytest.mark.parametrize("factor", [1.1, 2.0, 10.0])
def test_more_flops_never_slows_prefill(chip, factor):
    kwargs = dict(precision="bf16", batch_size=1, n_chips=smallest_replica(chip, "llama-3.1-8b"))
    base = estimate_serving(chip, "llama-3.1-8b", **kwargs)
    more = estimate_serving(_scaled(chip, flops=factor), "llama-3.1-8b", **kwargs)
    assert more.prefill_tokens_per_s > base.prefill_tokens_per_s
    assert more.ttft_s <= base.ttft_s


@pytest.mark.parametrize(("chip", "model"), [("H100", "llama-3.1-8b"), ("MI300X", "llama-3.1-70b"),
                                             ("LPU", "llama-3.1-8b"), ("TPU-v5e", "llama-3.1-8b"),
                                             ("H200", "mixtral-8x7b")])
def test_larger_batch_never_lowers_decode_throughput_until_memory_runs_out(chip, model):
    limit = estimate_serving(chip, model, precision=serving_precision(chip, "fp8")).max_batch_size
    batches = sorted({1, 2, 3, 5, 8, 13, 64, 256, limit // 2, limit} - {0})
    rates = [estimate_serving(chip, model, precision=serving_precision(chip, "fp8"), batch_size=b)
             .decode_tokens_per_s for b in batches if b <= limit]
    assert all(b >= a * (1 - 1e-12) for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError, match="does not fit"):
        estimate_serving(chip, model, precision=serving_precision(chip, "fp8"), batch_size=limit + 1)


def test_default_batch_maximises_throughput_and_respects_tpot_slo():
    best = estimate_serving("H200", "llama-3.1-70b", precision="fp8")
    assert best.batch_size == best.max_batch_size
    capped = estimate_serving("H200", "llama-3.1-70b", precision="fp8", tpot_slo_s=0.05)
    assert capped.tpot_s <= 0.05
    over = estimate_serving("H200", "llama-3.1-70b", precision="fp8", batch_size=capped.batch_size + 1)
    assert over.tpot_s > 0.05
    assert largest_batch_within_tpot("H200", "llama-3.1-70b", 0.05, precision="fp8") == capped.batch_size


def test_moe_decode_streams_only_touched_experts():
    # Mixtral at batch 1 reads ~shared + 2/8 of expert weights, so it decodes faster than a dense 46.7B model.
    est = estimate_serving("H200", "mixtral-8x7b", batch_size=1)
    dense_weight_time = 46.7e9 * 2 / (4.8e12 * MBU)
    assert est.tpot_s - LAUNCH < 0.5 * dense_weight_time


def test_disaggregated_ttft_includes_the_kv_transfer():
    d = estimate_disaggregated("H100", "MI300X", "llama-3.1-70b", precision="fp8", input_tokens=2048,
                               prefill_n_chips=2, decode_n_chips=1)
    kv_bytes = 2048 * 80 * 2048 * 1  # fp8 cache
    assert d.kv_transfer_s == pytest.approx(kv_bytes / (1 * 50e9))
    assert d.ttft_s == pytest.approx(d.prefill.ttft_s + d.kv_transfer_s)
    assert d.tpot_s == d.decode.tpot_s
    balance = d.decode.decode_tokens_per_s / 256 / (d.prefill.prefill_tokens_per_s / 2048)
    assert d.prefill_replicas_per_decode_replica == pytest.approx(balance)


def test_training_tokens_per_s_hand_worked():
    rate = estimate_training("H100", "llama-3.1-70b", n_chips=1024, seq_len=8192)
    flops_per_token = 6 * 70.6e9 + 6 * 80 * 8192 * 8192
    assert rate == pytest.approx(1024 * 989e12 * 0.40 / flops_per_token)
    with pytest.raises(ValueError, match="use at least"):
        estimate_training("H100", "llama-3.1-70b", n_chips=2)


def test_cost_per_million_tokens_hand_worked():
    est = estimate_serving("H100", "llama-3.1-8b", precision="fp8")
    chip = get_chip("H100")
    seconds = 4 * 365.25 * 86400
    per_s = chip.price_usd / seconds + chip.tdp_w * 0.6 * 1.2 * 0.08 / 3.6e6
    expected = per_s / (est.colocated_output_tokens_per_s * 0.6) * 1e6
    assert cost_per_million_tokens(est) == pytest.approx(expected)
    assert cost_per_million_tokens(est, utilisation=0.3) > cost_per_million_tokens(est)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(n_chips=-1), "n_chips must be a positive whole number"),
    (dict(n_chips=0), "n_chips must be a positive whole number"),
    (dict(batch_size=2.5), "batch_size must be a positive whole number"),
    (dict(precision="fp4"), "no 'fp4' rate; it supports"),
    (dict(precision="fp16"), "unknown precision"),
    (dict(n_chips=1, precision="bf16"), "does not fit on 1 x H100-SXM.*at least 2 chips"),
    (dict(input_tokens=200_000), "exceeds"),
    (dict(tpot_slo_s=-1.0), "tpot_slo_s must be a positive"),
])
def test_bad_input_says_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_serving("H100", "llama-3.1-70b", **kwargs)
