"""The measurement design: which batches the profiler times (no torch).

A designed batch has prefill chunks ``(c, x)`` (``c`` tokens over ``x`` already cached) and decode rows (one token
each over its context). The design has four parts (docs/calibration.md):

* **prefill**: one chunk of ``c`` tokens, ``c`` from 1 to 8,192 including sizes that are not multiples of any
  GEMM tile, over ``x`` tokens already cached (0 up to the context limit);
* **decode**: ``N`` decode rows (1 to 512) at a per-row context ``d``, and the same with the contexts spread
  evenly over ``(0, 2d)`` (mean ``d``): live batches mix contexts, and an executor whose decode attention pads rows
  to the longest context (the CPU path) costs more for a spread than for equal contexts of the same sum;
* **mixed**: a chunk plus decodes, the hybrid batches of chunked-prefill schedulers;
* **random** (held out): random mixed batches of the kind Sarathi-style schedulers build: a token budget, decodes
  with random contexts, and one to three chunks over random cached contexts filling the budget.

Every batch respects the limits: the tokens per iteration, the KV capacity, the model's context and the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.batch import BatchSummary

Chunk = tuple[int, int]

CHUNK_SIZES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 100, 128, 160, 192, 200, 256, 300, 384, 500, 512, 640, 768, 1000,
               1024, 1500, 1536, 2000, 2048, 3000, 4096, 5000, 6144, 8192)  # fmt: skip
"""Prefill chunk sizes: powers of two, tile multiples and sizes off every tile (24, 100, 300, 500, 1000, ...)."""
PREFILL_CONTEXTS = (0, 512, 2048, 4096, 8192)
DECODE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512)
DECODE_CONTEXTS = (16, 128, 512, 1024, 2048, 4096)
MIXED_CHUNKS = (64, 256, 512, 1000, 2048)
MIXED_DECODES = ((8, 512), (32, 1024), (128, 512))
RANDOM_BUDGETS = (128, 256, 512, 1024, 2048)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a designed batch may use.

    Attributes:
        max_tokens: Tokens per iteration.
        kv_tokens: KV capacity in tokens (blocks x block size); a batch's cached plus new tokens must fit.
        max_context: Longest sequence (cached + new tokens) the model allows.
        max_rows: Rows per iteration (requests holding KV at once).
        block_size: KV block size (capacity is counted in whole blocks per row).
    """

    max_tokens: int = 8192
    kv_tokens: int = 1 << 20
    max_context: int = 4096
    max_rows: int = 512
    block_size: int = 16

    def __post_init__(self) -> None:
        """Check that every limit is positive."""
        for name in ("max_tokens", "kv_tokens", "max_context", "max_rows", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits: {name}={getattr(self, name)} must be >= 1")

    def fits(self, chunks: tuple[Chunk, ...], decodes: tuple[int, ...]) -> bool:
        """Whether the batch of ``chunks`` and decode rows at contexts ``decodes`` is valid under these limits."""
        rows = [*chunks, *((1, d) for d in decodes)]
        if not rows or len(rows) > self.max_rows or sum(n for n, _ in rows) > self.max_tokens:
            return False
        if any(n < 1 or x < 0 or n + x > self.max_context for n, x in rows):
            return False
        blocks = sum(-(-(n + x) // self.block_size) for n, x in rows)
        return blocks * self.block_size <= self.kv_tokens


@dataclass(frozen=True, slots=True)
class DesignedBatch:
    """One batch to time.

    Attributes:
        part: ``"prefill"``, ``"decode"``, ``"mixed"`` or ``"random"``.
        chunks: ``(tokens, cached_before)`` of each prefill chunk.
        decodes: Cached context of each decode row.
    """

    part: str
    chunks: tuple[Chunk, ...] = ()
    decodes: tuple[int, ...] = ()

    def summary(self) -> BatchSummary:
        """The batch as the cost models see it."""
        return BatchSummary.of(list(self.chunks), len(self.decodes), sum(self.decodes))

    @property
    def role(self) -> str:
        """``"holdout"`` for the random mixed batches, ``"train"`` for the grid."""
        return "holdout" if self.part == "random" else "train"


@dataclass(frozen=True, slots=True)
class DesignConfig:
    """Which parts of the design to build and how large.

    Attributes:
        chunk_sizes: Prefill chunk sizes.
        prefill_contexts: Cached tokens before a chunk.
        decode_counts: Decode batch sizes.
        decode_contexts: Per-row decode contexts.
        mixed_chunks: Chunk sizes of the mixed batches.
        mixed_decodes: ``(decodes, context)`` of the mixed batches.
        n_random: Random mixed batches (held out).
        random_budgets: Token budgets of the random batches.
    """

    chunk_sizes: tuple[int, ...] = CHUNK_SIZES
    prefill_contexts: tuple[int, ...] = PREFILL_CONTEXTS
    decode_counts: tuple[int, ...] = DECODE_COUNTS
    decode_contexts: tuple[int, ...] = DECODE_CONTEXTS
    mixed_chunks: tuple[int, ...] = MIXED_CHUNKS
    mixed_decodes: tuple[tuple[int, int], ...] = MIXED_DECODES
    n_random: int = 40
    random_budgets: tuple[int, ...] = RANDOM_BUDGETS

    @classmethod
    def small(cls) -> DesignConfig:
        """A design of ~100 batches for the CI and quick checks."""
        return cls(
            chunk_sizes=(1, 8, 24, 64, 100, 128, 200, 256, 500, 512, 1000, 1024),
            prefill_contexts=(0, 512, 1536),
            decode_counts=(1, 4, 16, 64, 128),
            decode_contexts=(16, 256, 1024),
            mixed_chunks=(64, 500),
            mixed_decodes=((8, 256), (32, 512)),
            n_random=24,
            random_budgets=(128, 256, 512, 1024),
        )


def grid_batches(config: DesignConfig, limits: Limits) -> list[DesignedBatch]:
    """The grid part of the design (prefill, decode, mixed), every batch within ``limits``."""
    out = [DesignedBatch("prefill", ((c, x),)) for x in config.prefill_contexts for c in config.chunk_sizes]
    out += [DesignedBatch("decode", (), (d,) * n) for d in config.decode_contexts for n in config.decode_counts]
    out += [
        DesignedBatch("decode", (), spread_contexts(d, n))
        for d in config.decode_contexts
        for n in config.decode_counts
        if n >= 4
    ]
    out += [
        DesignedBatch("mixed", ((c, 0),), spread_contexts(d, n))
        for c in config.mixed_chunks
        for n, d in config.mixed_decodes
    ]
    return [b for b in out if limits.fits(b.chunks, b.decodes)]


def spread_contexts(mean: int, n: int) -> tuple[int, ...]:
    """``n`` decode contexts spread evenly over ``(0, 2 * mean)``: ``round(2 * mean * (i + 0.5) / n)``, at least 1."""
    return tuple(max(1, round(2 * mean * (i + 0.5) / n)) for i in range(n))


def random_batch(rng: np.random.Generator, config: DesignConfig, limits: Limits) -> DesignedBatch | None:
    """A random Sarathi-style mixed batch within ``limits`` (None if the draw does not fit)."""
    budget = min(int(rng.choice(config.random_budgets)), limits.max_tokens)
    n_dec = int(rng.integers(0, min(budget, limits.max_rows - 1, 256) + 1))
    n_chunks = int(rng.integers(1, 4))
    # contexts up to half the model's context, and small enough that the rows fit the KV pool on average
    share = limits.kv_tokens // (2 * (n_dec + n_chunks))
    ctx_cap = max(2, min(limits.max_context // 2, share))
    decodes = tuple(int(d) for d in rng.integers(1, ctx_cap, size=n_dec))
    chunks: list[Chunk] = []
    left = budget - n_dec
    for _ in range(n_chunks):
        if left < 1:
            break
        c = int(rng.integers(1, left + 1))
        chunks.append((c, int(rng.integers(0, max(1, min(limits.max_context - c, ctx_cap))))))
        left -= c
    batch = DesignedBatch("random", tuple(chunks), decodes)
    return batch if limits.fits(batch.chunks, batch.decodes) else None


def design(config: DesignConfig, limits: Limits, rng: np.random.Generator) -> list[DesignedBatch]:
    """The whole design: the grid and ``config.n_random`` random mixed batches (draws that do not fit are redrawn).

    Raises:
        ValueError: The limits admit no random batch after many draws.
    """
    batches = grid_batches(config, limits)
    tries = 0
    while sum(b.part == "random" for b in batches) < config.n_random:
        tries += 1
        if tries > 100 * max(config.n_random, 1):
            raise ValueError(f"design: no random batch fits {limits}; raise the limits or lower n_random")
        drawn = random_batch(rng, config, limits)
        if drawn is not None:
            batches.append(drawn)
    return batches
