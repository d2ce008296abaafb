"""The read-only engine view that schedulers, env encoders and policies see."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core import rules
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.rules import RUNNING, WAITING
from llmsched_gym.core.table import COLUMN_NAMES

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_pending = rules.pending.py_func
_blocks_for = rules.blocks_for.py_func
_admission_blocks = rules.admission_blocks.py_func
_new_blocks = rules.new_blocks.py_func
_HIDDEN = ("ext_id", "output", "target", "wasted", "tbt_max", "tbt_sum")  # not in the view (``target``: the oracle)
_RO_COLUMNS = tuple(name for name in COLUMN_NAMES if name not in _HIDDEN)


class EngineView:
    """A read-only window on the engine's state, valid until the next ``engine.step``.

    Request ids are the engine's dense ids (0, 1, ... in arrival order); ``request_ext_id`` maps
    them back to workload ids. Per-request columns are read-only numpy arrays indexed by id
    (only ids ``< n_arrived`` are meaningful):

    ``arrival``, ``prompt`` (prompt tokens), ``max_tokens`` (-1 if none), ``predicted`` (predicted
    output tokens, -1 if none), ``client``, ``weight``, ``type_label`` (-1 if none), ``slo_class``
    (-1 if none), ``slo_ttft``/``slo_tbt`` (inf if none), ``state`` (1 waiting, 2 running,
    3 finished, 4 rejected), ``computed`` (KV tokens cached), ``generated`` (tokens produced by the
    model since the last full restart), ``emitted`` (tokens delivered to the user), ``blocks`` (KV
    blocks held), ``admit_time``/``admit_seq`` (last admission), ``first_sched``, ``first_token``,
    ``last_token`` (times), ``preemptions``, ``prompt_done`` (prompt tokens computed at least once),
    ``finish`` (finish or rejection time), ``tbt_n``/``tbt_viol`` (token gaps so far and those above
    the request's TBT target).

    ``ints`` and ``floats`` are the request table's two 2-D arrays (rows indexed by
    :class:`~llmsched_gym.core.table.IntCol` / :class:`~llmsched_gym.core.table.FloatCol`), read-only, for
    compiled policies (:mod:`llmsched_gym.core.segment`); they hold the oracle output length too.

    The true output length is not in the view: clairvoyant schedulers read it through
    :meth:`oracle_output_len`, which documents their clairvoyance.

    A request's pending tokens are ``prompt + generated - computed``: 1 for a decode, more for a
    prefill (or the re-prefill of prompt plus generated tokens after a recompute preemption).
    """

    arrival: np.ndarray
    prompt: np.ndarray
    max_tokens: np.ndarray
    predicted: np.ndarray
    client: np.ndarray
    weight: np.ndarray
    type_label: np.ndarray
    slo_class: np.ndarray
    slo_ttft: np.ndarray
    slo_tbt: np.ndarray
    state: np.ndarray
    computed: np.ndarray
    generated: np.ndarray
    emitted: np.ndarray
    blocks: np.ndarray
    admit_time: np.ndarray
    admit_seq: np.ndarray
    first_sched: np.ndarray
    first_token: np.ndarray
    last_token: np.ndarray
    preemptions: np.ndarray
    prompt_done: np.ndarray
    finish: np.ndarray
    tbt_n: np.ndarray
    tbt_viol: np.ndarray
    ints: np.ndarray
    floats: np.ndarray

    def __init__(self, engine: Engine) -> None:
        self._e = engine
        self._bind()

    def _bind(self) -> None:
        t = self._e.table
        for name in (*_RO_COLUMNS, "ints", "floats"):
            arr = getattr(t, name).view()
            arr.flags.writeable = False
            setattr(self, name, arr)
        self._bound_cap = t.capacity

    def _refresh(self) -> None:
        if self._bound_cap != self._e.table.capacity:
            self._bind()

    # ---- scalars -------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Current simulated (or wall-clock) time in seconds."""
        return self._e.now

    @property
    def n_arrived(self) -> int:
        """Requests that have arrived so far (valid ids are ``range(n_arrived)``)."""
        return self._e.table.n

    @property
    def free_blocks(self) -> int:
        """Free KV blocks."""
        return self._e.pool.free

    @property
    def total_blocks(self) -> int:
        """KV pool capacity in blocks."""
        return self._e.pool.total

    @property
    def block_size(self) -> int:
        """Tokens per KV block."""
        return self._e.pool.block_size

    @property
    def prompt_allocation(self) -> bool:
        """Whether admission reserves the whole (re-)prefill's blocks ("prompt" allocation mode)."""
        return self._e.prompt_allocation

    @property
    def watermark_blocks(self) -> int:
        """Blocks a watermark check keeps free."""
        return self._e.pool.watermark_blocks

    @property
    def next_arrival(self) -> float | None:
        """Arrival time of the next request not yet arrived, or ``None`` when the trace is exhausted.

        Exposing it does not leak the future beyond what a serving system's admission queue knows:
        schedulers that must not use it (most) simply ignore it; WAIT uses it to detect the end
        of the trace.
        """
        return self._e.next_arrival_time

    @property
    def arrivals_done(self) -> bool:
        """True once every request of the workload has arrived."""
        return self._e.next_arrival_time is None

    @property
    def last_iteration_time(self) -> float:
        """Duration of the most recent iteration (0 before the first)."""
        return self._e.last_duration

    @property
    def iterations(self) -> int:
        """Iterations executed so far (a fast-forwarded stretch counts every iteration in it)."""
        return self._e.iterations

    @property
    def busy_time(self) -> float:
        """Total duration of all iterations so far; ``busy_time / iterations`` is the mean batch time."""
        return self._e.busy_time

    # ---- sets and events -----------------------------------------------------------------
    @property
    def running(self) -> IntArray:
        """Ids of requests holding KV, in admission order."""
        return self._e.running_ids()

    @property
    def n_waiting(self) -> int:
        """Number of arrived requests waiting for (re-)admission (O(1))."""
        return self._e.n_waiting

    @property
    def waiting(self) -> IntArray:
        """Ids of arrived requests waiting for (re-)admission, in arrival order."""
        self._refresh()
        return np.flatnonzero(self._e.table.state[: self._e.table.n] == WAITING)

    @property
    def arrived(self) -> range:
        """Ids that arrived since the previous step (including any the engine rejected)."""
        return range(self._e.arrival_mark, self._e.table.n)

    @property
    def finished(self) -> tuple[int, ...]:
        """Ids that finished during the previous step."""
        return tuple(self._e.events_finished)

    @property
    def evicted(self) -> tuple[int, ...]:
        """Ids the engine evicted during the previous step to repair a KV overflow."""
        return tuple(self._e.events_evicted)

    def pending(self, rid: int) -> int:
        """Tokens request ``rid`` must process before it emits its next token."""
        self._refresh()
        t = self._e.table
        return int(_pending(t.prompt[rid], t.generated[rid], t.computed[rid]))

    def pending_array(self, ids: IntArray) -> IntArray:
        """Vectorised :meth:`pending`."""
        t = self._e.table
        out: IntArray = _pending(t.prompt[ids], t.generated[ids], t.computed[ids])
        return out

    def is_running(self, rid: int) -> bool:
        """Whether ``rid`` holds KV."""
        return bool(self._e.table.state[rid] == RUNNING)

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold ``tokens`` KV slots."""
        return int(_blocks_for(tokens, self._e.pool.block_size))

    def new_blocks(self, rid: int, tokens: int) -> int:
        """New blocks the engine allocates when ``rid`` runs ``tokens`` tokens (admission reservation included)."""
        t, e = self._e.table, self._e
        reserve = e.prompt_allocation and t.state[rid] == WAITING
        args = (t.computed[rid], tokens, 1, t.prompt[rid], t.generated[rid], t.blocks[rid], e.pool.block_size, reserve)
        return int(_new_blocks(*args))

    def admission_blocks(self, rid: int) -> int:
        """New blocks the engine reserves when ``rid`` is admitted (prompt allocation mode), else 0."""
        if not self._e.prompt_allocation:
            return 0
        t = self._e.table
        return int(_admission_blocks(t.prompt[rid], t.generated[rid], t.blocks[rid], self._e.pool.block_size))

    def oracle_output_len(self, rid: int) -> int:
        """The true number of tokens ``rid`` will generate. Reading it makes a scheduler clairvoyant."""
        return int(self._e.table.target[rid])

    def oracle_output_array(self, ids: IntArray) -> IntArray:
        """Vectorised :meth:`oracle_output_len`."""
        out: IntArray = self._e.table.target[ids]
        return out

    def request_ext_id(self, rid: int) -> int:
        """The workload's id of engine request ``rid``."""
        return int(self._e.table.ext_id[rid])
