"""Committing a stretch of ``k`` identical iterations to the request table (one compiled call).

For each row: blocks grow to cover the new tokens (plus the admission reservation in "prompt"
allocation mode); a waiting row is admitted; ``computed`` advances by ``k·n``; a decode row
generates ``k`` tokens, a prefill row one token if it completes its pending tokens. Tokens beyond
those already emitted are emitted (full-restart catch-up emits nothing until it passes the old
count): a decode row's first token in the stretch has its own gap since its previous token, the
following ``k - 1`` gaps are the iteration gaps shared by every decode row. A row whose generated
count reaches its target finishes and frees its blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from llmsched_gym.core import kernels
from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine
    from llmsched_gym.core.recorder import Recorder


class CommitOutcome(NamedTuple):
    """What a committed stretch changed."""

    new_blocks: int
    freed_blocks: int
    admitted: IntArray
    finished: IntArray
    emitted: int


def commit_iterations(engine: Engine, work: IterationWork, ends: FloatArray) -> CommitOutcome:
    """Apply ``len(ends)`` iterations of ``work`` ending at ``ends`` and record TBT samples."""
    t = engine.table
    out = kernels.commit(
        work.ids, work.n_tokens, work.is_decode, ends, engine.now, engine.pool.block_size, engine.prompt_allocation,
        engine.admit_counter, t.state, t.prompt, t.generated, t.computed, t.blocks, t.target, t.emitted,
        t.prompt_done, t.first_sched, t.first_token, t.last_token, t.finish, t.admit_time, t.admit_seq,
        t.tbt_max, t.tbt_sum, t.tbt_n, t.tbt_viol, t.slo_tbt,
    )  # fmt: skip
    return outcome_of(engine, ends, out)


def outcome_of(engine: Engine, ends: FloatArray, raw: tuple) -> CommitOutcome:  # type: ignore[type-arg]
    """Record the TBT samples (and token times) of a committed stretch; ``raw`` is ``kernels.commit``'s result."""
    new, freed, admitted, finished, gaps1, shared, n_shared_rows, emitted, emit_rows, emit_counts = raw
    rec = engine.recorder
    rec.add_tbt(gaps1)
    if n_shared_rows:
        rec.add_tbt(shared, int(n_shared_rows))
    if rec.config.token_times:
        record_token_times(rec, ends, emit_rows, emit_counts)
    return CommitOutcome(int(new), int(freed), admitted, finished, int(emitted))


def record_token_times(rec: Recorder, ends: FloatArray, emit_rows: IntArray, emit_counts: IntArray) -> None:
    """Append each emitting row's token times: its ``count`` tokens came at the last ``count`` iteration ends."""
    k = ends.size
    for rid, c in zip(emit_rows.tolist(), emit_counts.tolist(), strict=True):
        rec.token_times.setdefault(rid, []).extend(ends[k - c :].tolist())
