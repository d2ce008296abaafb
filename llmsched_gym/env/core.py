"""The Gymnasium environment: a thin adapter over the engine (encoder, decoder, reward)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import gymnasium
import numpy as np

from llmsched_gym.core.engine import Engine
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import CostModel, Scheduler
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.view import EngineView
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.decoders import make_decoder
from llmsched_gym.env.episodes import Episode, episode_from_options
from llmsched_gym.env.events import run_held, skip_idle
from llmsched_gym.env.held_compiled import HoldCounts, can_compile, run_rule_held
from llmsched_gym.env.observation import make_observation
from llmsched_gym.env.player import SchedulerHeld
from llmsched_gym.env.render import render_ansi, render_rgb
from llmsched_gym.env.rewards import make_reward
from llmsched_gym.env.setup import (
    EngineSetup,
    WorkloadArg,
    engine_config_of,
    make_env_cost_model,
    make_sampler,
    summary_of,
)
from llmsched_gym.env.shaping import make_shaping
from llmsched_gym.env.stats import EpisodeTracker
from llmsched_gym.simulate import SimulationResult, result_of


class LLMSchedEnv(gymnasium.Env[np.ndarray, Any]):
    """LLM-inference scheduling: the agent decides how a serving engine batches requests.

    ## Description
    A simulated LLM serving engine (paged KV cache, chunked prefills, continuous batching; iteration times from a
    cost model) serves a request stream. In -v1 a decision sets how batches are built (a token budget, an admission
    order, per-request priorities) and holds over engine iterations until the next *decision event* (an arrival, a
    completion, a KV shortfall, or ``events.max_iterations`` iterations; see :mod:`llmsched_gym.env.events`). In
    -v0 a step is one iteration's batch. While nothing is waiting or running, time skips to the next arrival.

    ## Action Space
    -v1 (``LLMSchedPriority-v1``, ``LLMSchedResidual-v1``, ``LLMSchedKnobs-v1``, ``LLMSchedScores-v1``); the zero
    action of each is a sane work-conserving scheduler:

    * ``priority``: ``Box(-1, 1, (P + 2,))``: weights of request features (missed TTFT, slack, lengths, waiting
      time, client service, ...) moving every waiting request in a base scheduler's admission order (and deferring
      running decodes), a budget and a concurrency cap; zero = the base scheduler (:mod:`llmsched_gym.env.residual`).
    * ``residual``: ``Box(-1, 1, (K + 2,))``: per-slot priority changes of a base scheduler (``base=``, default
      ``"sarathi"``), a budget and a concurrency cap; zero = the base scheduler exactly.
    * ``knobs``: ``MultiDiscrete([budgets, 5, 1 + deferrals])``: budget (0 = 512), admission ordering (FCFS,
      shortest prompt, earliest TTFT deadline, least client service, shortest predicted output), decode deferral;
      zero = Sarathi-Serve (:class:`~llmsched_gym.env.knobs.KnobsRuleDecoder`).
    * ``scores``: ``Box(-1, 1, (2K + 1,))``: per-slot serve/hold/preempt scores, a budget and chunk caps; zero =
      serve everything, decodes first (:mod:`llmsched_gym.env.scores_v1`); ``encode_plan`` writes a scheduler's
      plan as an action.

    -v0: ``LLMSchedScores-v0`` (per-iteration scores, :mod:`llmsched_gym.env.scores`) and ``LLMSchedKnobs-v0``.

    ## Observation Space
    ``Box(float32)`` of ``12 + 15 K`` entries (``K = slots``, default 32), each squashed into declared bounds
    (see :data:`~llmsched_gym.env.observation.GLOBAL_FEATURES` / ``SLOT_FEATURES`` and ``docs/env.md``):

    | index | observation | bounds |
    |---|---|---|
    | 0-2 | waiting, running, preempted-waiting requests | [0, 1] |
    | 3-4 | KV utilisation, KV free blocks | [0, 1] |
    | 5-6 | pending prefill tokens, running decodes | [0, 1] |
    | 7-8 | recent arrival rate, last iteration time | [0, 1] |
    | 9-11 | SLO attainment so far, arrivals done, requests outside the slots | [0, 1] |
    | 12 + 15 i + 0-4 | slot i: present, waiting, running, preempted, decoding | {0, 1} |
    | 12 + 15 i + 5-8 | slot i: prompt length, remaining prefill, generated tokens, time waited | [0, 1] |
    | 12 + 15 i + 9-11 | slot i: TTFT slack, TBT slack, client service vs. mean | [-1, 1] |
    | 12 + 15 i + 12-14 | slot i: predicted remaining output, blocks held, TBT target | [0, 1] |

    Slots hold running requests (oldest admission first), then waiting ones; waiting requests keep at least
    ``K // 2`` slots when both kinds overflow. -v1 fills the waiting slots in the mode's order (residual: the base's
    admission order; ``slot_order=`` overrides), -v0 in arrival order. ``observation="global"``: entries 0-11 only.

    ## Rewards
    ``reward=`` ``"goodput"`` (+1 per request finishing within its TTFT and TBT targets, the default),
    ``"latency"`` (-integral of requests in system dt), ``"throughput"`` (+1 per output token), ``"fairness"``
    (-increase of the max-min VTC service difference between clients), ``"weighted"`` (weighted sum). Each step's
    reward integrates the objective over the step's interval, so the undiscounted return equals the objective
    computed from the final metrics (``info["objective"]``). ``shaping="ttft"`` adds a potential-based term that
    charges a request when its TTFT deadline passes and leaves the return unchanged (:mod:`~llmsched_gym.env.shaping`).

    ## Starting State
    ``reset(seed=...)`` draws a workload from ``np_random``: a workload spec, a load factor from ``load_range``
    and the requests (synthetic, or a trace window). ``options={"workload": name_or_index, "load": x}`` or
    ``options={"requests": [...]}`` pins it. The clock starts at the first arrival. ``env.unwrapped.episode`` holds
    the requests and ``env.unwrapped.engine_setup()`` the engine and cost model, to run any scheduler natively on
    the same episode; :class:`~llmsched_gym.env.player.PlayScheduler` plays one inside the environment.

    ## Episode End
    ``terminated``: every request has finished (or was rejected as never fitting the KV cache).
    ``truncated``: ``max_steps`` decisions or ``max_time_s`` simulated seconds. The last ``info`` carries
    ``episode_summary`` (the run summary) and ``objective`` (the reward's episode objective). Every ``info`` has
    ``slo_classes``: per SLO class (in the order the workload gives them) requests arrived, finished and meeting
    their SLOs; -v1 adds ``event`` (why the decision ended) and ``iterations``.

    ## Arguments
    ``gymnasium.make("llmsched_gym/LLMSchedResidual-v1", base="sarathi-spf", reward="goodput",
    workload="synthetic-sharegpt", load_range=(0.5, 1.5), cost_model="roofline", slots=32)``: ``action_mode``,
    ``version`` (0 or 1), ``reward`` and ``reward_kwargs``, ``shaping``, ``observation`` (``"slots"`` or
    ``"global"``), ``workload`` (a name, a :class:`WorkloadSpec`, a list of them, or any :class:`WorkloadSampler`),
    ``load_range``, ``cost_model`` (a name for ``make_cost_model`` or a ``CostModel``), ``config`` (an
    :class:`EnvConfig`) and any :class:`EnvConfig` field as a keyword (``slots``, ``events``, ``base``,
    ``default_budget``, ``num_blocks``, ``max_steps``, ...). ``render_mode``: ``"ansi"`` or ``"rgb_array"``.

    >>> import gymnasium, llmsched_gym.env
    >>> env = gymnasium.make("llmsched_gym/LLMSchedResidual-v1", workload="synthetic-sharegpt")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.action_space.shape
    ((492,), (34,))
    >>> obs, reward, terminated, truncated, info = env.step(np.zeros(34, dtype=np.float32))
    >>> info["event"] in ("arrival", "completion", "kv_shortfall", "max_iterations", "done")
    True

    ## Version History
    * v1: a decision holds until the next decision event (tens to a few hundred decisions per 200-request
      episode, reward integrated over the interval); a ``residual`` mode over a named base scheduler; zero actions
      are sane work-conserving schedulers (knobs: Sarathi-Serve; scores: serve all, decodes first); waiting
      requests outside the slots are admitted (lowest priority) and the slot fill order is configurable;
      ``encode_plan`` works whatever runs outside the slots; ``info["slo_classes"]``; SLO classes indexed in
      the order given; optional potential-based shaping; the engine fast-forwards within a decision; rule
      decisions are held in compiled code (``compiled=True``; ``False``: the Python reference, same episodes).
    * v0: initial version (one iteration per step).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 30}  # noqa: RUF012

    def __init__(
        self,
        action_mode: str = "scores",
        *,
        version: int = 0,
        reward: str = "goodput",
        reward_kwargs: dict[str, Any] | None = None,
        shaping: str | None = None,
        observation: str = "slots",
        workload: WorkloadArg = None,
        load_range: tuple[float, float] = (0.5, 1.5),
        cost_model: CostModel | str = "roofline",
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.config = dataclasses.replace(config or EnvConfig(), **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} must be one of {self.metadata['render_modes']} or None")
        self.render_mode = render_mode
        self.action_mode = action_mode
        self.version = version
        self.decoder = make_decoder(action_mode, self.config, version)
        self.encoder = make_observation(observation, self.config.slots, self.config.observation)
        self.reward_fn = make_reward(reward, **(reward_kwargs or {}))
        self.shaping = make_shaping(shaping, float(getattr(self.reward_fn, "scale", 1.0)))
        self.sampler = make_sampler(workload, load_range)
        self.cost_model = make_env_cost_model(cost_model, self.config)
        self.player: Scheduler | None = None
        self.engine_config = engine_config_of(self.config, version)
        self.action_space = self.decoder.space
        self.observation_space = self.encoder.space
        self.engine: Engine | None = None
        self.episode: Episode | None = None
        self.steps = 0
        self._wall = 0.0
        self._phi = 0.0
        self._info: dict[str, Any] = {}
        self.hold_counts = HoldCounts()
        """-v1: how the steps were held (compiled, handed back to Python, Python), over every episode."""

    def set_player(self, scheduler: Scheduler | None) -> None:
        """Let ``scheduler`` make every decision from the next ``reset`` on (``None``: the agent decides)."""
        self.player = scheduler
        req = None if scheduler is None else scheduler.requirements
        self.engine_config = engine_config_of(self.config, self.version, req)

    def engine_setup(self) -> EngineSetup:
        """The engine configuration and cost model of this environment (run schedulers natively on its episodes)."""
        return EngineSetup(engine_config_of(self.config, self.version), self.cost_model)

    # ---- episode -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a freshly drawn (or pinned) workload."""
        super().reset(seed=seed)
        episode = episode_from_options(options or {}, self.sampler, self.np_random)
        self.episode = episode
        engine = Engine(episode.requests, SimulatedRunner(self.cost_model), self.engine_config)
        engine.table.slo_names.extend(episode.slo_names)
        while not engine.done and _nothing_to_decide(engine):
            engine.step(BatchPlan.idle())
        self.engine = engine
        clients = max((r.client for r in episode.requests), default=0) + 1
        self.tracker = EpisodeTracker(engine, getattr(self.reward_fn, "window_s", None), clients)
        if self.player is not None:
            self.player.reset(seed=seed)
        order = None
        if self.version >= 1:
            self.decoder.reset()
            order = self.decoder.waiting_order
        self.ctx = DecisionContext(engine, self.config.slots, self.tracker.service, order)
        self.steps = 0
        self._phi = 0.0
        self._wall = time.perf_counter()
        info: dict[str, Any] = {"workload": episode.name, "load": episode.load, "requests": len(episode.requests)}
        return self.encoder.encode(self.ctx, self.tracker), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one decision, advance to the next decision point, and score the interval."""
        engine = self.engine
        if engine is None:
            raise RuntimeError("call reset() before step()")
        tracker = self.tracker
        tracker.begin()
        event = "done"
        if not engine.done:
            event = self._advance(engine, tracker, action)
        self.steps += 1
        self.ctx.refresh(tracker.service)
        terminated = engine.done
        cfg = self.config
        truncated = not terminated and (
            (cfg.max_steps is not None and self.steps >= cfg.max_steps)
            or (cfg.max_time_s is not None and engine.now >= cfg.max_time_s)
        )
        reward = float(self.reward_fn(tracker.stats))
        at_end = getattr(self.reward_fn, "at_end", None)
        if (terminated or truncated) and at_end is not None:
            reward += at_end(tracker.on_time_open)
        if self.shaping is not None:
            phi = 0.0 if terminated or truncated else self.shaping(engine)
            reward += phi - self._phi
            self._phi = phi
        info = self._step_info(event)
        if terminated or truncated:
            result = self.result()
            info["objective"] = self.reward_fn.episode_objective(result)
            info["episode_summary"] = summary_of(result)
        return self.encoder.encode(self.ctx, tracker), reward, terminated, truncated, info

    def _advance(self, engine: Engine, tracker: EpisodeTracker, action: Any) -> str:
        """Run one decision: -v1 holds it until the next event, -v0 runs one iteration; returns the event."""
        if self.version >= 1:
            decision = SchedulerHeld(self.player) if self.player is not None else self.decoder.decide(action, self.ctx)
            counts = self.hold_counts
            if self.config.compiled and can_compile(decision, engine):
                event, whole = run_rule_held(engine, tracker, decision, self.config.events)
                if whole:
                    counts.compiled += 1
                else:
                    counts.handed_back += 1
            else:
                event = run_held(engine, tracker, decision, self.config.events)
                counts.python += 1
            skip_idle(engine, tracker)
            return event
        plan = self.player.schedule(self.ctx.view) if self.player is not None else self.decoder.decode(action, self.ctx)
        t0 = engine.now
        res = engine.step(plan)
        tracker.commit(plan.ids, res.tokens, res.emitted)
        tracker.record_finished(res.finished, len(res.evicted))
        tracker.close_segment(t0)
        if not (engine.done or engine.unfinished):
            skip_idle(engine, tracker)
        return "iteration"

    def _step_info(self, event: str) -> dict[str, Any]:
        st = self.tracker.stats
        engine = self.tracker.engine
        info = {
            "time": st.t_end,
            "dt": st.t_end - st.t_start,
            "tokens": st.tokens,
            "emitted": st.emitted,
            "finished": st.finished,
            "slo_met": st.slo_met,
            "preempted": st.preempted,
            "waiting": int(self.ctx.waiting.size),
            "running": int(self.ctx.running.size),
            "kv_utilisation": 1.0 - engine.pool.free / engine.pool.total,
            "slo_classes": self.tracker.class_counts(),
        }
        if self.version >= 1:
            info["event"] = event
            info["iterations"] = engine.iterations
        return info

    def result(self) -> SimulationResult:
        """The current episode's recorded result (per-request columns; complete once the episode ended)."""
        if self.engine is None:
            raise RuntimeError("call reset() before result()")
        name = self.player.name if self.player is not None else f"env-{self.action_mode}"
        return result_of(self.engine, name, time.perf_counter() - self._wall)

    # ---- helpers for agents and baselines ------------------------------------------------
    def view(self) -> EngineView:
        """The engine's read-only view at the current decision (what a baseline scheduler sees)."""
        if self.engine is None:
            raise RuntimeError("call reset() before view()")
        return self.ctx.view

    def encode_plan(self, plan: BatchPlan, view: EngineView | None = None) -> np.ndarray:
        """The scores action that reproduces ``plan`` (see the decoder's ``encode_plan``)."""
        encode = getattr(self.decoder, "encode_plan", None)
        if encode is None:
            raise NotImplementedError(f"encode_plan needs action_mode='scores', not {self.action_mode!r}")
        if self.version >= 1:
            return encode(plan, self.ctx)  # type: ignore[no-any-return]
        if view is None or view is self.ctx.view:
            return encode(plan, self.view(), (self.ctx.slots, self.ctx.n_run_slots))  # type: ignore[no-any-return]
        return encode(plan, view)  # type: ignore[no-any-return]

    def action_masks(self) -> np.ndarray:
        """Valid knob choices (MultiDiscrete format, for sb3-contrib's MaskablePPO); knobs mode only."""
        masks = getattr(self.decoder, "action_masks", None)
        if masks is None or self.engine is None:
            raise NotImplementedError("action_masks needs action_mode='knobs' and a reset() environment")
        result: np.ndarray = masks(self.ctx)
        return result

    def render(self) -> Any:
        """The ANSI dashboard (``"ansi"``) or an RGB picture (``"rgb_array"``); ``None`` without a mode."""
        if self.render_mode is None or self.engine is None:
            return None
        if self.render_mode == "ansi":
            return render_ansi(self.ctx, self.tracker, self.steps)
        return render_rgb(self.ctx, self.config.slots)


def _nothing_to_decide(engine: Engine) -> bool:
    engine.view()
    return engine.unfinished == 0
