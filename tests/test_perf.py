"""The roofline model: hand-worked examples, physical properties, disaggregation, training, bad input."""

import dataclasses
import itertools
import math

import pytest

from hardware import (
    Workload,
    build_serving_tables,
    cost_per_million_tokens,
    estimate_disaggregated,
    estimate_serving,
    estimate_training,
    get_chip,
    largest_batch_within_tpot,
    list_chips,
    smallest_replica,
    vendor_efficiency,
)
from hardware.perf import serving_precision

# Global factors from hardware/data/efficiency.toml, restated so the hand-worked numbers are visible.
MFU, MBU, LAUNCH = 0.5, 0.7, 4e-3
# Scale-up fabric: share of the per-direction link rate a collective reaches; bf16 activations; 2 all-reduces a layer.
COLL_EFF, ACT_BYTES, ALLREDUCES = 0.8, 2, 2


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


def test_tensor_parallel_adds_collective_latency_and_bandwidth_per_layer():
    one = estimate_serving("H200", "llama-3.1-8b", n_chips=1, batch_size=1)
    eight = estimate_serving("H200", "llama-3.1-8b", n_chips=8, batch_size=1)
    hop = 2e-6  # chips.toml: H200 NVLink hop
    latency = ALLREDUCES * 32 * (2 * math.log2(8) * hop)  # 64 all-reduces of 6 rounds each
    ring_bytes = ALLREDUCES * 32 * (2 * 7 / 8) * 4096 * ACT_BYTES  # one token's activations, per chip
    bandwidth = ring_bytes / (900e9 / 2 * COLL_EFF)
    assert eight.tpot_s == pytest.approx((one.tpot_s - LAUNCH) / 8 + LAUNCH + latency + bandwidth, rel=1e-9)
    # The bandwidth term grows with the tokens in the step: 64 sequences move 64 times the bytes.
    big = estimate_serving("H200", "llama-3.1-8b", n_chips=8, batch_size=64)
    assert big.tpot_s > eight.tpot_s + 63 * bandwidth


def test_pcie_only_replica_is_slower_than_nvlink_with_equal_chips():
    pcie = get_chip("L40S")
    nvlink = dataclasses.replace(pcie, interconnect_gbps=900.0, hop_latency_s=get_chip("H100").hop_latency_s)
    kwargs = dict(n_chips=8, precision="fp8", input_tokens=1024, output_tokens=256)
    slow = estimate_serving(pcie, "llama-3.1-70b", **kwargs)
    fast = estimate_serving(nvlink, "llama-3.1-70b", **kwargs)
    assert slow.batch_size == fast.batch_size  # same memory, same batch: only the fabric differs
    assert slow.decode_tokens_per_s < 0.6 * fast.decode_tokens_per_s
    assert slow.prefill_tokens_per_s < fast.prefill_tokens_per_s
    assert slow.decode_bound == "interconnect"
    # Hand-worked: the 64 GB/s PCIe link adds 2 * 80 all-reduces x 7/4 of each token's 8192 bf16 activations.
    tokens = slow.batch_size
    extra = tokens * 2 * 80 * 1.75 * 8192 * 2 * (1 / (64e9 / 2 * COLL_EFF) - 1 / (900e9 / 2 * COLL_EFF))
    extra += 2 * 80 * 6 * (pcie.hop_latency_s - nvlink.hop_latency_s)
    assert slow.tpot_s - fast.tpot_s == pytest.approx(extra, rel=1e-9)


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
        # SRAM streams weights so fast that the layer floor and hop latencies dominate a batch of one.
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


@pytest.mark.parametrize("chip", list_chips())
@pytest.mark.parametrize("model", ["llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b"])
def test_layer_floor_bounds_per_user_speed_on_every_chip(chip, model):
    """A token passes every layer in turn: no chip decodes faster than layers x floor (+ pipeline hops)."""
    c = get_chip(chip)
    precision = serving_precision(c, "fp8")
    n = smallest_replica(c, model, precision=precision)
    layers = {"llama-3.2-1b": 16, "llama-3.1-8b": 32, "llama-3.1-70b": 80}[model]
    tp = min(n, c.max_tensor_parallel or 8)
    floor = layers * c.layer_floor_s + (n / tp - 1) * c.hop_latency_s
    est = estimate_serving(c, model, n_chips=n, precision=precision, batch_size=1)
    assert est.tpot_s >= floor
    assert est.decode_tokens_per_s_per_sequence <= 1 / floor
    # Even with unlimited memory bandwidth and FLOP/s the floor holds.
    boundless = estimate_serving(_scaled(c, bw=1e6, flops=1e6), model, n_chips=n, precision=precision, batch_size=1)
    assert boundless.tpot_s >= floor


def test_wafer_scale_8b_is_floor_bound_per_user():
    # 32 layers x 5 us on one WSE-3 and no host launch: exactly 6,250 tokens/s per user, not 12,000.
    est = estimate_serving("WSE-3", "llama-3.1-8b", n_chips=1, batch_size=1)
    assert est.tpot_s == pytest.approx(32 * 5e-6, rel=1e-9)
    assert est.decode_bound == "overhead"


def test_vendor_factors_apply_and_change_by_year():
    assert vendor_efficiency("MI300X", 2024) == (0.5, 0.85)
    assert vendor_efficiency("MI300X", 2026) == (0.7, 0.95)
    mfu, mbu = vendor_efficiency("MI300X", 2024.5)  # halfway between the 2024 and 2025 points
    assert (mfu, mbu) == (pytest.approx(0.55), pytest.approx(0.875))
    assert vendor_efficiency("MI300X", 2030) == vendor_efficiency("MI300X", 2026)  # held after the last point
    assert vendor_efficiency("H100", 2024) == vendor_efficiency("H100", 2027) == (1.0, 1.0)
    assert vendor_efficiency("Gaudi3") == vendor_efficiency("Gaudi3", 2025) == (0.5, 0.85)  # None = 2025
    # Prefill throughput scales with the MFU factor, a bandwidth-bound decode step with the MBU factor.
    early = estimate_serving("MI300X", "llama-3.1-8b", batch_size=1, year=2024)
    late = estimate_serving("MI300X", "llama-3.1-8b", batch_size=1, year=2026)
    assert late.prefill_tokens_per_s / early.prefill_tokens_per_s == pytest.approx(0.7 / 0.5)
    assert (early.tpot_s - LAUNCH) / (late.tpot_s - LAUNCH) == pytest.approx(0.95 / 0.85)
    assert estimate_serving("MI300X", "llama-3.1-8b").year == 2025.0
    ratio = (estimate_training("MI300X", "llama-3.1-70b", n_chips=64, year=2026)
             / estimate_training("MI300X", "llama-3.1-70b", n_chips=64, year=2024))
    assert ratio == pytest.approx(0.7 / 0.5)
    # NVIDIA is the reference: its figures do not move with the year.
    assert estimate_serving("H100", "llama-3.1-8b", year=2024) == dataclasses.replace(
        estimate_serving("H100", "llama-3.1-8b", year=2026), year=2024.0)


def test_serving_tables_follow_the_year():
    w = [Workload("chat", "llama-3.1-70b", "fp8", 1024, 256, 0.05)]
    early = build_serving_tables(["H200", "MI300X"], w, year=2024)
    late = build_serving_tables(["H200", "MI300X"], w, year=2026)
    assert early.decode_tokens_per_s_per_chip[0, 0] == late.decode_tokens_per_s_per_chip[0, 0]
    assert late.decode_tokens_per_s_per_chip[0, 1] > 1.1 * early.decode_tokens_per_s_per_chip[0, 1]
    assert build_serving_tables(["MI300X"], w).prefill_tokens_per_s_per_chip[0, 0] == pytest.approx(
        build_serving_tables(["MI300X"], w, year=2025).prefill_tokens_per_s_per_chip[0, 0])


@pytest.mark.parametrize("year", [1990, "2025", float("nan"), True])
def test_bad_year_says_what_is_allowed(year):
    with pytest.raises(ValueError, match="year must be a number between 2015 and 2040"):
        estimate_serving("H100", "llama-3.1-8b", year=year)
