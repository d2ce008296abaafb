"""What one iteration computes: the batch summary cost models see, and the work runners execute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """The shape of one iteration, the only input of a cost model.

    Attributes:
        prefill_tokens: Size of each prefill chunk in the batch (int64 array).
        prefill_context: For each chunk, the tokens of that request already cached before it.
        n_decodes: Number of decode rows (one token each).
        decode_context_sum: Sum over decode rows of the KV tokens each one attends to
            (tokens already cached before this iteration).
        n_seqs: Number of sequences in the batch (``len(prefill_tokens) + n_decodes``).
    """

    prefill_tokens: IntArray
    prefill_context: IntArray
    n_decodes: int
    decode_context_sum: int
    n_seqs: int

    @property
    def total_tokens(self) -> int:
        """All tokens processed by the iteration (prefill chunk tokens plus one per decode)."""
        return int(self.prefill_tokens.sum()) + self.n_decodes

    @classmethod
    def of(
        cls,
        prefill: list[tuple[int, int]] | None = None,
        n_decodes: int = 0,
        decode_context_sum: int = 0,
    ) -> BatchSummary:
        """Build a summary from ``(chunk, context)`` pairs and decode aggregates (convenience for tests)."""
        pairs = prefill or []
        tokens = np.array([c for c, _ in pairs], dtype=np.int64)
        context = np.array([x for _, x in pairs], dtype=np.int64)
        return cls(tokens, context, int(n_decodes), int(decode_context_sum), len(pairs) + int(n_decodes))


@dataclass(frozen=True, slots=True)
class IterationWork:
    """The exact work of one iteration, as a runner receives it.

    Rows are aligned arrays: request index, tokens to process, tokens cached before (the row's
    starting position), and whether the row samples a token (it completes the request's pending
    tokens). Decode rows are those with ``is_decode``.

    Attributes:
        ids: Request ids of the rows.
        n_tokens: Tokens processed per row.
        start: KV tokens cached for the request before this iteration (the row's first position).
        is_decode: True for decode rows (one token following an emitted token).
        samples: True for rows whose last token produces a new token (decode rows, last prefill chunks).
        summary: The cost-model summary of the same batch.
    """

    ids: IntArray
    n_tokens: IntArray
    start: IntArray
    is_decode: BoolArray
    samples: BoolArray
    summary: BatchSummary
