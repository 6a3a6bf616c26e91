"""Speed of the roofline model: ``python -m benchmarks.bench_hardware``.

Reports ``estimate_serving`` calls/s and the time to build the serving tables of the full catalog
for a set of workloads, beside CartPole-v1 steps/s measured in the same process.
"""

from __future__ import annotations

import time

from benchmarks.yardstick import cartpole_steps_per_s, rate
from hardware import Workload, build_serving_tables, estimate_serving, list_chips

WORKLOADS = [
    Workload("chat", "llama-3.1-70b", "fp8", 1024, 256, 0.05),
    Workload("agents", "llama-3.1-70b", "fp8", 8192, 512, 0.03),
    Workload("batch", "llama-3.1-8b", "fp8", 2048, 512, None),
    Workload("video", "llama-3.1-8b", "fp8", 4096, 128, 0.02),
    Workload("student", "llama-3.2-1b", "bf16", 1024, 256, 0.02),
]


def main() -> None:
    cartpole = cartpole_steps_per_s()
    calls = rate(lambda: estimate_serving("H100", "llama-3.1-70b", precision="fp8"))
    calls_slo = rate(lambda: estimate_serving("H100", "llama-3.1-70b", precision="fp8", tpot_slo_s=0.05))
    start = time.perf_counter()
    build_serving_tables(list_chips(), WORKLOADS)
    build_s = time.perf_counter() - start
    print(f"CartPole-v1 yardstick:                 {cartpole:12,.0f} steps/s")
    print(f"estimate_serving (largest batch):      {calls:12,.0f} calls/s  ({calls / cartpole:.3f}x CartPole)")
    print(f"estimate_serving (TPOT SLO search):    {calls_slo:12,.0f} calls/s  ({calls_slo / cartpole:.3f}x CartPole)")
    print(f"serving tables, {len(list_chips())} chips x {len(WORKLOADS)} workloads: {build_s * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
