"""What a result was scored on, so that results can be compared only with results scored on the same thing:
what the dynamics compute (``envs.probe``'s digest of probe episodes, per env ID scored), the git commit of the env
code (``envs/`` and ``hardware/``: the dynamics, scenarios and chip tables), whether that code had uncommitted
changes, the commit of the whole checkout, a fingerprint of the scenario's validated contents, and the time."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym

import envs
from envs.probe import scenario_digest

ROOT = Path(envs.__file__).resolve().parent.parent
# What decides an episode's returns besides the policy: the dynamics, the scenarios and the hardware tables.
ENV_CODE = ("envs", "hardware")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def env_commit() -> str | None:
    """The last commit that changed the env code (None outside a git checkout)."""
    return _git("rev-list", "-1", "HEAD", "--", *ENV_CODE) or None


def env_dirty() -> bool | None:
    """Whether tracked env code differs from that commit (None outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *ENV_CODE)
    return None if status is None else bool(status)


def scenario_fingerprint(raw: Mapping[str, Any]) -> str:
    """A digest of a scenario's validated contents (``Scenario.raw``): equal exactly when the definitions are."""
    text = json.dumps(dict(raw), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_dynamics(scenario: str, env_id: str) -> str | None:
    """This checkout's probe digest of registered ``env_id`` (its action variant) on registered ``scenario``; None
    when either is not registered (a scenario file scored elsewhere), so the caller falls back to the commit."""
    try:
        kwargs = gym.spec(env_id).kwargs
        return scenario_digest(scenario, kwargs["variant"], kwargs["discrete"])
    except (gym.error.Error, KeyError, ValueError, FileNotFoundError):
        return None


def provenance(scenario_raw: Mapping[str, Any], dynamics: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The record evaluate.py writes into summary.json; ``dynamics`` maps each env ID scored to its probe digest."""
    return {"dynamics": dict(dynamics or {}),
            "commit": _git("rev-parse", "HEAD"), "env_commit": env_commit(), "env_dirty": env_dirty(),
            "scenario_fingerprint": scenario_fingerprint(scenario_raw),
            "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}
