"""Nested WAIT's configuration and segment thresholds (WAIT paper, arXiv 2504.11320 v4, §5, §6, App. A.2).

Segments, calibrated / fluid / reference-code thresholds and the drift terms; used by
:mod:`baselines.nested_wait`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from baselines._wait_common import check_restart_mode, check_timeout

MODES = ("calibrated", "fluid", "code")


def _half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


@dataclass(frozen=True, slots=True)
class NestedWAITConfig:
    """Nested WAIT parameters (spec §11 table).

    Attributes:
        thresholds: ``"calibrated"`` (paper experiments), ``"fluid"`` (theory) or ``"code"`` (reference code).
        tl: Total cap (calibrated and code modes).
        num_segments: L, equal-width segments of the horizon (ignored with ``boundaries``).
        boundaries: Explicit r_1 < … < r_L; ``None`` = equal width.
        horizon: r_L; ``None`` = the distribution's largest length (512 without a distribution).
        eta: Margin on continuation probabilities.
        output_dist: Output-length distribution ``((length, weight), ...)``; ``None`` = uniform on 1..horizon.
        release_timeout_s: Release timeout; ``None`` = pure paper rule.
        capacity_tokens: Memory C of the repair and fluid modes; ``None`` = the KV pool.
        d0: Iteration-time intercept (fluid mode, buffer check).
        d1: Iteration time per KV token (fluid mode).
        arrival_rate: Total arrival rate Λ_1 (fluid mode).
        prompt_len: Prompt length l (segment-wise maximum for heterogeneous prompts; fluid mode, buffer check).
        restart_mode: Engine restart mode on eviction.
    """

    thresholds: str = "calibrated"
    tl: int = 64
    num_segments: int = 3
    boundaries: tuple[int, ...] | None = None
    horizon: int | None = None
    eta: float = 0.05
    output_dist: tuple[tuple[int, float], ...] | None = None
    release_timeout_s: float | None = 1.0
    capacity_tokens: int | None = None
    d0: float | None = None
    d1: float | None = None
    arrival_rate: float | None = None
    prompt_len: float | None = None
    restart_mode: str = "recompute"

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.thresholds not in MODES:
            raise ValueError(f"NestedWAITConfig: thresholds={self.thresholds!r} must be one of {', '.join(MODES)}")
        if self.tl < 1 or self.num_segments < 1:
            raise ValueError(f"NestedWAITConfig: tl={self.tl} and num_segments={self.num_segments} must be >= 1")
        b = self.boundaries
        if b is not None and (not b or b[0] < 1 or any(x >= y for x, y in pairwise(b))):
            raise ValueError(f"NestedWAITConfig: boundaries={b} must be strictly increasing integers >= 1")
        if self.horizon is not None and self.horizon < self.num_segments:
            raise ValueError(f"NestedWAITConfig: horizon={self.horizon} must be >= num_segments={self.num_segments}")
        if not 0.0 <= self.eta < 1.0:
            raise ValueError(f"NestedWAITConfig: eta={self.eta} must be in [0, 1) (paper: 0.05)")
        dist = self.output_dist
        if dist is not None and (not dist or any(n < 1 or w < 0 for n, w in dist) or sum(w for _, w in dist) <= 0):
            raise ValueError("NestedWAITConfig: output_dist must be ((length >= 1, weight >= 0), ...), total > 0")
        check_timeout("NestedWAITConfig", self.release_timeout_s)
        if self.capacity_tokens is not None and self.capacity_tokens < 1:
            raise ValueError(f"NestedWAITConfig: capacity_tokens={self.capacity_tokens} must be >= 1 or None")
        needs = (self.d0, self.d1, self.arrival_rate, self.prompt_len)
        if self.thresholds == "fluid" and any(x is None or x < 0 for x in needs):
            raise ValueError("NestedWAITConfig: thresholds='fluid' needs d0, d1, arrival_rate, prompt_len >= 0")
        check_restart_mode("NestedWAITConfig", self.restart_mode)

    def bounds(self) -> tuple[int, ...]:
        """Segment boundaries r_1 < … < r_L."""
        if self.boundaries is not None:
            return self.boundaries
        h = self.horizon or (max(n for n, _ in self.output_dist) if self.output_dist else 512)
        if h < self.num_segments:
            raise ValueError(f"NestedWAITConfig: horizon {h} is shorter than num_segments={self.num_segments}")
        return tuple(_half_up(k * h / self.num_segments) for k in range(1, self.num_segments + 1))

    def survival(self, r: int) -> float:
        """P(output > r) under the configured distribution."""
        if self.output_dist is None:
            h = self.bounds()[-1]
            return min(1.0, max(0.0, (h - r) / h))
        total = sum(w for _, w in self.output_dist)
        return sum(w for n, w in self.output_dist if n > r) / total


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """Segment boundaries and integer caps.

    Attributes:
        bounds: r_1 < … < r_L.
        p: Continuation probabilities p_k, k = 2..L.
        n: Real per-stage thresholds n_k.
        caps: Per-stage caps of every segment.
        gates: Entry threshold of every segment (0 = bypassed).
        budgets: Segment caps B_k = round(Δ_k n_k); code mode: floor(L_k).
        remain: Code mode: cap each entry stage by remain_k = floor(L_k) − occupied_k.
    """

    bounds: tuple[int, ...]
    p: tuple[float, ...]
    n: tuple[float, ...]
    caps: tuple[tuple[int, ...], ...]
    gates: tuple[int, ...]
    budgets: tuple[int, ...]
    remain: bool = False

    def start(self, k: int) -> int:
        """First stage of segment ``k`` (0-based)."""
        return 0 if k == 0 else self.bounds[k - 1]

    def segment(self, g: int) -> int:
        """Segment (0-based) of stage ``g``; beyond r_L it is the last."""
        return min(bisect_right(self.bounds, g), len(self.bounds) - 1)

    def cap(self, g: int) -> int:
        """Cap of stage ``g``."""
        caps = self.caps[self.segment(g)]
        return caps[min(g - self.start(self.segment(g)), len(caps) - 1)]


def _spread(n: Sequence[float], widths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Integer per-stage caps summing to round(Δ_k n_k) per segment, as evenly as possible.

    The larger caps go to a segment's *last* stages so caps never decrease inside a segment: requests
    do not leave mid-segment, so a stage with a smaller cap than the one before it would let a queue
    pile up there (admissions outrunning the later stages) until KV runs out.
    """
    out = []
    for nk, d in zip(n, widths, strict=True):
        b = _half_up(d * nk)
        out.append(tuple(max(1, b // d + (i >= d - b % d)) for i in range(d)))
    return tuple(out)


def build_plan(cfg: NestedWAITConfig, capacity_tokens: float | None = None) -> SegmentPlan:
    """Segment caps for ``cfg`` (``capacity_tokens`` = C for fluid mode when the config has none)."""
    bounds = cfg.bounds()
    widths = [r - s for r, s in zip(bounds, (0, *bounds[:-1]), strict=True)]
    surv = [cfg.survival(r) for r in (0, *bounds)]
    p = tuple(surv[k] / surv[k - 1] if surv[k - 1] > 0 else 0.0 for k in range(1, len(bounds)))
    if cfg.thresholds == "code":
        lam = surv[: len(bounds)]
        total = sum(d * x for d, x in zip(widths, lam, strict=True))
        budgets = [cfg.tl * d * x / total for d, x in zip(widths, lam, strict=True)]
        n_int = [max(1, math.ceil(b / d - 1e-9)) for b, d in zip(budgets, widths, strict=True)]
        caps = tuple((k,) * d for k, d in zip(n_int, widths, strict=True))
        gates = (0, *n_int[1:])
        floor_b = tuple(math.floor(b + 1e-9) for b in budgets)
        n_real = tuple(b / d for b, d in zip(budgets, widths, strict=True))
        return SegmentPlan(bounds, p, n_real, caps, gates, floor_b, remain=True)
    q = [min(x + cfg.eta, 0.99) for x in p]
    c = [math.prod(q[:k]) for k in range(len(bounds))]
    if cfg.thresholds == "fluid":
        n1 = _fluid_n1(cfg, bounds, p, q, c, capacity_tokens)
    else:
        n1 = cfg.tl / sum(d * ck for d, ck in zip(widths, c, strict=True))
    n = tuple(n1 * ck for ck in c)
    caps = _spread(n, widths)
    seg_budgets = tuple(_half_up(d * nk) for d, nk in zip(widths, n, strict=True))
    return SegmentPlan(bounds, p, n, caps, tuple(seg[0] for seg in caps), seg_budgets)


def paper_terms(bounds: Sequence[int], prompt: float) -> list[float]:
    """(l + s̄_k)·δ_k per segment with the paper's δ_1 = r_1 + 1 and s̄ (Eq. 16)."""
    out = [(prompt + bounds[0] / 2) * (bounds[0] + 1)]
    for a, b in pairwise(bounds):
        out.append((prompt + (a + 1 + b) / 2) * (b - a))
    return out


def _fluid_n1(
    cfg: NestedWAITConfig,
    bounds: Sequence[int],
    p: Sequence[float],
    q: Sequence[float],
    c: Sequence[float],
    capacity: float | None,
) -> float:
    assert cfg.d0 is not None and cfg.d1 is not None and cfg.arrival_rate is not None and cfg.prompt_len is not None
    for k, (pk, qk) in enumerate(zip(p, q, strict=True), start=2):
        if not pk < qk < 1:
            raise ValueError(f"NestedWAIT fluid: need p_{k}={pk:.4g} < n_{k}/n_{k - 1}={qk:.4g} < 1; raise eta")
    w = sum(ck * t for ck, t in zip(c, paper_terms(bounds, cfg.prompt_len), strict=True))
    lam = cfg.arrival_rate
    if lam * cfg.d1 * w >= 1:
        raise ValueError(f"NestedWAIT fluid: Λ_1·d1·W = {lam * cfg.d1 * w:.4g} >= 1, no stable thresholds")
    n1 = (1 + cfg.eta) * lam * cfg.d0 / (1 - lam * cfg.d1 * w)
    cap = cfg.capacity_tokens or capacity
    if cap is not None and n1 * w > cap:
        raise ValueError(f"NestedWAIT fluid: M^π={n1 * w:.6g} exceeds C={cap}; use thresholds='calibrated'")
    return n1


def theta_root(n_prev: float, n_k: float, p_k: float) -> float:
    """Positive root of -θ n_k + n_prev·ln(1 − p + p e^θ) = 0 (inf when none exists)."""

    def f(t: float) -> float:
        return -t * n_k + n_prev * math.log1p(p_k * math.expm1(t))

    if n_k >= n_prev or p_k <= 0:
        return math.inf
    hi = 1.0
    while f(hi) <= 0:
        hi *= 2
    lo = 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) <= 0 else (lo, mid)
    return hi


Groups = dict[int, list[int]]
"""Resident requests by stage g, in admission order."""
