"""The Gymnasium environments: API compliance, determinism, vector equality, invariants, bad input."""

import copy
import pickle
import weakref

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import ENV_IDS, ScenarioError, load_scenario
from envs.dynamics import WEEK_S
from envs.functional import generation_stacks

SMALL_ACTION = gym.make("ChipAlloc/Datacenter-Small-v0").action_space.shape[0]  # the discrete variant's too


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_passes_gymnasium_and_sb3_checkers(env_id):
    check_env(gym.make(env_id, render_mode="ansi").unwrapped)
    sb3_check_env(gym.make(env_id))


def test_default_action_space_is_compact():
    env = gym.make("ChipAlloc/Datacenter-v0")
    assert env.action_space.shape[0] < 30
    assert env.observation_space.dtype == np.float32


def _rollout(env, seed, steps=20, action_seed=0):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    out = [obs]
    for _ in range(steps):
        a = (rng.random(env.action_space.shape) * 0.4 - 0.2).astype(np.float32)
        obs, r, term, trunc, info = env.step(a)
        out.append(np.append(obs, [r, info["cash"]]))
        if term or trunc:
            break
    return np.concatenate(out)


def test_same_seed_same_trajectory_and_different_seed_differs():
    env = gym.make("ChipAlloc/Datacenter-Small-v0")
    a, b, c = _rollout(env, 7), _rollout(env, 7), _rollout(env, 8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_reset_options_fix_the_exogenous_path_for_common_random_numbers():
    env = gym.make("ChipAlloc/Datacenter-Small-v0").unwrapped
    env.reset(seed=1, options={"path_seed": 42})
    first = env.exogenous.demand.copy()
    env.reset(seed=2, options={"path_seed": 42})
    assert np.array_equal(first, env.exogenous.demand)


def test_env_pickles_for_subprocess_vec_env():
    env = gym.make("ChipAlloc/Datacenter-Small-v0")
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    assert np.array_equal(env.step(a)[0], clone.step(a)[0])


def test_native_vector_env_matches_single_envs_step_for_step():
    n, seed = 3, 11
    vec = gym.make_vec("ChipAlloc/Datacenter-Small-v0", num_envs=n, vectorization_mode="vector_entry_point")
    singles = [gym.make("ChipAlloc/Datacenter-Small-v0") for _ in range(n)]
    vobs, _ = vec.reset(seed=seed)
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    assert np.allclose(vobs, np.stack(sobs))
    rng = np.random.default_rng(0)
    for _ in range(26):
        acts = (rng.random((n, *vec.single_action_space.shape)) * 0.6 - 0.3).astype(np.float32)
        vobs, vrew, vterm, vtrunc, _ = vec.step(acts)
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(acts[i])
            assert np.allclose(vobs[i], o) and np.isclose(vrew[i], r)
            assert vterm[i] == term and vtrunc[i] == trunc
    assert vtrunc.all()


def test_single_env_info_kept_from_any_step_never_changes():
    """The single env refills an earlier step's info arrays (envs.functional.InfoRows) only when nothing holds that
    info, one of its arrays or a view of one: an env whose caller keeps pieces of every info gives the same infos
    as one whose caller keeps them all, and none of the pieces changes afterwards."""
    reusing, keeping = gym.make("ChipAlloc/Datacenter-Small-v0"), gym.make("ChipAlloc/Datacenter-Small-v0")
    reusing.reset(seed=3)
    keeping.reset(seed=3)
    rng = np.random.default_rng(0)
    kept, held = [], []
    for t in range(26):
        a = (rng.random(reusing.action_space.shape) * 0.6 - 0.3).astype(np.float32)
        info, everything = reusing.step(a)[4], keeping.step(a)[4]
        assert list(info) == list(everything)
        for name, value in everything.items():
            assert type(info[name]) is type(value)
            np.testing.assert_array_equal(info[name], value)
        kept.append((everything, copy.deepcopy(everything)))
        piece = (info, info["fleet"], info["prefill_chips"][1:, :2], info["demand"].base, memoryview(info["served"]),
                 None)[t % 6]  # every sixth info nothing is kept, so its arrays are reused
        held.append((piece, copy.deepcopy(piece) if isinstance(piece, dict) else np.array(piece)))
    for info, snapshot in kept:
        for name, value in snapshot.items():
            np.testing.assert_array_equal(info[name], value)
    for piece, snapshot in held:
        if isinstance(piece, dict):
            for name, value in snapshot.items():
                np.testing.assert_array_equal(piece[name], value)
        elif piece is not None:
            np.testing.assert_array_equal(np.asarray(piece), snapshot)


def test_single_env_reuses_the_arrays_of_an_info_nothing_holds():
    env = gym.make("ChipAlloc/Datacenter-v0")
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    fleet = weakref.ref(env.step(a)[4]["fleet"])
    env.step(a)
    info = env.step(a)[4]  # two rows alternate, so this is the first step's, refilled
    assert info["fleet"] is fleet()
    clone = copy.deepcopy(env)  # a copy's arrays must still view the rows its steps write
    for _ in range(3):
        mine, theirs = env.step(a)[4], clone.step(a)[4]
        for name, value in mine.items():
            np.testing.assert_array_equal(theirs[name], value)


@pytest.mark.parametrize(("bad", "message"), [
    (np.full(SMALL_ACTION, np.nan, dtype=np.float32), "NaN or inf"),
    (np.full(SMALL_ACTION, np.inf, dtype=np.float32), "NaN or inf"),
    (np.zeros(3, dtype=np.float32), "shape"),
    (np.full(SMALL_ACTION, 2.0, dtype=np.float32), r"outside \[-1, 1\]"),
    (np.array(["a"] * SMALL_ACTION), "not numeric"),
])
def test_invalid_actions_raise_a_clear_error(bad, message):
    env = gym.make("ChipAlloc/Datacenter-Small-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(bad)


@pytest.mark.parametrize(("bad", "message"), [
    (np.full(SMALL_ACTION, 5), r"outside MultiDiscrete"), (np.full(SMALL_ACTION, -1), r"outside MultiDiscrete"),
    (np.full(SMALL_ACTION, 1.0), "not an integer type"),
])
def test_invalid_discrete_actions_raise_a_clear_error(bad, message):
    env = gym.make("ChipAlloc/DatacenterDiscrete-Small-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(bad)


def test_discrete_variant_masks_chips_not_on_sale_and_unaffordable_orders():
    from dataclasses import replace

    from envs.dynamics import STATE

    env = gym.make("ChipAlloc/DatacenterDiscrete-v0").unwrapped
    env.reset(seed=0)
    K = env.scenario.n_chips
    mask = env.action_masks()
    weights, target = mask[: K * 5].reshape(K, 5), mask[K * 5: K * 5 + 5]
    b300 = env.scenario.chips.index("B300")  # on sale from 2026
    assert weights[b300].tolist() == [True, False, False, False, False]
    assert weights[:, 0].all() and weights[env.scenario.chips.index("H200")].all()
    assert target.all() and mask[K * 5 + 5:K * 5 + 10].all()  # rich enough for any target; selling is always open
    capacity = mask[K * 5 + 10:K * 5 + 25].reshape(3, 5)  # expansion, rent in, rent out
    assert capacity[0, 1:].all() == env.scenario.site["power_cap"]
    assert capacity[1:, 1:].all() == env.scenario.rental["enabled"] and capacity[:, 0].all()
    assert mask[K * 5 + 25:].all()  # knobs are never masked

    # Leave $50k of cash plus credit: one order unit of any chip (8 GPUs, 64 LPUs or a wafer) costs more,
    # and the first target level that orders anything already spends it all, so the levels above it are masked.
    o = env.params.offsets.state
    rows = env.state.rows.copy()
    rows[0, o[STATE.cash]] = 5e4 - env.scenario.credit_limit_usd
    env.state = replace(env.state, rows=rows)
    poor = env.action_masks()
    weights, target = poor[: K * 5].reshape(K, 5), poor[K * 5: K * 5 + 5]
    assert not weights[:, 1:].any() and weights[:, 0].all()
    first_order = int(np.argmax(target[1:] == False))  # noqa: E712  (the first masked level, less one)
    assert target[: first_order + 1].all() and not target[first_order + 1:].any() and 1 <= first_order <= 3


def test_orders_for_chips_not_on_sale_are_dropped_and_reported():
    env = gym.make("ChipAlloc/DatacenterFine-v0")
    env.reset(seed=0)
    a = -np.ones(env.action_space.shape, dtype=np.float32)
    b300 = env.unwrapped.scenario.chips.index("B300")  # on sale from 2026
    a[b300] = 1.0
    _, _, _, _, info = env.step(a)
    assert info["orders_unavailable"][b300] > 0 and info["ordered"][b300] == 0


def test_compact_orders_reach_the_capacity_target_on_chips_on_sale():
    from envs.functional import coverage, owned_and_ordered

    # (a site without a power cap, so the order is the target rule's alone)
    uncapped = load_scenario({"base": "default", "name": "uncapped", "site": {"power_cap": False}})
    env = envs.DatacenterEnv(scenario=uncapped, variant="datacenter")
    env.reset(seed=0)
    u = env.unwrapped
    s, K = u.scenario, u.scenario.n_chips
    a = -np.ones(env.action_space.shape, dtype=np.float32)
    h200, b300 = s.chips.index("H200"), s.chips.index("B300")
    a[[h200, b300]] = 1.0  # equal weight on a chip on sale and one that is not
    a[K] = 2 * (1.5 / 3.0) - 1  # target: 1.5x this week's demand
    demand = u.exogenous.demand[:, 0] + u.state.backlog
    before = coverage(u.params, owned_and_ordered(u.params, u.state), demand, 0)[0]
    _, _, _, _, info = env.step(a)
    assert info["ordered"][b300] == 0 and info["orders_unavailable"].sum() == 0
    assert info["ordered"][h200] > 0 and info["ordered"].sum() == info["ordered"][h200]
    after = coverage(u.params, (info["fleet"] + info["in_queue"] + info["in_transit"] + info["failed"])[None],
                     demand, 0)[0]
    unit_coverage = coverage(u.params, np.eye(K)[h200][None] * 8, demand, 0)[0]  # one 8-GPU server
    assert before < 1.5 and 1.5 - unit_coverage <= after <= 1.5 + 1e-9


SMALL = load_scenario("small")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), actions=st.lists(
    st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=SMALL_ACTION, max_size=SMALL_ACTION),
    min_size=1, max_size=26))
def test_invariants_hold_under_random_action_sequences(seed, actions):
    env = gym.make("ChipAlloc/Datacenter-Small-v0").unwrapped
    env.reset(seed=seed)
    ordered = env.state.fleet.sum()
    gone = 0.0
    pools = generation_stacks(env.params)  # (K, G) stacks each chip draws from each HBM generation
    for act in actions:
        cash_before = float(env.state.cash[0])
        queued_before = env.state.queue[0].copy()
        _, _, term, trunc, info = env.step(np.asarray(act, dtype=np.float32))
        s = env.state
        ordered += info["ordered"].sum()
        gone += info["failed"].sum() + info["sold"].sum()
        in_system = s.fleet.sum() + s.queue.sum() + s.pipeline.sum()
        assert np.isclose(ordered, in_system + gone), "chips are conserved"
        assert (s.fleet >= 0).all() and (s.queue >= 0).all() and (s.pipeline >= 0).all()
        assert (s.book_value >= -1e-6).all() and s.site_book_value[0] >= -1e-6
        assert np.isclose(info["cash"], cash_before - info["capex"] - info["facility_capex"] + info["sale_proceeds"]
                          + info["revenue"] - info["opex"])
        assert info["cash"] >= -SMALL.credit_limit_usd or info["bankrupt"]
        assert (info["served"] <= info["demand"] + 1e-6).all()
        assert (info["served"] <= np.minimum(info["prefill_capacity"], info["decode_capacity"]) + 1e-6).all()
        # Per HBM generation: we draw at most our allocation, which is at most the supply, and the stacks drawn
        # are those of the chips of that generation released from the queue.
        assert (info["hbm_drawn"] <= info["hbm_allocation"] + 1e-6).all()
        assert (info["hbm_allocation"] <= info["hbm_supply"] + 1e-6).all()
        released = queued_before + info["ordered"] - info["in_queue"]
        np.testing.assert_allclose(info["hbm_drawn"], released @ pools)
        revenue = info["revenue_per_class"].sum() + info["revenue_training"] + info["rent_income"]
        assert np.isclose(info["revenue"], revenue)
        # power: the committed IT load fits the site built; renting stays within the market and the fleet
        assert info["site_committed_kw"] <= info["site_kw"] + 1e-6
        assert (info["rented_in"] <= SMALL.rental["max_chips_per_week"]).all()
        assert (info["rented_out"] <= info["fleet"] + info["sold"] + info["failed"] + 1e-9).all()
        assert info["rent_cost"] == pytest.approx((info["rented_in"] * info["rent_price"]).sum())
        a = SMALL.arrays
        price = a["output_price_per_token"] + a["input_price_per_token"] * a["input_tokens"] / a["output_tokens"]
        ceiling = (info["served"] * price).sum() * WEEK_S
        assert info["revenue_per_class"].sum() <= ceiling + 1e-6
        if term or trunc:
            break


def test_render_modes():
    env = gym.make("ChipAlloc/Datacenter-Small-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    text = env.render()
    assert "H100-SXM" in text and "chat" in text
    env = gym.make("ChipAlloc/Datacenter-Small-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


@pytest.mark.parametrize(("patch", "message"), [
    ({"weeks": -3}, "weeks"),
    ({"chips": ["H9000"]}, "valid chips"),
    ({"hbm": {"shock_depth": 2.0}}, r"hbm\.shock_depth"),
    ({"classes": {"chat": {"precision": "fp3"}}}, r"classes\.chat\.precision"),
    ({"classes": {"chat": {"growth": {"kind": "linear"}}}}, r"growth\.kind"),
    ({"surprise": 1}, "unknown field"),
    ({"initial_cash_usd": "lots"}, "initial_cash_usd"),
    ({"base": 5}, r"base: expected a scenario name"),
    ({"provenance": "trust me"}, r"provenance: expected a mapping"),
    ({"drop_classes": "chat"}, r"drop_classes: expected a list of class names"),
    ({"drop_classes": [["chat"]]}, r"drop_classes: expected a list of class names"),
    ({"name": ["a"]}, r"name: expected a non-empty string"),
    ({"initial_fleet": -5}, r"initial_fleet: expected a finite number >= 0"),
    ({"order_unit_chips": {"H100-SXM": float("nan")}}, r"order_unit_chips\.H100-SXM: expected a finite number"),
    ({"sram_chips_per_week": float("inf")}, r"sram_chips_per_week: expected a finite number >= 0"),
    # HBM generation mixes (small offers H100-SXM and MI300X, both HBM3)
    ({"hbm": {"generation_mix": {"HBM5": {2025: 1.0}}}},
     r"hbm\.generation_mix\.HBM5: unknown HBM generation; allowed: \['HBM2', 'HBM2e', 'HBM3', 'HBM3e', 'HBM4'\]"),
    ({"hbm": {"generation_mix": {"HBM3": {2025: 1.5}}}},
     r"hbm\.generation_mix\.HBM3\.2025: 1\.5 is outside the allowed range \[0, 1\]"),
    ({"hbm": {"generation_mix": {"HBM3": {2025: -0.1}}}}, r"HBM3\.2025: -0\.1 is outside the allowed range \[0, 1\]"),
    ({"hbm": {"generation_mix": {"HBM3": {2025: "most"}}}}, r"HBM3\.2025: expected a finite number, got 'most'"),
    ({"hbm": {"generation_mix": {"HBM3": {"soon": 0.5}}}}, r"HBM3: 'soon' is not a year between 2000 and 2100"),
    ({"hbm": {"generation_mix": {"HBM3": 0.5}}}, r"HBM3: expected a mapping of year to share"),
    ({"hbm": {"generation_mix": [0.5]}}, r"hbm\.generation_mix: expected a mapping of HBM generation"),
    ({"hbm": {"generation_mix": {"HBM3": {2025: 0.7, 2027: 0.5}, "HBM3e": {2026: 0.6}}}},
     r"hbm\.generation_mix: the shares add up to 1\.3 at 2025; .* at most 1"),
    ({"hbm": {"generation_mix": {"HBM3e": {2025: 1.0}}}},
     r"hbm\.generation_mix\.HBM3: chip H100-SXM uses HBM3, which has no supply in the scenario's weeks"),
    ({"hbm": {"generation_mix": {"HBM3": {2020: 0.5, 2024: 0.0}, "HBM3e": {2020: 0.5, 2025: 1.0}}}},
     r"hbm\.generation_mix\.HBM3: chip H100-SXM uses HBM3, which has no supply"),
    ({"chips": ["H100-SXM", "TPU-v6e"], "initial_fleet": {"TPU-v6e": 0}},
     r"chips: TPU-v6e has memory_kind 'HBM' \(its generation is not stated\).*pooled_generations: true"),
    ({"hbm": {"pooled_generations": "yes"}}, r"hbm\.pooled_generations: expected true or false, got 'yes'"),
])
def test_invalid_scenarios_name_the_field(patch, message):
    with pytest.raises(ScenarioError, match=message):
        gym.make("ChipAlloc/Datacenter-v0", scenario={"base": "small", **patch})


def test_drop_classes_needs_a_base():
    raw = {k: v for k, v in load_scenario("small").raw.items() if k != "base"}
    with pytest.raises(ScenarioError, match="drop_classes: only a scenario with a 'base'"):
        load_scenario({**raw, "drop_classes": ["chat"]})


def test_a_figure_without_provenance_is_rejected():
    import yaml

    from envs.scenario import SCENARIO_DIR, _Loader

    raw = yaml.load((SCENARIO_DIR / "default.yaml").read_text(), Loader=_Loader)
    raw["provenance"].pop("hbm.shock_depth")
    with pytest.raises(ScenarioError, match=r"provenance\.hbm\.shock_depth"):
        load_scenario(raw)


def test_generation_mix_needs_provenance_and_is_required_unless_pooled():
    import yaml

    from envs.scenario import SCENARIO_DIR, _Loader

    raw = yaml.load((SCENARIO_DIR / "default.yaml").read_text(), Loader=_Loader)
    no_source = copy.deepcopy(raw)
    no_source["provenance"].pop("hbm.generation_mix")
    with pytest.raises(ScenarioError, match=r"provenance\.hbm\.generation_mix"):
        load_scenario(no_source)
    raw["hbm"].pop("generation_mix")
    with pytest.raises(ScenarioError, match=r"hbm\.generation_mix: missing \(required unless hbm\.pooled_generations"):
        load_scenario(raw)
    raw["hbm"]["pooled_generations"] = True
    pooled = load_scenario(raw)
    assert pooled.hbm_generations == ("pooled",) and pooled.arrays["hbm_mix"].tolist() == [[1.0]] * pooled.weeks
    # In one pool every HBM chip draws from it, even one whose generation its sources do not state.
    one_pool = load_scenario({"base": "small", "chips": ["H100-SXM", "TPU-v6e"], "hbm": {"pooled_generations": True}})
    assert one_pool.arrays["hbm_generation"].tolist() == [0.0, 0.0]


def test_generation_mix_is_interpolated_and_a_variant_replaces_it_whole():
    s = load_scenario({"base": "small", "name": "mix", "start": "2025-07", "weeks": 52,
                       "hbm": {"generation_mix": {"HBM3": {2025.5: 0.2, 2026.5: 0.0}, "HBM3e": {2025.5: 0.8}}}})
    assert s.hbm_generations == ("HBM3", "HBM3e")  # only the listed generations, oldest first
    mix = s.arrays["hbm_mix"]
    # Week t is 2025.5 + t / 52: linear between the listed years, flat after the last.
    np.testing.assert_allclose(mix[:, 0], 0.2 * (1 - np.arange(52) / 52))
    np.testing.assert_allclose(mix[:, 1], 0.8)
    np.testing.assert_allclose(s.arrays["hbm_supply_scale"], [0.2 * 1.4e6, 0.8 * 1.4e6])
    assert s.arrays["hbm_generation"].tolist() == [0.0, 0.0, -1.0]  # H100 and MI300X use HBM3; Groq has none


def test_hbm_paths_per_generation_follow_the_mix_and_shocks_hit_one_generation():
    s = load_scenario("default")
    exo = envs.draw_exogenous(s, np.random.default_rng(7), 64)
    mix, hbm = s.arrays["hbm_mix"], s.hbm
    B, T, G = exo.hbm_supply.shape
    assert exo.hbm_supply.shape == (B, s.weeks, 4) and exo.other_hbm_demand.shape == exo.hbm_shock.shape == (B, T, G)
    used = mix > 0
    # Others buy the same products: their demand for each generation is their total times its share.
    total = exo.other_hbm_demand.sum(2, keepdims=True)
    np.testing.assert_allclose(exo.other_hbm_demand, total * mix / mix.sum(1)[:, None])
    # Supply is the world output times the share, less shock_depth while a shock hits the generation.
    per_share = np.where(used, exo.hbm_supply / np.where(used, mix, 1.0), np.nan)
    unshocked = per_share / (1 - hbm["shock_depth"] * exo.hbm_shock)
    np.testing.assert_allclose(np.nanmax(unshocked, 2), np.nanmin(unshocked, 2))
    # Each shock starts on one generation, one that is made that week.
    starts = np.diff(exo.hbm_shock, axis=1, prepend=0.0) > 0
    assert starts.any() and (starts.sum(2) <= 1).all() and used[None].repeat(B, 0)[starts].all()
    # The other paths do not depend on the pools: pooled, they are the same draws.
    pooled = envs.draw_exogenous(load_scenario({"base": "default", "hbm": {"pooled_generations": True}}),
                                 np.random.default_rng(7), 64)
    np.testing.assert_array_equal(pooled.demand, exo.demand)
    np.testing.assert_array_equal(pooled.failure_u, exo.failure_u)
    np.testing.assert_allclose(pooled.other_hbm_demand[:, :, 0], exo.other_hbm_demand.sum(2))
    calm = (pooled.hbm_shock[:, :, 0] == 0) & (exo.hbm_shock.sum(2) == 0)
    np.testing.assert_allclose(pooled.hbm_supply[:, :, 0][calm], exo.hbm_supply.sum(2)[calm])


def test_scenario_from_path_and_unknown_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: small\nname: mine\nweeks: 8\n")
    env = gym.make("ChipAlloc/Datacenter-v0", scenario=str(path))
    assert env.unwrapped.scenario.weeks == 8
    bad = tmp_path / "broken.yaml"
    bad.write_text("base: small\nweeks: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        gym.make("ChipAlloc/Datacenter-v0", scenario=str(bad))
    with pytest.raises(ScenarioError, match="neither a registered name"):
        gym.make("ChipAlloc/Datacenter-v0", scenario="nowhere.yaml")


def test_package_registers_every_variant_of_every_scenario():
    for name in ("Datacenter", "Procurement", "Scheduling", "DatacenterDiscrete", "DatacenterFine"):
        for scenario, suffix in envs.SCENARIO_SUFFIXES.items():
            spec = gym.spec(f"ChipAlloc/{name}{suffix}-v0")
            assert spec.kwargs["scenario"] == scenario and spec.vector_entry_point is not None
    assert sorted(envs.SCENARIO_SUFFIXES) == sorted(envs.SCENARIO_NAMES)
    assert len(envs.ENV_IDS) == 5 * len(envs.SCENARIO_NAMES)


def test_fine_variant_decodes_exact_shares_and_orders():
    from envs.functional import decode
    from envs.spaces import fine_action, n_roles

    env = gym.make("ChipAlloc/DatacenterFine-Small-v0").unwrapped
    env.reset(seed=0)
    s = env.scenario
    rng = np.random.default_rng(0)
    shares = rng.random((n_roles(s), s.n_chips))
    shares /= shares.sum(0, keepdims=True) * 1.25  # each chip type 80% allocated
    fractions = np.array([0.5, 0.0, 0.25])
    action = fine_action(s, fractions, shares)
    orders, sales, decoded, blocks, rent_in, rent_out, accept, update = decode(env.params, env.state, action[None])
    assert accept[0] == -1 and blocks[0] == 0 and (rent_in == 0).all() and (rent_out == 0).all()
    assert update[0] == pytest.approx(0.3)  # fine_action's default: the neutral RL update share
    assert (sales == 0).all()
    np.testing.assert_allclose(decoded[0], shares, atol=1e-6)
    np.testing.assert_allclose(orders[0], fractions * s.max_order_chips_per_week, atol=1e-4)
    with pytest.raises(ValueError, match="sum to at most 1"):
        fine_action(s, fractions, shares * 2)
    # Shares over 1 in an action are normalised per chip type, never exceeding the fleet.
    _, _, over, *_ = decode(env.params, env.state, np.ones((1, env.action_space.shape[0])))
    np.testing.assert_allclose(over[0].sum(0), 1.0)
