"""Roofline performance model for LLM serving and training on one accelerator type.

Time of a step = roofline time (compute or memory bandwidth, derated by the efficiency factors
of ``data/efficiency.toml`` and the vendor's software factors of ``data/vendors.toml`` for the
year asked for), never less than the chip's per-layer latency floor times the layers, plus the
tensor-parallel all-reduces and pipeline hops on the chip's scale-up fabric (latency and
bandwidth) and a host launch overhead on kernel-launch chips. Formulas follow
../shared/reference/inference_modelling.md:

* prefill FLOPs per prompt  ``2·P_act·T + 2·L·d_attn·T²``                       (§1.4, causal)
* decode step               ``max(KV/BW + max(2·B·P_act/F, W/BW), L·t_layer)
                              + L·a·(2·log2(t)·t_hop + 2(t−1)/t·B·D·b_act/β)
                              + (p−1)·(t_hop + B·D·b_act/β) + t_launch``        (§0 item 3, §1.5)
* memory                    ``W + B·S·kv_tok ≤ n·M·u``                          (§1.6)
* training tokens/s         ``n·F·MFU / (6·P_act + 6·L·d_attn·T)``              (§4.1)

where ``a`` is the all-reduces per layer (2), ``β`` the achieved per-direction scale-up bandwidth
and ``b_act`` the bytes per activation. A replica of ``n`` chips uses tensor parallelism over
``t = min(n, max_tensor_parallel)`` chips and ``p = n / t`` pipeline stages. With ``p`` stages a
token's step runs the stages in turn, so latency is the roofline over ``t`` chips for a
micro-batch of ``max(B/p, 1)`` sequences, while the stages overlap across micro-batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hardware.catalog import Chip, Model, efficiency, get_chip, get_model
from hardware.vendors import DEFAULT_YEAR, check_year, vendor_factors

WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# KV caches stay at 8 bits when weights go to 4 bits (FP4 serving keeps an FP8 cache).
KV_BYTES = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 1.0}
DEFAULT_INPUT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256
DEFAULT_TRAINING_SEQ_LEN = 8192
_MAX_BATCH = 1 << 20
# Read once: estimate_serving runs inside table builds and search loops, where lookups add up.
_MFU, _MBU = efficiency("compute.mfu"), efficiency("bandwidth.mbu")
_USABLE = efficiency("memory.usable_fraction")
_MAX_TP = int(efficiency("parallelism.max_tensor_parallel"))
_ALLREDUCES = efficiency("parallelism.allreduces_per_layer")
_COLLECTIVE_EFF, _ACT_BYTES = efficiency("network.collective_efficiency"), efficiency("network.activation_bytes")
_LAUNCH = efficiency("overhead.kernel_launch_step_s")


@dataclass(frozen=True)
class ServingEstimate:
    """What one replica of ``n_chips`` chips does for one model at one batch size.

    Throughputs are per replica; divide by ``n_chips`` for per-chip figures. ``ttft_s`` is the
    time to first token of a prompt arriving at an idle prefill replica (queueing is the
    caller's business, see ``envs``) and ``tpot_s`` the step of a decode-only replica. The
    ``colocated_*`` fields describe a replica that runs both phases with chunked prefill: each
    step carries ``batch_size`` decode tokens plus the prompt tokens that keep the batch full;
    a new prompt arrives mid-step on average, waits for it, then is prefilled in the next
    step(s).
    """

    chip: str
    model: str
    precision: str
    fits: bool
    n_chips: int
    batch_size: int
    max_batch_size: int
    input_tokens: int
    output_tokens: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    decode_tokens_per_s_per_sequence: float
    colocated_output_tokens_per_s: float
    ttft_s: float
    tpot_s: float
    colocated_tpot_s: float
    colocated_ttft_s: float
    prefill_joules_per_token: float
    decode_joules_per_token: float
    joules_per_token: float
    prefill_bound: str
    decode_bound: str
    year: float = DEFAULT_YEAR

    @property
    def prefill_tokens_per_s_per_chip(self) -> float:
        return self.prefill_tokens_per_s / self.n_chips

    @property
    def decode_tokens_per_s_per_chip(self) -> float:
        return self.decode_tokens_per_s / self.n_chips


@dataclass(frozen=True)
class DisaggregatedEstimate:
    """Prefill on one replica type, decode on another, the KV cache moved between them."""

    prefill: ServingEstimate
    decode: ServingEstimate
    kv_transfer_s: float
    ttft_s: float
    tpot_s: float
    prefill_replicas_per_decode_replica: float
    output_tokens_per_s_per_chip: float


def serving_precision(chip: str | Chip, requested: str) -> str:
    """``requested`` if the chip runs it, else another format of the same width (fp8 <-> int8), else bf16."""
    chip = get_chip(chip)
    _check_precision_name(requested)
    if requested in chip.peak_tflops:
        return requested
    same_width = [p for p in chip.precisions if WEIGHT_BYTES[p] == WEIGHT_BYTES[requested]]
    return same_width[0] if same_width else "bf16"


def _check_count(name: str, value: int | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")


def _check_precision_name(precision: str) -> None:
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"unknown precision {precision!r}; allowed: {list(WEIGHT_BYTES)}")


def _check_precision(chip: Chip, precision: str) -> None:
    _check_precision_name(precision)
    chip.peak_flops(precision)  # raises with the chip's supported precisions


class _Replica:
    """Precomputed constants of one (chip, model, precision, n_chips, year) replica."""

    def __init__(self, chip: Chip, model: Model, precision: str, n_chips: int, year: float):
        self.chip, self.model, self.n = chip, model, n_chips
        self.tp = tensor_parallel_size(chip, n_chips)
        self.pp = n_chips / self.tp
        mfu_factor, mbu_factor = vendor_factors(chip.vendor, year)
        self.flops = chip.peak_flops(precision) * _MFU * mfu_factor
        self.bw = chip.bandwidth_bytes_per_s * _MBU * mbu_factor
        self.bytes_per_weight = WEIGHT_BYTES[precision]
        self.kv_per_token = model.kv_bytes_per_token(KV_BYTES[precision])
        self.weight_bytes = model.params * self.bytes_per_weight
        self.capacity = n_chips * chip.memory_bytes * _USABLE
        # A token passes every layer in turn, and no layer finishes faster than the chip's floor.
        self.chain = model.layers * chip.layer_floor_s
        # Scale-up fabric: interconnect_gbps is bidirectional, a ring uses one direction per step.
        link = chip.interconnect_gbps * 1e9 / 2 * _COLLECTIVE_EFF
        act = _ACT_BYTES
        allreduces = model.layers * _ALLREDUCES if self.tp > 1 else 0.0
        hops = max(self.pp - 1.0, 0.0)
        # Small-message all-reduce: 2·log2(t) rounds of one hop each (reduce then broadcast).
        allreduce_latency = 2 * math.log2(self.tp) * chip.hop_latency_s if self.tp > 1 else 0.0
        launch = _LAUNCH if chip.execution == "kernel-launch" else 0.0
        self.fixed = allreduces * allreduce_latency + hops * chip.hop_latency_s + launch
        # Fabric seconds per token of a micro-batch: ring all-reduces move 2(t-1)/t of the activations
        # per chip, and each stage hop forwards one activation vector.
        ring = 2 * (self.tp - 1) / self.tp
        self.fabric_per_token = (allreduces * ring + hops) * model.hidden * act / link

    def touched_weight_bytes(self, tokens: float) -> float:
        """Weight bytes streamed in a step that processes ``tokens`` tokens (MoE touches only some experts)."""
        m = self.model
        if not m.is_moe:
            return self.weight_bytes
        share = m.experts_per_token / m.experts
        expert_params = (m.params - m.active_params) / (1 - share)
        touched = 1.0 - (1.0 - share) ** max(tokens, 1.0)
        return (m.params - expert_params + expert_params * touched) * self.bytes_per_weight

    def step_time(self, batch: float, context: float, prefill_tokens_per_seq: float = 0.0,
                  prompt_len: float = 0.0) -> tuple[float, str]:
        """Decode (or colocated) step time and its dominant term.

        ``batch`` sequences decode one token each at mean ``context``; each also carries
        ``prefill_tokens_per_seq`` prompt tokens of a prompt of length ``prompt_len`` (chunked prefill).
        """
        micro = max(batch / self.pp, 1.0)
        m = self.model
        tokens = micro * (1.0 + prefill_tokens_per_seq)
        kv_time = micro * context * self.kv_per_token / (self.tp * self.bw)
        flops = (2 * m.active_params * tokens
                 + 4 * m.layers * m.attention_dim * micro * context
                 + 2 * m.layers * m.attention_dim * micro * prefill_tokens_per_seq * prompt_len)
        compute_time = flops / (self.tp * self.flops)
        weight_time = self.touched_weight_bytes(tokens) / (self.tp * self.bw)
        roofline = kv_time + max(compute_time, weight_time)
        fabric = tokens * self.fabric_per_token
        terms = {"bandwidth": kv_time + weight_time, "compute": compute_time, "interconnect": fabric,
                 "overhead": self.fixed + max(self.chain - roofline, 0.0)}
        return max(roofline, self.chain) + fabric + self.fixed, max(terms, key=terms.get)

    def prefill(self, prompt_len: float) -> tuple[float, float, str]:
        """(latency of one prompt, saturated tokens/s of the replica, bound)."""
        m = self.model
        flops_per_token = 2 * m.active_params + 2 * m.layers * m.attention_dim * prompt_len
        compute = prompt_len * flops_per_token / (self.tp * self.flops)
        weights = self.touched_weight_bytes(prompt_len) / (self.tp * self.bw)
        fabric = prompt_len * self.fabric_per_token
        latency = max(compute, weights, self.chain) + fabric + self.fixed
        # Saturated: all n chips compute while each of the p stages moves its own share of the traffic.
        throughput = 1.0 / (flops_per_token / (self.n * self.flops) + self.fabric_per_token / self.pp)
        terms = {"compute": compute, "bandwidth": weights, "interconnect": fabric,
                 "overhead": self.fixed + max(self.chain - max(compute, weights), 0.0)}
        return latency, throughput, max(terms, key=terms.get)

    def max_batch(self, context: float) -> int:
        free = self.capacity - self.weight_bytes
        if free <= 0:
            return 0
        return int(min(free // (context * self.kv_per_token), _MAX_BATCH))


def tensor_parallel_size(chip: str | Chip, n_chips: int) -> int:
    """Chips in one tensor-parallel group of an ``n_chips`` replica; the rest are pipeline stages."""
    chip = get_chip(chip)
    return min(n_chips, chip.max_tensor_parallel or _MAX_TP)


def decode_latency_floor_s(chip: str | Chip, model: str | Model, n_chips: int) -> float:
    """Least time a decode step can take on an ``n_chips`` replica, however fast its memory and FLOPs:
    every layer's floor in turn plus one hop per extra pipeline stage. 1 / this bounds tokens/s per user."""
    chip, model = get_chip(chip), get_model(model)
    _check_count("n_chips", n_chips, allow_none=False)
    stages = n_chips / tensor_parallel_size(chip, n_chips)
    return model.layers * chip.layer_floor_s + max(stages - 1.0, 0.0) * chip.hop_latency_s


def _fits(rep: _Replica, input_tokens: int, output_tokens: int) -> bool:
    return rep.capacity - rep.weight_bytes >= (input_tokens + output_tokens) * rep.kv_per_token


def smallest_replica(chip: str | Chip, model: str | Model, *, precision: str = "bf16",
                     input_tokens: int = DEFAULT_INPUT_TOKENS, output_tokens: int = DEFAULT_OUTPUT_TOKENS) -> int:
    """Fewest chips whose usable memory holds the weights plus one sequence's full KV cache."""
    chip, model = get_chip(chip), get_model(model)
    _check_precision(chip, precision)
    kv = (input_tokens + output_tokens) * model.kv_bytes_per_token(KV_BYTES[precision])
    need = model.params * WEIGHT_BYTES[precision] + kv
    per_chip = chip.memory_bytes * _USABLE
    return max(1, math.ceil(need / per_chip))


REPLICA_MULTIPLES = (1, 2, 4, 8)  # replica sizes tried, in multiples of the smallest replica that fits


def best_replica(chip: str | Chip, model: str | Model, *, precision: str = "bf16",
                 input_tokens: int = DEFAULT_INPUT_TOKENS, output_tokens: int = DEFAULT_OUTPUT_TOKENS,
                 tpot_slo_s: float | None = None, max_chips: int = 4096,
                 year: float | None = None) -> ServingEstimate | None:
    """The replica (a multiple of the smallest, see REPLICA_MULTIPLES, up to ``max_chips``) with the most
    decode tokens/s per chip; None if even the smallest needs more than ``max_chips`` chips.

    A 70B model squeezed onto one 80 GB GPU leaves room for a batch of a few sequences, while two
    GPUs serve far more per chip. ``year`` selects the vendor's software efficiency (None: 2025).
    """
    smallest = smallest_replica(chip, model, precision=precision, input_tokens=input_tokens,
                                output_tokens=output_tokens)
    sizes = [smallest * m for m in REPLICA_MULTIPLES if smallest * m <= max_chips]
    if not sizes:
        return None
    return max((estimate_serving(chip, model, n_chips=n, precision=precision, input_tokens=input_tokens,
                                 output_tokens=output_tokens, tpot_slo_s=tpot_slo_s, year=year) for n in sizes),
               key=lambda e: e.decode_tokens_per_s_per_chip)


def estimate_serving(
    chip: str | Chip,
    model: str | Model,
    *,
    n_chips: int | None = None,
    precision: str = "bf16",
    batch_size: int | None = None,
    input_tokens: int = DEFAULT_INPUT_TOKENS,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    tpot_slo_s: float | None = None,
    year: float | None = None,
) -> ServingEstimate:
    """Serving performance of one replica.

    ``n_chips=None`` picks the smallest replica that fits; ``batch_size=None`` picks the
    throughput-maximising batch that fits memory (and meets ``tpot_slo_s`` when given).
    ``year`` (e.g. 2024 or 2025.5; None means ``hardware.vendors.DEFAULT_YEAR``, 2025) selects the
    vendor's software-efficiency factors. Raises ValueError for impossible input, including a
    model that cannot fit in ``n_chips``.
    """
    chip, model = get_chip(chip), get_model(model)
    _check_precision(chip, precision)
    _check_count("n_chips", n_chips)
    _check_count("batch_size", batch_size)
    _check_count("input_tokens", input_tokens, allow_none=False)
    _check_count("output_tokens", output_tokens, allow_none=False)
    if input_tokens + output_tokens > model.context:
        raise ValueError(f"input_tokens + output_tokens = {input_tokens + output_tokens} exceeds "
                         f"{model.name}'s context of {model.context} tokens")
    if tpot_slo_s is not None and not (isinstance(tpot_slo_s, (int, float)) and tpot_slo_s > 0):
        raise ValueError(f"tpot_slo_s must be a positive number of seconds, got {tpot_slo_s!r}")
    year = check_year(year)
    smallest = smallest_replica(chip, model, precision=precision, input_tokens=input_tokens,
                                output_tokens=output_tokens)
    if n_chips is None:
        n_chips = smallest
    n_chips = int(n_chips)
    rep = _Replica(chip, model, precision, n_chips, year)
    if not _fits(rep, input_tokens, output_tokens):
        raise ValueError(f"{model.name} at {precision} does not fit on {n_chips} x {chip.name} "
                         f"({input_tokens}+{output_tokens} tokens of context); it needs at least {smallest} chips")
    context = input_tokens + output_tokens / 2  # mean context of a sequence over its decode
    max_batch = max(rep.max_batch(context), 1)
    if batch_size is None:
        batch_size = _best_batch(rep, context, max_batch, tpot_slo_s)
    elif batch_size > max_batch:
        raise ValueError(f"batch_size {batch_size} does not fit: {n_chips} x {chip.name} hold at most "
                         f"{max_batch} sequences of {input_tokens}+{output_tokens} tokens of {model.name}")
    batch_size = int(batch_size)
    tpot, decode_bound = rep.step_time(batch_size, context)
    prefill_latency, prefill_tps, prefill_bound = rep.prefill(input_tokens)
    chunk = input_tokens / output_tokens  # prompt tokens per sequence per step in steady state
    colocated_step, _ = rep.step_time(batch_size, context, chunk, input_tokens)
    colocated_tps = batch_size / colocated_step
    steps_to_prefill = math.ceil(input_tokens / max(chunk * max(batch_size / rep.pp, 1.0), 1.0))
    decode_tps = batch_size / tpot
    power = n_chips * chip.tdp_w
    return ServingEstimate(
        chip=chip.name, model=model.name, precision=precision, fits=True, n_chips=n_chips,
        batch_size=batch_size, max_batch_size=max_batch, input_tokens=input_tokens,
        output_tokens=output_tokens, prefill_tokens_per_s=prefill_tps, decode_tokens_per_s=decode_tps,
        decode_tokens_per_s_per_sequence=1.0 / tpot, colocated_output_tokens_per_s=colocated_tps,
        ttft_s=prefill_latency, tpot_s=tpot, colocated_tpot_s=colocated_step,
        colocated_ttft_s=colocated_step * (0.5 + steps_to_prefill),
        prefill_joules_per_token=power / prefill_tps, decode_joules_per_token=power / decode_tps,
        joules_per_token=power / colocated_tps, prefill_bound=prefill_bound, decode_bound=decode_bound,
        year=year,
    )


def _best_batch(rep: _Replica, context: float, max_batch: int, tpot_slo_s: float | None) -> int:
    """Throughput grows with batch (step time is affine in it), so the best batch is the largest allowed."""
    if tpot_slo_s is None or rep.step_time(max_batch, context)[0] <= tpot_slo_s:
        return max_batch
    if rep.step_time(1, context)[0] > tpot_slo_s:
        return 1
    low, high = 1, max_batch  # step_time(low) meets the SLO, step_time(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if rep.step_time(mid, context)[0] <= tpot_slo_s else (low, mid)
    return low


def largest_batch_within_tpot(chip: str | Chip, model: str | Model, tpot_slo_s: float, **kwargs) -> int:
    """The largest batch that fits and meets ``tpot_slo_s`` (1 if even batch 1 misses it)."""
    return estimate_serving(chip, model, tpot_slo_s=tpot_slo_s, **kwargs).batch_size


def estimate_disaggregated(
    prefill_chip: str | Chip,
    decode_chip: str | Chip,
    model: str | Model,
    *,
    precision: str = "bf16",
    prefill_n_chips: int | None = None,
    decode_n_chips: int | None = None,
    input_tokens: int = DEFAULT_INPUT_TOKENS,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    tpot_slo_s: float | None = None,
    year: float | None = None,
) -> DisaggregatedEstimate:
    """Prefill replicas of one chip feed decode replicas of another over the scale-out network."""
    prefill = estimate_serving(prefill_chip, model, n_chips=prefill_n_chips, precision=precision,
                               batch_size=1, input_tokens=input_tokens, output_tokens=output_tokens, year=year)
    decode = estimate_serving(decode_chip, model, n_chips=decode_n_chips, precision=precision,
                              input_tokens=input_tokens, output_tokens=output_tokens, tpot_slo_s=tpot_slo_s,
                              year=year)
    kv_bytes = input_tokens * get_model(model).kv_bytes_per_token(KV_BYTES[precision])
    link = min(prefill.n_chips, decode.n_chips) * efficiency("network.kv_transfer_gbps") * 1e9
    transfer = kv_bytes / link
    # Requests/s a prefill replica admits vs what a decode replica finishes: their ratio balances the pools.
    prefill_rps = prefill.prefill_tokens_per_s / input_tokens
    decode_rps = decode.decode_tokens_per_s / output_tokens
    ratio = decode_rps / prefill_rps
    chips = prefill.n_chips * ratio + decode.n_chips
    return DisaggregatedEstimate(
        prefill=prefill, decode=decode, kv_transfer_s=transfer, ttft_s=prefill.ttft_s + transfer,
        tpot_s=decode.tpot_s, prefill_replicas_per_decode_replica=ratio,
        output_tokens_per_s_per_chip=decode.decode_tokens_per_s / chips,
    )


def smallest_training_group(chip: str | Chip, model: str | Model) -> int:
    """Fewest chips whose usable memory holds the weights and mixed-precision Adam state."""
    chip, model = get_chip(chip), get_model(model)
    need = model.params * efficiency("training.bytes_per_param")
    return max(1, math.ceil(need / (chip.memory_bytes * efficiency("memory.usable_fraction"))))


def estimate_training(
    chip: str | Chip,
    model: str | Model,
    *,
    n_chips: int,
    precision: str = "bf16",
    seq_len: int = DEFAULT_TRAINING_SEQ_LEN,
    year: float | None = None,
) -> float:
    """Training tokens/s of ``n_chips`` chips at the catalog's training MFU times the vendor's
    MFU factor in ``year`` (None: ``hardware.vendors.DEFAULT_YEAR``, 2025).

    Raises ValueError when mixed-precision Adam state (bytes_per_param per parameter) does not fit.
    """
    chip, model = get_chip(chip), get_model(model)
    _check_precision(chip, precision)
    _check_count("n_chips", n_chips, allow_none=False)
    _check_count("seq_len", seq_len, allow_none=False)
    mfu_factor, _ = vendor_factors(chip.vendor, check_year(year))
    smallest = smallest_training_group(chip, model)
    if n_chips < smallest:
        need = model.params * efficiency("training.bytes_per_param")
        per_chip = chip.memory_bytes * efficiency("memory.usable_fraction")
        raise ValueError(f"training {model.name} needs {need / 1e9:.0f} GB of optimizer state and weights; "
                         f"{n_chips} x {chip.name} hold {n_chips * per_chip / 1e9:.0f} GB usable; "
                         f"use at least {smallest} chips")
    flops_per_token = 6 * model.active_params + 6 * model.layers * model.attention_dim * seq_len
    return n_chips * chip.peak_flops(precision) * efficiency("training.mfu") * mfu_factor / flops_per_token


def cost_per_million_tokens(
    estimate: ServingEstimate,
    *,
    utilisation: float | None = None,
    amortisation_years: float | None = None,
    energy_usd_per_kwh: float | None = None,
    pue: float | None = None,
) -> float:
    """USD per million output tokens of a colocated replica: capital amortised plus energy.

    Defaults come from the ``economics`` section of efficiency.toml (all flagged assumptions).
    """
    utilisation = efficiency("economics.utilisation") if utilisation is None else utilisation
    years = efficiency("economics.amortisation_years") if amortisation_years is None else amortisation_years
    price_kwh = efficiency("economics.energy_usd_per_kwh") if energy_usd_per_kwh is None else energy_usd_per_kwh
    pue = efficiency("economics.pue") if pue is None else pue
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation!r}")
    for name, value in (("amortisation_years", years), ("energy_usd_per_kwh", price_kwh), ("pue", pue)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    chip = get_chip(estimate.chip)
    seconds = years * 365.25 * 86400
    capital_per_s = estimate.n_chips * chip.price_usd / seconds
    energy_per_s = estimate.n_chips * chip.tdp_w * utilisation * pue * price_kwh / 3.6e6
    tokens_per_s = estimate.colocated_output_tokens_per_s * utilisation
    return (capital_per_s + energy_per_s) / tokens_per_s * 1e6
