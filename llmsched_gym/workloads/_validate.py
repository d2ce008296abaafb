"""Argument checks shared by the workload configs; each raises ``ValueError`` naming the value and the fix."""

from __future__ import annotations

import math
from numbers import Integral, Real


def require_positive(owner: str, name: str, value: float, hint: str = "") -> None:
    """Require a positive finite number.

    Raises:
        ValueError: ``value`` is not a positive finite number.
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not (math.isfinite(value) and value > 0):
        fix = f"; {hint}" if hint else ""
        raise ValueError(f"{owner}: {name}={value!r} must be a positive finite number{fix}")


def require_non_negative(owner: str, name: str, value: float, hint: str = "") -> None:
    """Require a finite number >= 0.

    Raises:
        ValueError: ``value`` is negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not (math.isfinite(value) and value >= 0):
        fix = f"; {hint}" if hint else ""
        raise ValueError(f"{owner}: {name}={value!r} must be a finite number >= 0{fix}")


def require_int_at_least(owner: str, name: str, value: int, low: int, hint: str = "") -> None:
    """Require an integer (not a bool) of at least ``low``.

    Raises:
        ValueError: ``value`` is not an integer or is below ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        fix = f"; {hint}" if hint else ""
        raise ValueError(f"{owner}: {name}={value!r} must be an integer >= {low}{fix}")


def require_stop(owner: str, n: int | None, duration: float | None) -> None:
    """Require a finite stopping rule for a generator: a request count, a duration, or both.

    Raises:
        ValueError: Neither is given, or one is invalid.
    """
    if n is None and duration is None:
        raise ValueError(f"{owner}: pass n (a request count) or duration (seconds); an unbounded stream never ends")
    if n is not None:
        require_int_at_least(owner, "n", n, 0)
    if duration is not None:
        require_non_negative(owner, "duration", duration)
