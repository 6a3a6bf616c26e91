"""Hyperparameter files in rl-baselines3-zoo's format: one YAML per algorithm, keyed by env ID."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

# Keys of an rl-baselines3-zoo entry that configure the run rather than the algorithm's constructor.
RUN_KEYS = ("n_envs", "n_timesteps", "policy", "normalize", "warm_start")


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
