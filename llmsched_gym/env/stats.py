"""Exact per-step accounting of the quantities the rewards integrate.

Between two decisions the engine runs one iteration and possibly idles to the next arrival. The tracker splits
that interval into segments at the points where the environment reads the engine (each ends with
``engine.view()``, which ingests the arrivals due by then) and integrates over each segment exactly:

* requests in the system ``N(t)`` (arrived, neither finished nor rejected) are constant on a segment except for
  arrivals inside it, which are ingested at its end: ``integral = N(t0+) * (t1 - t0) + sum(end - arrival)``
  over the newly ingested requests, ``end`` being ``t1`` or the time the engine dates their rejection (a request
  that can never fit is rejected on arrival); finishes happen at segment ends;
* per-client service (VTC cost: first-time prompt tokens + 2 x emitted tokens) changes only for the plan's rows;
* SLO outcomes are decided when a request finishes (the rule of :func:`llmsched_gym.metrics.summary.meets_slo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.env._kernels import spread
from llmsched_gym.env._table_kernels import credit_service_table
from llmsched_gym.env.service_gap import GapTracker

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine


class HeldCounts(NamedTuple):
    """What a compiled hold finished and preempted (:meth:`EpisodeTracker.book_hold`)."""

    finished: tuple[int, ...]
    preempted: int


VTC_PROMPT_WEIGHT = 1.0
VTC_OUTPUT_WEIGHT = 2.0


@dataclass(slots=True)
class StepStats:
    """What happened between two decisions (reused between steps; read it before the next ``step``).

    Attributes:
        t_start: Clock at the decision.
        t_end: Clock at the next decision.
        in_system_area: ``integral of N(t) dt`` over ``[t_start, t_end]`` (request-seconds).
        tokens: Tokens processed.
        emitted: Output tokens delivered.
        finished: Requests that finished.
        slo_met: Finished requests that met their TTFT and TBT targets.
        preempted: Requests preempted (explicitly or under KV pressure).
        spread_before: Service spread (max - min over clients seen) at ``t_start``.
        spread_after: Service spread at ``t_end``.
        gap_area: Windowed service spread among backlogged clients, summed over the time-series samples taken in
            the step, times the sample period (:mod:`llmsched_gym.env.service_gap`; 0 unless tracked).
        on_time: Requests whose first token came within their TTFT target in the step.
        late_tbt: Requests that finished in the step with their TTFT met but their TBT target missed.
    """

    t_start: float = 0.0
    t_end: float = 0.0
    in_system_area: float = 0.0
    tokens: int = 0
    emitted: int = 0
    finished: int = 0
    slo_met: int = 0
    preempted: int = 0
    spread_before: float = 0.0
    spread_after: float = 0.0
    gap_area: float = 0.0
    on_time: int = 0
    late_tbt: int = 0

    def clear(self, t: float, spread: float) -> None:
        """Start a new step at time ``t``."""
        self.t_start = self.t_end = t
        self.in_system_area = 0.0
        self.tokens = self.emitted = self.finished = self.slo_met = self.preempted = 0
        self.spread_before = self.spread_after = spread
        self.gap_area = 0.0
        self.on_time = self.late_tbt = 0


class EpisodeTracker:
    """Running totals of one episode: requests in the system, per-client service, SLO outcomes.

    Args:
        engine: The episode's engine (read only).
        gap_window_s: Track the windowed service spread among backlogged clients with this window (``None``: off).
        clients: Room for this many clients in :attr:`service` from the start: a held decision reads that array
            while the tracker updates it, so it must not be reallocated mid-episode (give the episode's clients).
    """

    def __init__(self, engine: Engine, gap_window_s: float | None = None, clients: int = 8) -> None:
        self.engine = engine
        self.gaps: GapTracker | None = None
        self.first_seen = np.zeros(64, dtype=np.bool_)
        self.on_time_open = 0
        self.seen = 0
        self.open = 0
        self.first_open = 0
        """Rows below this had ended (finished or rejected) at the last :meth:`close_interval`."""
        self.finished = 0
        self.slo_met = 0
        self.service: FloatArray = np.zeros(max(clients, 8), dtype=np.float64)
        self.present = np.zeros(self.service.size, dtype=np.bool_)
        self.credited: FloatArray = np.zeros(64, dtype=np.float64)
        self.n_clients = 0
        self.service_total = 0.0
        self.spread = 0.0
        self.class_finished: IntArray = np.zeros(0, dtype=np.int64)
        self.class_met: IntArray = np.zeros(0, dtype=np.int64)
        self.stats = StepStats()
        self.close_segment(engine.now)
        if gap_window_s is not None and engine.recorder.config.sample_dt:
            self.gaps = GapTracker(engine.recorder, gap_window_s)  # samples so far count in the first step

    def begin(self) -> None:
        """Reset the step's statistics at the current decision."""
        self.stats.clear(self.engine.now, self.spread)

    def close_segment(self, t_start: float) -> None:
        """Account for ``[t_start, now]``: ingest arrivals due by now and integrate ``N(t)``."""
        engine = self.engine
        engine.view()
        t = engine.table
        now = engine.now
        area = self.open * (now - t_start)
        if t.n > self.seen:
            new = slice(self.seen, t.n)
            end = t.finish[new]  # NaN unless rejected on arrival (the engine dates that rejection)
            area += float(np.sum(np.where(np.isnan(end), now, np.minimum(end, now)) - t.arrival[new]))
        self._close(area)

    def close_interval(self, t_start: float) -> None:
        """Account for ``[t_start, now]`` when the engine ran many iterations unseen (a compiled hold).

        ``N(t)`` is integrated from every request's arrival and end (finish or rejection) clipped to the interval:
        the same integral as :meth:`close_segment`'s per-iteration sum (finishes happen at iteration ends, arrivals
        count from their arrival), summed in another order (equal to about 1e-15 relative).
        """
        engine = self.engine
        engine.view()
        t = engine.table
        now, lo = engine.now, self.first_open
        finish = t.finish[lo : t.n]
        open_ = np.isnan(finish)
        end = np.where(open_, now, np.minimum(finish, now))
        area = float(np.sum(np.maximum(end - np.maximum(t.arrival[lo : t.n], t_start), 0.0)))
        self.first_open = lo + int(np.argmax(open_)) if open_.any() else t.n  # rows below it have ended by now
        self._close(area)

    def _close(self, area: float) -> None:
        """Book a segment's area and take in the rows that arrived in it (clients, per-row buffers)."""
        engine = self.engine
        t = engine.table
        if t.n > self.seen:
            new = slice(self.seen, t.n)
            self._add_clients(t.client[new])
            self.seen = t.n
            if t.n > self.credited.size:
                self.credited = np.concatenate((self.credited, np.zeros(max(t.n, 2 * self.credited.size))))
            if t.n > self.first_seen.size:
                grow = np.zeros(max(t.n, 2 * self.first_seen.size) - self.first_seen.size, dtype=np.bool_)
                self.first_seen = np.concatenate((self.first_seen, grow))
        self.stats.in_system_area += area
        self.stats.t_end = engine.now
        if self.gaps is not None:
            dt = engine.recorder.config.sample_dt or 0.0
            self.stats.gap_area += dt * sum(self.gaps.new_gaps())
        self.open = engine.unfinished

    def book_hold(self, t_start: float, rows: IntArray, tokens: int, emitted: int, held: HeldCounts) -> None:
        """Book a compiled hold over ``[t_start, now]``.

        The same totals as :meth:`commit`, :meth:`record_finished` and :meth:`close_segment` booking its iterations
        one by one.

        Args:
            t_start: Clock at the hold's start.
            rows: Every request that may have been served in the hold (running at its start or admitted in it).
            tokens: Tokens processed.
            emitted: Output tokens delivered.
            held: The requests that finished and how many were preempted.
        """
        self.close_interval(t_start)  # first: it sizes the per-row buffers for the rows that arrived in the hold
        self.commit(rows, tokens, emitted)
        self.record_finished(held.finished, held.preempted)

    def _add_clients(self, clients: IntArray) -> None:
        top = int(clients.max()) + 1
        if top > self.service.size:
            size = max(top, 2 * self.service.size)
            self.service = np.concatenate((self.service, np.zeros(size - self.service.size)))
            self.present = np.concatenate((self.present, np.zeros(size - self.present.size, dtype=np.bool_)))
        if not self.present[clients].all():
            self.present[clients] = True
            self.n_clients = int(np.count_nonzero(self.present))
            self._update_spread()

    def commit(self, ids: IntArray, tokens: int, emitted: int) -> None:
        """Record a step's tokens and the service its plan rows ``ids`` received."""
        st = self.stats
        st.tokens += tokens
        st.emitted += emitted
        if ids.size == 0:
            return
        t = self.engine.table
        added, self.spread = credit_service_table(
            ids, t.ints, self.credited, self.service, self.present, VTC_PROMPT_WEIGHT, VTC_OUTPUT_WEIGHT
        )
        self.service_total += added
        st.spread_after = self.spread
        self._first_tokens(ids)

    def _first_tokens(self, ids: IntArray) -> None:
        """Count the plan rows whose first token just came, and those within their TTFT target."""
        t = self.engine.table
        new = ids[~self.first_seen[ids] & ~np.isnan(t.first_token[ids])]
        if new.size:
            self.first_seen[new] = True
            on_time = int(np.count_nonzero(t.first_token[new] - t.arrival[new] <= t.slo_ttft[new]))
            self.stats.on_time += on_time
            self.on_time_open += on_time

    def _update_spread(self) -> None:
        self.spread = float(spread(self.service, self.present))
        self.stats.spread_after = self.spread

    def service_mean(self) -> float:
        """Mean service over the clients seen so far (0 before any)."""
        return self.service_total / self.n_clients if self.n_clients else 0.0

    def record_finished(self, finished: tuple[int, ...], preempted: int) -> None:
        """Decide the SLO outcome of requests that just finished."""
        self.stats.preempted += preempted
        if not finished:
            return
        t = self.engine.table
        ids = np.asarray(finished, dtype=np.int64)
        ttft_ok = (t.first_token[ids] - t.arrival[ids]) <= t.slo_ttft[ids]
        tbt_ok = t.tbt_viol[ids] <= np.floor(0.01 * t.tbt_n[ids])
        ok = ttft_ok & tbt_ok
        met = int(np.count_nonzero(ok))
        self.stats.late_tbt += int(np.count_nonzero(ttft_ok & ~tbt_ok))
        self.on_time_open -= int(np.count_nonzero(ttft_ok))
        self._count_classes(t.slo_class[ids], ok)
        self.finished += ids.size
        self.slo_met += met
        self.stats.finished += ids.size
        self.stats.slo_met += met

    def _count_classes(self, classes: IntArray, ok: np.ndarray) -> None:
        n = len(self.engine.table.slo_names)
        if n > self.class_finished.size:
            grow = np.zeros(n - self.class_finished.size, np.int64)
            self.class_finished = np.concatenate((self.class_finished, grow))
            self.class_met = np.concatenate((self.class_met, grow))
        known = classes >= 0
        np.add.at(self.class_finished, classes[known], 1)
        np.add.at(self.class_met, classes[known & ok], 1)

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Per SLO class (in the order given): requests arrived, finished and finished meeting their SLOs."""
        t = self.engine.table
        arrived = np.bincount(t.slo_class[: t.n][t.slo_class[: t.n] >= 0], minlength=len(t.slo_names))
        out: dict[str, dict[str, int]] = {}
        for i, name in enumerate(t.slo_names):
            done = int(self.class_finished[i]) if i < self.class_finished.size else 0
            met = int(self.class_met[i]) if i < self.class_met.size else 0
            out[name] = {"arrived": int(arrived[i]), "finished": done, "slo_met": met}
        return out

    @property
    def attainment(self) -> float:
        """Fraction of finished requests that met their SLOs so far (1 before any finished)."""
        return self.slo_met / self.finished if self.finished else 1.0
