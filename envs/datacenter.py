"""Gymnasium front ends over :mod:`envs.functional`: single environments and a native vector environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from envs import functional as fn
from envs import render as rendering
from envs.exogenous import Exogenous, draw_exogenous
from envs.randomization import Randomization, randomize
from envs.scenario import Scenario


class DatacenterEnv(gym.Env):
    """An AI datacenter operator buying and scheduling heterogeneous accelerators.

    ## Description
    Each step is one week of a scenario (default: 156 weeks from 2025-01). The operator owns a
    fleet of chips, orders more (paid at order, delivered after HBM or wafer allocation plus a
    base lead time), and splits the fleet into training, prefill and decode replicas for each
    inference class (chat, agents, batch, video, RL students). Each HBM chip waits for stacks of its
    own HBM generation (HBM2e, HBM3, HBM3e, HBM4: the scenario's ``hbm.generation_mix``), so a
    shortage of one generation spares chips of another (``hbm.pooled_generations: true`` pools
    them). Demand, each generation's HBM supply and shocks follow seeded exogenous paths; SLO
    attainment and throughput come from tables precomputed by ``hardware``. The dynamics are
    :mod:`envs.dynamics` (compiled with Numba), reached through the functional API of
    :mod:`envs.functional`; this class adds Gymnasium's interface, seeding and rendering.

    ## Action Space
    ``Box(-1, 1, (K + 10,), float32)`` for ``variant="datacenter"`` (22 in the default scenario); each
    entry maps [-1, 1] to u in [0, 1]. K chip weights (exp(6 (u - 1)) - exp(-6): one chip can take nearly all of an
    order), then a capacity target: the fleet plus chips on order should cover u x 3 times this
    week's demand, and the shortfall is bought, split over the chips on sale by weight, each share
    sized in that chip's own capacity (:func:`envs.functional.coverage`). Then a sale entry: it
    sells max(2u - 1, 0) x 25% of the oldest chip type's fleet at the resale price. Then the expansion,
    rent-in and rent-out entries (site blocks to keep power at u x 3 x the committed IT load; cloud chips
    rented up to u x 1.5 x demand covered; u x the idle chips let out). Then five knobs for the
    built-in allocator (:func:`envs.functional.knob_shares`): training pace (0.5 = the pace active
    jobs need), prefill bias (0.5 balances work), specialisation (0 colocated, 1 disaggregated by
    comparative advantage), latency priority (0.5 neutral), RL updates (RL student classes spend u x 60%
    of their training-capable decode chips' time on updates, which keep up the students' quality and so
    their demand); with cluster contracts the training pace >= 0.5 accepts the week's offer.
    ``procurement``: the K + 5 entries before the knobs only (fixed knobs). ``scheduling``: the five knobs
    only (a fixed purchase plan).
    ``fine``: K raw order entries (a > 0 orders a x ``max_order_chips_per_week`` chips), K sale
    entries (a > 0 sells that share of the type's fleet), K rent-in and K rent-out entries, one
    expansion entry, K contract-acceptance entries (the largest positive one names the chip type), one RL
    update entry (as the knob, u = (a + 1) / 2), then
    (1 + 2C) x K shares of each chip type's serving fleet for training, prefill and decode of each class
    (see :func:`envs.dynamics._decode`). ``discrete=True`` gives ``MultiDiscrete`` with five
    levels each (u = level / 4) and ``action_masks()`` for MaskablePPO. NaN, inf, out-of-range or
    mis-shaped actions raise ``ValueError``. Orders round down to whole order units; orders for
    chips not yet on sale are dropped, and orders beyond cash plus credit (with the site capacity
    they need) are scaled down, and with a power cap orders beyond the site's spare power are cut; all are
    reported in ``info`` (``orders_unavailable``, ``orders_clipped``, ``power_clipped``).

    ## Observation Space
    ``Box(-10, 10, (4 + 6K + 5C + 4G + 6,), float32)`` for K chips, C classes and G HBM generations
    (``scenario.hbm_generations``), each block scaled to order
    one: time, cash and demand coverage (4) | per chip: fleet, on order, on sale, price,
    utilisation, age (6K) | per class: demand, its growth, served fraction, admissible prefill load,
    quality of RL students (5C) | per HBM generation: price index, supply, our queued stacks, shock flag
    (4G) | training: remaining work, nearest deadline (2) | site: spare power, power being built (2) | contracts: this
    week's offer, chips held (2). See :func:`envs.dynamics._observe` for the scaling.

    ## Rewards
    Weekly economic profit divided by the scenario's ``reward_scale_usd``: revenue - energy -
    maintenance - depreciation (chips and site) - failure write-offs + secondary-market gains -
    the capital charge (the cost of capital on chips at book value, prepaid orders and the site),
    plus, in the last week (or at bankruptcy), a terminal settlement that marks the fleet to its
    resale value less book value and refunds half of undelivered orders. Revenue counts only
    tokens served within their SLOs (load above what meets them is shed) at each class's input and
    output token prices, and training jobs finished before their deadline. The rewards plus the
    settlement add up to the change in net worth less the capital charges. ``info`` decomposes
    every term (``revenue``, ``power_cost``, ``maintenance``, ``depreciation``, ``write_off``,
    ``sale_gain``, ``capital_charge``, ``terminal_settlement``, ``profit``) and reports KPIs (served
    share per class, utilisation per chip, $ per million tokens, HBM exposure, unmet demand). The HBM
    market is reported per generation (``hbm_supply``, ``hbm_allocation``, ``hbm_drawn``,
    ``hbm_price``: (G,) arrays) and as ``hbm_price_mean``, the supply-weighted mean index.

    ## Starting State
    The scenario's cash and initial fleet (``initial_fleet_age_weeks`` old, booked at what it cost
    less depreciation since), a site sized to it; no orders in flight; every HBM generation's price
    index 1.

    ## Episode End
    Terminated when cash falls below minus the credit limit (bankruptcy). Truncated at the
    scenario's horizon, which is part of the problem: the observation carries week / horizon.

    ## Arguments
    ``scenario`` (registered name, YAML path, dict or Scenario), ``variant``, ``discrete``,
    ``render_mode`` ("ansi" or "rgb_array"), ``randomize`` (domain randomisation, :mod:`envs.randomization`:
    True draws each episode's demand, HBM market and training jobs within the documented ranges, a dict
    overrides some ranges; reset's info reports the draw as ``market``).
    ``reset(options={"exogenous": exo})`` replays a given exogenous path as given (never randomised);
    ``options={"path_seed": s}`` draws it, and any randomisation, from seed ``s`` (common random numbers across
    policies).

    ## Version History
    * v0: initial release. The economics of the second wave (economic-profit reward, deployed and
      site costs, token prices, admission control, selling) and its constraints (site power,
      renting, cluster contracts, the premium tier, HBM generations, RL student updates) changed the dynamics within v0;
      the project has no published results on the first wave's dynamics to keep comparable.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, scenario: str | dict | Scenario | None = None, variant: str = "datacenter",
                 discrete: bool = False, render_mode: str | None = None,
                 randomize: bool | dict | Randomization | None = False):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']} or None")
        self.params = fn.params(scenario, variant, discrete)
        self.scenario = self.params.scenario
        self.randomization = _randomization(randomize, self.scenario)
        self.variant, self.discrete, self.render_mode = variant, discrete, render_mode
        self.observation_space = self.params.observation_space
        self.action_space = self.params.action_space
        self.state: fn.State | None = None
        self._info_rows = fn.InfoRows(self.params)
        self.history: list[dict[str, Any]] = []
        self._done, self._week = False, 0
        self._names = {"classes": tuple(c.name for c in self.scenario.classes), "chips": self.scenario.chips}

    @property
    def exogenous(self) -> Exogenous | None:
        """The episode's exogenous paths (B = 1); None before reset."""
        return None if self.state is None else self.state.exogenous

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        info: dict[str, Any] = {"week": 0}
        if "exogenous" in options:
            exo = options["exogenous"]
        else:
            rng = np.random.default_rng(options["path_seed"]) if "path_seed" in options else self.np_random
            exo, market = draw_episode(self.params, self.randomization, rng)
            if market is not None:
                info["market"] = market.row(0)
        self.state, obs = fn.reset(self.params, exogenous=exo)
        self.history, self._done, self._week = [], False, 0
        return obs[0], info

    def step(self, action):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        self.state, obs, reward, info = fn.step_single(self.params, self.state, action, self._info_rows)
        self._week += 1
        info.update(self._names, week=self._week)
        if self.render_mode is not None:  # the history exists only to draw it
            self.history.append(info)
        terminated = info["bankrupt"]
        truncated = not terminated and self._week >= self.scenario.weeks
        self._done = terminated or truncated
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Valid discrete levels (MaskablePPO reads this method by name); see :func:`envs.functional.action_masks`."""
        if not self.discrete:
            raise AttributeError("action_masks() exists only for discrete=True (a MultiDiscrete action space)")
        if self.state is None:
            raise RuntimeError("call reset() before action_masks()")
        return fn.action_masks(self.params, self.state)[0]

    def render(self):
        if self.render_mode == "ansi":
            return rendering.dashboard(self.scenario, self.history)
        if self.render_mode == "rgb_array":
            return rendering.figure(self.scenario, self.history)
        return None


class DatacenterVectorEnv(VectorEnv):
    """N datacenters stepped in one compiled call; matches N single environments step for step.

    Sub-environment ``i`` of ``reset(seed=s)`` uses seed ``s + i`` (as Gymnasium's SyncVectorEnv
    does), so it follows the same exogenous path as a single env reset with that seed; with ``randomize``
    each sub-environment draws its own market from its own generator, as that single env would.
    ``autoreset_mode`` NEXT_STEP (default): the step after an episode ends resets that
    sub-environment and ignores its action. SAME_STEP: the ending step returns the reset
    observation and puts the last one in ``info["final_obs"]`` (masked by ``info["_final_obs"]``),
    as stable-baselines3's VecEnvs do.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, scenario: str | dict | Scenario | None = None, variant: str = "datacenter",
                 discrete: bool = False, render_mode: str | None = None,
                 autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
                 randomize: bool | dict | Randomization | None = False):
        if render_mode is not None:
            raise ValueError("the native vector env does not render; use a single env with render_mode")
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode!r}")
        self.params = fn.params(scenario, variant, discrete)
        self.scenario, self.variant, self.discrete = self.params.scenario, variant, discrete
        self.randomization = _randomization(randomize, self.scenario)
        self.num_envs = num_envs
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.single_observation_space = self.params.observation_space
        self.single_action_space = self.params.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.state: fn.State | None = None
        self._info = self.params.info_reader
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    @property
    def exogenous(self) -> Exogenous | None:
        return None if self.state is None else self.state.exogenous

    def _draw(self, indices) -> Exogenous:
        return Exogenous.concatenate([draw_episode(self.params, self.randomization, self._rngs[i])[0]
                                      for i in indices])

    def _reset_rows(self, mask: np.ndarray) -> None:
        """Restart the sub-environments in ``mask`` on freshly drawn paths."""
        self.state = fn.reset_rows(self.params, self.state, mask, self._draw(np.flatnonzero(mask)))

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self._rngs = [fn.episode_generator(s) for s in seeds]  # as gym.Env.reset(seed=s) seeds its np_random
        self.state, obs = fn.reset(self.params, exogenous=self._draw(range(self.num_envs)))
        self._needs_reset[:] = False
        return obs, {}

    def step(self, actions):
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        self.state, obs, reward, raw_info = fn.step_arrays(self.params, self.state, actions)
        info = self._info.batch(raw_info)
        week, bankrupt = self.state.week, self.state.bankrupt
        resetting = self._needs_reset.copy()
        if resetting.any():
            self._reset_rows(resetting)
            reward = np.where(resetting, 0.0, reward)
            obs = fn.observe(self.params, self.state, obs, resetting)
        terminated = bankrupt & ~resetting
        truncated = (week >= self.scenario.weeks) & ~terminated & ~resetting
        done = terminated | truncated
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and done.any():
            info["final_obs"], info["_final_obs"] = obs, done
            self._reset_rows(done)
            obs = fn.observe(self.params, self.state, obs.copy(), done)
        else:
            self._needs_reset = done
        return obs, reward.astype(np.float64), terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        if not self.discrete:
            raise AttributeError("action_masks() exists only for discrete=True")
        return fn.action_masks(self.params, self.state)


def draw_episode(params: fn.Params, randomization: Randomization | None,
                 rng: np.random.Generator) -> tuple[Exogenous, Any]:
    """(exogenous path (B = 1), market draw or None) of one episode from ``rng``: what the single env's reset and
    each vector sub-environment draw, so that a seed gives the same episode in both. The randomised market is
    drawn after the path, so that without randomisation nothing changes."""
    exo = draw_exogenous(params.scenario, rng, 1, params.exogenous_trend)
    if randomization is None:
        return exo, None
    return randomize(exo, params.scenario, randomization, rng)


def _randomization(randomize: bool | dict | Randomization | None, scenario: Scenario) -> Randomization | None:
    """The ranges an env's ``randomize`` argument asks for, checked against its scenario (None: off)."""
    ranges = Randomization.coerce(randomize)
    if ranges is not None:
        ranges.check(scenario)
    return ranges
