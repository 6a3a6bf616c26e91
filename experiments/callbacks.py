"""stable-baselines3 callbacks train.py adds: the datacenter's KPIs, checkpoints, periodic evaluation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from experiments.runs import CHECKPOINT_DIR, atomic_write_text, save_run_state
from experiments.vec_env import NativeVecEnv


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
    beside the best baseline's (constant or heuristic) on the same seeds (``eval/best_baseline_return``)."""

    def __init__(self, every: int, evaluate: Callable[[], float], best_baseline: float, history: Path):
        super().__init__()
        self.every, self.evaluate, self.best = every, evaluate, best_baseline
        self.history = history
        self.records: list[dict[str, float]] = json.loads(history.read_text()) if history.is_file() else []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every < self.training_env.num_envs:
            score = self.evaluate()
            self.logger.record("eval/mean_return", score)
            self.logger.record("eval/best_baseline_return", self.best)
            self.logger.record("eval/margin_over_best_baseline", score - self.best)
            self.records.append({"timesteps": int(self.num_timesteps), "mean_return": float(score),
                                 "best_baseline_return": float(self.best)})
            atomic_write_text(self.history, json.dumps(self.records, indent=1))
        return True
