"""Trained stable-baselines3 models as policies: the same predict() as the heuristics, with the run's
observation normalisation applied (VecNormalize statistics, loaded frozen)."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecNormalize

from agents.base import Policy
from experiments.algorithms import ALGORITHMS
from experiments.runs import MODEL_FILE, NORMALIZE_FILE, read_run_config

# model.zip pickles the training schedules by reference to their class (experiments.hyperparams.LinearSchedule,
# agents.training.LinearSchedule before experiments/ existed). Predicting never reads them, so they are not
# unpickled: a run stays loadable wherever the schedule class lives. SB3 rebuilds a constant schedule from these.
_TRAINING_ONLY = {"learning_rate": 0.0, "lr_schedule": 0.0, "clip_range": 0.0}


class TrainedPolicy(Policy):
    """A model from ``train.py``'s run directory (or a model file with ``vecnormalize.pkl`` beside it)."""

    name = "trained"

    def __init__(self, env: gym.Env, path: str | Path):
        super().__init__(env)
        path = Path(path)
        run_dir = path if path.is_dir() else path.parent
        model_path = path / MODEL_FILE if path.is_dir() else path
        if not model_path.is_file():
            raise FileNotFoundError(f"no trained model at {model_path}; pass a train.py run directory or a model .zip")
        config = read_run_config(path)
        algo = config["algo"] if config else "ppo"
        if algo not in ALGORITHMS:
            raise ValueError(f"{run_dir} names algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
        trained_on = config.get("env_id") if config else None
        if trained_on and gym.spec(trained_on).kwargs.get("variant") != self.env.variant:
            raise ValueError(f"{model_path} was trained on {trained_on} ({gym.spec(trained_on).kwargs['variant']} "
                             f"actions); this environment is the {self.env.variant!r} variant")
        try:
            model = ALGORITHMS[algo].cls.load(model_path, device="cpu", custom_objects=_TRAINING_ONLY)
        except Exception as exc:
            if config:
                raise
            raise ValueError(f"{model_path} has no train.py config.json beside it, so it was loaded as PPO and "
                             f"failed ({exc}); put the run's config.json beside the model") from exc
        normalize = run_dir / NORMALIZE_FILE
        self._attach(model, algo, _load_stats(normalize) if normalize.is_file() else None)
        if self.model.observation_space.shape != env.observation_space.shape or \
                self.model.action_space != env.action_space:
            raise ValueError(f"{model_path} expects observations {self.model.observation_space.shape} and actions "
                             f"{self.model.action_space}; this environment has {env.observation_space.shape} and "
                             f"{env.action_space} (a model trained on another scenario or variant)")

    def _attach(self, model, algo: str, normalizer: VecNormalize | None) -> None:
        self.model, self.algo, self.normalizer = model, algo, normalizer
        self.masked, self.recurrent = ALGORITHMS[algo].needs_masks, ALGORITHMS[algo].recurrent

    @classmethod
    def from_model(cls, env: gym.Env, model, algo: str, normalizer: VecNormalize | None) -> TrainedPolicy:
        """Wrap a model in memory (e.g. during training, with the live normalisation statistics)."""
        policy = cls.__new__(cls)
        Policy.__init__(policy, env)
        policy._attach(model, algo, normalizer)
        return policy

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        n = self.normalizer
        if n is None or not n.norm_obs:
            return obs
        return np.clip((obs - n.obs_rms.mean) / np.sqrt(n.obs_rms.var + n.epsilon), -n.clip_obs,
                       n.clip_obs).astype(np.float32)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = self.normalize(np.asarray(observation, dtype=np.float32))
        if self.masked:
            return self.model.predict(obs, deterministic=deterministic, action_masks=self.env.action_masks())
        if self.recurrent:
            start = np.array([self.env.state.week[0] == 0]) if episode_start is None else episode_start
            return self.model.predict(obs, state=state, episode_start=start, deterministic=deterministic)
        return self.model.predict(obs, deterministic=deterministic)


def _load_stats(path: Path) -> VecNormalize:
    """VecNormalize pickles without its wrapped env; its running statistics are all a policy needs."""
    with path.open("rb") as fh:
        stats = pickle.load(fh)
    if not isinstance(stats, VecNormalize):
        raise ValueError(f"{path} is not a VecNormalize statistics file")
    return stats
