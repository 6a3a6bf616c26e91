"""The heuristics' own parameters: validated, tuned on training seeds only, never worse than the defaults,
cached, and used when (and only when) a fresh cache entry exists."""

import json
import logging

import numpy as np
import pytest

import agents.heuristic_tuning as ht
import envs
from agents import TUNABLE, make_policy, parameters
from agents.heuristics import DisaggregatedGreedyPolicy, ForecastPolicy, HomogeneousGPUPolicy
from agents.tuning import CACHE_DIR, TRAIN_SEEDS, Budget, CacheError, cache_path
from experiments.episodes import EVAL_SEED_START, TEST_SEED_START, run_episode

HEURISTICS = (ForecastPolicy, DisaggregatedGreedyPolicy, HomogeneousGPUPolicy)
TINY = Budget(popsize=1, maxiter=1)  # 2 generations of one candidate per parameter: 44 Small episodes
FEW_SEEDS = (0, 1)


@pytest.fixture
def small():
    return envs.DatacenterEnv("small")


def _defaults(cls) -> np.ndarray:
    return parameters.to_vector(cls.PARAMS, parameters.defaults(cls.PARAMS))


def test_the_heuristics_are_tunable_and_keep_their_documented_defaults(small):
    assert {cls.name for cls in HEURISTICS} <= set(TUNABLE)
    policy = ForecastPolicy(small, tuned=False)
    assert not policy.tuned
    assert policy.parameters == {"debt_buffer": 0.5, "site_entry": 0.5, "training_pace": 0.6, "prefill_bias": 0.5,
                                 "latency_priority": 0.5, "rl_updates": 0.5, "specialisation": 1.0,
                                 "queue_cost": 0.01, "alpha": 0.5, "beta": 0.2, "z": 1.65}
    assert HomogeneousGPUPolicy(small, tuned=False).parameters["safety"] == 0.2
    # params= overrides single values, and the knobs sent follow them
    greedy = make_policy("disaggregated-greedy", small, tuned=False, params={"prefill_bias": 0.6, "specialisation": 0})
    small.reset(seed=0)
    assert greedy.plan().knobs.tolist() == [0.6, 0.6, 0.0, 0.5, 0.5]


@pytest.mark.parametrize(("given", "message"), [
    ({"prefil_bias": 0.6}, "forecast has no parameter 'prefil_bias'; its parameters are: debt_buffer"),
    ({"z": -1.0}, r"forecast parameter 'z' = -1.0 is outside \[0.0, 3.0\]"),
    ({"alpha": float("nan")}, "'alpha' must be a finite number"),
    ({"beta": "0.2"}, "'beta' must be a finite number, got '0.2'"),
    ({"site_entry": True}, "'site_entry' must be a finite number"),
])
def test_invalid_parameters_raise_a_clear_error(small, given, message):
    with pytest.raises(ValueError, match=message):
        make_policy("forecast", small, tuned=False, params=given)


def test_scored_returns_are_the_env_episodes_returns(small):
    policy = ForecastPolicy(small, tuned=False)
    expected = np.mean([run_episode(small, policy, s).episode_return for s in (0, 1)])
    assert ht.training_returns(ForecastPolicy, small.params, _defaults(ForecastPolicy), (0, 1))[0] == \
        pytest.approx(expected, abs=1e-9)


def test_tuning_uses_training_seeds_only_and_never_ends_below_the_defaults(small, monkeypatch):
    for seeds in ([TEST_SEED_START], [0, EVAL_SEED_START]):
        with pytest.raises(ValueError, match="not training seeds"):
            ht.tune_heuristic(ForecastPolicy, small.params, seeds, TINY)
    seen = set()
    episode = ht.episode_return

    def recording(env, policy, seed):
        seen.add(seed)
        return episode(env, policy, seed)

    monkeypatch.setattr(ht, "episode_return", recording)
    result = ht.tune_heuristic(ForecastPolicy, small.params, FEW_SEEDS, TINY)
    assert seen == set(FEW_SEEDS)
    default = ht.training_returns(ForecastPolicy, small.params, _defaults(ForecastPolicy), FEW_SEEDS)[0]
    assert result.train_return >= default
    assert ht.training_returns(ForecastPolicy, small.params, result.x, FEW_SEEDS)[0] == \
        pytest.approx(result.train_return, abs=1e-9)


def test_a_cached_entry_is_used_and_a_missing_or_stale_one_keeps_the_defaults(small, tmp_path, monkeypatch, caplog):
    # The policy looks entries up under the default seeds and budget; tune under cheap ones and look them up there.
    monkeypatch.setattr(ht, "TRAIN_SEEDS", FEW_SEEDS)
    monkeypatch.setattr(ht, "HEURISTIC_BUDGET", TINY)
    caplog.set_level(logging.WARNING)
    missing = ForecastPolicy(small, cache_dir=tmp_path)
    assert not missing.tuned and np.array_equal(parameters.to_vector(ForecastPolicy.PARAMS, missing.parameters),
                                                _defaults(ForecastPolicy))
    assert "is missing; using its default parameters" in caplog.text
    assert "python -m agents.tune --policy forecast --scenarios small --variants datacenter" in caplog.text
    assert not list(tmp_path.rglob("*.json"))  # building a heuristic never tunes

    entry = ht.tuned_entry(ForecastPolicy, small.params, tmp_path, seeds=FEW_SEEDS, budget=TINY)
    tuned = make_policy("forecast", small, cache_dir=tmp_path)
    assert tuned.tuned and parameters.to_vector(ForecastPolicy.PARAMS, tuned.parameters).tolist() == entry["x"]
    assert make_policy("forecast", small, cache_dir=tmp_path, params={"z": 0.0}).parameters["z"] == 0.0
    assert not make_policy("forecast", small, cache_dir=tmp_path, tuned=False).tuned

    path = cache_path("forecast", small.params, tmp_path)
    path.write_text(json.dumps({**entry, "fingerprint": "0" * 16}))  # e.g. heuristics.py changed since
    caplog.clear()
    assert not ForecastPolicy(small, cache_dir=tmp_path).tuned and "is stale" in caplog.text
    path.write_text(json.dumps({**entry, "x": entry["x"][:-1]}))
    with pytest.raises(CacheError, match=rf"{path}: 'x' has 10 entries, but forecast's parameters"):
        ForecastPolicy(small, cache_dir=tmp_path)


@pytest.mark.parametrize("cls", HEURISTICS)
def test_the_committed_entries_are_fresh_and_small_replays_its_training_return(cls):
    """Committed entries must match the scenarios, model and heuristics' code: a stale one falls back to the
    defaults, so regenerate it with `python -m agents.tune --policy NAME` and commit agents/tuned/."""
    files = sorted((CACHE_DIR / cls.name).glob("*.json"))
    if cls is ForecastPolicy:
        assert {f.stem for f in files} >= {f"{s}-datacenter" for s in envs.SCENARIO_SUFFIXES}
    for f in files:
        entry = json.loads(f.read_text())
        params = envs.DatacenterEnv(entry["scenario"], entry["variant"], entry["discrete"]).params
        values, why = ht.tuned_values(cls, params)
        assert values is not None, f"{why}: run `python -m agents.tune --policy {cls.name}`"
    small = envs.DatacenterEnv("small")
    policy = make_policy(cls.name, small)
    if policy.tuned:
        entry = json.loads(cache_path(cls.name, small.params).read_text())
        x = parameters.to_vector(cls.PARAMS, policy.parameters)
        assert ht.training_returns(cls, small.params, x, TRAIN_SEEDS)[0] == pytest.approx(entry["train_return"])
