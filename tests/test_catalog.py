"""Catalog validation: every figure sourced, units plausible, lookups and their errors."""

import pytest

from hardware import CatalogError, UnknownNameError, get_chip, get_model, list_chips, list_models
from hardware.catalog import _parse_chip, _parse_model

REQUIRED_CHIPS = [
    "A100-80GB", "H100-SXM", "H200", "B200", "GB200", "B300", "MI300X", "MI325X", "MI355X", "Gaudi2", "Gaudi3",
    "TPU-v5e", "TPU-v5p", "TPU-v6e", "TPU-Ironwood", "TPU-8t", "TPU-8i", "Trainium2", "Trainium3", "Inferentia2",
    "Groq-LPU", "WSE-3", "L40S", "L4",
]
REQUIRED_MODELS = ["llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "deepseek-v3"]


def test_every_required_chip_and_model_is_present():
    chips = {c.lower() for c in list_chips()}
    assert {c.lower() for c in REQUIRED_CHIPS} <= chips
    assert set(REQUIRED_MODELS) <= set(list_models())
    assert any(get_model(m).params < 3e9 for m in list_models()), "a small RL 'student' model is required"


@pytest.mark.parametrize("name", list_chips())
def test_every_chip_figure_is_sourced_and_estimates_are_explained(name):
    chip = get_chip(name)
    expected = {"memory_gb", "memory_bw_tbps", "hbm_stacks", "tdp_w", "price_usd", "interconnect_gbps",
                "available", "lead_time_weeks", "peak_tflops.bf16", "layer_floor_us", "hop_latency_us"}
    assert expected <= set(chip.figures)
    for key, fig in chip.figures.items():
        assert fig.source.strip(), f"{name}.{key} has no source"
        if fig.estimate:
            assert len(fig.reasoning) > 20, f"{name}.{key} is an estimate without reasoning"


@pytest.mark.parametrize("name", list_chips())
def test_units_are_physically_plausible(name):
    chip = get_chip(name)
    ridge = chip.peak_flops("bf16") / chip.bandwidth_bytes_per_s
    if chip.memory_kind == "SRAM":
        assert ridge < 20, "on-chip SRAM has huge bandwidth per FLOP"
        assert chip.hbm_stacks == 0
    else:
        assert 50 < ridge < 1000, f"bf16 ridge point {ridge:.0f} FLOP/byte is implausible for off-chip memory"
    if chip.uses_hbm:
        assert 8 <= chip.memory_gb / chip.hbm_stacks <= 48, "GB per HBM stack outside 8-48"
    for precision in chip.precisions:
        assert chip.peak_tflops[precision] >= chip.peak_tflops["bf16"] * 0.99, "lower precision is never slower"
    assert chip.price_usd / chip.tdp_w < 500, "price per watt way off"


def test_models_match_their_published_parameter_counts():
    for name in list_models():
        model = get_model(name)
        if name == "deepseek-v3":  # MLA and mixed dense/MoE layers: the generic shape formula does not apply
            continue
        assert model.shape_param_count() == pytest.approx(model.params, rel=0.02), name


def test_kv_cache_per_token_matches_the_reference():
    # inference_modelling.md §1.8: Llama-3.1-70B 320 KiB/token in bf16; DeepSeek-V3 68.6 KiB.
    assert get_model("llama-3.1-70b").kv_bytes_per_token(2) == 320 * 1024
    assert get_model("deepseek-v3").kv_bytes_per_token(2) / 1024 == pytest.approx(68.6, abs=0.1)


@pytest.mark.parametrize(("alias", "name"), [
    ("H100", "H100-SXM"), ("h100-sxm", "H100-SXM"), ("MI300X", "MI300X"), ("Gaudi2", "Gaudi2"),
    ("TPUv6e", "TPU-v6e"), ("WSE-3", "WSE-3"), ("LPU", "Groq-LPU"), ("trillium", "TPU-v6e"),
])
def test_aliases_are_case_insensitive(alias, name):
    assert get_chip(alias).name == name


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match=r"valid chips: .*H100-SXM"):
        get_chip("H9000")
    with pytest.raises(UnknownNameError, match=r"valid models: .*llama-3\.1-70b"):
        get_model("gpt-9")


GOOD_CHIP = {
    "name": "X", "vendor": "V", "segment": "both", "memory_kind": "HBM3", "execution": "kernel-launch",
    "memory_gb": {"value": 80, "source": "s"}, "memory_bw_tbps": {"value": 3, "source": "s"},
    "hbm_stacks": {"value": 5, "source": "s"}, "tdp_w": {"value": 700, "source": "s"},
    "price_usd": {"value": 20000, "source": "s"}, "interconnect_gbps": {"value": 900, "source": "s"},
    "available": {"value": "2024-01", "source": "s"}, "lead_time_weeks": {"value": 20, "source": "s"},
    "peak_tflops": {"bf16": {"value": 900, "source": "s"}},
    "layer_floor_us": {"value": 12, "source": "s"}, "hop_latency_us": {"value": 2, "source": "s"},
}


def test_a_well_formed_chip_entry_parses():
    chip = _parse_chip(GOOD_CHIP, "X")
    assert chip.memory_gb == 80
    assert chip.layer_floor_s == pytest.approx(12e-6) and chip.hop_latency_s == pytest.approx(2e-6)
    assert chip.max_tensor_parallel is None
    assert _parse_chip({**GOOD_CHIP, "max_tensor_parallel": {"value": 1, "source": "s"}}, "X").max_tensor_parallel == 1


@pytest.mark.parametrize(("patch", "message"), [
    ({"memory_gb": {"value": 80}}, "source"),
    ({"memory_gb": {"value": 80, "source": "s", "estimate": True}}, "reasoning"),
    ({"memory_gb": {"value": 80000, "source": "s"}}, "plausible range"),
    ({"memory_gb": {"value": -1, "source": "s"}}, "> 0"),
    ({"segment": "gaming"}, "segment"),
    ({"memory_kind": "SRAM"}, "disagree"),
    ({"available": {"value": "2024", "source": "s"}}, "YYYY-MM"),
    ({"peak_tflops": {"fp3": {"value": 1, "source": "s"}, "bf16": {"value": 1, "source": "s"}}}, "precision"),
    ({"tdp_w": 700}, "expected a table"),
    ({"layer_floor_us": {"value": 12000, "source": "s"}}, r"layer_floor_us: 12000.0 us is outside"),
    ({"hop_latency_us": {"value": 0, "source": "s"}}, "hop_latency_us: value must be > 0"),
    ({"max_tensor_parallel": {"value": 2.5, "source": "s"}}, "max_tensor_parallel: expected a whole number"),
])
def test_malformed_chip_entries_name_the_field(patch, message):
    with pytest.raises(CatalogError, match=message):
        _parse_chip({**GOOD_CHIP, **patch}, "X")


def test_malformed_model_entries_are_rejected():
    good = {"name": "m", "source": "s", "params_b": 1.0, "active_params_b": 1.0, "layers": 2, "hidden": 8,
            "ffn": 16, "heads": 2, "kv_heads": 1, "head_dim": 4, "vocab": 10, "kv_per_token_per_layer": 8,
            "context": 128, "experts": 1, "experts_per_token": 1}
    assert _parse_model(good, "m").params == 1e9
    with pytest.raises(CatalogError, match="active_params_b"):
        _parse_model({**good, "active_params_b": 2.0}, "m")
    with pytest.raises(CatalogError, match="layers"):
        _parse_model({**good, "layers": 0}, "m")
    with pytest.raises(CatalogError, match="source"):
        _parse_model({**good, "source": ""}, "m")


def test_a_chip_without_a_layer_floor_is_rejected():
    entry = {k: v for k, v in GOOD_CHIP.items() if k != "layer_floor_us"}
    with pytest.raises(CatalogError, match="missing field 'layer_floor_us'"):
        _parse_chip(entry, "X")


def test_dataflow_chips_have_a_physical_floor_not_zero():
    for name in list_chips():
        chip = get_chip(name)
        assert chip.layer_floor_s >= 1e-6, f"{name}: a layer takes at least a microsecond on any chip"
    assert get_chip("WSE-3").max_tensor_parallel == 1  # wafers are pipelined, never tensor-parallel
