"""The engine: clock, request table, KV block pool, and one decision as schedule → check → run → commit.

One decision is ``view = engine.view(); plan = decider(view); engine.step(plan)``: the decider reads the
:class:`~llmsched_gym.core.view.EngineView` and returns a :class:`~llmsched_gym.core.plan.BatchPlan`; the engine
applies its rejections and preemptions and checks it (:mod:`~llmsched_gym.core.check`, raising
:class:`~llmsched_gym.errors.InvalidPlanError` or repairing a KV shortfall), times the iteration or the
fast-forward stretch (:mod:`~llmsched_gym.core.run`), commits it to the table (:mod:`~llmsched_gym.core.commit`)
and books its :class:`~llmsched_gym.core.commit.Outcome` with :meth:`Engine._book`, its one bookkeeping method.
With a compiled cost model the decision is one compiled call; compiled policies run many decisions per call
(:mod:`~llmsched_gym.core.segment`, :meth:`Engine.run_segment`). Every path gives the same results (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from llmsched_gym.core import check, commit, rules, segment
from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.check import Checked
from llmsched_gym.core.commit import Outcome
from llmsched_gym.core.config import EngineConfig, StepResult
from llmsched_gym.core.cost_kernels import CompiledCost
from llmsched_gym.core.kv import BlockPool
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import Runner
from llmsched_gym.core.recorder import Recorder
from llmsched_gym.core.request import Request
from llmsched_gym.core.rules import REJECTED, RUNNING, STATE_NAMES, WAITING
from llmsched_gym.core.run import runner_ends, work_of
from llmsched_gym.core.segment import SEGMENT_DECISIONS, Reg, Segment, Unpacked
from llmsched_gym.core.table import RequestTable
from llmsched_gym.core.view import EngineView
from llmsched_gym.errors import InvalidPlanError, KVCapacityError, LivelockError, TraceFormatError

_INF = float("inf")
_NO_IDS = np.zeros(0, np.int64)
STAGE_ROWS = 256  # requests a segment stages ahead of the clock
_FREE, _COUNTERS = int(Reg.FREE), slice(int(Reg.ADMIT_SEQ), int(Reg.N_WAITING) + 1)  # register slots a call sets
_LIMITS = slice(int(Reg.MAX_DECISIONS), int(segment.N_INPUTS))
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
        self._stamp = 0
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
        # Compiled steps need the compiled cost; per-token times are recorded by the classic path only.
        self._fused = self._cost is not None and not config.recorder.token_times
        self._reg0, self._clock0 = np.zeros(len(Reg), dtype=np.int64), np.zeros(len(segment.Clock))
        p = self.pool
        self._reg0[: Reg.ADMIT_SEQ] = p.free, p.total, p.block_size, self.prompt_allocation, p.watermark_blocks
        self._reg0[Reg.REPEAT] = UNBOUNDED_REPEAT if config.fast_forward else 1
        self._reg0[Reg.FULL_RESTART] = config.restart_mode == "full"

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
        status, need, admit = rules.arrival_fit(t.prompt[rid], t.target[rid], pool.block_size, pool.total, usable)
        if status == rules.NEVER_FITS:
            reason = f"can never fit: needs {need} KV blocks at completion, pool has {pool.total}"
            self._reject(rid, reason, at=float(t.arrival[rid]))
        elif status == rules.PROMPT_ABOVE_WATERMARK:
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
    def runs_segments(self) -> bool:
        """Whether :meth:`run_segment` can run here: a compiled cost model and no per-token times to record."""
        return self._cost is not None and not self.recorder.config.token_times

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

    # ---- one decision: check → run → commit → book ---------------------------------------
    def step(self, plan: BatchPlan, *, keep_events: bool = False) -> StepResult:
        """Check, run and commit ``plan``; see the module docstring.

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
            self.arrival_mark = mark
            self.events_finished = finished + self.events_finished
            self.events_evicted = evicted + self.events_evicted
            raise

    def _step(self, plan: BatchPlan) -> StepResult:
        t0 = self.now
        for rid, reason in plan.reject:
            self._apply_reject(rid, reason)
        repeat = plan.repeat if self.config.fast_forward and self.runner.supports_stretch else 1
        if self._fused and plan.ids.size:
            fused = self._fused_step(plan, repeat, t0)
            if fused is not None:
                return fused
        evicted = self._apply_preempt(plan) if plan.preempt else []
        if plan.ids.size == 0:
            return self._idle(plan, t0, tuple(evicted))
        ids, n = plan.ids, plan.tokens
        checked = self._check(ids, n, repeat)
        if checked.err == check.ERR_SHORT:
            ids, n, checked, repaired = self._fit(ids, n, checked, repeat)
            evicted += repaired
            if ids.size == 0:
                return self._idle(plan, t0, tuple(evicted))
        arrival = self.next_arrival_time if plan.arrival_sensitive else None
        wake = _INF if plan.wake_at is None else plan.wake_at
        work = work_of(ids, n, checked)
        ends = runner_ends(self.runner, work, checked.k, t0, _INF if arrival is None else arrival, wake)
        t = self.table
        bs, alloc = self.pool.block_size, self.prompt_allocation
        done = commit.commit(ids, n, checked.is_dec, ends, t0, bs, alloc, self.admit_counter, t.ints, t.floats, t.state)
        self._book(commit.outcome_of(done, t0, ends, checked.tokens, checked.n_dec, self.pool.free, self.pool.total))
        if self.recorder.config.token_times:  # recorded by this path only (compiled paths are off then)
            commit.record_token_times(self.recorder, ends, done.emit_rows, done.emit_counts)
        finished = tuple(done.finished.tolist())
        return StepResult(t0, self.now, ends.size, checked.tokens * ends.size, done.emitted, finished, tuple(evicted))

    def _fused_step(self, plan: BatchPlan, repeat: int, t0: float) -> StepResult | None:
        """``plan`` as one compiled call (check, evictions, cost, commit); ``None``: the classic path must take it."""
        victims = np.array(plan.preempt, dtype=np.int64) if plan.preempt else _NO_IDS
        wake = _INF if plan.wake_at is None else plan.wake_at
        given = (plan.ids, plan.tokens, victims, repeat, plan.arrival_sensitive, wake)
        cost, t = self._cost, self.table
        assert cost is not None
        reg, clock = self._registers(1, UNBOUNDED_REPEAT, 0, 0, False), self._clock(_INF, _INF)
        raw = segment.step_kernel(
            (t.ints, t.floats, t.state), self.running_ids(), reg, clock, cost.form, cost.coef, given
        )
        res = segment.unpack(raw, single=True)
        self._stamp, out = res.stamp, res.outcome
        if out.decisions == 0:
            return None
        self._book(out)
        tokens, finished = int(out.log[0, 3] + out.log[0, 4]), tuple(out.finished.tolist())
        return StepResult(t0, self.now, out.iterations, tokens, out.emitted, finished, plan.preempt)

    def _check(self, ids: IntArray, n: IntArray, repeat: int) -> Checked:
        """Check ``{ids: n}`` (raising :class:`InvalidPlanError`); a KV shortfall is returned, not raised."""
        t = self.table
        self._stamp += 1
        bs, alloc = self.pool.block_size, self.prompt_allocation
        out: Checked = check.check(ids, n, repeat, t.ints, t.state, t.n, self._stamp, bs, alloc, self.pool.free)
        if out.err not in (check.OK, check.ERR_SHORT):
            raise check.plan_error(t, out.err, int(ids[out.row]), int(n[out.row]))
        return out

    def _idle(self, plan: BatchPlan, t0: float, evicted: tuple[int, ...]) -> StepResult:
        self.decisions += 1
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
        if not 0 <= rid < self.table.n:
            raise InvalidPlanError(f"rule 'reject known requests': id {rid} has not arrived (0..{self.table.n - 1})")
        if self.table.state[rid] != WAITING:
            state = STATE_NAMES[int(self.table.state[rid])]
            raise InvalidPlanError(f"rule 'reject only waiting requests': request {rid} is {state}")
        self._reject(rid, f"rejected by scheduler: {reason}")
        self.runner.forget(np.array([rid], dtype=np.int64))

    def _apply_preempt(self, plan: BatchPlan) -> list[int]:
        victims = list(plan.preempt)
        arr = np.array(victims, dtype=np.int64)
        t = self.table
        self._stamp += 1
        if not check.valid_victims(arr, plan.ids, t.n, t.mark, self._stamp, t.state):
            raise check.victims_error(t, victims, plan.ids)
        self._evict(victims, arr)
        return victims

    def _evict(self, victims: list[int], arr: IntArray) -> None:
        t = self.table
        freed = commit.evict(arr, self.config.restart_mode == "full", t.ints, t.state)
        self.pool.release(int(freed))
        self.n_waiting += len(victims)
        for rid in victims:
            del self._running[rid]
        self._running_cache = None
        self.runner.release(arr)

    # ---- KV fit --------------------------------------------------------------------------
    def blocks_needed(self, ids: IntArray, n: IntArray, k: int = 1) -> IntArray:
        """New blocks each row needs after ``k`` repetitions (admission reservation included)."""
        t = self.table
        out: IntArray = check.blocks_needed(ids, n, k, t.ints, t.state, self.pool.block_size, self.prompt_allocation)
        return out

    def _fit(
        self, ids: IntArray, n: IntArray, checked: Checked, repeat: int
    ) -> tuple[IntArray, IntArray, Checked, list[int]]:
        """Repair a KV shortfall by evicting the newest running requests (``overflow="evict_newest"``), or raise."""
        if self.config.overflow == "error":
            worst = int(ids[np.argmax(self.blocks_needed(ids, n))])
            raise KVCapacityError(
                f"rule 'KV blocks available': the plan needs {checked.need1} new blocks but {self.pool.free} are "
                f"free (shortfall {checked.need1 - self.pool.free}; largest request {worst}); preempt or schedule less"
            )
        t = self.table
        order = sorted(self._running, key=lambda r: (t.admit_seq[r], r))
        victims: list[int] = []
        while checked.err == check.ERR_SHORT:
            if not order:
                raise KVCapacityError(
                    f"rule 'KV blocks available': even after evicting every running request the plan needs "
                    f"{checked.need1} blocks, {self.pool.free} free"
                )
            victim = order.pop()
            self._evict([victim], np.array([victim], dtype=np.int64))
            victims.append(victim)
            keep = ids != victim
            ids, n = ids[keep], n[keep]
            checked = self._check(ids, n, repeat)
        self.events_evicted.extend(victims)
        return ids, n, checked, victims

    # ---- compiled segments ---------------------------------------------------------------
    def run_segment(
        self,
        kernel: Callable[..., Segment],
        params: object,
        *,
        waiting: IntArray = _NO_IDS,
        more_waiting: bool = False,
        stop: int = 0,
        max_decisions: int = SEGMENT_DECISIONS,
        max_iterations: int = UNBOUNDED_REPEAT,
        requeue: int = segment.REQUEUE_FRONT,
    ) -> Unpacked:
        """Run a segment kernel (:func:`llmsched_gym.core.segment.specialize`) and book what it did.

        Args:
            kernel: The segment kernel of a plan function.
            params: The plan function's parameters.
            waiting: The waiting queue the plan function sees, in queue order.
            more_waiting: ``waiting`` is only the head of the queue (arrivals then stay out of it).
            stop: ``EV_*`` bits of the events that end the segment after the decision they happen in.
            max_decisions: Decision cap.
            max_iterations: Iteration cap (stretches are cut to it).
            requeue: ``REQUEUE_FRONT``: evicted requests re-enter the queue at its front; ``REQUEUE_ARRIVAL``: the
                queue is every waiting request in arrival order (``waiting`` is not needed).

        Needs a compiled cost model (:attr:`compiled_cost`).
        """
        cost, t, rec = self._cost, self.table, self.recorder
        if cost is None:
            raise RuntimeError("Engine.run_segment needs a runner with a compiled cost model (compiled_cost)")
        self.stage(STAGE_ROWS)
        until, dt = self.stage_horizon, _INF if rec.config.sample_dt is None else rec.config.sample_dt
        if self._max_client > 0 or t.client[t.n : t.rows].any():  # per-client series: Python samples
            # after a segment's last decision; one decision may cross the sample time (booked like engine.step)
            until, dt = (until if max_decisions == 1 else min(until, rec.next_sample)), _INF
        reg = self._registers(max_decisions, max_iterations, stop, requeue, more_waiting)
        view = self._view
        view._refresh()
        table, ro, clock = (t.ints, t.floats, t.state), (view.ints, view.floats, view.state), self._clock(until, dt)
        raw = kernel(table, ro, self.running_ids(), waiting, reg, clock, cost.form, cost.coef, params)
        res = segment.unpack(raw)
        self._stamp = res.stamp
        self._take_staged(res.n_arrived)
        if res.outcome.decisions:  # decisions no decider saw: the next view reports their events
            self.arrival_mark, self.events_finished, self.events_evicted = t.n, [], []
            self._book(res.outcome)
        return res

    def _registers(self, max_decisions: int, max_iterations: int, stop: int, requeue: int, more: bool) -> IntArray:
        """The integer registers a kernel starts from (:data:`~llmsched_gym.core.segment.Reg`)."""
        reg = self._reg0.copy()  # the pool, the allocation and restart modes and the stretch cap are fixed
        t = self.table
        reg[_FREE] = self.pool.free
        reg[_COUNTERS] = self.admit_counter, self._stamp, t.n, t.rows, self.n_waiting
        reg[_LIMITS] = max_decisions, max_iterations, stop, requeue, more
        return reg

    def _clock(self, until: float, sample_dt: float) -> FloatArray:
        """The float registers a kernel starts from (:data:`~llmsched_gym.core.segment.Clock`)."""
        clock = self._clock0.copy()
        clock[:5] = self.now, until, self.stage_horizon, self.recorder.next_sample, sample_dt
        return clock

    def _take_staged(self, n_arrived: int) -> None:
        """Book staged rows a segment took in as arrived (they passed the arrival check)."""
        t = self.table
        arrived = n_arrived - t.n
        if arrived:
            self._max_client = max(self._max_client, int(t.client[t.n : n_arrived].max()))
            t.n = n_arrived
            self._unfinished += arrived
            self.n_waiting += arrived
            self.arrival_mark = n_arrived

    # ---- bookkeeping ---------------------------------------------------------------------
    def _book(self, out: Outcome) -> None:
        """The one bookkeeping method: book committed decisions into the engine (every path calls it).

        KV pool, running set and counters (from the event log, in order), events for the next view, clock,
        iteration log, TBT samples, token times and the time series.
        """
        self.pool.free = out.free
        self._apply_events(out)
        self.decisions += out.decisions
        self.iterations += out.iterations
        self.busy_time += out.busy
        self.now, self.last_duration = out.now, out.last_duration
        self._idle_streak = 0
        rec = self.recorder
        rec.add_tbt(out.gaps, out.gap_weights)
        if rec.config.iterations:
            rows = out.log.tolist()
            rec.iterations.extend((a, d, int(k), int(p), int(c), int(u)) for a, d, k, p, c, u in rows)
        if out.samples.size:
            rec.samples.extend((s, int(u), int(w), int(r)) for s, u, w, r in out.samples.tolist())
            rec.next_sample = out.next_sample
        if self.now >= rec.next_sample:
            self._sample_until(self.now)

    def _apply_events(self, out: Outcome) -> None:
        """Admissions, finishes and compiled evictions: the running set, the counters, the runner, the events."""
        admitted, finished, evicted = out.admitted, out.finished, out.evicted
        if out.running is not None:
            self._running = dict.fromkeys(out.running.tolist())
        else:  # one decision: its victims left first, then its rows were admitted, then some finished
            running = self._running
            for rid in evicted.tolist():
                del running[rid]
            running.update(dict.fromkeys(admitted.tolist()))
            for rid in finished.tolist():
                del running[rid]
        if admitted.size or finished.size or evicted.size:
            self._running_cache = None
        self.n_waiting += evicted.size - admitted.size
        self.admit_counter += admitted.size
        self._unfinished -= finished.size
        if finished.size:
            self.events_finished.extend(finished.tolist())
            self.runner.release(finished)
            self.runner.forget(finished)
        if evicted.size:
            self.runner.release(evicted)

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
