"""The dynamics' probe digest: what tuned caches and leaderboard entries are keyed on. It must be stable for the
same dynamics and change whenever an episode's numbers change."""

import dataclasses

import numpy as np
import pytest

import envs
import envs.dynamics as dyn
import envs.functional as fn
from agents.heuristic_tuning import policy_digest
from agents.heuristics import ForecastPolicy
from envs.probe import dynamics_digest, scenario_digest


@pytest.fixture(scope="module")
def small():
    return fn.params("small")


def _with_table(params: fn.Params, name: str, change) -> fn.Params:
    tables = dyn.with_derived(params.tables._replace(**{name: change(getattr(params.tables, name).copy())}))
    return dataclasses.replace(params, tables=tables)


def test_the_digest_is_the_same_for_the_same_dynamics(small):
    digest = dynamics_digest(small)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert dynamics_digest(fn.params("small")) == digest  # a fresh Params object, the same model
    assert scenario_digest("small") == digest


def test_the_digest_tells_variants_scenarios_and_action_kinds_apart(small):
    digests = {dynamics_digest(small), scenario_digest("small", "fine"), scenario_digest("small", discrete=True),
               scenario_digest("default")}
    assert len(digests) == 4


def test_a_change_to_one_model_figure_changes_the_digest(small):
    def nudge(table: np.ndarray) -> np.ndarray:
        table.flat[0] = table.flat[0] * (1 + 1e-9) if table.flat[0] else 1e-9
        return table

    assert dynamics_digest(_with_table(small, "chip", nudge)) != dynamics_digest(small)


def test_the_policy_digest_follows_the_heuristic_and_the_dynamics(small):
    env = envs.DatacenterEnv("small")
    digest = policy_digest(ForecastPolicy, env.params)
    assert policy_digest(ForecastPolicy, fn.params("small")) == digest
    assert policy_digest(ForecastPolicy, fn.params("power_limited")) != digest
