"""evaluate.py on the small scenario: outputs parse, rows are the episodes run, statistics hold, errors are clear."""

import csv
import json
import os

import gymnasium as gym
import numpy as np
import pytest

import evaluate
import train
from agents import make_policy
from agents.evaluation import TEST_SEED_START, run_episode

SMALL = "ChipAlloc/Datacenter-Small-v0"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    here = os.getcwd()
    os.chdir(folder)  # train.py writes runs/latest.txt in the working directory
    try:
        train.main(["--env-id", SMALL, "--timesteps", "2048", "--n-envs", "4", "--run-dir", str(folder / "ppo"),
                    "--test-episodes", "0", "--eval-every", "100000"])
    finally:
        os.chdir(here)
    return folder / "ppo"


@pytest.fixture(scope="module")
def results(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    summary = evaluate.main(["--policies", f"forecast,do-nothing,lp-scheduler,agent={trained_run},oracle",
                             "--env-id", SMALL, "--seeds", "3", "--out", str(out), "--workers", "2"])
    return out, summary


def test_outputs_exist_and_parse(results):
    out, summary = results
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["policies"].keys() == summary["policies"].keys()
    rows = list(csv.DictReader((out / "per_seed.csv").open()))
    assert len(rows) == 5 * 3
    assert "| oracle |" in (out / "results.md").read_text()
    for name in ("scores", "fleet", "demand_vs_capacity", "hbm_market", "learning_curves"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_row_is_the_episode_actually_run(results):
    out, _ = results
    rows = [r for r in csv.DictReader((out / "per_seed.csv").open()) if r["policy"] == "forecast"]
    row = next(r for r in rows if int(r["seed"]) == TEST_SEED_START + 1)
    env = gym.make(SMALL)
    episode = run_episode(env, make_policy("forecast", env), TEST_SEED_START + 1)
    assert float(row["episode_return"]) == episode.episode_return
    assert float(row["profit"]) == episode.totals["profit"]


def test_intervals_contain_their_estimates_and_the_oracle_gap_is_zero(results):
    _, summary = results
    for label, e in summary["policies"].items():
        assert e["mean_ci95"][0] <= e["mean_return"] <= e["mean_ci95"][1], label
        assert e["iqm_ci95"][0] <= e["iqm_return"] <= e["iqm_ci95"][1], label
    assert summary["policies"]["oracle"]["optimality_gap"] == 0.0
    assert summary["best_baseline"] in ("forecast", "do-nothing", "lp-scheduler")
    poi = summary["policies"]["oracle"]["probability_of_improvement_over_best_baseline"]
    assert 0.5 <= poi <= 1.0


def test_pooled_training_seeds_count_every_run(trained_run, tmp_path):
    summary = evaluate.main(["--policies", f"ppo={trained_run}+{trained_run},forecast", "--env-id", SMALL,
                             "--seeds", "2", "--out", str(tmp_path)])
    assert summary["policies"]["ppo"]["episodes"] == 4


@pytest.mark.parametrize(("policies", "error", "message"), [
    ("gpt-9", FileNotFoundError, "neither a policy name"),
    ("forecast,missing/run", FileNotFoundError, "missing/run is neither"),
])
def test_bad_policies_give_clear_errors(tmp_path, policies, error, message):
    with pytest.raises(error, match=message):
        evaluate.main(["--policies", policies, "--env-id", SMALL, "--seeds", "1", "--out", str(tmp_path)])


def test_a_model_trained_on_another_env_is_refused(trained_run, tmp_path):
    with pytest.raises(ValueError, match="trained on ChipAlloc/Datacenter-Small-v0"):
        evaluate.main(["--policies", str(trained_run), "--env-id", "ChipAlloc/Procurement-Small-v0", "--seeds", "1",
                       "--out", str(tmp_path)])


def test_latest_without_any_run_is_explained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run train\.py first"):
        evaluate.main(["--policies", "latest", "--seeds", "1"])


def test_stratified_interval_of_a_constant_is_a_point():
    from agents.evaluation import stratified_ci

    assert stratified_ci([np.ones(5), np.ones(3)], lambda *x: np.mean(np.concatenate(x))) == (1.0, 1.0, 1.0)
