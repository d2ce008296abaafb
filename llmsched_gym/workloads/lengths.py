"""Prompt/output length distributions.

A :class:`TokenDistribution` draws one kind of count (prompt or output); a :class:`LengthDistribution` draws
``(prompt, output)`` pairs. All draws come from the passed ``numpy.random.Generator`` and are integers >= 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from llmsched_gym.workloads._validate import require_int_at_least, require_positive
from llmsched_gym.workloads.loaders import iter_length_stats

IntArray = np.ndarray
"""A 1-D ``int64`` array of token counts."""

_MAX_REJECTION_ROUNDS = 1000


@runtime_checkable
class TokenDistribution(Protocol):
    """A distribution of one token count (prompt or output)."""

    def draw(self, size: int, rng: np.random.Generator) -> IntArray:
        """Draw ``size`` integer counts, each >= 1."""
        ...


@runtime_checkable
class LengthDistribution(Protocol):
    """A joint distribution of ``(prompt_len, output_len)``."""

    def draw(self, size: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
        """Draw ``size`` prompt lengths and ``size`` output lengths, each >= 1."""
        ...


@dataclass(frozen=True, slots=True)
class FixedTokens:
    """Always the same count.

    Attributes:
        value: The count (>= 1).
    """

    value: int

    def __post_init__(self) -> None:
        """Validate the value."""
        require_int_at_least("FixedTokens", "value", self.value, 1, "token counts are whole numbers >= 1")

    def draw(self, size: int, rng: np.random.Generator) -> IntArray:
        """Return ``size`` copies of ``value`` (draws nothing)."""
        del rng
        return np.full(size, self.value, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class UniformTokens:
    """Integers uniform on ``[low, high]``, both ends included.

    Attributes:
        low: Smallest count (>= 1).
        high: Largest count (>= ``low``).
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        """Validate the bounds."""
        require_int_at_least("UniformTokens", "low", self.low, 1, "token counts are whole numbers >= 1")
        require_int_at_least("UniformTokens", "high", self.high, self.low, "high must be >= low (both inclusive)")

    def draw(self, size: int, rng: np.random.Generator) -> IntArray:
        """Draw uniform integers on ``[low, high]``."""
        return rng.integers(self.low, self.high, size, endpoint=True, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class LognormalTokens:
    """Lognormal counts ``round(exp(N(mu, sigma**2)))`` clamped to ``[min_value, max_value]``.

    Use :meth:`from_mean_median` to specify the (unclamped) mean and median instead of ``mu``/``sigma``.

    Attributes:
        mu: Mean of the underlying normal (log of the median).
        sigma: Standard deviation of the underlying normal (>= 0).
        min_value: Lower clamp (>= 1).
        max_value: Upper clamp, or ``None`` for none.
    """

    mu: float
    sigma: float
    min_value: int = 1
    max_value: int | None = None

    def __post_init__(self) -> None:
        """Validate the parameters."""
        if not math.isfinite(self.mu):
            raise ValueError(f"LognormalTokens: mu={self.mu!r} must be finite (it is the log of the median)")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"LognormalTokens: sigma={self.sigma!r} must be a finite number >= 0")
        require_int_at_least("LognormalTokens", "min_value", self.min_value, 1, "token counts are >= 1")
        if self.max_value is not None:
            require_int_at_least(
                "LognormalTokens", "max_value", self.max_value, self.min_value, "max_value must be >= min_value"
            )

    @classmethod
    def from_mean_median(
        cls, mean: float, median: float, *, min_value: int = 1, max_value: int | None = None
    ) -> LognormalTokens:
        """Build from the mean and median of the unclamped lognormal (``mean >= median``).

        ``mu = ln(median)`` and ``sigma = sqrt(2 ln(mean / median))``.

        Raises:
            ValueError: ``median`` is not positive or ``mean < median``.
        """
        require_positive("LognormalTokens.from_mean_median", "median", median)
        if not (math.isfinite(mean) and mean >= median):
            raise ValueError(
                f"LognormalTokens.from_mean_median: mean={mean!r} must be >= median={median!r} "
                "(a lognormal's mean is never below its median)"
            )
        sigma = math.sqrt(2.0 * math.log(mean / median))
        return cls(math.log(median), sigma, min_value=min_value, max_value=max_value)

    def draw(self, size: int, rng: np.random.Generator) -> IntArray:
        """Draw clamped, rounded lognormal counts."""
        values = np.rint(rng.lognormal(self.mu, self.sigma, size))
        upper = np.inf if self.max_value is None else self.max_value
        return np.clip(values, self.min_value, upper).astype(np.int64)


@dataclass(frozen=True, slots=True)
class IndependentLengths:
    """Prompt and output drawn independently; optionally only pairs with ``prompt + output <= max_total``.

    The ``max_total`` cap works by rejection (redrawing removed pairs), which matches filtering a trace by total
    length (Sarathi-Serve's rule) rather than shrinking long requests.

    Attributes:
        prompt: Prompt-length distribution.
        output: Output-length distribution.
        max_total: Largest allowed ``prompt + output``, or ``None``.
    """

    prompt: TokenDistribution
    output: TokenDistribution
    max_total: int | None = None

    def __post_init__(self) -> None:
        """Validate the cap."""
        if self.max_total is not None:
            require_int_at_least("IndependentLengths", "max_total", self.max_total, 2, "use e.g. max_total=8192")

    @classmethod
    def fixed(cls, prompt: int, output: int) -> IndependentLengths:
        """Every request has the same ``prompt`` and ``output`` lengths (e.g. WAIT's p512d20)."""
        return cls(FixedTokens(prompt), FixedTokens(output))

    def draw(self, size: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
        """Draw ``size`` pairs, redrawing pairs over ``max_total``.

        Raises:
            ValueError: The cap rejects (almost) every pair, so no sample can be produced.
        """
        if self.max_total is None:
            return self.prompt.draw(size, rng), self.output.draw(size, rng)
        prompts: list[IntArray] = []
        outputs: list[IntArray] = []
        have = 0
        for _ in range(_MAX_REJECTION_ROUNDS):
            if have >= size:
                break
            p, o = self.prompt.draw(size, rng), self.output.draw(size, rng)
            keep = p + o <= self.max_total
            prompts.append(p[keep])
            outputs.append(o[keep])
            have += int(keep.sum())
        else:
            if have < size:
                raise ValueError(
                    f"IndependentLengths: max_total={self.max_total} rejects nearly every drawn pair; "
                    "raise max_total or shorten the length distributions"
                )
        return np.concatenate(prompts)[:size], np.concatenate(outputs)[:size]


@dataclass(frozen=True, slots=True, eq=False)
class EmpiricalLengths:
    """Pairs sampled uniformly with replacement from observed ``(prompt, output)`` pairs.

    Attributes:
        prompts: Observed prompt lengths (read-only ``int64`` array, each >= 1).
        outputs: Observed output lengths, aligned with ``prompts``.
    """

    prompts: IntArray
    outputs: IntArray

    def __post_init__(self) -> None:
        """Validate and freeze the arrays."""
        prompts = np.array(self.prompts, dtype=np.int64).reshape(-1)
        outputs = np.array(self.outputs, dtype=np.int64).reshape(-1)
        if prompts.size == 0 or prompts.size != outputs.size:
            raise ValueError(
                f"EmpiricalLengths: got {prompts.size} prompts and {outputs.size} outputs; "
                "pass the same non-zero number of each"
            )
        if prompts.min() < 1 or outputs.min() < 1:
            raise ValueError("EmpiricalLengths: every prompt and output length must be >= 1; filter zeros first")
        prompts.flags.writeable = False
        outputs.flags.writeable = False
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "outputs", outputs)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> EmpiricalLengths:
        """Build from an iterable of ``(prompt, output)`` pairs."""
        table = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
        return cls(table[:, 0], table[:, 1])

    @classmethod
    def from_length_stats_csv(cls, path: Path | str, *, max_total: int | None = None) -> EmpiricalLengths:
        """Load a Vidur/Sarathi length-stats CSV (``num_prefill_tokens,num_decode_tokens,...``).

        Args:
            path: The CSV file.
            max_total: If given, keep only pairs with ``prompt + output <= max_total``.

        Raises:
            TraceFormatError: The file is malformed (see :func:`~llmsched_gym.workloads.loaders.iter_length_stats`).
        """
        pairs = (pair for pair in iter_length_stats(path) if max_total is None or sum(pair) <= max_total)
        return cls.from_pairs(pairs)

    def __len__(self) -> int:
        """Number of observed pairs."""
        return int(self.prompts.size)

    def draw(self, size: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
        """Sample ``size`` observed pairs with replacement."""
        index = rng.integers(0, self.prompts.size, size)
        return self.prompts[index], self.outputs[index]
