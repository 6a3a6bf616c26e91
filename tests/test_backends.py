"""The transition is written against the array API: torch and the strict reference namespace match NumPy."""

import array_api_strict
import numpy as np
import pytest
from array_api_compat import torch as torch_xp

from envs import load_scenario
from envs.core import N_KNOBS, demand_now, draw_exogenous, exogenous_as, initial_state, knob_shares, step
from envs.sizing import training_need

SCENARIO = load_scenario("small")


def _run(xp, weeks=26, batch=3):
    exo_np = draw_exogenous(SCENARIO, np.random.default_rng(5), batch)
    exo = exogenous_as(exo_np, xp)
    state = initial_state(SCENARIO, batch, xp=xp)
    rng = np.random.default_rng(9)
    rewards, cash = [], []
    for _ in range(weeks):
        orders = xp.asarray(rng.random((batch, SCENARIO.n_chips)) * 64.0, dtype=xp.float64)
        knobs = xp.asarray(rng.random((batch, N_KNOBS)), dtype=xp.float64)
        need = xp.asarray(training_need(_as_numpy(state)), dtype=xp.float64)
        shares = knob_shares(SCENARIO, state.fleet, demand_now(exo, state) + state.backlog, knobs, need)
        state, reward, info = step(SCENARIO, state, orders, shares, exo)
        rewards.append(np.asarray(reward))
        cash.append(np.asarray(info["cash"]))
    return np.array(rewards), np.array(cash), np.asarray(state.fleet)


def _as_numpy(state):
    from dataclasses import fields

    from envs.core import State

    return State(**{f.name: np.asarray(getattr(state, f.name)) for f in fields(state)})


@pytest.mark.parametrize("xp", [torch_xp, array_api_strict], ids=["torch", "array-api-strict"])
def test_backend_matches_numpy(xp):
    ref = _run(np)
    got = _run(xp)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-6)
    assert ref[0].std() > 0, "the run exercises the dynamics"
