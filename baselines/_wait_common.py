"""WAIT's thresholds and shared pieces (Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320 v4, §3–§4).

Cap-mode thresholds (the experiments' rule, spec §10.2), fluid-mode thresholds from the fluid equilibrium
(Eq. 8–11), the release timeout of spec §10.4 and configuration checks shared by :mod:`baselines.wait` and
:mod:`baselines.nested_wait`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TypeSpec = tuple[float, float, float]
"""A request type: ``(prompt_len l_j, output_len l'_j, arrival rate λ_j)``."""

HOLDS = ("per-type", "all-types", "allowance", "none")
_MAX_ROUNDS = 1000


@dataclass(frozen=True, slots=True)
class FluidThresholds:
    """Fluid-mode thresholds and the fluid quantities behind them (paper Eq. 8–11).

    Attributes:
        n: Integer per-stage thresholds n_j.
        n_star: Fluid thresholds n*_j = λ_j ΔT*.
        m_star: Fluid memory M* = d0·A / (1 − d1·A) (tokens).
        m_pi: Memory of the integer thresholds M^π = Σ_j n_j S_j (tokens).
        delta_t: Fluid iteration time ΔT* = d0 / (1 − d1·A) (seconds).
    """

    n: tuple[int, ...]
    n_star: tuple[float, ...]
    m_star: float
    m_pi: float
    delta_t: float


def check_types(types: Sequence[TypeSpec]) -> None:
    if not types:
        raise ValueError("WAIT: the type table is empty; pass [(prompt_len, output_len, rate), ...]")
    for j, (p, o, lam) in enumerate(types):
        if p < 0 or o < 1 or lam < 0 or not all(math.isfinite(x) for x in (p, o, lam)):
            raise ValueError(f"WAIT: type {j} = {(p, o, lam)} needs prompt_len >= 0, output_len >= 1, rate >= 0")
    if not any(lam > 0 for _, _, lam in types):
        raise ValueError("WAIT: every type has rate 0; give at least one type a positive arrival rate")


def cap_thresholds(types: Sequence[TypeSpec], tl: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Cap-mode thresholds (spec §10.2, code ``booking_limit``).

    Args:
        types: Type table ``(l_j, l'_j, λ_j)``.
        tl: System-wide cap on concurrent requests.

    Returns:
        Per-stage thresholds n_j = max(1, floor(L_j / (l'_j + 1))) and the type budgets L_j.
    """
    check_types(types)
    weights = [lam * (o + 1) for _, o, lam in types]
    total = sum(weights)
    budgets = tuple(tl * w / total for w in weights)
    n = tuple(max(1, math.floor(b / (o + 1) + 1e-9)) for b, (_, o, _) in zip(budgets, types, strict=True))
    return n, budgets


def _fixed_point(n: list[int], lam: list[float], s: list[float], d0: float, d1: float, m_star: float) -> list[int]:
    """Raise n_j to ceil(λ_j (d0 + d1 M^π)) until stable (spec §10.2 step 2)."""
    for _ in range(_MAX_ROUNDS):
        m_pi = sum(k * x for k, x in zip(n, s, strict=True))
        new = [max(k, math.ceil(x * (d0 + d1 * m_pi) - 1e-12)) for k, x in zip(n, lam, strict=True)]
        if new == n:
            return n
        n = new
    raise ValueError(
        f"fluid_thresholds: thresholds did not converge in {_MAX_ROUNDS} rounds (M*={m_star:.6g}); use thresholds='cap'"
    )


def fluid_thresholds(
    types: Sequence[TypeSpec], d0: float, d1: float, capacity_tokens: float, slack: bool = False
) -> FluidThresholds:
    """Fluid-mode thresholds (paper §3–§4, Eq. 8–11; spec §10.2 algorithm).

    S_j = (l'_j + 1)(l_j + l'_j / 2), A = Σ λ_j S_j, ΔT* = d0 / (1 − d1 A), M* = d0 A / (1 − d1 A), n*_j = λ_j ΔT*.
    Starting from ceil(n*_j), n_j ← max(n_j, ceil(λ_j (d0 + d1 M^π))) until stable (at most 1000 rounds), with
    M^π = Σ n_j S_j; ``slack`` then adds 1 to every n_j of a type with positive rate.

    Args:
        types: Type table ``(l_j, l'_j, λ_j)`` (tokens, tokens, requests per second).
        d0: Iteration-time intercept (seconds).
        d1: Iteration time per KV token in the batch (seconds).
        capacity_tokens: KV memory C in tokens.
        slack: Add 1 to each threshold (strict inequality in Eq. 11).

    Returns:
        The thresholds and fluid quantities.

    Raises:
        ValueError: d1·A >= 1 (no fluid equilibrium), the rounds do not converge, or M^π > C.
    """
    check_types(types)
    if d0 < 0 or d1 < 0:
        raise ValueError(f"fluid_thresholds: d0={d0} and d1={d1} must be >= 0 (fit them with the affine_kv model)")
    s = [(o + 1) * (p + o / 2) for p, o, _ in types]
    lam = [t[2] for t in types]
    a = sum(x * y for x, y in zip(lam, s, strict=True))
    if d1 * a >= 1:
        raise ValueError(f"fluid_thresholds: d1·A = {d1 * a:.4g} >= 1, no fluid equilibrium; lower the load or use cap")
    delta_t = d0 / (1 - d1 * a)
    m_star = d0 * a / (1 - d1 * a)
    n_star = tuple(x * delta_t for x in lam)
    n = _fixed_point([math.ceil(x - 1e-12) for x in n_star], lam, s, d0, d1, m_star)
    if slack:
        n = [k + 1 if x > 0 else k for k, x in zip(n, lam, strict=True)]
    m_pi = float(sum(k * x for k, x in zip(n, s, strict=True)))
    if m_pi > capacity_tokens:
        raise ValueError(
            f"fluid_thresholds: M^π={m_pi:.6g} exceeds C={capacity_tokens} (M*={m_star:.6g}); "
            "lower the load, add memory or use thresholds='cap'"
        )
    return FluidThresholds(tuple(n), n_star, m_star, m_pi, delta_t)


class ReleaseClock:
    """The release timeout of spec §10.4: time the server has been holding (since it went idle with work).

    Args:
        timeout: Seconds of holding before a release batch; ``None`` = never (pure paper rule).
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.since: float | None = None

    def reset(self) -> None:
        """A batch was formed, or there is no work: the next hold starts a fresh timer."""
        self.since = None

    def due(self, now: float) -> bool:
        """Whether a held scheduler must release now (the first hold after a batch starts the timer)."""
        if self.since is None:
            self.since = now
        return self.timeout is not None and now >= self.since + self.timeout

    @property
    def deadline(self) -> float | None:
        """When the current hold ends (the idle plan's ``wake_at``)."""
        if self.timeout is None or self.since is None:
            return None
        return self.since + self.timeout


def check_restart_mode(owner: str, mode: str) -> None:
    """Raise ValueError unless ``mode`` is an engine restart mode."""
    if mode not in ("recompute", "full"):
        raise ValueError(f"{owner}: restart_mode={mode!r} must be 'recompute' or 'full' (paper presets use 'full')")


def check_timeout(owner: str, timeout: float | None) -> None:
    """Raise ValueError unless ``timeout`` is None or positive and finite."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"{owner}: release_timeout_s={timeout} must be positive or None (pure paper rule)")
