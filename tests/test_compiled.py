"""The compiled kernels (the default backend) follow the array-API reference they transcribe."""

from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from envs import ENV_IDS, DatacenterEnv, DatacenterVectorEnv


def _actions(space, kind: str, rng: np.random.Generator):
    """A policy per kind: random entries, everything at its top (spends to bankruptcy) or at its bottom."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        low, high = np.zeros_like(space.nvec), space.nvec - 1
        return rng.integers(0, space.nvec) if kind == "random" else high if kind == "top" else low
    if kind == "random":
        return rng.uniform(-1.0, 1.0, space.shape).astype(np.float32)
    return space.high.copy() if kind == "top" else space.low.copy()


def _assert_same_info(fast: dict, ref: dict) -> None:
    assert fast.keys() == ref.keys()
    for key, want in ref.items():
        got = fast[key]
        assert type(got) is type(want), key
        if isinstance(want, np.ndarray):
            assert got.shape == want.shape, key
        if not isinstance(want, tuple):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=key)


def _follow_the_reference(fast: DatacenterEnv, ref: DatacenterEnv, kinds=("random", "top", "bottom")) -> None:
    for seed, kind in enumerate(kinds):
        obs_f, _ = fast.reset(seed=seed)
        obs_r, _ = ref.reset(seed=seed)
        np.testing.assert_array_equal(obs_f, obs_r)
        rng, steps, done = np.random.default_rng(seed), 0, False
        while not done:
            action = _actions(fast.action_space, kind, rng)
            obs_f, rew_f, term_f, trunc_f, info_f = fast.step(action)
            obs_r, rew_r, term_r, trunc_r, info_r = ref.step(action)
            np.testing.assert_allclose(obs_f, obs_r, rtol=1e-6, atol=1e-6)
            assert rew_f == pytest.approx(rew_r, rel=1e-9, abs=1e-9)
            assert (term_f, trunc_f) == (term_r, trunc_r)
            _assert_same_info(info_f, info_r)
            done, steps = term_f or trunc_f, steps + 1
        for f in fields(ref.state):
            got, want = getattr(fast.state, f.name), getattr(ref.state, f.name)
            assert got.dtype == want.dtype and got.shape == want.shape, f.name
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=f.name)
        if kind == "top" and fast.variant == "datacenter" and not fast.discrete:  # covers the bankruptcy path
            assert term_f and steps < fast.scenario.weeks, "buying at the top of the range ends in bankruptcy"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compiled_backend_follows_the_reference_through_whole_episodes(env_id):
    kwargs = gym.spec(env_id).kwargs
    _follow_the_reference(DatacenterEnv(**kwargs), DatacenterEnv(**kwargs, backend="reference"))


def test_compiled_backend_follows_the_reference_at_the_edges_of_the_scenario_ranges():
    """No transit time (chips arrive the week they leave the HBM queue), one training-job slot that
    is nearly always taken, and a failure rate high enough that failures happen every week."""
    edge = {"base": "small", "name": "edge", "base_lead_weeks": 0, "failure_rate_per_year": 1.0,
            "training": {"slots": 1, "arrivals_per_week": 0.9},
            "provenance": {key: "ASSUMPTION: test edge" for key in (
                "base_lead_weeks", "failure_rate_per_year", "training.slots", "training.arrivals_per_week")}}
    for variant in ("datacenter", "fine"):
        _follow_the_reference(DatacenterEnv(edge, variant), DatacenterEnv(edge, variant, backend="reference"),
                              kinds=("random", "random", "bottom"))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_compiled_vector_env_follows_the_reference_across_autoresets(mode):
    n = 4
    fast = DatacenterVectorEnv(n, "small", autoreset_mode=mode)
    ref = DatacenterVectorEnv(n, "small", autoreset_mode=mode, backend="reference")
    np.testing.assert_array_equal(fast.reset(seed=3)[0], ref.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(fast.scenario.weeks * 2 + 3):
        acts = rng.uniform(-1.0, 1.0, (n, *fast.single_action_space.shape)).astype(np.float32)
        got, want = fast.step(acts), ref.step(acts)
        for a, b in zip(got[:4], want[:4]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        if mode == AutoresetMode.SAME_STEP and "final_obs" in want[4]:
            np.testing.assert_array_equal(got[4]["_final_obs"], want[4]["_final_obs"])
            np.testing.assert_allclose(got[4]["final_obs"], want[4]["final_obs"], rtol=1e-6, atol=1e-6)
        resets += int((got[2] | got[3]).sum())
    assert resets >= n, "the run crosses episode ends"


def test_a_step_leaves_the_previous_state_untouched():
    env = DatacenterEnv("small")
    env.reset(seed=0)
    before = env.state
    snapshot = {f.name: getattr(before, f.name).copy() for f in fields(before)}
    env.step(np.ones(env.action_space.shape, np.float32))
    for name, value in snapshot.items():
        np.testing.assert_array_equal(getattr(before, name), value, err_msg=name)
    assert env.state.week[0] == 1 and before.week[0] == 0


def test_unknown_backend_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"backend 'gpu' is not one of \['compiled', 'reference'\]"):
        DatacenterEnv(backend="gpu")
