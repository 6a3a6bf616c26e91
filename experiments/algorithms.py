"""The RL algorithms train.py offers, and the action spaces each can act in."""

from __future__ import annotations

from dataclasses import dataclass

from gymnasium import spaces
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm


@dataclass(frozen=True)
class Algorithm:
    cls: type[BaseAlgorithm]
    action_spaces: tuple[type[spaces.Space], ...]
    policy: str
    needs_masks: bool = False  # predict() takes the env's action masks
    recurrent: bool = False  # predict() carries an LSTM state across steps


ALGORITHMS = {
    "ppo": Algorithm(PPO, (spaces.Box, spaces.MultiDiscrete), "MlpPolicy"),
    "a2c": Algorithm(A2C, (spaces.Box, spaces.MultiDiscrete), "MlpPolicy"),
    "sac": Algorithm(SAC, (spaces.Box,), "MlpPolicy"),
    "td3": Algorithm(TD3, (spaces.Box,), "MlpPolicy"),
    "recurrentppo": Algorithm(RecurrentPPO, (spaces.Box, spaces.MultiDiscrete), "MlpLstmPolicy", recurrent=True),
    "maskableppo": Algorithm(MaskablePPO, (spaces.MultiDiscrete,), "MlpPolicy", needs_masks=True),
}


def check_algorithm(algo: str, action_space: spaces.Space, env_id: str) -> Algorithm:
    """The algorithm, or a ValueError saying why it cannot act in ``env_id`` and what would work."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}")
    spec = ALGORITHMS[algo]
    if not isinstance(action_space, spec.action_spaces):
        kinds = " or ".join(s.__name__ for s in spec.action_spaces)
        hint = ("use ChipAlloc/DatacenterDiscrete-v0 (MultiDiscrete with action masks)"
                if spaces.MultiDiscrete in spec.action_spaces
                else "use a Box-action env such as ChipAlloc/Datacenter-v0")
        raise ValueError(f"{algo} acts in {kinds} action spaces, but {env_id} has "
                         f"{type(action_space).__name__}; {hint}")
    return spec
