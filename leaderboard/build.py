"""Build or extend the leaderboard from evaluate.py output folders.

    python -m leaderboard.build --results results/small --results results/mine   # extend leaderboard/
    python -m leaderboard.build --fresh --results results/small                  # start over from these
    python -m leaderboard.build                                                  # re-render: staleness, table

Reads each folder's summary.json and per_seed.csv and writes leaderboard/leaderboard.json (per scenario and
per evaluation seed, each policy's return; the oracle is one of the entries) and leaderboard/README.md (per
scenario: each policy's mean return with its 95% bootstrap interval and its share of the oracle's, mean policy
over mean oracle), both atomically. An entry replaces the one of the same policy label and scenario (a label
held by another policy, a user's class named like a baseline say, is refused).

Every entry records what the dynamics computed when it was scored (envs.probe's digest of probe episodes of its
scenario and action variant), the git commit of the env code (envs/ and hardware/), the seeds and the date. An
entry whose digest differs from the checkout's is marked stale, so a change to the code that leaves every
trajectory bit-identical (a faster kernel) keeps the board; an entry scored before digests were recorded is stale
when its env code commit differs. A policy's share of the oracle is given only when neither is stale. Within a
scenario every entry must be scored on the same seeds and the same scenario definition: results that are not are
refused, as are results scored with uncommitted changes to the env code (unless --allow-dirty).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from experiments.cli import parse_config
from experiments.provenance import current_dynamics, env_commit
from experiments.runs import atomic_write_text
from experiments.stats import paired_difference_ci, stratified_ci

FORMAT = 1
HERE = Path(__file__).resolve().parent
JSON_FILE, MARKDOWN_FILE = "leaderboard.json", "README.md"
# What an entry records; the statistics (mean, ci95, oracle_share, stale) are recomputed at every build.
RECORD = ("policy", "kind", "env_id", "target", "training_runs", "seeds", "returns", "commit", "env_commit",
          "env_dirty", "date", "source")
OPTIONAL = ("dynamics",)  # absent from entries scored before the probe digest existed


class LeaderboardError(ValueError):
    """Results that cannot go on the leaderboard (or a leaderboard file that cannot be read); the message says why."""


@dataclass
class Config:
    results: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = field(
        default=(), metadata={"help": "an evaluate.py output folder (summary.json, per_seed.csv); repeat the flag "
                                      "for several"})
    out: str = field(default=str(HERE), metadata={"help": "leaderboard folder (leaderboard.json, README.md)"})
    fresh: bool = field(default=False, metadata={"help": "ignore the existing leaderboard.json and start over"})
    allow_dirty: bool = field(default=False, metadata={"help": "accept results scored with uncommitted env code "
                                                                "changes (they are marked stale)"})


def _seed_range(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]} ({len(seeds)} seeds)"
    return f"{seeds} ({len(seeds)} seeds)"


def read_results(folder: str | Path, allow_dirty: bool = False) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(scenario name, {scenario_fingerprint, seeds}, entries) of one evaluate.py output folder."""
    folder = Path(folder)
    paths = {name: folder / name for name in ("summary.json", "per_seed.csv")}
    for name, path in paths.items():
        if not path.is_file():
            raise LeaderboardError(f"{folder}: no {name}; --results takes an evaluate.py output folder "
                                   f"(its --out), which holds summary.json and per_seed.csv")
    try:
        summary = json.loads(paths["summary.json"].read_text())
        rows = list(csv.DictReader(paths["per_seed.csv"].open()))
        record = summary.get("provenance")
        scenario, seeds, policies = summary["scenario_name"], [int(s) for s in summary["seeds"]], summary["policies"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LeaderboardError(f"{folder}: summary.json or per_seed.csv is not evaluate.py's output "
                               f"({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or not record.get("scenario_fingerprint"):
        raise LeaderboardError(f"{folder}: summary.json has no provenance record (env code commit, scenario "
                               f"fingerprint, date): it was written by an older evaluate.py; score the policies "
                               f"again with this checkout's evaluate.py")
    if not record.get("env_commit"):
        raise LeaderboardError(f"{folder}: the results carry no env code commit (evaluate.py ran outside a git "
                               f"checkout); score them in a git checkout of chipalloc")
    if record.get("env_dirty") and not allow_dirty:
        raise LeaderboardError(f"{folder}: scored with uncommitted changes to envs/ or hardware/ (on top of "
                               f"{record['env_commit'][:10]}), so no commit describes the env they ran on; commit "
                               f"the changes and score again, or pass --allow-dirty to enter them as stale")
    entries = []
    for label, info in policies.items():
        by_seed: dict[int, list[float]] = defaultdict(list)
        runs = set()
        for row in rows:
            if row["policy"] == label:
                by_seed[int(row["seed"])].append(float(row["episode_return"]))
                runs.add(row["run"])
        if sorted(by_seed) != sorted(seeds):
            raise LeaderboardError(f"{folder}: per_seed.csv has {label!r} on seeds {sorted(by_seed)}, summary.json "
                                   f"says {_seed_range(seeds)}; the folder is incomplete or was edited")
        entries.append({"policy": label, "kind": info.get("kind", ""), "env_id": info.get("env_id"),
                        "target": info.get("target"), "training_runs": len(runs), "seeds": seeds,
                        # pooled training runs: the mean over runs on each seed
                        "returns": [float(np.mean(by_seed[s])) for s in seeds],
                        "commit": record.get("commit"), "env_commit": record["env_commit"],
                        "env_dirty": bool(record.get("env_dirty")), "date": record.get("date"),
                        "source": folder.name})
        digest = (record.get("dynamics") or {}).get(info.get("env_id"))
        if digest:  # results written before evaluate.py recorded the probe digest have none
            entries[-1]["dynamics"] = digest
    return scenario, {"scenario_fingerprint": record["scenario_fingerprint"], "seeds": seeds}, entries


def load(path: Path) -> dict[str, Any]:
    """A leaderboard.json, checked to be one this module wrote."""
    try:
        board = json.loads(path.read_text())
        if board.get("format") != FORMAT:
            raise LeaderboardError(f"{path}: format {board.get('format')!r}, expected {FORMAT}; rebuild it with "
                                   f"--fresh from evaluate.py results")
        for name, scenario in board["scenarios"].items():
            for entry in scenario["entries"]:
                missing = [k for k in RECORD if k not in entry]
                if missing or entry["seeds"] != scenario["seeds"] or len(entry["returns"]) != len(entry["seeds"]):
                    raise LeaderboardError(f"{path}: scenario {name!r}, entry {entry.get('policy')!r} is malformed "
                                           f"(missing {missing} or seeds/returns that do not match the scenario's)")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise LeaderboardError(f"{path} is not a leaderboard file ({type(exc).__name__}: {exc}); rebuild it with "
                               f"--fresh from evaluate.py results") from None
    return board


def merge(board: dict[str, Any], scenario: str, definition: dict[str, Any], entries: list[dict[str, Any]],
          source: str, origins: dict[str, str]) -> None:
    """Add ``entries`` to ``board``'s ``scenario``, refusing other seeds or another scenario definition."""
    known = board["scenarios"].get(scenario)
    if known is None:
        board["scenarios"][scenario] = {**definition, "entries": []}
        origins[scenario] = source
        known = board["scenarios"][scenario]
    origin = origins.get(scenario, "the existing leaderboard.json")
    if known["seeds"] != definition["seeds"]:
        raise LeaderboardError(f"scenario {scenario!r}: {source} was scored on seeds {_seed_range(definition['seeds'])}"
                               f" but {origin} on seeds {_seed_range(known['seeds'])}; every entry of a scenario "
                               f"must be scored on the same seeds (evaluate.py --seeds {len(known['seeds'])})")
    if known["scenario_fingerprint"] != definition["scenario_fingerprint"]:
        raise LeaderboardError(f"scenario {scenario!r}: {source} was scored on another definition of the scenario "
                               f"(fingerprint {definition['scenario_fingerprint']}) than {origin} "
                               f"({known['scenario_fingerprint']}); score every policy on one definition, and "
                               f"rebuild with --fresh when the scenario itself changed")
    new = {e["policy"]: e for e in entries}
    for entry in known["entries"]:
        if entry["policy"] not in new:
            continue
        mine = new[entry["policy"]]
        if (mine["kind"], mine["target"]) != (entry["kind"], entry["target"]):
            raise LeaderboardError(f"scenario {scenario!r}: {source} has a {mine['kind']} policy labelled "
                                   f"{entry['policy']!r}, but that label is the {entry['kind']} entry "
                                   f"{entry['target'] or entry['policy']!r} from {entry['source']}; score yours "
                                   f"under another label (evaluate.py --policies label=module:Class)")
        print(f"{scenario}: {entry['policy']} from {source} replaces its entry from {entry['source']}")
    known["entries"] = [e for e in known["entries"] if e["policy"] not in new] + entries


def _stale(entry: dict[str, Any], scenario: str, current: str | None) -> bool:
    """Whether ``entry``'s returns may differ from what this checkout's dynamics give: by the probe digest when
    the entry has one (and the scenario is a registered one), else by the env code commit."""
    digest = current_dynamics(scenario, entry["env_id"]) if entry.get("dynamics") else None
    if digest is not None:
        return entry["dynamics"] != digest
    return bool(entry["env_dirty"] or current is None or entry["env_commit"] != current)


def _annotate(board: dict[str, Any], current: str | None) -> None:
    """Each entry's mean, 95% bootstrap interval, staleness and share of the oracle (recomputed each build)."""
    for name, scenario in board["scenarios"].items():
        for e in scenario["entries"]:
            mean, low, high = stratified_ci([np.array(e["returns"])], np.mean)
            e.update(mean=mean, ci95=[low, high], stale=_stale(e, name, current))
        oracle = next((e for e in scenario["entries"] if e["kind"] == "oracle"), None)
        for e in scenario["entries"]:
            if oracle is None:
                e.update(oracle_share=None, oracle_share_note="no oracle entry")
            elif oracle["stale"] or e["stale"]:
                e.update(oracle_share=None, oracle_share_note="oracle or entry scored on other dynamics")
            elif oracle["mean"] <= 0:
                e.update(oracle_share=None, oracle_share_note="oracle mean return is not positive")
            else:
                e.update(oracle_share=e["mean"] / oracle["mean"], oracle_share_note="")
        _paired_with_best_baseline(scenario["entries"])
        scenario["entries"].sort(key=lambda e: (e["stale"], -e["mean"]))


def _paired_with_best_baseline(entries: list[dict[str, Any]]) -> None:
    """Each ranked entry's mean return minus the best ranked baseline's, paired over the seeds, with its 95%
    bootstrap interval: the comparison an RL claim needs (above zero: it beats every baseline on the board)."""
    baselines = [e for e in entries if e["kind"] == "baseline" and not e["stale"]]
    best = max(baselines, key=lambda e: e["mean"], default=None)
    for e in entries:
        if e["stale"] or best is None or e is best:
            e.update(vs_best_baseline=None, best_baseline=None if best is None or e["stale"] else best["policy"])
        else:
            e.update(vs_best_baseline=list(paired_difference_ci(e["returns"], best["returns"])),
                     best_baseline=best["policy"])


def markdown(board: dict[str, Any]) -> str:
    current = board.get("env_commit")
    lines = ["# Leaderboard", "",
             "Generated by `python -m leaderboard.build` from evaluate.py results (`leaderboard.json` holds every "
             "seed's return); do not edit by hand. To add a policy, see \"Submitting a result\" in the project's "
             "README.", "",
             "Per scenario, every policy meets the same held-out seeds (common random numbers). *Share of oracle* is "
             "the policy's mean return over the perfect-foresight oracle's, both scored on the current dynamics. "
             f"The env code (`envs/`, `hardware/`) was at `{(current or 'unknown')[:10]}` when this was built; an "
             "entry scored on dynamics that compute other numbers (by `envs.probe`'s digest of probe episodes) is "
             "**stale**: listed after the ranked ones, not comparable with them until it is scored again."]
    for name, scenario in sorted(board["scenarios"].items()):
        lines += ["", f"## {name}", "",
                  f"Seeds {_seed_range(scenario['seeds'])}; scenario fingerprint `{scenario['scenario_fingerprint']}`.",
                  "", "| rank | policy | kind | env | mean return [95% CI] | share of oracle | "
                  "minus best baseline, paired [95% CI] | env code | scored |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rank = 0
        for e in scenario["entries"]:
            rank += not e["stale"]
            share = f"{e['oracle_share']:.1%}" if e["oracle_share"] is not None else f"n/a ({e['oracle_share_note']})"
            paired = e.get("vs_best_baseline")
            versus = (f"{paired[0]:+.1f} [{paired[1]:+.1f}, {paired[2]:+.1f}] vs {e['best_baseline']}" if paired
                      else "best baseline" if e.get("best_baseline") == e["policy"] else "n/a")
            code = f"`{e['env_commit'][:10]}`" + (" (uncommitted changes)" if e["env_dirty"] else "")
            runs = f" ({e['training_runs']} runs)" if e["training_runs"] > 1 else ""
            target = f" (`{e['target']}`)" if e["target"] and e["target"] != e["policy"] else ""
            lines.append(f"| {'stale' if e['stale'] else rank} | {e['policy']}{target}{runs} | {e['kind']} | "
                         f"{(e['env_id'] or '').removeprefix('ChipAlloc/')} | {e['mean']:.1f} "
                         f"[{e['ci95'][0]:.1f}, {e['ci95'][1]:.1f}] | {share} | {versus} | {code} | "
                         f"{(e['date'] or '')[:10]} |")
    return "\n".join(lines) + "\n"


def build(results: list[str | Path], out: str | Path = HERE, fresh: bool = False,
          allow_dirty: bool = False) -> dict[str, Any]:
    """Read every results folder, merge them into the leaderboard in ``out`` (or a fresh one), write both files."""
    out = Path(out)
    read = [(str(folder), *read_results(folder, allow_dirty)) for folder in results]  # all checked before any write
    path = out / JSON_FILE
    board = load(path) if path.is_file() and not fresh else {"format": FORMAT, "scenarios": {}}
    origins: dict[str, str] = {}
    for source, scenario, definition, entries in read:
        merge(board, scenario, definition, entries, source, origins)
    for scenario in board["scenarios"].values():
        scenario["entries"] = [{k: e[k] for k in (*RECORD, *OPTIONAL) if k in e} for e in scenario["entries"]]
    current = env_commit()
    board.update(env_commit=current, built=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    _annotate(board, current)
    atomic_write_text(path, json.dumps(board, indent=1) + "\n")
    atomic_write_text(out / MARKDOWN_FILE, markdown(board))
    print(f"wrote {path} and {out / MARKDOWN_FILE}")
    return board


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = parse_config(Config, argv, __doc__)
    return build(list(cfg.results), cfg.out, cfg.fresh, cfg.allow_dirty)


if __name__ == "__main__":
    main()
