"""The engine: clock, request table, KV block pool and the validate → run → commit iteration.

One decision is ``view = engine.view(); plan = decider(view); engine.step(plan)``. The engine
validates every plan and raises :class:`~llmsched_gym.errors.InvalidPlanError` naming the broken
rule. When a plan declares ``repeat > 1`` and the runner supports it, the engine fast-forwards the
stretch of identical iterations up to the first event that could change the decision (see
:mod:`llmsched_gym.core.stretch`); results are identical to stepping one iteration at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from llmsched_gym.core import kernels
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.commit import commit_iterations
from llmsched_gym.core.kv import BlockPool, KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import Allocation, EngineRequirements, Overflow, RestartMode, Runner
from llmsched_gym.core.recorder import Recorder, RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.stretch import Prepared, prepare, run_iterations
from llmsched_gym.core.table import REJECTED, RUNNING, STATE_NAMES, WAITING, RequestTable
from llmsched_gym.core.view import EngineView
from llmsched_gym.errors import InvalidPlanError, KVCapacityError, LivelockError, TraceFormatError


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine modes and limits.

    Attributes:
        kv: KV pool configuration.
        allocation: ``"prompt"`` (reserve the pending prefill at admission) or ``"on_demand"``.
        overflow: ``"error"`` or ``"evict_newest"`` (repair infeasible plans, spec §1.4).
        restart_mode: ``"recompute"`` or ``"full"`` (spec §1.3).
        fast_forward: Allow stretches of repeated plans to be committed at once.
        max_idle_decisions: Consecutive decisions that process no token and admit no arrival
            before :class:`LivelockError` is raised.
        recorder: What to record.
    """

    kv: KVConfig
    allocation: Allocation = "prompt"
    overflow: Overflow = "error"
    restart_mode: RestartMode = "recompute"
    fast_forward: bool = True
    max_idle_decisions: int = 10_000
    recorder: RecorderConfig = field(default_factory=RecorderConfig)

    def __post_init__(self) -> None:
        """Validate modes."""
        if self.allocation not in ("prompt", "on_demand"):
            raise ValueError(f"EngineConfig: allocation={self.allocation!r} must be 'prompt' or 'on_demand'")
        if self.overflow not in ("error", "evict_newest"):
            raise ValueError(f"EngineConfig: overflow={self.overflow!r} must be 'error' or 'evict_newest'")
        if self.restart_mode not in ("recompute", "full"):
            raise ValueError(f"EngineConfig: restart_mode={self.restart_mode!r} must be 'recompute' or 'full'")
        if self.max_idle_decisions < 1:
            raise ValueError(f"EngineConfig: max_idle_decisions={self.max_idle_decisions} must be >= 1")

    def with_requirements(self, req: EngineRequirements) -> EngineConfig:
        """This config with a scheduler's required modes applied."""
        from dataclasses import replace

        return replace(
            self,
            allocation=req.allocation or self.allocation,
            overflow=req.overflow or self.overflow,
            restart_mode=req.restart_mode or self.restart_mode,
        )


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one ``engine.step`` did.

    Attributes:
        t_start: Clock before the step.
        t_end: Clock after the step.
        iterations: Iterations executed (0 for idle or preempt-only plans).
        tokens: Tokens processed (prefill and decode).
        emitted: Output tokens delivered to users.
        finished: Ids that finished.
        evicted: Ids evicted (by the plan or by overflow repair).
    """

    t_start: float
    t_end: float
    iterations: int
    tokens: int
    emitted: int
    finished: tuple[int, ...]
    evicted: tuple[int, ...]


class Engine:
    """Discrete-time LLM serving engine over a request stream.

    Args:
        requests: Requests sorted by arrival (consumed lazily).
        runner: Executes iterations (simulated cost model or live executor).
        config: Engine configuration.
    """

    def __init__(self, requests: Iterable[Request], runner: Runner, config: EngineConfig) -> None:
        self.config = config
        self.runner = runner
        self.table = RequestTable()
        self.pool = BlockPool(config.kv)
        self.recorder = Recorder(config.recorder)
        self.prompt_allocation = config.allocation == "prompt"
        self.now = 0.0
        self.last_duration = 0.0
        self.busy_time = 0.0
        self.iterations = 0
        self.decisions = 0
        self.arrival_mark = 0
        self.events_finished: list[int] = []
        self.events_evicted: list[int] = []
        self._running: dict[int, None] = {}
        self._running_cache: IntArray | None = None
        self.admit_counter = 0
        self.stamp = 0
        self._idle_streak = 0
        self._unfinished = 0
        self.n_waiting = 0
        self._max_client = 0
        self._source: Iterator[Request] = iter(requests)
        self._next: Request | None = None
        self._last_arrival = 0.0
        self._pull()
        self._view = EngineView(self)

    # ---- arrivals ------------------------------------------------------------------------
    @property
    def next_arrival_time(self) -> float | None:
        """Arrival time of the next request not yet ingested, or ``None``."""
        return None if self._next is None else self._next.arrival

    def _pull(self) -> None:
        nxt = next(self._source, None)
        if nxt is not None and nxt.arrival < self._last_arrival:
            raise TraceFormatError(
                f"requests must be sorted by arrival: request id {nxt.id} arrives at {nxt.arrival} "
                f"after one at {self._last_arrival} (sort the workload first)"
            )
        if nxt is not None:
            self._last_arrival = nxt.arrival
        self._next = nxt

    def _ingest(self) -> int:
        added = 0
        while self._next is not None and self._next.arrival <= self.now:
            rid = self.table.add(self._next)
            self._unfinished += 1
            self.n_waiting += 1
            self._max_client = max(self._max_client, self._next.client)
            self._check_fits(rid)
            added += 1
            self._pull()
        return added

    def _check_fits(self, rid: int) -> None:
        t = self.table
        need = self.pool.blocks_for(int(t.prompt[rid] + t.target[rid] - 1))
        admit = self.pool.blocks_for(int(t.prompt[rid]))
        usable = self.pool.total - self.pool.watermark_blocks
        if need > self.pool.total:
            reason = f"can never fit: needs {need} KV blocks at completion, pool has {self.pool.total}"
            self._reject(rid, reason, at=float(t.arrival[rid]))
        elif admit > usable:
            reason = f"prompt needs {admit} KV blocks, more than the {usable} usable above the watermark"
            self._reject(rid, reason, at=float(t.arrival[rid]))

    def _reject(self, rid: int, reason: str, at: float | None = None) -> None:
        self.n_waiting -= 1
        self.table.state[rid] = REJECTED
        self.table.finish[rid] = self.now if at is None else at
        self.table.reject_reason[rid] = reason
        self._unfinished -= 1

    # ---- views and state -----------------------------------------------------------------
    def view(self) -> EngineView:
        """Ingest due arrivals and return the read-only view."""
        self._ingest()
        self._view._refresh()
        return self._view

    @property
    def done(self) -> bool:
        """True when every request has arrived and finished or been rejected."""
        return self._next is None and self._unfinished == 0

    @property
    def unfinished(self) -> int:
        """Arrived requests neither finished nor rejected."""
        return self._unfinished

    def running_ids(self) -> IntArray:
        """Ids holding KV, in admission order (cached until the set changes)."""
        if self._running_cache is None:
            cache = np.fromiter(self._running, dtype=np.int64, count=len(self._running))
            cache.flags.writeable = False
            self._running_cache = cache
        return self._running_cache

    # ---- one decision --------------------------------------------------------------------
    def step(self, plan: BatchPlan, *, keep_events: bool = False) -> StepResult:
        """Validate and execute ``plan``; see the module docstring.

        Args:
            plan: The decision.
            keep_events: Keep the events (arrived, finished, evicted) the next view will report from
                before this step instead of starting afresh: for steps no decider saw, such as an
                environment skipping idle time between two decisions.
        """
        self._ingest()
        self.decisions += 1
        if not keep_events:
            self.events_finished.clear()
            self.events_evicted.clear()
            self.arrival_mark = self.table.n
        t0 = self.now
        for rid, reason in plan.reject:
            self._apply_reject(rid, reason)
        evicted = self._apply_preempt(plan) if plan.preempt else []
        if plan.ids.size == 0:
            return self._idle(plan, t0, tuple(evicted))
        repeat = plan.repeat if self.config.fast_forward and self.runner.supports_stretch else 1
        prep = prepare(self, plan.ids, plan.tokens, repeat)
        if prep.need1 > self.pool.free:
            prep, repaired = self._fit(prep, repeat)
            evicted += repaired
            if prep.work.ids.size == 0:
                return self._idle(plan, t0, tuple(evicted))
        return self._execute(plan, prep, t0, tuple(evicted))

    def _idle(self, plan: BatchPlan, t0: float, evicted: tuple[int, ...]) -> StepResult:
        if evicted or plan.reject:
            self._count_idle()
            return StepResult(t0, t0, 0, 0, 0, (), evicted)
        target = self.next_arrival_time
        if plan.wake_at is not None and (target is None or plan.wake_at < target):
            target = plan.wake_at
        if target is None:
            if self._unfinished:
                raise LivelockError(
                    f"stalled at t={self.now:.6f}: the scheduler returned an idle plan with no wake-up time, "
                    f"no arrivals are left and {self._unfinished} requests are unfinished"
                )
            return StepResult(t0, t0, 0, 0, 0, (), evicted)
        self.now = max(self.now, target)
        if self._ingest() == 0:
            self._count_idle()
        else:
            self._idle_streak = 0
        self._sample_until(self.now)
        return StepResult(t0, self.now, 0, 0, 0, (), evicted)

    def _count_idle(self) -> None:
        self._idle_streak += 1
        if self._idle_streak > self.config.max_idle_decisions:
            raise LivelockError(
                f"no progress in {self._idle_streak} consecutive decisions at t={self.now:.6f} "
                f"({self._unfinished} requests unfinished): the scheduler idles or preempts without running tokens"
            )

    # ---- rejections and preemptions ------------------------------------------------------
    def _apply_reject(self, rid: int, reason: str) -> None:
        self._check_id(rid, "reject")
        if self.table.state[rid] != WAITING:
            state = STATE_NAMES[int(self.table.state[rid])]
            raise InvalidPlanError(f"rule 'reject only waiting requests': request {rid} is {state}")
        self._reject(rid, f"rejected by scheduler: {reason}")
        self.runner.forget(np.array([rid], dtype=np.int64))

    def _apply_preempt(self, plan: BatchPlan) -> list[int]:
        victims = list(plan.preempt)
        if len(set(victims)) != len(victims):
            raise InvalidPlanError(f"rule 'preempt each request once': duplicates in {victims}")
        in_plan = set(victims).intersection(plan.ids.tolist())
        if in_plan:
            raise InvalidPlanError(f"rule 'no request both preempted and run': {sorted(in_plan)}")
        for rid in victims:
            self._check_id(rid, "preempt")
            if self.table.state[rid] != RUNNING:
                state = STATE_NAMES[int(self.table.state[rid])]
                raise InvalidPlanError(f"rule 'preempt only running requests': request {rid} is {state}")
        self._evict(victims)
        return victims

    def _evict(self, victims: list[int]) -> None:
        t = self.table
        arr = np.asarray(victims, dtype=np.int64)
        full = self.config.restart_mode == "full"
        freed = kernels.evict(arr, full, t.state, t.blocks, t.computed, t.generated, t.wasted, t.preemptions)
        self.pool.release(int(freed))
        self.n_waiting += len(victims)
        for rid in victims:
            del self._running[rid]
        self._running_cache = None
        self.runner.release(arr)

    def _check_id(self, rid: int, what: str) -> None:
        if not 0 <= rid < self.table.n:
            raise InvalidPlanError(f"rule '{what} known requests': id {rid} has not arrived (0..{self.table.n - 1})")

    # ---- KV fit --------------------------------------------------------------------------
    def blocks_needed(self, ids: IntArray, n: IntArray, k: int = 1) -> IntArray:
        """New blocks each row needs after ``k`` repetitions (admission reservation included)."""
        t = self.table
        out: IntArray = kernels.blocks_needed(
            ids, n, k, t.state, t.prompt, t.generated, t.computed, t.blocks, self.pool.block_size,
            self.prompt_allocation,
        )  # fmt: skip
        return out

    def _fit(self, prep: Prepared, repeat: int) -> tuple[Prepared, list[int]]:
        ids, n = prep.work.ids, prep.work.n_tokens
        if self.config.overflow == "error":
            worst = int(ids[np.argmax(self.blocks_needed(ids, n))])
            raise KVCapacityError(
                f"rule 'KV blocks available': the plan needs {prep.need1} new blocks but {self.pool.free} are free "
                f"(shortfall {prep.need1 - self.pool.free}; largest request {worst}); preempt or schedule less"
            )
        t = self.table
        order = sorted(self._running, key=lambda r: (t.admit_seq[r], r))
        victims: list[int] = []
        while prep.need1 > self.pool.free:
            if not order:
                raise KVCapacityError(
                    f"rule 'KV blocks available': even after evicting every running request the plan needs "
                    f"{prep.need1} blocks, {self.pool.free} free"
                )
            victim = order.pop()
            self._evict([victim])
            victims.append(victim)
            keep = ids != victim
            ids, n = ids[keep], n[keep]
            prep = prepare(self, ids, n, repeat)
        self.events_evicted.extend(victims)
        return prep, victims

    # ---- execution -----------------------------------------------------------------------
    def _execute(self, plan: BatchPlan, prep: Prepared, t0: float, evicted: tuple[int, ...]) -> StepResult:
        ends = run_iterations(self, plan, prep)
        k = ends.size
        out = commit_iterations(self, prep.work, ends)
        self.pool.free += out.freed_blocks - out.new_blocks
        if out.admitted.size:
            self.n_waiting -= out.admitted.size
            self.admit_counter += out.admitted.size
            for rid in out.admitted.tolist():
                self._running[rid] = None
            self._running_cache = None
        finished: tuple[int, ...] = ()
        if out.finished.size:
            finished = tuple(out.finished.tolist())
            for rid in finished:
                del self._running[rid]
            self._running_cache = None
            self._unfinished -= len(finished)
            self.events_finished.extend(finished)
            self.runner.release(out.finished)
            self.runner.forget(out.finished)
        self.now = float(ends[-1])
        self.last_duration = float(ends[-1] - (ends[-2] if k > 1 else t0))
        n_dec = prep.work.summary.n_decodes
        if self.recorder.config.iterations:
            n_pre = prep.tokens - n_dec
            self.recorder.iterations.append((t0, self.now - t0, k, n_pre * k, n_dec * k, self.pool.used))
        self.iterations += k
        self.busy_time += self.now - t0
        self._idle_streak = 0
        if self.now >= self.recorder.next_sample:
            self._sample_until(self.now)
        return StepResult(t0, self.now, k, prep.tokens * k, out.emitted, finished, evicted)

    # ---- sampling ------------------------------------------------------------------------
    def _sample_until(self, now: float) -> None:
        rec = self.recorder
        dt = rec.config.sample_dt
        if dt is None or now < rec.next_sample:
            return
        t = self.table
        rec.samples.append((now, self.pool.used, self.n_waiting, len(self._running)))
        if self._max_client > 0:  # per-client series only where there is more than one client
            st = t.state[: t.n]
            clients = t.client[: t.n]
            size = self._max_client + 1
            service = t.prompt_done[: t.n] + 2.0 * t.emitted[: t.n]
            rec.client_service.append(np.bincount(clients, weights=service, minlength=size))
            backlog = (st == WAITING) | (st == RUNNING)
            rec.client_backlogged.append(np.bincount(clients[backlog], minlength=size) > 0)
        rec.next_sample = (np.floor(now / dt) + 1.0) * dt
