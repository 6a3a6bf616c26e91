"""Run folders: what train.py writes where, written atomically, and the state an exact resume needs.

A run folder holds ``config.json``, ``model.zip``, ``vecnormalize.pkl``, ``progress.json``, ``tb/``,
``evaluations.json`` and ``checkpoints/`` (the same files plus ``resume.pkl``); ``runs/latest.txt``
names the newest run.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

CHECKPOINT_DIR = "checkpoints"
PROGRESS_FILE = "progress.json"
# What a run folder holds (and a checkpoint folder too, for the first two).
MODEL_FILE, NORMALIZE_FILE, CONFIG_FILE = "model.zip", "vecnormalize.pkl", "config.json"
# Relative to the working directory, as train.py's default run folders are.
LATEST_FILE = Path("runs") / "latest.txt"


def read_run_config(path: str | Path) -> dict | None:
    """The ``config`` train.py wrote for a run folder (or for the folder of a model file); None without one."""
    path = Path(path)
    config = (path if path.is_dir() else path.parent) / CONFIG_FILE
    return json.loads(config.read_text())["config"] if config.is_file() else None


def mark_latest(run_dir: Path) -> None:
    """Point ``runs/latest.txt`` at ``run_dir``, so that ``evaluate.py`` picks it up by default."""
    atomic_write_text(LATEST_FILE, str(run_dir) + "\n")


def latest_run() -> str:
    """The run folder ``runs/latest.txt`` names."""
    if not LATEST_FILE.is_file():
        raise FileNotFoundError(f"no train.py run found ({LATEST_FILE} is missing); run train.py first or name "
                                "policies with --policies")
    return LATEST_FILE.read_text().strip()


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


def save_run_state(folder: Path, model: BaseAlgorithm, normalizer: VecNormalize, resumable: bool = True) -> None:
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


def restore_run_state(folder: Path, algorithm_cls: type[BaseAlgorithm],
                      device: str) -> tuple[BaseAlgorithm, VecNormalize]:
    """(model, normaliser) exactly as :func:`save_run_state` left them."""
    try:
        return _restore(folder, algorithm_cls, device)
    except ModuleNotFoundError as exc:  # the pickles name classes by module, e.g. agents.vec_env before experiments/
        raise ValueError(f"{folder} was saved by an older chipalloc whose module {exc.name} no longer exists; resume "
                         f"it with that version, or start a new run") from exc


def _restore(folder: Path, algorithm_cls: type[BaseAlgorithm], device: str) -> tuple[BaseAlgorithm, VecNormalize]:
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
