"""Committing a stretch of ``k`` identical iterations to the request table, vectorised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core.batch import BoolArray, FloatArray, IntArray
from llmsched_gym.core.stretch import iteration_ends
from llmsched_gym.core.table import RequestTable

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """Totals of a committed stretch."""

    tokens: int
    emitted: int
    finished: tuple[int, ...]


def commit_iterations(
    engine: Engine, ids: IntArray, n: IntArray, is_dec: BoolArray, durations: FloatArray
) -> CommitOutcome:
    """Apply ``len(durations)`` iterations of ``{ids: n}`` and advance the clock."""
    t = engine.table
    k = durations.size
    t0 = engine.now
    ends = iteration_ends(t0, durations)
    t_end = float(ends[-1])
    first = np.isnan(t.first_sched[ids])
    if first.any():
        t.first_sched[ids[first]] = t0
    c1 = t.computed[ids] + k * n
    t.computed[ids] = c1
    t.prompt_done[ids] = np.maximum(t.prompt_done[ids], np.minimum(c1, t.prompt[ids]))
    g0 = t.generated[ids]
    completes = ~is_dec & (c1 == t.prompt[ids] + g0)
    g1 = g0 + np.where(is_dec, k, completes.astype(np.int64))
    t.generated[ids] = g1
    e0 = t.emitted[ids]
    emits = g1 > e0
    emitted = 0
    if emits.any():
        emitted = _emit(engine, ids[emits], is_dec[emits], (g1 - np.maximum(g0, e0))[emits], ends)
    done = ids[g1 >= t.target[ids]]
    if done.size:
        t.finish[done] = t_end
        engine.release_finished(done)
    engine.now = t_end
    engine.last_duration = float(durations[-1])
    if engine.recorder.config.iterations:
        kv_used = engine.pool.used
        n_pre = int(n[~is_dec].sum())
        engine.recorder.iterations.append((t0, t_end - t0, k, n_pre * k, int(is_dec.sum()) * k, kv_used))
    return CommitOutcome(int(n.sum()) * k, emitted, tuple(done.tolist()))


def _emit(engine: Engine, rows: IntArray, dec: BoolArray, count: IntArray, ends: FloatArray) -> int:
    """Record token emissions: decode rows emit every iteration, prefill rows once at the end."""
    t = engine.table
    rec = engine.recorder
    k = ends.size
    t_end = float(ends[-1])
    new = rows[t.emitted[rows] == 0]
    if new.size:
        t.first_token[new] = t_end if k == 1 else ends[k - count[t.emitted[rows] == 0]]
    old_mask = t.emitted[rows] > 0
    old = rows[old_mask]
    if old.size:
        # First gap of each row: from its previous token to its first emission in this stretch.
        first_idx = k - count[old_mask]
        gap1 = ends[first_idx] - t.last_token[old]
        rec.add_tbt(gap1)
        _per_request_tbt(t, old, gap1)
    dec_rows = rows[dec & (count > 1)]
    if dec_rows.size:
        shared = np.diff(ends)
        rec.add_tbt(shared, int(dec_rows.size))
        _shared_tbt(t, dec_rows, shared)
    if rec.config.token_times:
        _record_token_times(rec.token_times, rows, count, ends)
    t.last_token[rows] = t_end
    t.emitted[rows] += count
    return int(count.sum())


def _per_request_tbt(t: RequestTable, rows: IntArray, gaps: FloatArray) -> None:
    t.tbt_max[rows] = np.maximum(t.tbt_max[rows], gaps)
    t.tbt_sum[rows] += gaps
    t.tbt_n[rows] += 1
    t.tbt_viol[rows] += gaps > t.slo_tbt[rows]


def _shared_tbt(t: RequestTable, rows: IntArray, shared: FloatArray) -> None:
    t.tbt_max[rows] = np.maximum(t.tbt_max[rows], shared.max())
    t.tbt_sum[rows] += shared.sum()
    t.tbt_n[rows] += shared.size
    slo = t.slo_tbt[rows]
    finite = np.isfinite(slo)
    if finite.any():
        srt = np.sort(shared)
        over = shared.size - np.searchsorted(srt, slo[finite], side="right")
        t.tbt_viol[rows[finite]] += over


def _record_token_times(store: dict[int, list[float]], rows: IntArray, count: IntArray, ends: FloatArray) -> None:
    k = ends.size
    for rid, c in zip(rows.tolist(), count.tolist(), strict=True):
        store.setdefault(rid, []).extend(ends[k - c :].tolist())
