"""evaluate.py --policies module:Class: a user's own policy class is scored beside the baselines and the oracle,
and every way of naming a class that cannot be used is refused before any episode, saying what is wrong."""

import csv
import textwrap
import uuid

import gymnasium as gym
import numpy as np
import pytest

import evaluate
from envs.probe import scenario_digest
from examples.my_policy import FixedActionPolicy
from experiments.episodes import TEST_SEED_START, run_episode
from experiments.user_policy import UserPolicyError, build

SMALL = "ChipAlloc/Datacenter-Small-v0"
EXAMPLE = "examples.my_policy:FixedActionPolicy"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    summary = evaluate.main(["--policies", f"forecast,{EXAMPLE},oracle", "--env-id", SMALL, "--seeds", "2",
                             "--out", str(out)])
    return out, summary


def test_a_user_policy_is_scored_beside_baselines_and_the_oracle(mixed):
    out, summary = mixed
    entry = summary["policies"][EXAMPLE]
    assert (entry["kind"], entry["target"], entry["episodes"], entry["env_id"]) == ("user", EXAMPLE, 2, SMALL)
    assert "optimality_gap" in entry and "minus_best_baseline" in entry
    rows = [r for r in csv.DictReader((out / "per_seed.csv").open()) if r["policy"] == EXAMPLE]
    assert sorted(int(r["seed"]) for r in rows) == [TEST_SEED_START, TEST_SEED_START + 1]
    env = gym.make(SMALL)
    episode = run_episode(env, FixedActionPolicy(env), TEST_SEED_START + 1)
    row = next(r for r in rows if int(r["seed"]) == TEST_SEED_START + 1)
    assert float(row["episode_return"]) == episode.episode_return
    assert f"| {EXAMPLE} |" in (out / "results.md").read_text()


def test_summary_records_what_the_result_was_scored_on(mixed):
    _, summary = mixed
    record = summary["provenance"]
    assert set(record) == {"dynamics", "commit", "env_commit", "env_dirty", "scenario_fingerprint", "date"}
    assert len(record["scenario_fingerprint"]) == 16
    assert summary["policies"]["oracle"]["env_id"] == "ChipAlloc/DatacenterFine-Small-v0"
    # one probe digest per action variant scored, the checkout's
    env_ids = {info["env_id"] for info in summary["policies"].values()}
    assert set(record["dynamics"]) == env_ids and len(env_ids) == 2
    assert record["dynamics"]["ChipAlloc/DatacenterFine-Small-v0"] == scenario_digest("small", "fine")


def test_the_example_handles_the_discrete_variant():
    env = gym.make("ChipAlloc/DatacenterDiscrete-Small-v0")
    obs, _ = env.reset(seed=0)
    action, state = build(EXAMPLE, env).predict(obs)
    assert state is None
    assert env.action_space.contains(action)


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write ``source`` as a fresh importable module and return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"user_policy_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name
    return write


def _evaluate(policies: str, tmp_path, seeds: int = 1) -> dict:
    return evaluate.main(["--policies", policies, "--env-id", SMALL, "--seeds", str(seeds),
                          "--out", str(tmp_path / "out")])


def test_a_class_whose_init_takes_no_env_is_built_without_one(module, tmp_path):
    size = gym.make(SMALL).action_space.shape[0]
    name = module(f"""
        import numpy as np

        class Zero:
            def __init__(self):
                self.action = np.zeros({size}, dtype=np.float32)

            def predict(self, obs, state=None, episode_start=None, deterministic=True):
                return self.action, state
        """)
    summary = _evaluate(f"zero={name}:Zero,do-nothing", tmp_path)
    assert summary["policies"]["zero"]["kind"] == "user"
    assert np.isfinite(summary["policies"]["zero"]["mean_return"])


@pytest.mark.parametrize(("source", "attr", "message"), [
    (None, "nosuchpkg_xyz.policy:P", r"cannot import module 'nosuchpkg_xyz\.policy' \(no module named "
                                     r"'nosuchpkg_xyz'\).*importable from the working directory"),
    (None, "examples.nope:P", r"cannot import module 'examples\.nope'"),
    ("raise RuntimeError('boom')", "P", r"importing module '.*' failed: RuntimeError: boom"),
    ("import nosuchdep_xyz", "P", r"importing module '.*' failed: No module named 'nosuchdep_xyz'"),
    ("class P:\n    def predict(self, obs, state=None, episode_start=None, deterministic=True):\n"
     "        return obs, state\nclass Q:\n    pass\n", "Missing",
     r"has no attribute 'Missing'; policy classes it defines: P$"),
    ("x = 1", "Missing", r"has no attribute 'Missing'; it defines no class with a method predict\(obs"),
    ("def policy(env):\n    return None\n", "policy", r"is a function, not a class"),
    ("policy = 3", "policy", r"is a int instance, not a class"),
    ("class P:\n    pass\n", "P", r"class P has no predict method; a policy class must define predict\(obs, "
                                  r"state=None, episode_start=None, deterministic=True\)"),
    ("class P:\n    def predict(self, obs):\n        return obs, None\n", "P",
     r"P\.predict\(self, obs\) cannot be called as predict\(obs, state=\.\.\."),
    ("class P:\n    def __init__(self, env):\n        raise RuntimeError('no GPU')\n"
     "    def predict(self, obs, state=None, episode_start=None, deterministic=True):\n        return obs, state\n",
     "P", r"P\(env\) raised RuntimeError: no GPU"),
    ("import numpy as np\nclass P:\n    def __init__(self, env):\n        self.n = env.action_space.shape[0]\n"
     "    def predict(self, obs, state=None, episode_start=None, deterministic=True):\n"
     "        return np.zeros(self.n, np.float32)\n", "P", r"predict must return a pair \(action, state\)"),
    ("import numpy as np\nclass P:\n    def __init__(self, env):\n        pass\n"
     "    def predict(self, obs, state=None, episode_start=None, deterministic=True):\n"
     "        return np.zeros(3, np.float32), state\n", "P",
     r"first action was refused by ChipAlloc/Datacenter-Small-v0 \(action space Box.*\): action has shape"),
])
def test_unusable_classes_are_refused_before_any_episode(module, tmp_path, source, attr, message):
    target = attr if source is None else f"{module(source)}:{attr}"
    with pytest.raises(UserPolicyError, match=message):
        _evaluate(f"forecast,{target}", tmp_path)
    assert not (tmp_path / "out").exists()  # nothing was run or written


def test_a_bad_name_that_is_not_module_class_mentions_that_form(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nor module:Class"):
        _evaluate("examples.my_policy", tmp_path)
