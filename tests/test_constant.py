"""The tuned constant baseline and the tuning machinery: the optimiser finds known optima, batched
returns are the env's returns, tuning uses training seeds only, and the cache is reused, refreshed
and refused exactly when it should be."""

import json

import gymnasium as gym
import numpy as np
import pytest

import agents
import agents.constant
import envs
from agents import BASELINES, make_policy
from agents.constant import ConstantPolicy, to_actions, tune_constant
from agents.tuning import (
    TRAIN_SEEDS,
    Budget,
    CacheError,
    batch_returns,
    cache_path,
    check_training_seeds,
    constant_returns,
    optimise,
    training_paths,
)
from experiments.episodes import EVAL_SEED_START, TEST_SEED_START, run_episode

SMALL = "ChipAlloc/Datacenter-Small-v0"
TINY = Budget(popsize=2, maxiter=3)  # 16 candidates a generation on Small: well under a second
FEW_SEEDS = (0, 1, 2, 3)


# Small with maintenance at 90% of capex a year: random constant actions go bankrupt before the horizon.
FRAGILE = {"base": "small", "name": "small-fragile", "maintenance_per_year": 0.9, "credit_limit_usd": 2e5}


def _env_returns(env_id, actions, seeds, scenario=None):
    """Mean return of each constant action over ``seeds``, stepping the Gymnasium env; and the weeks each lasted."""
    env = gym.make(env_id, **({"scenario": scenario} if scenario else {}))
    means, weeks = [], []
    for action in actions:
        returns = []
        for seed in seeds:
            env.reset(seed=seed)
            total, week, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(action)
                total, week, done = total + reward, week + 1, terminated or truncated
            returns.append(total)
            weeks.append(week)
        means.append(np.mean(returns))
    return np.array(means), weeks


def test_optimiser_finds_the_optimum_of_a_toy_objective():
    centre = np.array([0.3, -0.7, 0.1])
    result = optimise(lambda x: -np.sum((x - centre) ** 2, axis=1), [(-1.0, 1.0)] * 3,
                      Budget(popsize=10, maxiter=200, tol=1e-8))
    np.testing.assert_allclose(result.x, centre, atol=2e-3)
    assert result.train_return == pytest.approx(0.0, abs=1e-5)
    assert result.evaluations >= 30 * (result.generations + 1)  # whole generations, counted per candidate
    # integer entries reach the objective rounded, and the optimum is exact
    seen = []

    def levels(x):
        seen.append(x.copy())
        return -np.sum((x - np.array([1.0, 3.0])) ** 2, axis=1)

    result = optimise(levels, [(0.0, 4.0)] * 2, Budget(popsize=10, maxiter=50), integrality=[True, True])
    assert result.x.tolist() == [1.0, 3.0]
    assert all(np.array_equal(x, np.round(x)) for x in seen)
    # seeded: the same budget gives the same answer
    again = optimise(levels, [(0.0, 4.0)] * 2, Budget(popsize=10, maxiter=50), integrality=[True, True])
    assert again.x.tolist() == result.x.tolist() and again.evaluations == result.evaluations


@pytest.mark.parametrize("env_id", [SMALL, "ChipAlloc/DatacenterDiscrete-Small-v0"])
def test_batched_returns_equal_the_gymnasium_env(env_id):
    env = gym.make(env_id, scenario=FRAGILE)
    params = env.unwrapped.params
    seeds = (0, 3, 11)
    for seed, path in zip(seeds, [training_paths(params, [s]) for s in seeds]):  # the paths env.reset(seed) draws
        env.reset(seed=seed)
        for name in envs.Exogenous.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(path, name), getattr(env.unwrapped.exogenous, name))
    env.action_space.seed(0)
    actions = np.stack([env.action_space.sample() for _ in range(5)])
    expected, weeks = _env_returns(env_id, actions, seeds, FRAGILE)
    assert min(weeks) < params.weeks  # some go bankrupt, so rewards after the end must not count
    batched = constant_returns(params, training_paths(params, seeds), actions, chunk=4)  # chunks split candidates
    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-9)
    # the generic rollout, one action per row (a policy's per-row decisions), chunked across rows
    rows = np.repeat(actions, len(seeds), axis=0)
    paths = training_paths(params, seeds * len(actions))
    per_row = batch_returns(params, paths, lambda state, obs, sl: rows[sl], chunk=2)
    np.testing.assert_allclose(per_row.reshape(len(actions), -1).mean(1), expected, rtol=0, atol=1e-9)


def test_tiny_tuning_on_small_beats_zeros_and_random_actions():
    env = gym.make(SMALL)
    params, space = env.unwrapped.params, env.action_space
    result = tune_constant(params, FEW_SEEDS, TINY)
    assert result.x.shape == space.shape and space.contains(to_actions(space, result.x)[0])
    assert result.evaluations == TINY.popsize * space.shape[0] * (result.generations + 1)
    paths = training_paths(params, FEW_SEEDS)
    # the reported return is the batch's own evaluation of the returned action, and the env's
    assert constant_returns(params, paths, to_actions(space, result.x))[0] == pytest.approx(result.train_return,
                                                                                          abs=1e-9)
    assert result.train_return >= constant_returns(params, paths, np.zeros((1, *space.shape)))[0]
    space.seed(1)
    random_constants = constant_returns(params, paths, np.stack([space.sample() for _ in range(20)]))
    assert result.train_return >= random_constants.max()
    random_policy = make_policy("random", env)
    assert result.train_return > np.mean([run_episode(env, random_policy, s).episode_return for s in FEW_SEEDS])


def test_cache_is_reused_while_the_fingerprint_matches_and_refreshed_when_the_scenario_changes(
        tmp_path, monkeypatch, caplog):
    calls = []
    tune = agents.constant.tune_constant

    def counting(params, seeds, budget):
        calls.append(params.scenario.raw["initial_cash_usd"])
        return tune(params, seeds, budget)

    monkeypatch.setattr(agents.constant, "tune_constant", counting)
    env = gym.make(SMALL)
    first = ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    path = cache_path("constant", env.unwrapped.params, tmp_path)
    assert path.parent == tmp_path / "constant" and json.loads(path.read_text())["x"] == first.entry["x"]
    assert "missing" in caplog.text and "tuning on 4 training seeds" in caplog.text
    second = make_policy("constant", env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    assert len(calls) == 1 and np.array_equal(second.predict(None)[0], first.predict(None)[0])
    assert first.action.dtype == np.float32 and env.action_space.contains(first.action)

    # the same scenario name with other contents: stale, re-tuned, rewritten
    raw = dict(env.unwrapped.scenario.raw)
    raw["initial_cash_usd"] = raw["initial_cash_usd"] * 0.5
    changed = gym.make(SMALL, scenario=raw)
    assert cache_path("constant", changed.unwrapped.params, tmp_path) == path
    caplog.clear()
    third = ConstantPolicy(changed, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    assert calls == [calls[0], calls[0] * 0.5] and "stale" in caplog.text
    assert json.loads(path.read_text())["fingerprint"] == third.entry["fingerprint"] != first.entry["fingerprint"]
    # another budget or other seeds are another answer too
    ConstantPolicy(changed, cache_dir=tmp_path, budget=Budget(popsize=2, maxiter=2), seeds=FEW_SEEDS)
    ConstantPolicy(changed, cache_dir=tmp_path, budget=Budget(popsize=2, maxiter=2), seeds=(0, 1))
    assert len(calls) == 4
    assert not list(tmp_path.rglob("*.tmp"))  # the atomic write left no temporary file


def test_tuning_never_uses_evaluation_seeds(tmp_path, monkeypatch):
    assert max(TRAIN_SEEDS) < EVAL_SEED_START < TEST_SEED_START
    for seeds in ([TEST_SEED_START], [0, EVAL_SEED_START + 3], [-1], []):
        with pytest.raises(ValueError, match="training seed"):
            check_training_seeds(seeds)
    with pytest.raises(ValueError, match=f"{TEST_SEED_START}.*not training seeds"):
        ConstantPolicy(gym.make(SMALL), cache_dir=tmp_path, budget=TINY, seeds=range(TEST_SEED_START, 20_004))
    drawn = []
    np_random = gym.utils.seeding.np_random

    def recording(seed=None):
        drawn.append(seed)
        return np_random(seed)

    monkeypatch.setattr(gym.utils.seeding, "np_random", recording)
    ConstantPolicy(gym.make(SMALL), cache_dir=tmp_path, budget=TINY)  # the default seeds
    assert sorted(drawn) == list(TRAIN_SEEDS)


def test_a_bad_cache_file_says_which_file_and_what_to_do(tmp_path):
    env = gym.make(SMALL)
    path = cache_path("constant", env.unwrapped.params, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CacheError, match=rf"{path}.*not valid JSON.*python -m agents.tune --policy constant"):
        ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    path.write_text("[1, 2]")
    with pytest.raises(CacheError, match=rf"{path}.*no 'fingerprint'"):
        ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    path.unlink()
    ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    entry = json.loads(path.read_text())
    n = env.action_space.shape[0]
    for x, problem in ((entry["x"][:-1], f"has {n - 1} entries, but Box"), ([[0.0] * n], rf"shape \(1, {n}\)"),
                       ([5.0] * n, "is not inside Box"), ("abc", "not a list of numbers")):
        path.write_text(json.dumps({**entry, "x": x}))
        with pytest.raises(CacheError, match=rf"{path}: .*{problem}.*python -m agents.tune"):
            ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)


@pytest.mark.parametrize("suffix", list(envs.SCENARIO_SUFFIXES.values()))
def test_the_committed_cache_is_up_to_date(suffix, monkeypatch):
    """The committed entries must match the current scenarios and model; evaluate.py then loads them instantly."""

    def refuse(params, seeds, budget):
        raise AssertionError(f"the committed cache for {params.scenario.name} is stale or missing: regenerate it "
                             f"with `python -m agents.tune --policy constant --discrete` and commit agents/tuned/")

    monkeypatch.setattr(agents.constant, "tune_constant", refuse)
    for env_id in (f"ChipAlloc/Datacenter{suffix}-v0", f"ChipAlloc/DatacenterDiscrete{suffix}-v0"):
        env = gym.make(env_id)
        policy = make_policy("constant", env)
        assert env.action_space.contains(policy.predict(env.reset(seed=0)[0])[0])
        # the committed action earns the committed training return when replayed on the training seeds
        params = env.unwrapped.params
        replayed = constant_returns(params, training_paths(params, TRAIN_SEEDS), policy.action[None])[0]
        assert replayed == pytest.approx(policy.train_return, abs=1e-9)


def test_only_a_named_cache_folder_is_written(tmp_path, monkeypatch):
    """Without a cache_dir, a stale or missing entry is tuned in memory: a scenario that only shares a registered
    name, or a read-only install, never rewrites the committed entries."""
    monkeypatch.setattr(agents.tuning, "CACHE_DIR", tmp_path)
    env = gym.make(SMALL)
    policy = ConstantPolicy(env, budget=TINY, seeds=FEW_SEEDS)
    assert env.action_space.contains(policy.action) and not any(tmp_path.rglob("*.json"))
    ConstantPolicy(env, cache_dir=tmp_path, budget=TINY, seeds=FEW_SEEDS)
    assert cache_path("constant", env.unwrapped.params, tmp_path).is_file()


def test_constant_is_in_the_default_comparison():
    assert "constant" in BASELINES and "constant" in agents.list_policies()
    assert "constant" not in agents.FINE_ONLY  # it runs on the env asked for, as an agent does


def test_the_tune_command_refuses_an_unknown_scenario_before_tuning(capsys):
    from agents.tune import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--scenarios", "small,nope"])
    assert exit_info.value.code == 2 and "'nope' is neither a registered name" in capsys.readouterr().err
