"""Train an RL agent on a chipalloc environment, then compare it with the baselines on held-out seeds.

    python train.py                                   # PPO on ChipAlloc/Datacenter-v0, default scenario
    python train.py --algo sac --timesteps 200000     # another algorithm, a shorter run
    python train.py --resume runs/<run>               # continue a run from its last checkpoint
    python train.py --randomize                       # each training episode draws its market (envs.randomization)
    tensorboard --logdir runs                         # curves: SB3's scalars plus the datacenter's KPIs

Seeds: training environment i follows seed (seed + i); the periodic evaluation uses seeds from
EVAL_SEED_START and the final comparison seeds from TEST_SEED_START, so the three never overlap.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from agents import BASELINES, FINE_ONLY, make_policy
from experiments.algorithms import ALGORITHMS, check_algorithm
from experiments.callbacks import CheckpointEvery, DomainMetricsCallback, PeriodicEval
from experiments.cli import parse_config
from experiments.comparison import compare, resolve_policies
from experiments.episodes import EVAL_SEED_START, TEST_SEED_START, evaluate_policy, make_env
from experiments.hyperparams import RUN_KEYS, load_hyperparams
from experiments.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    MODEL_FILE,
    atomic_write_text,
    mark_latest,
    restore_run_state,
    save_run_state,
)
from experiments.trained import TrainedPolicy
from experiments.vec_env import NativeVecEnv
from experiments.warm_start import warm_start

HYPERPARAMS_DIR = Path(__file__).parent / "hyperparams"


@dataclass
class Config:
    env_id: str = field(default="ChipAlloc/Datacenter-v0", metadata={"help": "registered environment ID"})
    scenario: str | None = field(default=None, metadata={"help": "scenario name or YAML path; None: the ID's"})
    algo: str = field(default="ppo", metadata={"help": f"one of {', '.join(ALGORITHMS)}"})
    timesteps: int | None = field(default=None, metadata={"help": "environment steps; None: the hyperparameters'"})
    n_envs: int | None = field(default=None, metadata={"help": "parallel environments; None: the hyperparameters'"})
    seed: int = field(default=0, metadata={"help": "seed of the first training environment and the networks"})
    device: str = field(default="cpu", metadata={"help": "torch device; MLP policies train fastest on cpu"})
    run_dir: str | None = field(default=None, metadata={"help": "output folder; None: runs/<env>-<algo>-..."})
    hyperparams: str | None = field(default=None, metadata={"help": "rl-zoo YAML; None: hyperparams/<algo>.yml"})
    resume: str | None = field(default=None, metadata={"help": "run folder to continue from its last checkpoint"})
    checkpoint_every: int = field(default=50_000, metadata={"help": "env steps between checkpoints"})
    eval_every: int = field(default=100_000, metadata={"help": "env steps between evaluations on fixed seeds"})
    eval_episodes: int = field(default=5, metadata={"help": "episodes per periodic evaluation"})
    test_episodes: int = field(default=20, metadata={"help": "held-out episodes per policy of the final comparison "
                                                             "(evaluate.py's, written to <run>/comparison; 0: skip)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads (1 is fastest for small MLPs)"})
    workers: int = field(default=2, metadata={"help": "parallel processes for the final comparison's episodes "
                                                      "(its horizon solvers take most of its time)"})
    randomize: bool = field(default=False, metadata={"help": "domain randomisation: each training episode draws its "
                                                             "demand, HBM market and training jobs within "
                                                             "envs.randomization's ranges; evaluations stay on the "
                                                             "plain scenario"})


def resolve(cfg: Config) -> tuple[Config, dict, Path]:
    """Fill defaults from the hyperparameter file or the resumed run; check everything before training."""
    if cfg.resume:
        given = [f"--{f.name.replace('_', '-')}" for f in fields(Config)
                 if f.name not in ("resume", "timesteps") and getattr(cfg, f.name) != f.default]
        if given:
            raise ValueError(f"--resume continues a run with its saved settings; only --timesteps may change "
                             f"(got {', '.join(given)})")
        run_dir = Path(cfg.resume)
        if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / CHECKPOINT_DIR / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} holds no train.py checkpoint to resume "
                                    f"(expected {CONFIG_FILE} and {CHECKPOINT_DIR}/{MODEL_FILE})")
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
        timesteps = cfg.timesteps
        cfg = Config(**saved["config"])
        cfg.resume, cfg.timesteps = str(run_dir), timesteps or cfg.timesteps
        return cfg, saved["hyperparams"], run_dir
    if cfg.env_id not in gym.registry:
        raise ValueError(f"unknown environment {cfg.env_id!r}; chipalloc registers: "
                         f"{', '.join(k for k in gym.registry if k.startswith('ChipAlloc/'))}")
    probe = make_env(cfg.env_id, cfg.scenario)
    check_algorithm(cfg.algo, probe.action_space, cfg.env_id)
    params = load_hyperparams(cfg.hyperparams or HYPERPARAMS_DIR / f"{cfg.algo}.yml", cfg.env_id)
    cfg.timesteps = cfg.timesteps or int(params.get("n_timesteps", 1_000_000))
    cfg.n_envs = cfg.n_envs or int(params.get("n_envs", 8))
    for name in ("timesteps", "n_envs", "checkpoint_every", "eval_every", "eval_episodes", "workers"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive whole number, got {getattr(cfg, name)}")
    if cfg.test_episodes < 0:
        raise ValueError(f"--test-episodes must be 0 (skip) or more, got {cfg.test_episodes}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.run_dir or f"runs/{cfg.env_id.split('/')[-1]}-{cfg.algo}-seed{cfg.seed}-{stamp}")
    cfg.run_dir = str(run_dir)
    return cfg, params, run_dir


def build(cfg: Config, params: dict, run_dir: Path):
    """(model, normalised training env): new, or exactly as the last checkpoint left them."""
    algo = ALGORITHMS[cfg.algo]
    if cfg.resume:
        return restore_run_state(run_dir / CHECKPOINT_DIR, algo.cls, cfg.device)
    env_kwargs = {"randomize": cfg.randomize, **({"scenario": cfg.scenario} if cfg.scenario else {})}
    venv = VecMonitor(NativeVecEnv(cfg.env_id, cfg.n_envs, seed=cfg.seed, env_kwargs=env_kwargs))
    normalize = params.get("normalize", True)
    venv = VecNormalize(venv, gamma=params.get("gamma", 0.99), **(normalize if isinstance(normalize, dict) else {}))
    kwargs = {k: v for k, v in params.items() if k not in RUN_KEYS}
    model = algo.cls(params.get("policy", algo.policy), venv, seed=cfg.seed, device=cfg.device,
                     tensorboard_log=str(run_dir / "tb"), verbose=0, **kwargs)
    if params.get("warm_start"):  # start at a baseline's action (a tuned open-loop one: training seeds only)
        baseline = make_policy(params["warm_start"], make_env(cfg.env_id, cfg.scenario))
        if not hasattr(baseline, "action"):
            raise ValueError(f"warm_start: {params['warm_start']!r} does not play one fixed action; use constant")
        warm_start(model, baseline.action)
    return model, venv


def main(argv: list[str] | None = None) -> None:
    cfg, params, run_dir = resolve(parse_config(Config, argv, __doc__))
    torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.resume:
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(
            {"config": asdict(cfg), "hyperparams": params, "command": shlex.join(sys.argv)}, indent=1, default=str))
        mark_latest(run_dir)
    model, venv = build(cfg, params, run_dir)
    remaining = cfg.timesteps - model.num_timesteps
    print(f"{'resuming' if cfg.resume else 'training'} {cfg.algo} on {cfg.env_id} in {run_dir}: "
          f"{model.num_timesteps:,} of {cfg.timesteps:,} steps done")

    eval_seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + cfg.eval_episodes))
    baselines = {name: np.mean([e.episode_return for e in evaluate_policy(
        lambda: make_env(cfg.env_id, cfg.scenario), lambda env, n=name: make_policy(n, env), eval_seeds)])
        for name in BASELINES if name not in FINE_ONLY}
    best_baseline = max(baselines.values())

    def evaluate_agent() -> float:
        return float(np.mean([e.episode_return for e in evaluate_policy(
            lambda: make_env(cfg.env_id, cfg.scenario),
            lambda env: TrainedPolicy.from_model(env, model, cfg.algo, venv), eval_seeds)]))

    callbacks = [DomainMetricsCallback(every=max(2048, cfg.n_envs)),
                 CheckpointEvery(run_dir, cfg.checkpoint_every),
                 PeriodicEval(cfg.eval_every, evaluate_agent, best_baseline, run_dir / "evaluations.json")]
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=callbacks, tb_log_name="run",
                    reset_num_timesteps=not cfg.resume, progress_bar=True)
    save_run_state(run_dir, model, venv, resumable=False)
    save_run_state(run_dir / CHECKPOINT_DIR, model, venv)
    print(f"saved {run_dir}/model.zip ({model.num_timesteps:,} steps)")
    if cfg.test_episodes > 0:  # the agent, every baseline and the oracle on the same held-out seeds, as evaluate.py
        compare(resolve_policies(f"agent={run_dir},baselines,oracle"), cfg.env_id, cfg.scenario,
                list(range(TEST_SEED_START, TEST_SEED_START + cfg.test_episodes)), run_dir / "comparison",
                workers=cfg.workers)


if __name__ == "__main__":
    main()
