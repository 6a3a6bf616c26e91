"""MPC: it plays whole episodes, never reads the future, and with the true path over the whole episode it plans
the oracle's first week."""

from dataclasses import fields, replace

import gymnasium as gym
import numpy as np
import pytest

from agents import make_policy
from agents.mpc import MPCPolicy
from agents.oracle import solve_oracle, true_window
from experiments.episodes import run_episode

SMALL = "ChipAlloc/DatacenterFine-Small-v0"


def test_mpc_plays_whole_episodes_on_small_and_beats_doing_nothing():
    env = gym.make(SMALL)
    seeds = (0, 1)
    mpc = MPCPolicy(env)
    episodes = [run_episode(env, mpc, seed=s) for s in seeds]
    assert all(e.weeks == env.unwrapped.scenario.weeks for e in episodes)
    idle = make_policy("do-nothing", env)
    assert np.mean([e.episode_return for e in episodes]) > np.mean(
        [run_episode(env, idle, seed=s).episode_return for s in seeds])
    assert len(mpc.solve_seconds) >= 2 * len(seeds)  # (26 weeks: a solve at weeks 0 and 13, and on contract offers)


def test_mpc_never_reads_the_future():
    """Two paths that agree up to week t (and differ after it, and in week t's failure draws) get the same
    decisions up to week t, re-solves included."""
    t = 9
    env = gym.make(SMALL)
    env.reset(seed=2)
    drawn = env.unwrapped.exogenous
    failure_u = drawn.failure_u.copy()
    failure_u[:, t] = 0.0  # the fewest failures the rounding allows in week t, and the most on the other path
    path = replace(drawn, failure_u=failure_u)
    rng = np.random.default_rng(0)
    changed = {}
    for f in fields(path):
        values = getattr(path, f.name).copy()
        if f.name == "failure_u":
            values[:, t:] = 1.0 - 1e-9
        else:
            later = values[:, t + 1:]
            later[...] = rng.permutation(later.reshape(-1)).reshape(later.shape) * (20.0 if f.name == "demand" else 1.0)
        changed[f.name] = values
    other = replace(path, **changed)
    assert not np.array_equal(other.demand[:, t + 1:], path.demand[:, t + 1:])
    envs_, policies, obs = [], [], []
    for exo in (path, other):
        e = gym.make(SMALL)
        obs.append(e.reset(options={"exogenous": exo})[0])
        envs_.append(e)
        policies.append(MPCPolicy(e, every=4, horizon=26))
    for _ in range(t + 1):
        actions = [p.predict(o)[0] for p, o in zip(policies, obs, strict=True)]
        np.testing.assert_array_equal(actions[0], actions[1])
        obs = [e.step(actions[0])[0] for e in envs_]
    assert len(policies[0].solve_seconds) >= 3


def test_mpc_with_the_true_path_over_the_episode_plans_the_oracles_first_week():
    env = gym.make(SMALL)
    env.reset(seed=0)
    u = env.unwrapped
    weeks = u.scenario.weeks
    oracle = solve_oracle(u, passes=1)  # its first solve: no orders of ours in HBM prices, every job accepted

    def true_path(e, n):
        return true_window(e, np.zeros((weeks, e.scenario.n_chips)), e.exogenous.job_arrival[0] > 0,
                           week=int(e.state.week[0]), row=e.state.rows[0])

    mpc = MPCPolicy(env, every=weeks, horizon=weeks, forecast=true_path)
    mpc.plan()
    for name in ("orders", "blocks", "rent_in", "rent_out", "train", "accept", "prefill", "decode", "updating"):
        np.testing.assert_array_equal(getattr(mpc.plan_, name)[0], getattr(oracle, name)[0], err_msg=name)
    assert mpc.plan_.objective == pytest.approx(oracle.objective)


def test_mpc_refuses_compact_variants_and_a_step_longer_than_its_horizon():
    with pytest.raises(ValueError, match="DatacenterFine"):
        MPCPolicy(gym.make("ChipAlloc/Datacenter-Small-v0"))
    with pytest.raises(ValueError, match="every <= horizon"):
        MPCPolicy(gym.make(SMALL), every=20, horizon=10)
