"""stable-baselines3 VecEnv over the native batched environment (one array step for all envs)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

import envs  # noqa: F401  (registers the IDs)
from envs.datacenter import DatacenterVectorEnv

# Per-step info terms averaged over a rollout for TensorBoard (see ``rollout_metrics``).
_SCALARS = ("profit", "revenue", "revenue_training", "capex", "facility_capex", "opex", "power_cost", "depreciation",
            "write_off", "sale_gain", "capital_charge", "capital_employed", "usd_per_mtok", "hbm_exposure",
            "hbm_price_mean")


class NativeVecEnv(VecEnv):
    """Adapts :class:`envs.DatacenterVectorEnv` (SAME_STEP autoreset) to SB3's VecEnv API.

    Sub-environment ``i`` follows seed ``seed + i``, like ``make_vec_env``. It also averages the
    domain metrics of every step since the last :meth:`rollout_metrics` call.
    """

    def __init__(self, env_id: str, n_envs: int, seed: int = 0, env_kwargs: dict | None = None):
        spec = gym.spec(env_id)
        if spec.vector_entry_point != "envs.datacenter:DatacenterVectorEnv":
            raise ValueError(f"{env_id} is not a chipalloc environment")
        kwargs = {**spec.kwargs, **(env_kwargs or {})}
        self.venv = DatacenterVectorEnv(n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        self.scenario = self.venv.scenario
        super().__init__(n_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._seed = seed
        self._actions = None
        classes = tuple(c.name for c in self.scenario.classes)
        self._names = {"fleet_share": self.scenario.chips, "utilisation": self.scenario.chips,
                       "slo_attainment": classes, "unmet_share": classes}
        self._sums: dict[str, np.ndarray | float] = {}
        self._steps = 0

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed += self.num_envs  # a second reset() continues with new paths, as SB3 expects
        return obs

    def seed(self, seed: int | None = None) -> list[None]:
        if seed is not None:
            self._seed = seed
        return [None] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        self._accumulate(info)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i])
        return obs, reward.astype(np.float32), done, infos

    def _accumulate(self, info: dict) -> None:
        terms = {k: info[k].mean() for k in _SCALARS}
        fleet = info["fleet"]
        terms["fleet_share"] = (fleet / np.maximum(fleet.sum(1, keepdims=True), 1.0)).mean(0)
        terms["utilisation"] = info["utilisation"].mean(0)
        terms["slo_attainment"] = info["slo_attainment"].mean(0)
        terms["unmet_share"] = (info["unmet"] / np.maximum(info["demand"], 1e-9)).mean(0)
        for k, v in terms.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._steps += 1

    def rollout_metrics(self) -> dict[str, float]:
        """Means since the last call, flattened to ``group/name`` keys; resets the accumulator."""
        out: dict[str, float] = {}
        for k, total in self._sums.items():
            mean = np.asarray(total) / max(self._steps, 1)
            if mean.ndim == 0:
                out[f"domain/{k}"] = float(mean)
            else:
                for name, v in zip(self._names[k], mean):
                    out[f"{k}/{name}"] = float(v)
        self._sums, self._steps = {}, 0
        return out

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError("the batched environment shares one set of attributes; it cannot set them per env")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name != "action_masks":
            raise AttributeError(f"the batched environment supports env_method('action_masks') only, "
                                 f"not {method_name!r}")
        masks = self.venv.action_masks()
        return [masks[i] for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
