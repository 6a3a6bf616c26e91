"""Environment speed: ``python -m benchmarks.bench_envs``.

Steps/s of each registered default-scenario variant, env-steps/s of the native vector env at
N = 1, 64 and 1024 against Gymnasium's SyncVectorEnv of the same env, peak memory, and
CartPole-v1 in the same process as the yardstick.
"""

from __future__ import annotations

import resource
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the IDs)
from benchmarks.yardstick import cartpole_steps_per_s


def single_steps_per_s(env_id: str, steps: int = 300) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    act = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(act)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_steps_per_s(n: int, mode: str, steps: int) -> float:
    vec = gym.make_vec("ChipAlloc/Datacenter-v0", num_envs=n, vectorization_mode=mode)
    vec.reset(seed=0)
    act = np.zeros((n, *vec.single_action_space.shape), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        vec.step(act)
    return n * steps / (time.perf_counter() - start)


def main() -> None:
    cartpole = cartpole_steps_per_s()
    print(f"CartPole-v1 yardstick: {cartpole:,.0f} steps/s")
    for env_id in ("ChipAlloc/Datacenter-v0", "ChipAlloc/Procurement-v0", "ChipAlloc/Scheduling-v0",
                   "ChipAlloc/DatacenterDiscrete-v0", "ChipAlloc/Datacenter-Small-v0"):
        rate = single_steps_per_s(env_id)
        print(f"{env_id:<34} {rate:10,.0f} steps/s  ({rate / cartpole:.3f}x CartPole)")
    for n, steps in ((1, 300), (64, 100), (1024, 40)):
        native = vector_steps_per_s(n, "vector_entry_point", steps)
        sync = vector_steps_per_s(n, "sync", max(2, steps // max(1, n // 16)))
        print(f"vector N={n:<5} native {native:12,.0f} env-steps/s   SyncVectorEnv {sync:10,.0f}   "
              f"ratio {native / sync:6.1f}x")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
