"""leaderboard.build: evaluate.py results become per-seed entries and a table; extending keeps earlier entries;
results on other seeds, another scenario definition, uncommitted env code or without provenance are refused;
entries whose dynamics compute other numbers (by the probe digest) are marked stale."""

import csv
import json
import shutil

import numpy as np
import pytest

import evaluate
from experiments.provenance import env_commit
from leaderboard.build import JSON_FILE, MARKDOWN_FILE, LeaderboardError, build, load, main

SMALL = "ChipAlloc/Datacenter-Small-v0"
MINE = "mine=examples.my_policy:FixedActionPolicy"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "small"
    evaluate.main(["--policies", f"do-nothing,{MINE},oracle", "--env-id", SMALL, "--seeds", "2", "--out", str(out)])
    return out


def _copy(results, tmp_path, name, edit=None):
    """A copy of ``results`` with ``edit(summary)`` applied to its summary.json."""
    folder = tmp_path / name
    shutil.copytree(results, folder)
    if edit:
        summary = json.loads((folder / "summary.json").read_text())
        edit(summary)
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _relabel(folder, old, new):
    """Rename policy ``old`` to ``new`` in a results folder, as if another user had submitted it."""
    summary = json.loads((folder / "summary.json").read_text())
    summary["policies"] = {new if k == old else k: v for k, v in summary["policies"].items()}
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = list(csv.DictReader((folder / "per_seed.csv").open()))
    for row in rows:
        row["policy"] = new if row["policy"] == old else row["policy"]
    with (folder / "per_seed.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_entries_hold_every_seed_and_the_table_their_statistics(results, tmp_path):
    board = main(["--results", str(results), "--out", str(tmp_path)])
    assert load(tmp_path / JSON_FILE)["scenarios"].keys() == {"small"}
    small = board["scenarios"]["small"]
    assert small["seeds"] == [20000, 20001]
    entries = {e["policy"]: e for e in small["entries"]}
    assert entries.keys() == {"do-nothing", "mine", "oracle"}
    rows = list(csv.DictReader((results / "per_seed.csv").open()))
    for label, e in entries.items():
        assert e["returns"] == [float(r["episode_return"]) for r in sorted(rows, key=lambda r: int(r["seed"]))
                                if r["policy"] == label]
        assert e["seeds"] == small["seeds"] and e["env_commit"] == env_commit() and not e["stale"]
        assert e["mean"] == pytest.approx(np.mean(e["returns"]))
        assert e["ci95"][0] <= e["mean"] <= e["ci95"][1]
        assert e["oracle_share"] == pytest.approx(e["mean"] / entries["oracle"]["mean"])
    assert entries["mine"]["target"] == "examples.my_policy:FixedActionPolicy"
    assert entries["oracle"]["env_id"] == "ChipAlloc/DatacenterFine-Small-v0"
    table = (tmp_path / MARKDOWN_FILE).read_text()
    assert "## small" in table and "| 1 | oracle | oracle | DatacenterFine-Small-v0 |" in table
    mine = entries["mine"]
    assert (f"| mine (`examples.my_policy:FixedActionPolicy`) | user | Datacenter-Small-v0 | {mine['mean']:.1f} "
            f"[{mine['ci95'][0]:.1f}, {mine['ci95'][1]:.1f}] | {mine['oracle_share']:.1%} |") in table


def test_each_entry_is_paired_with_the_best_baseline(results, tmp_path):
    entries = {e["policy"]: e for e in main(["--results", str(results), "--out", str(tmp_path)])
               ["scenarios"]["small"]["entries"]}
    best = entries["do-nothing"]  # the only baseline scored
    assert best["vs_best_baseline"] is None and best["best_baseline"] == "do-nothing"
    for label in ("mine", "oracle"):
        difference = np.subtract(entries[label]["returns"], best["returns"])
        mean, low, high = entries[label]["vs_best_baseline"]
        assert mean == pytest.approx(difference.mean()) and low <= mean <= high
        assert entries[label]["best_baseline"] == "do-nothing"
    table = (tmp_path / MARKDOWN_FILE).read_text()
    assert f"| {entries['oracle']['vs_best_baseline'][0]:+.1f} [" in table and "| best baseline |" in table


def test_a_submission_extends_the_leaderboard_and_replaces_its_own_label(results, tmp_path):
    board_dir = tmp_path / "board"
    build([results], board_dir)
    other = _copy(results, tmp_path, "other")
    _relabel(other, "mine", "theirs")
    board = build([other], board_dir)
    labels = [e["policy"] for e in board["scenarios"]["small"]["entries"]]
    assert sorted(labels) == ["do-nothing", "mine", "oracle", "theirs"]  # no duplicates: same labels replaced
    assert {e["source"] for e in board["scenarios"]["small"]["entries"] if e["policy"] != "mine"} == {"other"}
    assert build([], board_dir)["scenarios"] == board["scenarios"]  # re-rendering alone changes nothing


def test_a_label_held_by_another_policy_is_refused(results, tmp_path):
    build([results], tmp_path / "board")
    impostor = _copy(results, tmp_path, "impostor",
                     lambda s: s.update(policies={"mine": {**s["policies"]["mine"], "target": "other.module:Cls"}}))
    with pytest.raises(LeaderboardError, match=r"labelled 'mine', but that label is the user entry "
                                               r"'examples\.my_policy:FixedActionPolicy'.*label=module:Class"):
        build([impostor], tmp_path / "board")


def test_other_seeds_for_the_same_scenario_are_refused(results, tmp_path):
    one_seed = tmp_path / "one_seed"
    evaluate.main(["--policies", "do-nothing", "--env-id", SMALL, "--seeds", "1", "--out", str(one_seed)])
    build([results], tmp_path / "board")
    message = r"scenario 'small': .*one_seed was scored on seeds 20000\.\.20000 \(1 seeds\) but .* 20000\.\.20001"
    with pytest.raises(LeaderboardError, match=message):
        build([one_seed], tmp_path / "board")
    with pytest.raises(LeaderboardError, match="same seeds"):  # within one build too
        build([results, one_seed], tmp_path / "fresh", fresh=True)
    assert not (tmp_path / "fresh").exists()


def test_another_scenario_definition_is_refused_until_rebuilt_fresh(results, tmp_path):
    build([results], tmp_path / "board")
    changed = _copy(results, tmp_path, "changed",
                    lambda s: s["provenance"].update(scenario_fingerprint="0123456789abcdef"))
    with pytest.raises(LeaderboardError, match=r"another definition of the scenario \(fingerprint 0123456789abcdef\)"
                                               r".*--fresh"):
        build([changed], tmp_path / "board")
    board = build([changed], tmp_path / "board", fresh=True)
    assert board["scenarios"]["small"]["scenario_fingerprint"] == "0123456789abcdef"


def _submit_mine(results, tmp_path, name, edit):
    """Build the board from ``results``, then add only "mine", relabelled ``name``, with ``edit`` applied."""
    build([results], tmp_path / "board")

    def only_mine(summary):
        edit(summary)
        summary["policies"] = {"mine": summary["policies"]["mine"]}

    folder = _copy(results, tmp_path, name, only_mine)
    _relabel(folder, "mine", name)
    return build([folder], tmp_path / "board")["scenarios"]["small"]["entries"]


def test_entries_from_other_dynamics_are_stale_and_get_no_oracle_share(results, tmp_path):
    def other_dynamics(summary):
        summary["provenance"]["dynamics"] = {SMALL: "0" * 16}

    entries = _submit_mine(results, tmp_path, "old-mine", other_dynamics)
    assert entries[-1]["policy"] == "old-mine" and entries[-1]["stale"]
    assert entries[-1]["oracle_share"] is None
    assert not any(e["stale"] for e in entries[:-1])
    table = (tmp_path / "board" / MARKDOWN_FILE).read_text()
    assert "| stale | old-mine (`examples.my_policy:FixedActionPolicy`) | user |" in table
    assert "n/a (oracle or entry scored on other dynamics)" in table


def test_other_env_code_with_the_same_dynamics_stays_ranked(results, tmp_path):
    """A commit that leaves every probe trajectory bit-identical (a faster kernel) keeps an entry comparable."""
    entries = _submit_mine(results, tmp_path, "refactored", lambda s: s["provenance"].update(env_commit="0" * 40))
    mine = next(e for e in entries if e["policy"] == "refactored")
    assert not mine["stale"] and mine["oracle_share"] is not None


def test_an_entry_without_a_dynamics_digest_is_judged_by_its_env_commit(results, tmp_path):
    def legacy(summary):
        summary["provenance"].pop("dynamics")
        summary["provenance"]["env_commit"] = "0" * 40

    entries = _submit_mine(results, tmp_path, "legacy", legacy)
    assert entries[-1]["policy"] == "legacy" and entries[-1]["stale"] and "dynamics" not in entries[-1]


def test_uncommitted_env_code_is_refused_unless_allowed(results, tmp_path):
    dirty = _copy(results, tmp_path, "dirty", lambda s: s["provenance"].update(env_dirty=True))
    with pytest.raises(LeaderboardError, match=r"uncommitted changes to envs/ or hardware/.*--allow-dirty"):
        build([dirty], tmp_path / "board")
    board = build([dirty], tmp_path / "board", allow_dirty=True)
    # Staleness follows what the dynamics compute: these probe digests are the checkout's.
    assert all(e["env_dirty"] and not e["stale"] for e in board["scenarios"]["small"]["entries"])
    assert "(uncommitted changes)" in (tmp_path / "board" / MARKDOWN_FILE).read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("provenance"), "no provenance record.*older evaluate.py"),
    (lambda s: s["provenance"].update(env_commit=None), "no env code commit"),
    (lambda s: s.update(seeds=[20000, 20001, 20002]), r"per_seed\.csv has 'do-nothing' on seeds \[20000, 20001\]"),
    (lambda s: s.pop("scenario_name"), "not evaluate.py's output"),
])
def test_results_that_do_not_say_what_they_were_scored_on_are_refused(results, tmp_path, edit, message):
    with pytest.raises(LeaderboardError, match=message):
        build([_copy(results, tmp_path, "bad", edit)], tmp_path / "board")


def test_a_folder_without_results_is_named(tmp_path):
    with pytest.raises(LeaderboardError, match=r"nowhere: no summary\.json; --results takes an evaluate\.py output"):
        build([tmp_path / "nowhere"], tmp_path / "board")



def test_the_committed_leaderboard_reads_back():
    from leaderboard.build import HERE
    board = load(HERE / JSON_FILE)
    assert "small" in board["scenarios"]
    for scenario in board["scenarios"].values():
        assert all(e["seeds"] == scenario["seeds"] for e in scenario["entries"])
