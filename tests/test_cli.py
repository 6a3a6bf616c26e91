"""The typed command-line parser: every field type parses, bad values and unknown flags fail clearly, and
train.py and evaluate.py keep their flag names."""

from dataclasses import asdict, dataclass, field

import pytest

import evaluate
import train
from experiments.cli import parse_config


@dataclass
class Options:
    rate: float = field(default=0.5, metadata={"help": "a learning rate"})
    verbose: bool = field(default=False, metadata={"help": "print more"})
    count: int = field(default=1, metadata={"help": "how many"})
    name: str = field(default="x", metadata={"help": "a name"})
    limit: int | None = field(default=None, metadata={"help": "an optional cap"})


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # tyro's messages are boxed to the terminal's width; keep them on one line


def test_each_field_parses_to_its_type():
    options = parse_config(Options, ["--rate", "0.25", "--verbose", "--count", "3", "--name", "y", "--limit", "7"],
                           None)
    assert options == Options(rate=0.25, verbose=True, count=3, name="y", limit=7)
    assert [type(v) for v in asdict(options).values()] == [float, bool, int, str, int]


def test_defaults_hold_bools_turn_off_and_optionals_take_none():
    assert parse_config(Options, [], None) == Options()
    options = parse_config(Options, ["--no-verbose", "--limit", "None", "--rate", "1e-3"], None)
    assert options.verbose is False and options.limit is None and options.rate == pytest.approx(1e-3)


@pytest.mark.parametrize(("argv", "kind"), [(["--rate", "fast"], "FLOAT"), (["--count", "2.5"], "INT"),
                                            (["--limit", "many"], "INT")])
def test_a_bad_value_names_the_flag_and_its_type(capsys, argv, kind):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Options, argv, None)
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert f"Error parsing {argv[0]}" in message and kind in message


def test_unknown_flags_are_refused_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Options, ["--counts", "3"], None)
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "Unrecognized options: --counts" in message and "--count INT" in message


def test_help_comes_from_the_field_metadata(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Options, ["--help"], "What the script does.")
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for piece in ("What the script does.", "--rate FLOAT", "a learning rate", "--verbose, --no-verbose",
                  "an optional cap"):
        assert piece in text, piece


def test_the_scripts_keep_their_flag_names():
    cfg = parse_config(train.Config, ["--env-id", "E", "--timesteps", "5", "--n-envs", "2", "--resume", "r",
                                      "--checkpoint-every", "7", "--test-episodes", "0"], None)
    assert (cfg.env_id, cfg.timesteps, cfg.n_envs, cfg.resume, cfg.checkpoint_every, cfg.test_episodes) == \
        ("E", 5, 2, "r", 7, 0)
    cfg = parse_config(evaluate.Config, ["--policies", "a,b", "--env-id", "E", "--seeds", "3", "--workers", "2",
                                         "--out", "o"], None)
    assert cfg == evaluate.Config(policies="a,b", env_id="E", seeds=3, workers=2, out="o")
