"""Structure-of-arrays table of every request the engine has seen.

Row ``i`` is the request with engine id ``i`` (ids are dense, in arrival order). The integer and float
columns are the rows of two 2-D arrays (``RequestTable.ints`` and ``.floats``, indexed by :class:`IntCol` and
:class:`FloatCol`) plus the ``state`` column, so compiled code takes the whole table as three arguments
(numba's per-call cost grows with every array passed). Capacity doubles as requests stream in; the engine
mutates the table in place and exposes read-only views to schedulers.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from llmsched_gym.core.request import Request
from llmsched_gym.core.rules import FINISHED, REJECTED, RUNNING, STATE_NAMES, WAITING

__all__ = ["FINISHED", "REJECTED", "RUNNING", "STATE_NAMES", "WAITING", "FloatCol", "IntCol", "RequestTable"]

_NAN = float("nan")
_INF = float("inf")


# Rows of ``RequestTable.ints`` (int64 columns; MARK is engine scratch that detects duplicate ids in a plan) and of
# ``RequestTable.floats``: compiled code reads ``ints[IntCol.PROMPT, rid]``.
IntCol = IntEnum(
    "IntCol",
    "EXT_ID PROMPT OUTPUT TARGET MAX_TOKENS PREDICTED CLIENT TYPE_LABEL SLO_CLASS COMPUTED GENERATED EMITTED "
    "PROMPT_DONE BLOCKS ADMIT_SEQ PREEMPTIONS WASTED TBT_N TBT_VIOL MARK",
    start=0,
)
FloatCol = IntEnum(
    "FloatCol",
    "ARRIVAL WEIGHT SLO_TTFT SLO_TBT ADMIT_TIME FIRST_SCHED FIRST_TOKEN LAST_TOKEN FINISH TBT_MAX TBT_SUM",
    start=0,
)
INT_COLUMNS = tuple(c.name.lower() for c in IntCol)
FLOAT_COLUMNS = tuple(c.name.lower() for c in FloatCol)

# The result columns in result order: name, dtype, fill value.
COLUMNS: tuple[tuple[str, type, float], ...] = (
    ("ext_id", np.int64, -1),
    ("arrival", np.float64, _NAN),
    ("prompt", np.int64, 0),
    ("output", np.int64, 0),
    ("target", np.int64, 0),
    ("max_tokens", np.int64, -1),
    ("predicted", np.int64, -1),
    ("client", np.int64, 0),
    ("weight", np.float64, 1.0),
    ("type_label", np.int64, -1),
    ("slo_class", np.int64, -1),
    ("slo_ttft", np.float64, _INF),
    ("slo_tbt", np.float64, _INF),
    ("state", np.int8, 0),
    ("computed", np.int64, 0),
    ("generated", np.int64, 0),
    ("emitted", np.int64, 0),
    ("prompt_done", np.int64, 0),
    ("blocks", np.int64, 0),
    ("admit_time", np.float64, _NAN),
    ("admit_seq", np.int64, -1),
    ("first_sched", np.float64, _NAN),
    ("first_token", np.float64, _NAN),
    ("last_token", np.float64, _NAN),
    ("finish", np.float64, _NAN),
    ("preemptions", np.int64, 0),
    ("wasted", np.int64, 0),
    ("tbt_max", np.float64, 0.0),
    ("tbt_sum", np.float64, 0.0),
    ("tbt_n", np.int64, 0),
    ("tbt_viol", np.int64, 0),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)
_ALL = (*COLUMNS, ("mark", np.int64, -1))
if {n for n, d, _ in _ALL if d is np.int64} != set(INT_COLUMNS) or {n for n, d, _ in _ALL if d is np.float64} != set(
    FLOAT_COLUMNS
):
    raise ImportError("llmsched_gym.core.table: IntCol / FloatCol do not list the int64 / float64 columns")


class RequestTable:
    """Per-request columns plus the SLO class registry.

    Rows ``[0, n)`` are the requests that have arrived; rows ``[n, rows)`` are staged: written ahead
    of their arrival (by :meth:`stage`) so compiled code can take them in as the clock passes them.

    Attributes:
        n: Number of requests arrived so far.
        rows: Number of rows written (``>= n``).
        slo_names: Names of the SLO classes seen, indexed by the ``slo_class`` column.
        reject_reason: Reason strings of rejected requests, by engine id.
    """

    ext_id: np.ndarray
    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    target: np.ndarray
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
    prompt_done: np.ndarray
    blocks: np.ndarray
    admit_time: np.ndarray
    admit_seq: np.ndarray
    first_sched: np.ndarray
    first_token: np.ndarray
    last_token: np.ndarray
    finish: np.ndarray
    preemptions: np.ndarray
    wasted: np.ndarray
    tbt_max: np.ndarray
    tbt_sum: np.ndarray
    tbt_n: np.ndarray
    tbt_viol: np.ndarray
    mark: np.ndarray

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self.rows = 0
        self._cap = 0
        self.slo_names: list[str] = []
        self.reject_reason: dict[int, str] = {}
        self._grow(max(16, capacity))

    def _grow(self, cap: int) -> None:
        old = self._cap
        self.ints: np.ndarray = np.empty((len(INT_COLUMNS), cap), dtype=np.int64)
        self.floats: np.ndarray = np.empty((len(FLOAT_COLUMNS), cap), dtype=np.float64)
        views = dict(zip(INT_COLUMNS, self.ints, strict=True)) | dict(zip(FLOAT_COLUMNS, self.floats, strict=True))
        for name, dtype, fill in _ALL:
            new: np.ndarray = views[name] if name in views else np.empty(cap, dtype=dtype)
            new[self.rows :] = fill
            if old:
                new[: self.rows] = getattr(self, name)[: self.rows]
            setattr(self, name, new)
        self._cap = cap

    @property
    def capacity(self) -> int:
        """Allocated rows."""
        return self._cap

    def add(self, req: Request) -> int:
        """Append an arrived request in the WAITING state and return its engine id (nothing may be staged)."""
        if self.rows != self.n:
            raise RuntimeError(f"RequestTable.add: {self.rows - self.n} staged rows must arrive first")
        self.stage(req)
        return self.arrive()

    def arrive(self) -> int:
        """Mark the first staged row as arrived and return its engine id."""
        if self.n == self.rows:
            raise RuntimeError("RequestTable.arrive: no staged row")
        self.n += 1
        return self.n - 1

    def stage(self, req: Request) -> int:
        """Write a request that has not arrived yet after the last row; returns its future engine id."""
        if self.rows == self._cap:
            self._grow(2 * self._cap)
        i = self.rows
        self.ext_id[i] = req.id
        self.arrival[i] = req.arrival
        self.prompt[i] = req.prompt_len
        self.output[i] = req.output_len
        self.target[i] = req.target_output_len
        self.max_tokens[i] = -1 if req.max_tokens is None else req.max_tokens
        self.predicted[i] = -1 if req.predicted_output_len is None else req.predicted_output_len
        self.client[i] = req.client
        self.weight[i] = req.weight
        self.type_label[i] = -1 if req.type_label is None else req.type_label
        if req.slo is not None:
            self.slo_class[i] = self._slo_index(req.slo.name)
            self.slo_ttft[i] = _INF if req.slo.ttft_s is None else req.slo.ttft_s
            self.slo_tbt[i] = _INF if req.slo.tbt_s is None else req.slo.tbt_s
        self.state[i] = WAITING
        self.rows = i + 1
        return i

    def _slo_index(self, name: str) -> int:
        if name not in self.slo_names:
            self.slo_names.append(name)
        return self.slo_names.index(name)

    def column(self, name: str) -> np.ndarray:
        """The first ``n`` rows of a column (a view; copy before mutating)."""
        arr: np.ndarray = getattr(self, name)
        return arr[: self.n]
