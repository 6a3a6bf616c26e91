"""Domain randomisation (envs.randomization): seeded draws within the documented ranges, applied to the path as
specified, nothing changed without it, clear errors for bad ranges, and train.py --randomize."""

import json
import pickle
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest

import envs
import train
from envs import functional as fn
from envs.datacenter import DatacenterEnv, DatacenterVectorEnv
from envs.exogenous import draw_exogenous
from envs.randomization import MULTIPLIER, Randomization, draw_market, randomize

SMALL = "ChipAlloc/Datacenter-Small-v0"


def _episode(env: gym.Env, seed: int, **reset_kwargs) -> tuple[dict, np.ndarray, list[float]]:
    """(reset info, demand path, rewards) of one episode at a fixed mid-range action."""
    _, info = env.reset(seed=seed, **reset_kwargs)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return info, env.unwrapped.exogenous.demand.copy(), rewards


def test_without_randomisation_the_path_is_the_plain_draw():
    env = gym.make(SMALL)
    _, info = env.reset(seed=3)
    assert "market" not in info
    params = env.unwrapped.params
    plain = draw_exogenous(params.scenario, fn.episode_generator(3), 1, params.exogenous_trend)
    for f in fields(plain):
        assert np.array_equal(getattr(env.unwrapped.exogenous, f.name), getattr(plain, f.name)), f.name
    # and whole episodes match the functional API on that path, bit for bit
    _, _, rewards = _episode(env, 3)
    state, _ = fn.reset(params, exogenous=plain)
    expected = []
    for _ in range(params.weeks):
        state, _, reward, _ = fn.step(params, state, np.zeros((1, *env.action_space.shape), dtype=np.float32))
        expected.append(float(reward[0]))
    assert rewards == expected


def test_the_same_seed_gives_the_same_randomised_episode_and_other_seeds_other_markets():
    env = gym.make(SMALL, randomize=True)
    first, second, other = _episode(env, 11), _episode(env, 11), _episode(env, 12)
    assert first[0]["market"] == second[0]["market"]
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
    assert all(first[0]["market"][k] != other[0]["market"][k] for k in first[0]["market"])
    # path_seed fixes the randomised episode too (common random numbers across policies)
    a, b = _episode(env, 1, options={"path_seed": 7}), _episode(env, 2, options={"path_seed": 7})
    assert a[0]["market"] == b[0]["market"] and np.array_equal(a[1], b[1])


def test_the_draw_scales_the_path_as_documented():
    env = gym.make(SMALL, randomize=True)
    _, info = env.reset(seed=5)
    params, exo, m = env.unwrapped.params, env.unwrapped.exogenous, info["market"]
    rng = fn.episode_generator(5)  # the plain path comes first from the same generator
    base = draw_exogenous(params.scenario, rng, 1, params.exogenous_trend)
    years = np.arange(params.weeks) / 52.0
    for c in range(params.scenario.n_classes):
        expected = base.demand[0, :, c] * m["demand_level"][c] * np.exp(m["demand_growth_tilt"][c] * years)
        np.testing.assert_allclose(exo.demand[0, :, c], expected, rtol=1e-12)
    supply = m["hbm_supply_level"] * np.exp(m["hbm_supply_growth_tilt"] * years)
    others = m["other_hbm_demand_level"] * np.exp(m["other_hbm_demand_growth_tilt"] * years)
    np.testing.assert_allclose(exo.hbm_supply[0], base.hbm_supply[0] * supply[:, None], rtol=1e-12)
    np.testing.assert_allclose(exo.other_hbm_demand[0], base.other_hbm_demand[0] * others[:, None], rtol=1e-12)
    np.testing.assert_allclose(exo.job_flops[0], base.job_flops[0] * m["job_size"], rtol=1e-12)
    for name in ("hbm_shock", "failure_u"):  # what is not randomised stays as drawn
        assert np.array_equal(getattr(exo, name), getattr(base, name))
    # the observation shows the drawn demand level at week 0 (demand / (10 x the scenario's initial demand))
    obs, _ = env.reset(seed=5)
    first = 4 + 6 * params.scenario.n_chips
    demand0 = params.scenario.arrays["demand0"]
    np.testing.assert_allclose(obs[first:first + len(demand0)], exo.demand[0, 0] / (10 * demand0), rtol=1e-6)


def test_draws_lie_within_the_ranges_and_cover_them():
    ranges = Randomization()
    market = draw_market(ranges, 4000, 3, np.random.default_rng(0))
    for f in fields(ranges):
        low, high = getattr(ranges, f.name)
        drawn = getattr(market, f.name)
        assert drawn.shape == ((4000, 3) if f.metadata["per_class"] else (4000,)), f.name
        assert drawn.min() >= low and drawn.max() <= high, f.name
        assert drawn.min() < low + 0.02 * (high - low) and drawn.max() > high - 0.02 * (high - low), f.name
        if f.metadata["kind"] == MULTIPLIER:  # log-uniform: the geometric midpoint is the median
            assert abs(np.median(drawn) - np.sqrt(low * high)) < 0.03 * np.sqrt(low * high), f.name


@pytest.mark.parametrize("m", [0.5, 2.0])
def test_job_arrivals_change_rate_without_redrawing(m):
    scenario = envs.load_scenario("small")
    base = draw_exogenous(scenario, np.random.default_rng(1), 4000)
    ranges = Randomization(job_arrival=(m, m))
    exo, _ = randomize(base, scenario, ranges, np.random.default_rng(2))
    p = scenario.training["arrivals_per_week"]
    assert abs(exo.job_arrival.mean() - p * m) < 0.01
    kept = exo.job_arrival[base.job_arrival > 0]
    if m > 1:  # every drawn job stays, and new ones come in weeks without one
        assert kept.min() == 1.0
    else:  # thinning keeps a share m of the drawn jobs and adds none
        assert abs(kept.mean() - m) < 0.03 and exo.job_arrival[base.job_arrival == 0].max() == 0.0


def test_each_vector_sub_env_draws_its_own_market_as_the_single_env_would():
    venv = DatacenterVectorEnv(3, "small", randomize=True)
    venv.reset(seed=40)
    single = DatacenterEnv("small", randomize=True)
    for i in range(3):
        single.reset(seed=40 + i)
        for f in fields(single.exogenous):
            assert np.array_equal(getattr(venv.exogenous, f.name)[i], getattr(single.exogenous, f.name)[0]), f.name
    assert not np.array_equal(venv.exogenous.demand[0], venv.exogenous.demand[1])


def test_a_replayed_path_is_not_randomised():
    plain = gym.make(SMALL)
    plain.reset(seed=2)
    env = gym.make(SMALL, randomize=True)
    _, info = env.reset(options={"exogenous": plain.unwrapped.exogenous})
    assert "market" not in info and env.unwrapped.exogenous is plain.unwrapped.exogenous


@pytest.mark.parametrize(("randomize", "message"), [
    ({"demand_level": (2.0, 0.5)}, r"randomize\.demand_level: low 2\.0 exceeds high 0\.5; give low <= high"),
    ({"job_size": (0.0, 2.0)}, r"randomize\.job_size: a multiplier must be positive, got low 0\.0"),
    ({"hbm_supply_growth_tilt": (-np.inf, 0.1)}, r"randomize\.hbm_supply_growth_tilt: low and high must be finite"),
    ({"other_hbm_demand_level": 1.1}, r"randomize\.other_hbm_demand_level: expected a \(low, high\) pair"),
    ({"demand_lvl": (1, 2)}, r"randomize: unknown range\(s\) demand_lvl; choose from demand_level, "),
    ({"job_arrival": (1.0, 9.0)}, r"randomize\.job_arrival: high 9\.0 x the scenario's training\.arrivals_per_week "
                                  r"0\.125 is more than one job a week .* at most 8"),
])
def test_bad_ranges_are_named_with_what_is_allowed(randomize, message):
    with pytest.raises(ValueError, match=message):
        gym.make(SMALL, randomize=randomize)


def test_ranges_from_json_become_tuples_and_fixed_values_are_allowed():
    ranges = Randomization.coerce({"demand_level": [1.0, 1.0], "demand_growth_tilt": [0, 0]})
    assert ranges.demand_level == (1.0, 1.0) and ranges.demand_growth_tilt == (0.0, 0.0)
    assert Randomization.coerce(False) is None and Randomization.coerce(True) == Randomization()
    with pytest.raises(TypeError, match="randomize: expected True, False, None, a dict"):
        Randomization.coerce("yes")


def test_train_randomize_records_it_and_trains_on_drawn_markets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "randomized"
    train.main(["--env-id", SMALL, "--run-dir", str(run_dir), "--timesteps", "256", "--n-envs", "2",
                "--test-episodes", "0", "--eval-episodes", "1", "--eval-every", "100000", "--randomize"])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["randomize"] is True
    resume = pickle.loads((run_dir / "checkpoints" / "resume.pkl").read_bytes())  # the training envs, as saved
    assert resume["env"].venv.randomization == Randomization()
