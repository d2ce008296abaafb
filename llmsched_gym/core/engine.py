"""The engine: clock, request table, KV block pool and the validate → run → commit iteration.

One decision is ``view = engine.view(); plan = decider(view); engine.step(plan)``. The engine
validates every plan and raises :class:`~llmsched_gym.errors.InvalidPlanError` naming the broken
rule. When a plan declares ``repeat > 1`` and the runner supports it, the engine fast-forwards the
stretch of identical iterations up to the first event that could change the decision (see
:mod:`llmsched_gym.core.stretch`); results are identical to stepping one iteration at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from llmsched_gym.core import kernels
from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.commit import CommitOutcome, commit_iterations
from llmsched_gym.core.config import EngineConfig, StepResult
from llmsched_gym.core.cost_kernels import CompiledCost
from llmsched_gym.core.fused import fused_step
from llmsched_gym.core.kv import BlockPool
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import Runner
from llmsched_gym.core.recorder import Recorder
from llmsched_gym.core.request import Request
from llmsched_gym.core.stretch import Prepared, prepare, run_iterations
from llmsched_gym.core.table import REJECTED, RUNNING, STATE_NAMES, WAITING, RequestTable
from llmsched_gym.core.view import EngineView
from llmsched_gym.errors import InvalidPlanError, KVCapacityError, LivelockError, TraceFormatError

_INF = float("inf")
__all__ = ["Engine", "EngineConfig", "StepResult"]


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
        self._cost: CompiledCost | None = getattr(runner, "compiled_cost", None) if config.compiled else None

    # ---- arrivals ------------------------------------------------------------------------
    @property
    def next_arrival_time(self) -> float | None:
        """Arrival time of the next request not yet taken in (staged or not), or ``None``."""
        t = self.table
        if t.rows > t.n:
            return float(t.arrival[t.n])
        return None if self._next is None else self._next.arrival

    @property
    def stage_horizon(self) -> float:
        """Arrival time of the first request not yet staged (``inf`` when the workload is exhausted)."""
        return _INF if self._next is None else self._next.arrival

    def stage(self, limit: int) -> None:
        """Write upcoming requests into the table ahead of their arrival, up to ``limit`` staged rows.

        Staged rows are invisible (beyond ``table.n``) until the clock reaches their arrival; compiled
        segments (:mod:`llmsched_gym.core.fused`) then take them in without returning to Python.
        """
        t = self.table
        while self._next is not None and t.rows - t.n < limit:
            t.stage(self._next)
            self._pull()

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
        t = self.table
        while True:
            if t.rows > t.n:
                if t.arrival[t.n] > self.now:
                    break
                rid = t.arrive()
            elif self._next is not None and self._next.arrival <= self.now:
                rid = t.add(self._next)
                self._pull()
            else:
                break
            self._unfinished += 1
            self.n_waiting += 1
            self._max_client = max(self._max_client, int(t.client[rid]))
            self._check_fits(rid)
            added += 1
        return added

    def _check_fits(self, rid: int) -> None:
        t, pool = self.table, self.pool
        usable = pool.total - pool.watermark_blocks
        status, need, admit = kernels.arrival_fit(t.prompt[rid], t.target[rid], pool.block_size, pool.total, usable)
        if status == kernels.NEVER_FITS:
            reason = f"can never fit: needs {need} KV blocks at completion, pool has {pool.total}"
            self._reject(rid, reason, at=float(t.arrival[rid]))
        elif status == kernels.PROMPT_ABOVE_WATERMARK:
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
    def compiled_cost(self) -> CompiledCost | None:
        """The compiled cost model the fused step uses (``None``: classic path)."""
        return self._cost

    @property
    def done(self) -> bool:
        """True when every request has arrived and finished or been rejected."""
        return self._next is None and self._unfinished == 0 and self.table.rows == self.table.n

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

        A plan that raises :class:`InvalidPlanError` or :class:`KVCapacityError` is not counted and
        leaves the events for the next view in place.
        """
        self._ingest()
        if keep_events:
            return self._step(plan)
        mark, finished, evicted = self.arrival_mark, self.events_finished, self.events_evicted
        self.arrival_mark, self.events_finished, self.events_evicted = self.table.n, [], []
        try:
            return self._step(plan)
        except (InvalidPlanError, KVCapacityError):
            self.decisions -= 1
            self.arrival_mark = mark
            self.events_finished = finished + self.events_finished
            self.events_evicted = evicted + self.events_evicted
            raise

    def _step(self, plan: BatchPlan) -> StepResult:
        self.decisions += 1
        t0 = self.now
        for rid, reason in plan.reject:
            self._apply_reject(rid, reason)
        evicted = self._apply_preempt(plan) if plan.preempt else []
        if plan.ids.size == 0:
            return self._idle(plan, t0, tuple(evicted))
        repeat = plan.repeat if self.config.fast_forward and self.runner.supports_stretch else 1
        if self._cost is not None:
            fast = fused_step(self, self._cost, plan, repeat)
            if fast is not None:
                return self._finish(t0, fast.ends, fast.n_decodes, fast.tokens, fast.commit, tuple(evicted))
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
        arr = np.array(victims, dtype=np.int64)
        t = self.table
        self.stamp += 1
        if kernels.valid_victims(arr, plan.ids, t.n, t.mark, self.stamp, t.state):
            self._evict(victims, arr)
            return victims
        self._explain_preempt(plan, victims)  # raises the rule the plan breaks
        return victims

    def _explain_preempt(self, plan: BatchPlan, victims: list[int]) -> None:
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
        raise AssertionError(f"preempt {victims}: the compiled check and its explanation disagree")

    def _evict(self, victims: list[int], arr: IntArray | None = None) -> None:
        t = self.table
        if arr is None:
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
        out = commit_iterations(self, prep.work, ends)
        return self._finish(t0, ends, prep.work.summary.n_decodes, prep.tokens, out, evicted)

    def _finish(
        self, t0: float, ends: FloatArray, n_dec: int, tokens: int, out: CommitOutcome, evicted: tuple[int, ...]
    ) -> StepResult:
        """Book a committed stretch: KV, running set, events, clock, iteration log and samples."""
        k = ends.size
        pool = self.pool
        pool.free += out.freed_blocks - out.new_blocks
        finished = self._book_running(out.admitted, out.finished)
        last = ends[-2:].tolist()
        now = self.now = last[-1]
        self.last_duration = now - (last[0] if k > 1 else t0)
        rec = self.recorder
        if rec.config.iterations:
            rec.iterations.append((t0, now - t0, k, (tokens - n_dec) * k, n_dec * k, pool.total - pool.free))
        self.iterations += k
        self.busy_time += now - t0
        self._idle_streak = 0
        if now >= rec.next_sample:
            self._sample_until(now)
        return StepResult(t0, now, k, tokens * k, out.emitted, finished, evicted)

    def _book_running(self, admitted: IntArray, finished: IntArray) -> tuple[int, ...]:
        """Admitted requests join the running set, finished ones leave it (and the runner); returns the finished."""
        if admitted.size:
            self.n_waiting -= admitted.size
            self.admit_counter += admitted.size
            running = self._running
            for rid in admitted.tolist():
                running[rid] = None
            self._running_cache = None
        if not finished.size:
            return ()
        done = tuple(finished.tolist())
        for rid in done:
            del self._running[rid]
        self._running_cache = None
        self._unfinished -= len(done)
        self.events_finished.extend(done)
        self.runner.release(finished)
        self.runner.forget(finished)
        return done

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
