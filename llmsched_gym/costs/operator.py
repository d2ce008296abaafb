"""The operator form's named coefficients (the roofline and schema-2 profiles evaluate this form).

The formula lives once, in :mod:`llmsched_gym.core.cost_kernels` (``OPERATOR``); this module holds its
coefficients as a validated record, converts them to and from the compiled vector and JSON, and evaluates
them over many batches at once for fitting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar

import numpy as np
from numba import njit

from llmsched_gym.core import cost_kernels
from llmsched_gym.core.batch import BatchSummary, FloatArray, IntArray
from llmsched_gym.core.cost_kernels import OPERATOR, CompiledCost
from llmsched_gym.costs._common import CompiledCostModel

EXPONENTS = ("overlap_p", "gemm_p")
MAX_EXPONENT = 64.0


@dataclass(frozen=True, slots=True)
class OperatorParams:
    """Coefficients of the operator form (formula in :mod:`llmsched_gym.core.cost_kernels`); times in seconds.

    Attributes:
        fixed_s: Per-iteration time that never overlaps with GPU work (host scheduling, sampling).
        floor_s: Per-iteration host floor that GPU work overlaps with (kernel launches, minimum kernel durations).
        host_seq_s: Host seconds per sequence that GPU work overlaps with (per-row bookkeeping and launches).
        overlap_p: Smooth-maximum exponent between the host part and the GPU work (1: added; large: the larger).
        weights_s: Time to stream the weights of the linear layers (their memory-bound floor).
        token_s: Seconds per GEMM token once the linear layers are compute-bound.
        seq_s: Seconds per sequence of the LM head (one row per sequence).
        gemm_p: Smooth-maximum exponent between weight streaming and GEMM compute (small: smooth growth from
            the first tokens on; large: the roofline's sharp knee).
        tile_tokens: GEMM token tile: the token count is rounded up to a multiple of it (0 or 1: off).
        chunk_s: Seconds per prefill chunk (per-row launches of the prefill path).
        attn_s: Seconds per unit of ``Σ c (x + c / 2)``: causal prefill attention over the cached context.
        prefill_ctx_s: Seconds per cached token a prefill chunk reads.
        decode_s: Seconds per decode row.
        kv_s: Seconds per cached token a decode row reads.
        comm_s: Tensor-parallel all-reduce seconds per batch token (bandwidth term).
        comm_latency_s: Tensor-parallel all-reduce latency per iteration (the communication floor).
    """

    form: ClassVar[str] = "operator"
    fixed_s: float = 0.0
    floor_s: float = 0.0
    host_seq_s: float = 0.0
    overlap_p: float = 1.0
    weights_s: float = 0.0
    token_s: float = 0.0
    seq_s: float = 0.0
    gemm_p: float = 1.0
    tile_tokens: int = 0
    chunk_s: float = 0.0
    attn_s: float = 0.0
    prefill_ctx_s: float = 0.0
    decode_s: float = 0.0
    kv_s: float = 0.0
    comm_s: float = 0.0
    comm_latency_s: float = 0.0

    def __post_init__(self) -> None:
        """Check that times stay positive and monotone."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in EXPONENTS:
                if not 1.0 <= value <= MAX_EXPONENT:
                    raise ValueError(f"OperatorParams: {f.name}={value} must be in [1, {MAX_EXPONENT:g}]")
            elif not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"OperatorParams: {f.name}={value} must be a finite number >= 0 (keeps time monotone)")
        if not isinstance(self.tile_tokens, int):
            raise ValueError(f"OperatorParams: tile_tokens={self.tile_tokens!r} must be an int")
        if not self.fixed_s + self.floor_s + self.weights_s > 0:
            raise ValueError(
                "OperatorParams: fixed_s, floor_s and weights_s are all 0; at least one must be > 0 "
                "(every iteration takes time)"
            )

    def coefficients(self) -> dict[str, float | int]:
        """The coefficients by name, in the compiled vector's order."""
        return asdict(self)

    def compiled(self) -> CompiledCost:
        """The compiled form (``OPERATOR``)."""
        return CompiledCost.of(OPERATOR, {k: float(v) for k, v in self.coefficients().items()})

    @classmethod
    def from_mapping(cls, values: Mapping[str, float | int], *, source: str = "coefficients") -> OperatorParams:
        """Build from named values (every name required; ``tile_tokens`` is converted to an int).

        Raises:
            ValueError: Missing or unknown names (all listed), or a value out of range.
        """
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise ValueError(f"{source}: missing {missing or 'none'}; unknown {unknown or 'none'}")
        kwargs = {n: float(values[n]) for n in names}
        tile = kwargs.pop("tile_tokens")
        if tile != int(tile):
            raise ValueError(f"{source}: tile_tokens={tile} must be a whole number of tokens")
        return cls(tile_tokens=int(tile), **kwargs)

    def with_values(self, **changes: float | int) -> OperatorParams:
        """A copy with some coefficients replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


class OperatorCostModel(CompiledCostModel):
    """A cost model given directly by operator-form coefficients (fits, tests, hand-written models).

    Attributes:
        params: The coefficients.
    """

    name: ClassVar[str] = "operator"
    __slots__ = ("params",)

    def __init__(self, params: OperatorParams) -> None:
        """Wrap ``params``."""
        self.params = params
        self._compiled = params.compiled()

    def __repr__(self) -> str:
        return f"OperatorCostModel({self.params!r})"


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """Aggregates of many batches as aligned arrays (the inputs of the compiled forms).

    Attributes:
        s_c: Prefill tokens ``Σ c``.
        s_cx: ``Σ c x``.
        s_cc: ``Σ c²``.
        s_x: ``Σ x``.
        n_dec: Decode rows.
        dec_ctx: Decode context sums.
        n_seqs: Sequences.
    """

    s_c: IntArray
    s_cx: IntArray
    s_cc: IntArray
    s_x: IntArray
    n_dec: IntArray
    dec_ctx: IntArray
    n_seqs: IntArray

    @classmethod
    def of(cls, batches: Sequence[BatchSummary]) -> BatchColumns:
        """Aggregate ``batches``."""
        rows = np.zeros((7, len(batches)), dtype=np.int64)
        for i, b in enumerate(batches):
            c, x = b.prefill_tokens, b.prefill_context
            rows[:, i] = (int(c.sum()), int(c @ x), int(c @ c), int(x.sum()), b.n_decodes, b.decode_context_sum,
                          b.n_seqs)  # fmt: skip
        return cls(*rows)

    def __len__(self) -> int:
        return int(self.s_c.size)

    def take(self, index: IntArray) -> BatchColumns:
        """The rows at ``index``."""
        return BatchColumns(*(getattr(self, f.name)[index] for f in fields(self)))


@njit(cache=True)
def _times(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs):  # type: ignore[no-untyped-def]
    out = np.empty(s_c.size, np.float64)
    for i in range(s_c.size):
        out[i] = cost_kernels.iteration_time(form, coef, s_c[i], s_cx[i], s_cc[i], s_x[i], n_dec[i], dec_ctx[i],
                                             n_seqs[i])  # fmt: skip
    return out


def predict(cost: CompiledCost, cols: BatchColumns) -> FloatArray:
    """Iteration times of every batch in ``cols`` under ``cost`` (the compiled kernel, looped in numba)."""
    out: FloatArray = _times(
        cost.form, cost.coef, cols.s_c, cols.s_cx, cols.s_cc, cols.s_x, cols.n_dec, cols.dec_ctx, cols.n_seqs
    )
    return out
