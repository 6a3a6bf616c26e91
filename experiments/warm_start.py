"""Start a policy-gradient agent at a baseline's action: ``warm_start: constant`` in the hyperparameters.

A freshly initialised Gaussian policy plays actions around zero, which in the datacenter envs is a poor plan
(it lets out half the fleet and orders nothing useful); PPO then spends most of its budget climbing to where
the tuned constant action already is. Setting the mean head's bias to the constant action, and shrinking its
weights, starts the agent at that open-loop plan; training then only has to learn how to depart from it
with the state. The constant itself is tuned on training seeds only, so no evaluation seed leaks in.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

WEIGHT_SCALE = 0.01  # the mean head's weights after the warm start: state-dependence starts small, not zero


def warm_start(model: BaseAlgorithm, action: np.ndarray) -> None:
    """Make ``model``'s policy play ``action`` (its deterministic action at any observation, before training).

    Only on-policy Gaussian policies over a Box (PPO, A2C, RecurrentPPO) have the mean head this sets."""
    space = model.action_space
    head = getattr(model.policy, "action_net", None)
    if not isinstance(space, gym.spaces.Box) or not isinstance(head, torch.nn.Linear):
        raise ValueError(f"warm_start needs a Gaussian policy over a Box action space (ppo, a2c, recurrentppo); "
                         f"got {type(model).__name__} on {space}; remove warm_start from the hyperparameters")
    action = np.asarray(action, dtype=np.float32)
    if action.shape != space.shape or not np.all((action >= space.low) & (action <= space.high)):
        raise ValueError(f"the warm-start action must lie in {space}, got {action.tolist()}")
    with torch.no_grad():
        head.weight.mul_(WEIGHT_SCALE)
        head.bias.copy_(torch.as_tensor(action, device=head.bias.device))
