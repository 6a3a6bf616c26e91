"""train.py: every algorithm runs; save, load and resume are exact; TensorBoard gets the KPIs; bad options fail."""

import json
import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from agents import list_policies
from experiments.episodes import TEST_SEED_START
from experiments.trained import TrainedPolicy

SMALL = "ChipAlloc/Datacenter-Small-v0"


def _train(tmp_path, name, *extra):
    run_dir = tmp_path / name
    train.main(["--env-id", SMALL, "--run-dir", str(run_dir), "--test-episodes", "0", "--eval-episodes", "1",
                "--checkpoint-every", "1024", "--eval-every", "1024", *extra])
    return run_dir


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One uninterrupted PPO run of 4096 steps on 4 envs (train.py writes runs/latest.txt in the working dir)."""
    folder = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        return _train(folder, "whole", "--timesteps", "4096", "--n-envs", "4")


@pytest.mark.parametrize(("algo", "env_id", "steps"), [
    ("ppo", SMALL, 2048), ("a2c", SMALL, 2048), ("recurrentppo", SMALL, 2048),
    ("sac", SMALL, 800), ("td3", SMALL, 800), ("maskableppo", "ChipAlloc/DatacenterDiscrete-Small-v0", 2048),
])
def test_every_algorithm_trains_saves_and_loads(tmp_path, monkeypatch, algo, env_id, steps):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / algo
    extra = ["--n-envs", "2"] + (["--hyperparams", str(_fast_offpolicy(tmp_path, algo))] if algo in ("sac", "td3")
                                 else [])
    train.main(["--algo", algo, "--env-id", env_id, "--timesteps", str(steps), "--run-dir", str(run_dir),
                "--test-episodes", "0", "--eval-every", "100000", *extra])
    for name in ("model.zip", "vecnormalize.pkl", "config.json", "checkpoints/model.zip"):
        assert (run_dir / name).is_file(), name
    env = gym.make(env_id)
    policy = TrainedPolicy(env, run_dir)
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs)
    assert env.action_space.contains(action.astype(env.action_space.dtype))
    assert policy.model.num_timesteps >= steps


def _fast_offpolicy(tmp_path, algo):
    path = tmp_path / f"{algo}.yml"
    path.write_text(f"{SMALL}:\n  n_envs: 2\n  n_timesteps: 800\n  learning_starts: 200\n  buffer_size: 5000\n"
                    f"  train_freq: 8\n  gradient_steps: 1\n  policy_kwargs: \"dict(net_arch=[32, 32])\"\n")
    return path


class KilledError(Exception):
    """Stands in for the process being killed right after a checkpoint."""


def test_resumed_training_equals_uninterrupted_in_steps_and_statistics(whole, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save = train.CheckpointEvery._save_if_due

    def save_then_die(self):
        save(self)
        if self.num_timesteps >= 2048:
            raise KilledError

    monkeypatch.setattr(train.CheckpointEvery, "_save_if_due", save_then_die)
    with pytest.raises(KilledError):
        _train(tmp_path, "part", "--timesteps", "4096", "--n-envs", "4")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    part = tmp_path / "part"
    assert json.loads((part / "checkpoints" / "progress.json").read_text())["num_timesteps"] == 2048
    train.main(["--resume", str(part)])
    for run in (whole, part):
        assert json.loads((run / "checkpoints" / "progress.json").read_text())["num_timesteps"] == 4096
    stats = [pickle.loads((run / "vecnormalize.pkl").read_bytes()) for run in (whole, part)]
    assert stats[0].obs_rms.count == stats[1].obs_rms.count
    np.testing.assert_array_equal(stats[0].obs_rms.mean, stats[1].obs_rms.mean)
    np.testing.assert_array_equal(stats[0].ret_rms.var, stats[1].ret_rms.var)
    # The networks too: the resumed run continued exactly where the interrupted one stopped.
    from stable_baselines3 import PPO

    params = [PPO.load(run / "model.zip").policy.state_dict() for run in (whole, part)]
    for key in params[0]:
        assert params[0][key].equal(params[1][key]), key
    history = json.loads((part / "evaluations.json").read_text())
    assert [h["timesteps"] for h in history] == [1024, 2048, 3072, 4096]  # nothing lost across the restart


def test_tensorboard_has_the_domain_scalars(whole):
    events = EventAccumulator(str(next((whole / "tb").iterdir())))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("domain/profit", "domain/revenue", "domain/capex", "domain/usd_per_mtok", "domain/hbm_exposure",
                "slo_attainment/chat", "utilisation/H100-SXM", "fleet_share/MI300X", "unmet_share/batch",
                "eval/mean_return", "eval/best_baseline_return", "rollout/ep_rew_mean"):
        assert tag in tags, tag
    assert (whole.parent / "runs" / "latest.txt").read_text().strip() == str(whole)


@pytest.mark.parametrize(("argv", "error", "message"), [
    (["--algo", "dqn"], ValueError, "unknown algorithm 'dqn'"),
    (["--algo", "sac", "--env-id", "ChipAlloc/DatacenterDiscrete-Small-v0"], ValueError, "Box action spaces"),
    (["--algo", "maskableppo"], ValueError, "MultiDiscrete action spaces.*DatacenterDiscrete"),
    (["--hyperparams", "nowhere.yml"], FileNotFoundError, "does not exist"),
    (["--env-id", "ChipAlloc/Nope-v0"], ValueError, "unknown environment"),
    (["--timesteps", "-5"], ValueError, "--timesteps must be a positive"),
    (["--resume", "no/such/run"], FileNotFoundError, "no train.py checkpoint"),
    (["--resume", "some/run", "--algo", "sac"], ValueError, r"only --timesteps may change \(got --algo"),
    (["--eval-episodes", "0"], ValueError, "--eval-episodes must be a positive"),
    (["--test-episodes", "-1"], ValueError, "--test-episodes must be 0"),
])
def test_bad_options_fail_before_training(tmp_path, monkeypatch, argv, error, message):
    monkeypatch.chdir(tmp_path)
    if "--resume" not in argv:  # a resumed run takes its environment and folder from the run
        argv = [*argv, "--run-dir", str(tmp_path / "run")] + ([] if "--env-id" in argv else ["--env-id", SMALL])
    with pytest.raises(error, match=message):
        train.main(argv)
    assert not (tmp_path / "run").exists()


def test_hyperparams_without_the_env_list_what_they_have():
    from experiments.hyperparams import load_hyperparams

    with pytest.raises(KeyError, match="has no entry for ChipAlloc/Scheduling-v0; it has: ChipAlloc/Datacenter-v0"):
        load_hyperparams(train.HYPERPARAMS_DIR / "ppo.yml", "ChipAlloc/Scheduling-v0")


def test_zoo_linear_schedules_parse_and_bad_ones_are_named(tmp_path):
    from experiments.hyperparams import load_hyperparams

    params = load_hyperparams(train.HYPERPARAMS_DIR / "ppo.yml", "ChipAlloc/Datacenter-v0")
    assert params["learning_rate"](1.0) == pytest.approx(3e-4) and params["learning_rate"](0.5) == pytest.approx(1.5e-4)
    bad = tmp_path / "bad.yml"
    bad.write_text("ChipAlloc/Datacenter-v0:\n  learning_rate: fast\n")
    with pytest.raises(ValueError, match="learning_rate 'fast' is neither a number nor"):
        load_hyperparams(bad, "ChipAlloc/Datacenter-v0")


def test_a_model_refuses_another_variant(whole, tmp_path):
    with pytest.raises(ValueError, match="trained on ChipAlloc/Datacenter-Small-v0"):
        TrainedPolicy(gym.make("ChipAlloc/Procurement-Small-v0"), whole)
    with pytest.raises(FileNotFoundError, match="no trained model"):
        TrainedPolicy(gym.make(SMALL), tmp_path / "missing")


def test_a_run_loads_without_the_module_of_its_training_schedule(whole, monkeypatch):
    """model.zip pickles LinearSchedule by module (agents.training before experiments/ existed); predicting needs
    neither, so a run must load even where that module cannot be imported."""
    monkeypatch.setitem(sys.modules, "experiments.hyperparams", None)
    env = gym.make(SMALL)
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(TrainedPolicy(env, whole).predict(obs)[0])


def test_a_checkpoint_naming_a_missing_module_is_explained(whole, monkeypatch):
    from stable_baselines3 import PPO

    from experiments.runs import CHECKPOINT_DIR, restore_run_state

    monkeypatch.setitem(sys.modules, "experiments.vec_env", None)
    with pytest.raises(ValueError, match=r"older chipalloc whose module experiments\.vec_env no longer exists"):
        restore_run_state(whole / CHECKPOINT_DIR, PPO, "cpu")


def test_final_comparison_runs_evaluate_on_held_out_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "compare"
    train.main(["--env-id", SMALL, "--timesteps", "1024", "--n-envs", "2", "--run-dir", str(run_dir),
                "--test-episodes", "2", "--eval-every", "100000"])
    summary = json.loads((run_dir / "comparison" / "summary.json").read_text())
    assert summary["seeds"] == [TEST_SEED_START, TEST_SEED_START + 1]
    assert set(summary["policies"]) == {"agent", *list_policies()}
    assert "agent - " in (run_dir / "comparison" / "results.md").read_text()
    assert len(summary["policies"]["agent"]["minus_best_baseline"]["ci95"]) == 2


def test_warm_start_plays_the_constant_action_before_training(tmp_path):
    """With ``warm_start: constant`` the untrained agent's deterministic action is the tuned constant's, at
    every observation (the mean head's weights shrink to 1%, so it may move by a hair); off-policy or
    discrete agents have no such head and are refused."""
    from stable_baselines3 import PPO, SAC

    from agents import make_policy
    from experiments.warm_start import warm_start

    env = gym.make(SMALL)
    constant = make_policy("constant", env).action
    model = PPO("MlpPolicy", env, seed=0, device="cpu")
    obs, _ = env.reset(seed=0)
    before = model.predict(obs, deterministic=True)[0]
    warm_start(model, constant)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(5):
            action = model.predict(obs, deterministic=True)[0]
            np.testing.assert_allclose(action, np.clip(constant, -1, 1), atol=0.05)
            obs = env.step(action)[0]
    assert np.abs(before - constant).max() > 0.05  # it did move the policy
    with pytest.raises(ValueError, match="Gaussian policy over a Box"):
        warm_start(SAC("MlpPolicy", env, device="cpu", buffer_size=10), constant)
    with pytest.raises(ValueError, match="must lie in"):
        warm_start(PPO("MlpPolicy", env, device="cpu"), constant * 3 + 2)
