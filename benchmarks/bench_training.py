"""PPO training throughput on the default env against CartPole-v1: ``python -m benchmarks.bench_training``.

Both use the same PPO settings and network (hyperparams/ppo.yml's default entry), 16 environments
and VecNormalize, one torch thread, in the same process. The chipalloc env runs through the
native batched VecEnv that train.py uses; CartPole through SB3's DummyVecEnv.
"""

from __future__ import annotations

import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from experiments.hyperparams import RUN_KEYS, load_hyperparams
from experiments.vec_env import NativeVecEnv
from train import HYPERPARAMS_DIR

STEPS = 131_072


def steps_per_s(venv, params: dict) -> float:
    model = PPO(params.get("policy", "MlpPolicy"), venv, seed=0, device="cpu", verbose=0,
                **{k: v for k, v in params.items() if k not in RUN_KEYS})
    model.learn(params["n_steps"] * venv.num_envs)  # warm-up: first rollout and update
    start = time.perf_counter()
    model.learn(STEPS, reset_num_timesteps=False)
    return STEPS / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(1)
    params = load_hyperparams(HYPERPARAMS_DIR / "ppo.yml", "ChipAlloc/Datacenter-v0")
    n, gamma = params["n_envs"], params.get("gamma", 0.99)  # VecNormalize discounts as train.py's does
    cartpole = steps_per_s(VecNormalize(make_vec_env("CartPole-v1", n_envs=n, seed=0), gamma=gamma), params)
    chipalloc = steps_per_s(VecNormalize(VecMonitor(NativeVecEnv("ChipAlloc/Datacenter-v0", n, seed=0)),
                                         gamma=gamma), params)
    print(f"PPO, {n} envs, n_steps {params['n_steps']}, batch {params['batch_size']}, "
          f"{params['n_epochs']} epochs, net {params['policy_kwargs'].get('net_arch')}")
    print(f"CartPole-v1 (DummyVecEnv):            {cartpole:8,.0f} env steps/s")
    print(f"ChipAlloc/Datacenter-v0 (native):     {chipalloc:8,.0f} env steps/s  "
          f"({chipalloc / cartpole:.0%} of CartPole)")


if __name__ == "__main__":
    main()
