"""Pieces train.py assembles: hyperparameter files, atomic run-directory I/O and callbacks."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from agents.vec_env import NativeVecEnv

CHECKPOINT_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"
# What a run folder holds (and a checkpoint folder too, for the first two).
MODEL_FILE, NORMALIZE_FILE, CONFIG_FILE = "model.zip", "vecnormalize.pkl", "config.json"


def read_run_config(path: str | Path) -> dict | None:
    """The ``config`` train.py wrote for a run folder (or for the folder of a model file); None without one."""
    path = Path(path)
    config = (path if path.is_dir() else path.parent) / CONFIG_FILE
    return json.loads(config.read_text())["config"] if config.is_file() else None
# Keys of an rl-baselines3-zoo entry that configure the run rather than the algorithm's constructor.
RUN_KEYS = ("n_envs", "n_timesteps", "policy", "normalize")


def load_hyperparams(path: str | Path, env_id: str) -> dict[str, Any]:
    """The entry for ``env_id`` of an rl-baselines3-zoo style YAML file (``policy_kwargs`` may be a
    mapping or the zoo's ``"dict(net_arch=[64, 64], activation_fn=nn.Tanh)"`` string)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hyperparameter file {path} does not exist; pass --hyperparams with a YAML file "
                                f"keyed by env ID (see hyperparams/ppo.yml)")
    data = yaml.safe_load(path.read_text()) or {}
    if env_id not in data:
        raise KeyError(f"{path} has no entry for {env_id}; it has: {', '.join(map(str, data)) or 'none'}")
    params = dict(data[env_id])
    for key in ("learning_rate", "clip_range"):  # the zoo's "lin_0.0003": decays linearly to 0 over training
        if isinstance(params.get(key), str):
            params[key] = _linear_schedule(params[key], key, path)
    kwargs = params.get("policy_kwargs")
    if isinstance(kwargs, str):
        params["policy_kwargs"] = eval(kwargs, {"__builtins__": {}}, {"dict": dict, "nn": torch.nn})
    return params


class LinearSchedule:
    """``start`` x the fraction of training remaining (a class, so that saved models pickle it)."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:  # how config.json records it
        return f"lin_{self.start}"


def _linear_schedule(text: str, key: str, path: Path) -> LinearSchedule:
    if not text.startswith("lin_"):
        raise ValueError(f"{path}: {key} {text!r} is neither a number nor a 'lin_<start>' schedule")
    try:
        return LinearSchedule(float(text[4:]))
    except ValueError:
        raise ValueError(f"{path}: {key} {text!r} is not 'lin_' followed by a number") from None


def _usual_permissions(path: str) -> None:
    """mkstemp creates 0600 files; give results the permissions a plain open() would (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename, so a crash leaves the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    _usual_permissions(tmp)
    os.replace(tmp, path)


def atomic_save(path: Path, save: Callable[[Path], None]) -> None:
    """Run ``save(tmp)`` then rename ``tmp`` over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(Path(tmp))
        _usual_permissions(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


RESUME_FILE = "resume.pkl"
# What SB3's model.save() leaves out but an exact continuation needs: where the environments are in
# their episodes, the last observations, the reward normaliser's running returns and the RNG states.
_MODEL_STATE = ("_last_obs", "_last_original_obs", "_last_episode_starts", "_last_lstm_states", "ep_info_buffer",
                "ep_success_buffer")
_MONITOR_STATE = ("episode_returns", "episode_lengths", "episode_count", "t_start")


def save_run_state(folder: Path, model, normalizer: VecNormalize, resumable: bool = True) -> None:
    """Model, normalisation statistics, an off-policy replay buffer and the resume state, each atomically."""
    atomic_save(folder / MODEL_FILE, model.save)
    atomic_save(folder / NORMALIZE_FILE, normalizer.save)
    if isinstance(model, OffPolicyAlgorithm):
        atomic_save(folder / "replay_buffer.pkl", model.save_replay_buffer)
    if resumable:
        monitor = normalizer.venv  # SB3's wrappers keep unpicklable class attributes: save their state instead
        state = {"env": monitor.venv, "monitor": {k: getattr(monitor, k) for k in _MONITOR_STATE},
                 "returns": normalizer.returns, "old_obs": normalizer.old_obs,
                 "old_reward": getattr(normalizer, "old_reward", None),
                 "model": {k: getattr(model, k) for k in _MODEL_STATE if hasattr(model, k)},
                 "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                 "action_space_rng": model.action_space.np_random}
        atomic_save(folder / RESUME_FILE, lambda p: p.write_bytes(pickle.dumps(state)))
    atomic_write_text(folder / PROGRESS_FILE, json.dumps({"num_timesteps": int(model.num_timesteps)}))


def restore_run_state(folder: Path, algorithm_cls, device: str):
    """(model, normaliser) exactly as :func:`save_run_state` left them."""
    state = pickle.loads((folder / RESUME_FILE).read_bytes())
    monitor = VecMonitor(state["env"])
    for key, value in state["monitor"].items():
        setattr(monitor, key, value)
    normalizer = VecNormalize.load(str(folder / NORMALIZE_FILE), monitor)
    normalizer.returns, normalizer.old_obs = state["returns"], state["old_obs"]
    if state["old_reward"] is not None:
        normalizer.old_reward = state["old_reward"]
    model = algorithm_cls.load(folder / MODEL_FILE, env=normalizer, device=device)
    if (folder / "replay_buffer.pkl").is_file():
        model.load_replay_buffer(folder / "replay_buffer.pkl")
    for key, value in state["model"].items():
        setattr(model, key, value)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    model.action_space._np_random = state["action_space_rng"]
    return model, normalizer


def native_env(venv: VecEnv) -> NativeVecEnv:
    """The NativeVecEnv under SB3's wrappers (VecMonitor, VecNormalize)."""
    while not isinstance(venv, NativeVecEnv):
        if not hasattr(venv, "venv"):
            raise TypeError("train.py's callbacks need the training env to be a NativeVecEnv under its wrappers")
        venv = venv.venv
    return venv


class DomainMetricsCallback(BaseCallback):
    """Logs the datacenter's own KPIs (profit and cost terms, SLO attainment per class, utilisation and fleet
    mix per chip, $/M tokens, HBM exposure, unmet demand) averaged over every ``every`` env steps."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every < self.training_env.num_envs:
            native = native_env(self.training_env)
            for key, value in native.rollout_metrics().items():
                self.logger.record(key, value)
        return True


class CheckpointEvery(BaseCallback):
    """Saves the run state atomically to ``run_dir/checkpoints`` once ``every`` env steps have passed.

    On-policy algorithms save when a rollout starts (their rollout buffer is empty then, so the
    saved state is complete); off-policy ones after any step. A killed run loses at most one
    interval plus a rollout.
    """

    def __init__(self, run_dir: Path, every: int):
        super().__init__()
        self.folder, self.every = run_dir / CHECKPOINT_DIR, every
        self.last = None

    def _save_if_due(self) -> None:
        if self.last is None:
            self.last = self.num_timesteps
        if self.num_timesteps - self.last >= self.every:
            save_run_state(self.folder, self.model, self.model.get_vec_normalize_env())
            self.last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        if not isinstance(self.model, OffPolicyAlgorithm):
            self._save_if_due()

    def _on_step(self) -> bool:
        if isinstance(self.model, OffPolicyAlgorithm):
            self._save_if_due()
        return True


class PeriodicEval(BaseCallback):
    """Every ``every`` env steps, evaluates the current policy on fixed seeds and logs its mean return
    beside the best heuristic's on the same seeds (``eval/best_heuristic_return``)."""

    def __init__(self, every: int, evaluate: Callable[[], float], best_heuristic: float, history: Path):
        super().__init__()
        self.every, self.evaluate, self.best = every, evaluate, best_heuristic
        self.history = history
        self.records: list[dict[str, float]] = json.loads(history.read_text()) if history.is_file() else []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every < self.training_env.num_envs:
            score = self.evaluate()
            self.logger.record("eval/mean_return", score)
            self.logger.record("eval/best_heuristic_return", self.best)
            self.logger.record("eval/margin_over_best_heuristic", score - self.best)
            self.records.append({"timesteps": int(self.num_timesteps), "mean_return": float(score),
                                 "best_heuristic_return": float(self.best)})
            atomic_write_text(self.history, json.dumps(self.records, indent=1))
        return True
