"""The Gymnasium environment: a thin adapter over the engine (encoder, decoder, reward)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import CostModel
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.view import EngineView
from llmsched_gym.env.actions import make_decoder
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.episodes import WorkloadMix, WorkloadSampler, WorkloadSpec, episode_from_options
from llmsched_gym.env.observation import make_observation
from llmsched_gym.env.render import render_ansi, render_rgb
from llmsched_gym.env.rewards import make_reward
from llmsched_gym.env.stats import EpisodeTracker
from llmsched_gym.simulate import SimulationResult, result_of

WorkloadArg = WorkloadSampler | WorkloadSpec | Sequence[WorkloadSpec] | str | None


class LLMSchedEnv(gymnasium.Env[np.ndarray, Any]):
    """LLM-inference scheduling: one step is one batch decision of a serving engine.

    ## Description
    A simulated LLM serving engine (paged KV cache, chunked prefills, continuous batching; iteration times from
    a cost model) serves a request stream. At every decision point the agent chooses the next iteration's batch:
    which waiting requests to admit and with how many prefill tokens, which running requests decode, pause or are
    preempted. Simulated time then advances by the iteration's duration, and, when nothing is waiting or running,
    on to the next arrival, so every step is a real decision.

    ## Action Space
    ``action_mode="scores"`` (``LLMSchedScores-v0``): ``Box(-1, 1, (2K + 1,), float32)``: one score per slot
    (``> 0`` serve, highest first; ``<= 0`` hold or pause; ``<= preempt_below`` preempt), a token-budget level,
    and one chunk cap per slot (``>= 0`` uncapped). See :mod:`llmsched_gym.env.scores`; ``encode_plan`` turns
    any scheduler's plan into this action. ``action_mode="knobs"`` (``LLMSchedKnobs-v0``):
    ``MultiDiscrete([levels, 4, 1 + deferral levels, 2])``: budget level, prefill ordering (FCFS, shortest prompt,
    least client service, earliest TTFT deadline), decode deferral, admission hold, with ``action_masks()``.
    See :mod:`llmsched_gym.env.knobs`.

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

    Slots hold running requests (oldest admission first), then waiting ones (arrival order); waiting requests
    keep at least ``K // 2`` slots when both kinds overflow. ``observation="global"`` keeps entries 0-11 only.

    ## Rewards
    ``reward=`` ``"goodput"`` (+1 per request finishing within its TTFT and TBT targets, the default),
    ``"latency"`` (-integral of requests in system dt), ``"throughput"`` (+1 per output token), ``"fairness"``
    (-increase of the max-min VTC service difference between clients), ``"weighted"`` (weighted sum). Each is
    incremental: the undiscounted return equals the objective computed from the final metrics.

    ## Starting State
    ``reset(seed=...)`` draws a workload from ``np_random``: a workload spec, a load factor from ``load_range``
    and the requests (synthetic, or a trace window). ``options={"workload": name_or_index, "load": x}`` or
    ``options={"requests": [...]}`` pins it. The clock starts at the first arrival.

    ## Episode End
    ``terminated``: every request has finished (or was rejected as never fitting the KV cache).
    ``truncated``: ``max_steps`` decisions or ``max_time_s`` simulated seconds. The last ``info`` carries
    ``episode_summary`` (the run summary) and ``objective`` (the reward's episode objective).

    ## Arguments
    ``gymnasium.make("llmsched_gym/LLMSchedScores-v0", reward="latency", workload="synthetic-sharegpt",
    load_range=(0.5, 1.5), cost_model="roofline", render_mode="ansi", slots=16, max_steps=5000)``:
    ``action_mode``, ``reward`` and ``reward_kwargs``, ``observation`` (``"slots"`` or ``"global"``), ``workload``
    (a name, a :class:`WorkloadSpec`, a list of them, or any :class:`WorkloadSampler`), ``load_range``,
    ``cost_model`` (a name for ``make_cost_model`` or a ``CostModel``), ``config`` (an :class:`EnvConfig`) and any
    :class:`EnvConfig` field as a keyword (``slots``, ``budget_levels``, ``num_blocks``, ``max_steps``, ...).
    ``render_mode``: ``"ansi"`` (text dashboard) or ``"rgb_array"`` (queue and KV picture).

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 30}  # noqa: RUF012

    def __init__(
        self,
        action_mode: str = "scores",
        *,
        reward: str = "goodput",
        reward_kwargs: dict[str, Any] | None = None,
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
        self.decoder = make_decoder(action_mode, self.config)
        self.encoder = make_observation(observation, self.config.slots, self.config.observation)
        self.reward_fn = make_reward(reward, **(reward_kwargs or {}))
        self.sampler = _sampler(workload, load_range)
        self.cost_model = _cost_model(cost_model, self.config)
        self.engine_config = _engine_config(self.config)
        self.action_space = self.decoder.space
        self.observation_space = self.encoder.space
        self.engine: Engine | None = None
        self.episode_name = ""
        self.steps = 0
        self._wall = 0.0

    # ---- episode -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a freshly drawn (or pinned) workload."""
        super().reset(seed=seed)
        episode = episode_from_options(options or {}, self.sampler, self.np_random)
        self.episode_name = episode.name
        engine = Engine(episode.requests, SimulatedRunner(self.cost_model), self.engine_config)
        while not engine.done and _nothing_to_decide(engine):
            engine.step(BatchPlan.idle())
        self.engine = engine
        self.tracker = EpisodeTracker(engine)
        self.ctx = DecisionContext(engine, self.config.slots, self.tracker.service)
        self.steps = 0
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
        if not engine.done:
            self._advance(engine, tracker, self.decoder.decode(action, self.ctx))
        self.steps += 1
        self.ctx.refresh(tracker.service)
        terminated = engine.done
        cfg = self.config
        truncated = not terminated and (
            (cfg.max_steps is not None and self.steps >= cfg.max_steps)
            or (cfg.max_time_s is not None and engine.now >= cfg.max_time_s)
        )
        reward = float(self.reward_fn(tracker.stats))
        info = self._step_info()
        if terminated or truncated:
            result = self.result()
            info["objective"] = self.reward_fn.episode_objective(result)
            info["episode_summary"] = _summary(result)
        return self.encoder.encode(self.ctx, tracker), reward, terminated, truncated, info

    def _advance(self, engine: Engine, tracker: EpisodeTracker, plan: BatchPlan) -> None:
        t0 = engine.now
        res = engine.step(plan)
        tracker.commit(plan.ids, res.tokens, res.emitted)
        tracker.record_finished(res.finished, len(res.evicted))
        tracker.close_segment(t0)
        if engine.done or engine.unfinished:
            return
        # Nothing to decide: idle to the next arrival inside this step, keeping the events (finished,
        # evicted, arrived) so the next view shows everything since this decision.
        while not engine.done and engine.unfinished == 0:
            t1 = engine.now
            engine.step(BatchPlan.idle(), keep_events=True)
            tracker.close_segment(t1)

    def _step_info(self) -> dict[str, Any]:
        st = self.tracker.stats
        engine = self.ctx.engine
        return {
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
        }

    def result(self) -> SimulationResult:
        """The current episode's recorded result (per-request columns; complete once the episode ended)."""
        if self.engine is None:
            raise RuntimeError("call reset() before result()")
        return result_of(self.engine, f"env-{self.action_mode}", time.perf_counter() - self._wall)

    # ---- helpers for agents and baselines ------------------------------------------------
    def view(self) -> EngineView:
        """The engine's read-only view at the current decision (what a baseline scheduler sees)."""
        if self.engine is None:
            raise RuntimeError("call reset() before view()")
        return self.ctx.view

    def encode_plan(self, plan: BatchPlan, view: EngineView | None = None) -> np.ndarray:
        """The scores action that reproduces ``plan`` exactly (see :meth:`ScoresDecoder.encode_plan`)."""
        encode = getattr(self.decoder, "encode_plan", None)
        if encode is None:
            raise NotImplementedError(f"encode_plan needs action_mode='scores', not {self.action_mode!r}")
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


def _sampler(workload: WorkloadArg, load_range: tuple[float, float]) -> WorkloadSampler:
    if workload is None:
        return WorkloadMix(load_range=load_range)
    if isinstance(workload, str):
        return WorkloadMix((WorkloadSpec(name=workload),), load_range)
    if isinstance(workload, WorkloadSpec):
        return WorkloadMix((workload,), load_range)
    if isinstance(workload, WorkloadSampler):
        return workload
    return WorkloadMix(tuple(workload), load_range)


def _cost_model(cost_model: CostModel | str, config: EnvConfig) -> CostModel:
    if not isinstance(cost_model, str):
        return cost_model
    from llmsched_gym.costs import make_cost_model

    return make_cost_model(cost_model, gpu=config.gpu, model=config.model, tp=config.tp)


def _engine_config(config: EnvConfig) -> EngineConfig:
    blocks = config.num_blocks
    if blocks is None:
        from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks

        blocks = kv_capacity_blocks(
            get_gpu(config.gpu), get_model(config.model), tp=config.tp, block_size=config.block_size
        )
    return EngineConfig(
        KVConfig(blocks, config.block_size, config.watermark),
        allocation=config.allocation,  # type: ignore[arg-type]
        overflow="error",
        restart_mode=config.restart_mode,  # type: ignore[arg-type]
        fast_forward=False,
        recorder=RecorderConfig(iterations=False, sample_dt=config.sample_dt),
    )


def _summary(result: SimulationResult) -> dict[str, Any]:
    from llmsched_gym.metrics.summary import summarize

    return summarize(result).as_dict()
