"""The functional API (envs.params / reset / step) and the declared data layout it is built on."""

import dataclasses
import os
import pathlib
import resource
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import dynamics as dyn
from envs import functional as fn
from hardware import get_chip

SMALL = envs.load_scenario("small")


def test_functional_step_is_what_the_gymnasium_env_steps():
    env = gym.make("ChipAlloc/Datacenter-Small-v0").unwrapped
    obs, _ = env.reset(seed=3)
    params = envs.params("small")
    state, fobs = envs.reset(params, exogenous=env.exogenous)
    np.testing.assert_array_equal(fobs[0], obs)
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = (rng.random(env.action_space.shape) * 2 - 1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        state, fobs, freward, finfo = envs.step(params, state, action[None])
        np.testing.assert_array_equal(fobs[0], obs)
        assert freward[0] == reward
        for key in ("cash", "profit", "fleet", "served", "prefill_chips", "training_jobs_completed", "bankrupt"):
            np.testing.assert_array_equal(finfo[key][0], info[key])
        if terminated or truncated:
            break


def test_a_step_leaves_the_previous_state_untouched():
    params = envs.params("small", variant="fine")
    state, _ = envs.reset(params, seed=0, batch=2)
    rows = state.rows.copy()
    action = np.ones((2, *params.action_space.shape), dtype=np.float32)
    new, _, _, _ = envs.step(params, state, action)
    np.testing.assert_array_equal(state.rows, rows)
    assert (new.week == 1).all() and (state.week == 0).all()
    assert new.queue.sum() + new.pipeline.sum() > 0 and state.queue.sum() == 0


def test_state_fields_follow_the_declaration():
    params = envs.params("default")
    state, obs = envs.reset(params, seed=1, batch=3)
    dims = dyn.scenario_dims(params.scenario)
    K, C, J, L, E, G = dims["K"], dims["C"], dims["J"], dims["L"], dims["E"], dims["G"]
    shapes = {"": (), "K": (K,), "C": (C,), "J": (J,), "KL": (K, L), "E": (E,), "G": (G,)}
    for name, dim, kind in dyn.STATE_FIELDS:
        value = getattr(state, name)
        assert value.shape == (3, *shapes[dim]), name
        assert value.dtype.kind == {"f": "f", "i": "i", "b": "b"}[kind], name
    assert state.rows.shape == (3, int(params.offsets.state[-1]))
    assert obs.shape == (3, *params.observation_space.shape) and obs.dtype == np.float32
    np.testing.assert_array_equal(state.fleet[0], params.scenario.arrays["initial_fleet"])
    assert state.cash[0] == params.scenario.initial_cash_usd and state.hbm_price[0].tolist() == [1.0] * G
    # Info: every declared field, with its declared type, and nothing else.
    _, _, _, info = envs.step(params, state, np.zeros((3, *params.action_space.shape), dtype=np.float32))
    assert set(info) == {name for name, _, _ in dyn.INFO_FIELDS} - {"reward"}
    assert info["training_jobs_completed"].dtype == np.int64 and info["bankrupt"].dtype == bool
    assert info["prefill_chips"].shape == (3, C, K)


def test_same_seed_gives_the_same_batch_and_reset_takes_a_seed_or_paths_not_both():
    params = envs.params("small")
    a, _ = envs.reset(params, seed=5, batch=2)
    b, _ = envs.reset(params, seed=5, batch=2)
    np.testing.assert_array_equal(a.exo_rows, b.exo_rows)
    with pytest.raises(ValueError, match="either a seed or exogenous"):
        envs.reset(params, seed=1, exogenous=a.exogenous)
    with pytest.raises(ValueError, match="variant 'buy' is not one of"):
        envs.params("small", variant="buy")


def test_functional_step_rejects_bad_actions_with_the_envs_errors():
    params = envs.params("small")
    state, _ = envs.reset(params, seed=0, batch=2)
    with pytest.raises(ValueError, match="NaN or inf"):
        envs.step(params, state, np.full((2, *params.action_space.shape), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="expects"):
        envs.step(params, state, np.zeros(params.action_space.shape, dtype=np.float32))


def test_large_batches_step_in_parallel_like_small_ones():
    params = envs.params("small")
    n = dyn.PARALLEL_FROM
    big, _ = envs.reset(params, seed=2, batch=n)
    action = np.random.default_rng(1).uniform(-1, 1, (n, *params.action_space.shape)).astype(np.float32)
    new_big, obs_big, reward_big, _ = fn.step_arrays(params, big, action)
    for b in (0, n // 2, n - 1):
        one = fn.State(big.rows[b:b + 1].copy(), big.exo_rows[b:b + 1], big.exogenous, params)
        new_one, obs_one, reward_one, _ = fn.step_arrays(params, one, action[b:b + 1])
        np.testing.assert_array_equal(new_big.rows[b], new_one.rows[0])
        np.testing.assert_array_equal(obs_big[b], obs_one[0])
        assert reward_big[b] == reward_one[0]


def test_helpers_compute_the_documented_formulas():
    params = envs.params("default")
    s, a = params.scenario, params.scenario.arrays
    # Whole weeks of the episode read the price path table (Tables.list_price_path); a week between whole weeks or
    # past the horizon works the formula out; both are the formula.
    week, hbm = np.array([0.0, 60.0, 60.5, s.weeks + 10.0]), np.array([1.0, 1.5, 1.5, 1.0])
    prices = fn.chip_prices(params, week, np.repeat(hbm[:, None], s.n_hbm_generations, axis=1))
    years = np.maximum(week[:, None] - a["available_week"], 0.0) / 52.0
    expected = a["list_price"] * (1 - s.price_decline_per_year) ** years
    expected = expected * (1 + s.hbm["hbm_cost_share"] * (hbm[:, None] - 1) * (a["hbm_stacks"] > 0))
    expected = expected * a["system_capex_multiple"]  # the deployed price: chip, server, network, storage
    np.testing.assert_allclose(prices, expected, rtol=1e-12)
    # W_k(D) and coverage: a fleet of exactly W_k chips of any one type covers the demand once.
    demand = a["demand0"][None] * 1.0
    work = fn.chips_for_demand(params, demand, 0)
    k = s.chips.index("H200")
    assert fn.coverage(params, np.eye(s.n_chips)[k][None] * work[0, k], demand, 0)[0] == pytest.approx(1.0)
    assert fn.coverage(params, np.ones((1, s.n_chips)), np.zeros((1, s.n_classes)), 0)[0] == np.inf
    # Knob shares: each chip type's shares sum to 1 and no training without training need.
    shares = fn.knob_shares(params, a["initial_fleet"][None], demand, np.full((1, dyn.N_KNOBS), 0.5), np.zeros(1), 0)
    fleet_types = a["initial_fleet"] > 0
    np.testing.assert_allclose(shares[0].sum(0)[fleet_types], 1.0)
    assert (shares[0, 0] == 0).all()
    # Failures: floor(fleet x p + u), never more than the fleet.
    np.testing.assert_array_equal(fn.failed_chips(np.array([100.0, 3.0, 0.0]), 0.5, np.array([0.2, 0.9, 0.9])),
                                  [50.0, 2.0, 0.0])


def test_derived_tables_follow_a_replaced_input_table():
    params = envs.params("small")
    k = dyn.CHIP.list_price
    chip = params.tables.chip.copy()
    chip[k] *= 2.0
    doubled = dataclasses.replace(params, tables=dyn.with_derived(params.tables._replace(chip=chip)))
    week = np.array([0.0, 30.0])
    np.testing.assert_allclose(fn.chip_prices(doubled, week, 1.0), 2.0 * fn.chip_prices(params, week, 1.0),
                               rtol=1e-12)
    np.testing.assert_allclose(doubled.tables.list_price_path, 2.0 * params.tables.list_price_path, rtol=1e-12)
    assert params.tables.list_price_path.shape == (params.scenario.weeks + 1, params.scenario.n_chips)


def test_hbm_market_path_follows_the_allocation_and_price_rules():
    params = envs.params("small")
    hbm, G = params.scenario.hbm, params.scenario.n_hbm_generations
    supply, other = np.array([1000.0, 1000.0, 500.0]), np.array([800.0, 1250.0, 2000.0])
    # Generation 0 sees this market; generation 1 twice the supply, the same demand and our 300 stacks a week.
    supply_g, other_g, ours = np.ones((3, G)), np.zeros((3, G)), np.zeros((3, G))
    supply_g[:, 0], other_g[:, 0] = supply, other
    supply_g[:, 1], other_g[:, 1], ours[:, 1] = 2 * supply, other, 300.0
    allocation, price = fn.hbm_market_path(params, supply_g, other_g, ours)
    assert allocation.shape == price.shape == (3, G)
    fill = np.minimum(supply / other, 1.0)
    np.testing.assert_allclose(allocation[:, 0], hbm["our_allocation_share"] * supply * fill)
    np.testing.assert_allclose(allocation[:, 1], hbm["our_allocation_share"] * 2 * supply
                               * np.minimum(2 * supply / other, 1.0))
    target0 = max(1 + hbm["price_elasticity"] * (800 / 1000 - 1), dyn.HBM_PRICE_FLOOR)
    assert price[0, 0] == 1.0 and price[1, 0] == pytest.approx(1 + hbm["price_smoothing"] * (target0 - 1))
    target1 = max(1 + hbm["price_elasticity"] * ((800 + 300) / 2000 - 1), dyn.HBM_PRICE_FLOOR)
    assert price[0, 1] == 1.0 and price[1, 1] == pytest.approx(1 + hbm["price_smoothing"] * (target1 - 1))
    # A generation with neither supply nor demand (not made yet) has no market: its index holds.
    supply_g[:, 2] = other_g[:, 2] = 0.0
    assert fn.hbm_market_path(params, supply_g, other_g, ours)[1][:, 2].tolist() == [1.0] * 3


def test_chip_prices_move_with_their_own_generations_index():
    params = envs.params("default")
    a, generations = params.scenario.arrays, params.scenario.hbm_generations
    week = np.zeros(1)
    base = fn.chip_prices(params, week, 1.0)[0]
    index = np.ones((1, len(generations)))
    index[0, generations.index("HBM3e")] = 2.0
    moved = fn.chip_prices(params, week, index)[0]
    hbm3e = np.array([get_chip(c).memory_kind == "HBM3e" for c in params.scenario.chips])
    assert hbm3e.any() and (~hbm3e).any()
    np.testing.assert_allclose(moved[hbm3e], base[hbm3e] * (1 + params.scenario.hbm["hbm_cost_share"]))
    np.testing.assert_array_equal(moved[~hbm3e], base[~hbm3e])  # other generations' and SRAM chips' prices
    assert (a["hbm_generation"][a["hbm_stacks"] == 0] == -1).all()
    with pytest.raises(ValueError, match=r"hbm_price: expected one index per HBM generation"):
        fn.chip_prices(params, week, np.ones(1))


def test_frame_arrays_have_the_requested_shape_layout_and_contents():
    """The stack-frame arrays the kernel uses instead of np.empty/np.zeros: C order, float64, zeros filled."""
    from numba import njit

    @njit
    def fill_and_read(m, n):
        flat, grid = dyn._frame_zeros(n), dyn._frame_zeros((m, n))
        scratch = dyn._frame_empty((m, n))
        for i in range(m):
            for j in range(n):
                scratch[i, j] = 10.0 * i + j
        return flat.sum(), grid.sum(), grid.shape, grid.strides, scratch[m - 1, n - 1], scratch.ravel()[n]

    flat_sum, grid_sum, shape, strides, last, second_row = fill_and_read(3, 5)
    assert (flat_sum, grid_sum) == (0.0, 0.0)
    assert shape == (3, 5) and strides == (40, 8)
    assert last == 24.0 and second_row == 10.0


def test_frame_arrays_do_not_pile_up_on_the_stack_over_a_batch(tmp_path):
    """Each datacenter's step keeps ~2 KB of temporaries in its stack frame; they must be released row by row. Under
    a 1 MB stack limit, 20,000 rows (40 MB if they piled up; a loop that does pile them up crashes there) step
    serially and in parallel, alike."""
    script = tmp_path / "batch.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        import envs
        from envs import dynamics as dyn, functional as fn
        params = envs.params("small")
        one, _ = envs.reset(params, seed=0)
        n = 20_000
        state = fn.State(np.repeat(one.rows, n, axis=0), np.repeat(one.exo_rows, n, axis=0), one.exogenous, params)
        action = np.zeros((n, *params.action_space.shape), dtype=np.float32)
        new, obs, _, _ = fn.step_arrays(params, state, action)  # the parallel loop (n >= PARALLEL_FROM)
        variant, _, _, n_obs, n_info, _ = params._step_constants
        rows, serial_obs, info = np.empty_like(state.rows), np.empty((n, n_obs), np.float32), np.empty((n, n_info))
        assert dyn.step_rows_tuples(variant, False, action.astype(np.float64), state.rows, state.exo_rows,
                                    *params._plain_tables, rows, serial_obs, info)  # the serial loop
        assert (rows == new.rows).all() and (serial_obs == obs).all()
        print("ok")
    """))

    def small_stack() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    root = pathlib.Path(envs.__file__).parents[1]
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, preexec_fn=small_stack,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_serving_factors_are_the_documented_formulas():
    """What the LP and the oracle read about serving, worked out here from the scenario's figures."""
    params = envs.params("default")
    a = params.scenario.arrays
    week = np.array([0.0, 60.5, 120.0, params.scenario.weeks + 10.0])
    factors = fn.serving_factors(params, week)
    eff = a["efficiency_by_year"]
    for b, w in enumerate(week):
        y = min(int(w // 52), eff.shape[2] - 1)
        np.testing.assert_array_equal(factors.prefill_efficiency[b], eff[0, :, y])
        np.testing.assert_array_equal(factors.decode_efficiency[b], eff[1, :, y])
        meets = a["tpot_s"] / eff[1, :, y] <= a["tpot_slo_s"][:, None]
        np.testing.assert_array_equal(factors.decode_meets_slo[b], meets)
        np.testing.assert_allclose(factors.price_multiple[b], (1.0 - a["price_decline_per_year"]) ** (w / 52.0),
                                   rtol=1e-12)
    assert factors.decode_meets_slo.dtype == bool and factors.price_multiple.shape == (4, params.scenario.n_classes)
    assert not factors.decode_meets_slo.all() and factors.decode_meets_slo.any()  # the SLO check binds somewhere


@pytest.mark.parametrize("week", [np.nan, np.inf, -1.0])
def test_week_helpers_refuse_weeks_that_are_not_weeks(week):
    params = envs.params("small")
    with pytest.raises(ValueError, match="week must be finite and >= 0"):
        fn.serving_factors(params, week)
    with pytest.raises(ValueError, match="week must be finite and >= 0"):
        fn.chip_prices(params, np.array([0.0, week]), 1.0)
    with pytest.raises(ValueError, match="week must be finite and >= 0"):
        fn.chips_for_demand(params, np.ones((1, params.scenario.n_classes)), week)
