"""Compare trained agents, baselines and the oracle on the same held-out exogenous paths.

    python evaluate.py                                   # the latest train.py run vs every baseline and the oracle
    python evaluate.py --policies forecast,runs/a,oracle --seeds 50 --workers 2
    python evaluate.py --policies "ppo=runs/s0+runs/s1,forecast"   # several training seeds as one policy
    python evaluate.py --policies forecast,examples.my_policy:FixedActionPolicy,oracle   # a policy class of yours

Every policy meets the same seeds (common random numbers), from TEST_SEED_START on, disjoint from
training and from train.py's periodic evaluation. A policy is a baseline's name (see
agents.list_policies()), ``baselines`` (all of them), ``oracle``, a train.py run folder or model .zip, the
newest train.py run as ``latest``, ``label=run+run`` to pool training seeds, or ``module:Class``
(``label=module:Class``) for a policy class of yours: it has SB3's ``predict(obs, state=None,
episode_start=None, deterministic=True)`` returning ``(action, state)`` and is built as ``Class(env)``, or
``Class()`` if its ``__init__`` takes no argument (template: examples/my_policy.py; the module must be
importable from the working directory or PYTHONPATH).

Writes to --out: results.md, per_seed.csv and summary.json (atomically; summary.json records the git commit of the
env code, a fingerprint of the scenario and the date, for leaderboard.build), and plots/*.png.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from experiments.cli import parse_config
from experiments.comparison import check_policies, compare, resolve_policies, trained_env_id
from experiments.episodes import TEST_SEED_START


@dataclass
class Config:
    policies: str = field(default="latest,baselines,oracle", metadata={"help": "comma-separated policies (see above)"})
    env_id: str | None = field(default=None, metadata={"help": "environment ID; None: the runs', else "
                                                                "ChipAlloc/Datacenter-v0"})
    scenario: str | None = field(default=None, metadata={"help": "scenario name or YAML path"})
    seeds: int = field(default=20, metadata={"help": "evaluation episodes per policy"})
    out: str | None = field(default=None, metadata={"help": "output folder; None: results/<time>"})
    workers: int = field(default=1, metadata={"help": "parallel processes for the episodes"})


def main(argv: list[str] | None = None) -> dict:
    """Check the options, then run and summarise the comparison (its steps: experiments/comparison.py)."""
    cfg = parse_config(Config, argv, __doc__)
    if cfg.seeds < 1 or cfg.workers < 1:
        raise ValueError(f"--seeds and --workers must be positive, got {cfg.seeds} and {cfg.workers}")
    specs = resolve_policies(cfg.policies)
    env_id = cfg.env_id or trained_env_id(specs)
    check_policies(specs, env_id, cfg.scenario)  # fail before any episode: unknown names, other variants, missing files
    seeds = list(range(TEST_SEED_START, TEST_SEED_START + cfg.seeds))
    out = Path(cfg.out or f"results/{time.strftime('%Y%m%d-%H%M%S')}")
    return compare(specs, env_id, cfg.scenario, seeds, out, workers=cfg.workers)


if __name__ == "__main__":
    main()
