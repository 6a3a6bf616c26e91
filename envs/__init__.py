"""chipalloc environments. Importing this package registers the ``ChipAlloc/*`` IDs with Gymnasium.

It also exports the functional API (:mod:`envs.functional`): ``params``, ``reset``, ``step``,
``observe`` and the ``Params``, ``State`` and ``Exogenous`` they pass around.
"""

from gymnasium.envs.registration import register

from envs.datacenter import DatacenterEnv, DatacenterVectorEnv
from envs.exogenous import Exogenous, draw_exogenous
from envs.functional import Params, State, observe, params, reset, step
from envs.randomization import Randomization
from envs.scenario import SCENARIO_NAMES, Scenario, ScenarioError, load_scenario

# The ID suffix of each registered scenario (envs/scenarios/<name>.yaml).
SCENARIO_SUFFIXES = {"default": "", "hbm_shortage": "-HBMShortage", "agent_surge": "-AgentSurge", "small": "-Small",
                     "power_limited": "-PowerLimited", "realtime_agents": "-RealtimeAgents"}
_VARIANTS = {"Datacenter": ("datacenter", False), "Procurement": ("procurement", False),
             "Scheduling": ("scheduling", False), "DatacenterDiscrete": ("datacenter", True),
             "DatacenterFine": ("fine", False)}
ENV_IDS: list[str] = []

for _name, (_variant, _discrete) in _VARIANTS.items():
    for _scenario, _suffix in SCENARIO_SUFFIXES.items():
        _id = f"ChipAlloc/{_name}{_suffix}-v0"
        register(
            id=_id,
            entry_point="envs.datacenter:DatacenterEnv",
            vector_entry_point="envs.datacenter:DatacenterVectorEnv",
            # randomize=True (or a dict of ranges) draws each episode's market: envs.randomization
            kwargs={"scenario": _scenario, "variant": _variant, "discrete": _discrete, "randomize": False},
        )
        ENV_IDS.append(_id)


def fine_variant(env_id: str) -> str:
    """The ID of the fine (explicit shares) variant of the same scenario as ``env_id``."""
    if env_id not in ENV_IDS:
        raise ValueError(f"{env_id!r} is not a chipalloc environment; choose one of {', '.join(ENV_IDS)}")
    return "ChipAlloc/DatacenterFine-" + env_id.split("/")[-1].split("-", 1)[1]


__all__ = [
    "ENV_IDS",
    "SCENARIO_NAMES",
    "SCENARIO_SUFFIXES",
    "DatacenterEnv",
    "DatacenterVectorEnv",
    "Exogenous",
    "Params",
    "Randomization",
    "Scenario",
    "ScenarioError",
    "State",
    "draw_exogenous",
    "fine_variant",
    "load_scenario",
    "observe",
    "params",
    "reset",
    "step",
]
