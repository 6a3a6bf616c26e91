"""evaluate.py on the small scenario: outputs parse, rows are the episodes run, statistics hold, errors are clear."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest

import evaluate
import train
from agents import make_policy
from experiments.episodes import TEST_SEED_START, run_episode
from experiments.stats import iqm, stratified_ci

SMALL = "ChipAlloc/Datacenter-Small-v0"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # train.py writes runs/latest.txt in the working directory
        train.main(["--env-id", SMALL, "--timesteps", "2048", "--n-envs", "4", "--run-dir", str(folder / "ppo"),
                    "--test-episodes", "0", "--eval-every", "100000"])
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
    assert stratified_ci([np.ones(5), np.ones(3)], np.mean) == (1.0, 1.0, 1.0)


def test_strata_are_resampled_within_themselves():
    """Pooled runs whose returns differ by 100: resampling across the pool would move the mean by
    tens; within each run only the first run's single 1 moves it, by at most 0.5."""
    first, second = np.array([0.0, 0.0, 0.0, 0.0, 1.0]), np.full(5, 100.0)
    mean, low, high = stratified_ci([first, second], np.mean)
    assert mean == pytest.approx(50.1)
    assert 50.0 <= low <= mean <= high <= 50.5
    _, low_pooled, high_pooled = stratified_ci([np.concatenate([first, second])], np.mean)
    assert high_pooled - low_pooled > 20


def test_iqm_interval_brackets_the_iqm():
    values = np.random.default_rng(0).normal(1000.0, 50.0, 40)
    point, low, high = stratified_ci([values], iqm)
    assert point == pytest.approx(float(np.mean(np.sort(values)[10:30])))
    assert low < point < high


def test_runs_trained_on_different_envs_need_an_env_id(tmp_path):
    runs = []
    for env_id in ("ChipAlloc/Datacenter-Small-v0", "ChipAlloc/Procurement-Small-v0"):
        run = tmp_path / env_id.split("/")[1]
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"config": {"env_id": env_id}}))
        runs.append(f"{run.name}={run}")
    with pytest.raises(ValueError, match=r"trained on different environments .* --env-id"):
        evaluate.main(["--policies", ",".join(runs), "--seeds", "1", "--out", str(tmp_path / "out")])


def test_results_name_the_scenario_even_when_it_overrides_the_env_id(tmp_path, capsys):
    evaluate.main(["--policies", "random", "--env-id", SMALL, "--scenario", "hbm_shortage", "--seeds", "1",
                   "--out", str(tmp_path)])
    header = (tmp_path / "results.md").read_text().splitlines()[0]
    assert header.startswith(f"{SMALL} on scenario 'hbm_shortage' (given with --scenario), seeds")
    assert header in capsys.readouterr().out  # the terminal table names it too
    assert json.loads((tmp_path / "summary.json").read_text())["scenario_name"] == "hbm_shortage"


def test_the_random_policy_alone_is_summarised_and_plotted(tmp_path):
    summary = evaluate.main(["--policies", "random", "--env-id", SMALL, "--seeds", "2", "--out", str(tmp_path)])
    assert summary["policies"]["random"]["episodes"] == 2
    assert (tmp_path / "plots" / "scores.png").is_file()
