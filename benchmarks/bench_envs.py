"""Environment speed: ``python -m benchmarks.bench_envs``.

Steps/s of each registered ID's single env, env-steps/s of the native vector env at N = 1, 64 and
1024 against Gymnasium's SyncVectorEnv of the same env and against the single env, peak memory, and
CartPole-v1 in the same process as the yardstick.
"""

from __future__ import annotations

import resource
import time

import gymnasium as gym
import numpy as np

from benchmarks.yardstick import cartpole_steps_per_s
from envs import ENV_IDS


def first_step_seconds(env_id: str) -> float:
    """Seconds to make, reset and step an env the first time in this process: loading the compiled
    kernels from Numba's cache (or compiling them, once per machine and source version)."""
    start = time.perf_counter()
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    return time.perf_counter() - start


def single_steps_per_s(env_id: str, steps: int = 20_000) -> float:
    """Steps/s of ``gym.make(env_id)`` (with Gymnasium's default wrappers), resets included."""
    env = gym.make(env_id)
    env.reset(seed=0)
    act = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    env.step(act)
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
    vec.step(act)  # the first step loads the kernels (timed separately above)
    start = time.perf_counter()
    for _ in range(steps):
        vec.step(act)
    return n * steps / (time.perf_counter() - start)


ROUNDS = 3  # each figure is the best of this many short runs, interleaved with its yardstick's
VECTOR_ROUNDS = 5  # the vector env's figures and the single env's beside them: best of this many alternating runs


def main() -> None:
    print(f"first env step in this process (kernels from cache or compiled): "
          f"{first_step_seconds('ChipAlloc/Datacenter-v0'):.2f} s")
    print(f"each figure: best of {ROUNDS} runs ({VECTOR_ROUNDS} for the vector env), each run beside a run of its "
          f"yardstick (this machine is shared; the slower runs measure the neighbours)")
    for env_id in ENV_IDS:
        pairs = [(single_steps_per_s(env_id, steps=7_000), cartpole_steps_per_s(n_steps=20_000)) for _ in range(ROUNDS)]
        rate, cartpole = max(p[0] for p in pairs), max(p[1] for p in pairs)
        print(f"{env_id:<44} {rate:10,.0f} steps/s  ({rate / cartpole:.3f}x CartPole-v1's {cartpole:,.0f})")
    for n, steps in ((1, 300), (64, 100), (1024, 60)):
        # Vector and single runs alternate, so that a slow spell on the shared machine hits both figures alike.
        pairs = [(vector_steps_per_s(n, "vector_entry_point", steps), single_steps_per_s("ChipAlloc/Datacenter-v0",
                                                                                       steps=7_000))
                 for _ in range(VECTOR_ROUNDS)]
        native, alone = max(p[0] for p in pairs), max(p[1] for p in pairs)
        sync = vector_steps_per_s(n, "sync", max(2, steps // max(1, n // 16)))
        print(f"vector N={n:<5} native {native:12,.0f} env-steps/s   SyncVectorEnv {sync:10,.0f}   "
              f"ratio {native / sync:6.1f}x   {native / alone:5.2f}x the single env ({alone:,.0f} steps/s beside it)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
