"""Exact hindsight optimum of MC-SF's scheduling model for tiny instances (pure Python).

Paper: Jaillet et al., "Online Scheduling for LLM Inference with KV Cache Constraints", arXiv 2502.07115 v5: the
benchmark is the hindsight integer program in start indicators with a per-round memory constraint, solved with
Gurobi there. Spec: ``docs/specs/baselines.md`` §12.1 and §13.5, which asks for "a small exact solver (IP or
exhaustive search for tiny n)" in ``unit`` cost mode, with no solver dependency.

Model (unit rounds, one worker, memory M tokens): request i arrives at integer round a_i with prompt s_i and
output o_i. Once started at round t it runs rounds t … t + o_i − 1 without interruption, holds s_i + j tokens in
its j-th round, and completes at time t + o_i. Objective: total latency Σ (t_i + o_i − a_i). In the engine, this
is a request with prompt s_i + 1 on a pool of M blocks of size 1 under the unit cost model, because there the
prefill round holds the prompt and emits the first token.

Method: exact dynamic programming over rounds. A state is (round, unstarted set, running set with progress). Each
round it tries every subset of the arrived unstarted requests to start now. It keeps a subset only if the running
set it creates fits memory now and at every future completion instant; running requests cannot be preempted, and
a footprint only grows between completions. Total latency = Σ o_i + Σ over rounds of the number of arrived,
unstarted requests. After the last arrival the problem is shift-invariant, so memo keys drop the round. Rounds in
which nothing can start are skipped at once. Branch and bound prunes with two lower bounds: each request's earliest
feasible start beside the running set, and a preemptive token-round (area) relaxation. It is checked against
brute force in the tests. On the spec's instances (M ~ U[30, 50], s ~ U[1, 5], o ~ U[1, M − s]) one solve takes
about 0.07 s for n = 5, 0.4 s for n = 6 and 1.5 s for n = 7; the cost grows quickly after that (``MAX_N`` = 8).

Deviations: none from the model. Infeasible instances (some s_i + o_i > M) raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_N = 8

Running = tuple[tuple[int, int], ...]
"""Running requests as sorted ``(index, rounds done)`` pairs."""


@dataclass(frozen=True, slots=True)
class TinyInstance:
    """A tiny MC-SF instance.

    Attributes:
        prompts: Prompt sizes s_i (tokens, >= 0).
        outputs: Output lengths o_i (rounds, >= 1).
        memory: Memory M (tokens).
        arrivals: Integer arrival rounds a_i; ``None`` = all at round 0.
    """

    prompts: tuple[int, ...]
    outputs: tuple[int, ...]
    memory: int
    arrivals: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Validate sizes and that each request fits memory alone."""
        n = len(self.prompts)
        if not 1 <= n <= MAX_N or len(self.outputs) != n:
            raise ValueError(f"TinyInstance: need 1..{MAX_N} requests with matching prompts/outputs, got {n}")
        if self.arrivals is not None and (len(self.arrivals) != n or min(self.arrivals) < 0):
            raise ValueError(f"TinyInstance: arrivals={self.arrivals} must be {n} integers >= 0")
        for i, (s, o) in enumerate(zip(self.prompts, self.outputs, strict=True)):
            if s < 0 or o < 1 or s + o > self.memory:
                raise ValueError(f"TinyInstance: request {i} (s={s}, o={o}) must have s >= 0, o >= 1, s + o <= M")


@dataclass(frozen=True, slots=True)
class OptimalSchedule:
    """The optimum of a :class:`TinyInstance`.

    Attributes:
        total_latency: Σ (completion − arrival).
        starts: Start round of every request.
    """

    total_latency: int
    starts: tuple[int, ...]

    @property
    def average_latency(self) -> float:
        """Mean latency."""
        return self.total_latency / len(self.starts)


class _Solver:
    """Depth-first branch and bound over rounds with a memo of exact values and lower bounds."""

    def __init__(self, inst: TinyInstance) -> None:
        self.s = inst.prompts
        self.o = inst.outputs
        self.m = inst.memory
        self.a = inst.arrivals or (0,) * len(inst.prompts)
        self.last = max(self.a)
        self.memo: dict[tuple[int, int, Running], tuple[int, bool, int]] = {}  # value, exact, move
        self._orders: dict[tuple[int, ...], list[int]] = {}

    def _profile(self, running: Running) -> list[int]:
        """g[u] = memory of ``running`` in round u from now, plus u."""
        s, o = self.s, self.o
        h = max((o[i] - j for i, j in running), default=0)
        g = list(range(h))
        for i, j in running:
            base = s[i] + j + 1
            for u in range(o[i] - j):
                g[u] += base + u
        return g

    def _earliest(self, i: int, d0: int, g: list[int]) -> int:
        """Earliest offset >= d0 at which request i fits beside the running set (profile ``g``)."""
        o, room, h = self.o[i], self.m - self.s[i] - 1, len(g)
        d = d0
        while d < h and max(g[d : min(d + o, h)]) > room + d:
            d += 1
        return d

    def _area_bound(self, idx: list[int], est: dict[int, int], g: list[int]) -> int:
        """Σ_k max(T_k, L_[k]) − Σ o: T_k from the preemptive token-round relaxation, L = est + o."""
        s, o, m = self.s, self.o, self.m
        areas = sorted(o[i] * s[i] + o[i] * (o[i] + 1) // 2 for i in idx)
        lows = sorted(est[i] + o[i] for i in idx)
        total, t, cum, need = 0, 0, 0, 0
        for k, area in enumerate(areas):
            need += area
            while cum < need:
                cum += m - (g[t] - t if t < len(g) else 0)
                t += 1
            total += max(t, lows[k])
        return total - sum(o[i] for i in idx)

    def _fits(self, running: Running) -> bool:
        s, o = self.s, self.o
        for end in {o[i] - j - 1 for i, j in running}:
            if sum(s[i] + j + 1 + end for i, j in running if o[i] - j - 1 >= end) > self.m:
                return False
        return True

    def _subsets(self, avail: tuple[int, ...]) -> list[int]:
        """Subset masks of ``avail`` (indices into it), most starts and shortest outputs first."""
        order = self._orders.get(avail)
        if order is None:
            order = sorted(
                range(1 << len(avail)),
                key=lambda b: (-b.bit_count(), sum(self.o[avail[k]] for k in range(len(avail)) if b >> k & 1)),
            )
            self._orders[avail] = order
        return order

    def value(self, r: int, mask: int, running: Running, budget: int) -> int:
        """Exact minimum future waiting rounds if below ``budget``, else a lower bound >= ``budget``."""
        if mask == 0:
            return 0
        key = (min(r, self.last), mask, running)
        hit = self.memo.get(key)
        if hit is not None and (hit[1] or hit[0] >= budget):
            return hit[0]
        g = self._profile(running)
        n = len(self.s)
        idx = [i for i in range(n) if mask >> i & 1]
        est = {i: self._earliest(i, max(self.a[i] - r, 0), g) for i in idx}
        lb = sum(est[i] - max(self.a[i] - r, 0) for i in idx)
        if r >= self.last:
            lb = max(lb, self._area_bound(idx, est, g))
        if hit is not None:
            lb = max(lb, hit[0])
        if lb >= budget:
            self.memo[key] = (lb, False, 0)
            return lb
        jump = min(est.values())
        if jump > 0:
            return self._jump(r, mask, running, jump, budget)
        avail = tuple(i for i in idx if self.a[i] <= r)
        best, best_bits, bound = budget, 0, 1 << 60
        for sub in self._subsets(avail):
            started = [avail[k] for k in range(len(avail)) if sub >> k & 1]
            if any(est[i] for i in started) or (not started and not running and avail and r >= self.last):
                continue
            new = tuple(sorted(running + tuple((i, 0) for i in started)))
            if len(started) > 1 and not self._fits(new):
                continue
            bits = sum(1 << i for i in started)
            cost = len(avail) - len(started)
            val = cost + self.value(r + 1, mask & ~bits, self._advance(new), best - cost)
            if val < best:
                best, best_bits = val, bits
            bound = min(bound, val)
        exact = best < budget
        self.memo[key] = (best if exact else max(lb, bound), exact, best_bits)
        return best if exact else max(lb, bound)

    def _jump(self, r: int, mask: int, running: Running, jump: int, budget: int) -> int:
        """Nothing can start before r + jump: take those forced idle rounds at once."""
        cost = sum(max(jump - self.a[i] + r, 0) if self.a[i] > r else jump for i in range(len(self.s)) if mask >> i & 1)
        val = cost + self.value(r + jump, mask, self._advance(running, jump), budget - cost)
        self.memo[(min(r, self.last), mask, running)] = (val, val < budget, -jump)
        return val

    def _advance(self, running: Running, d: int = 1) -> Running:
        return tuple((i, j + d) for i, j in running if j + d < self.o[i])

    def starts(self) -> tuple[int, ...]:
        """Re-walk the memo from the initial state to recover start rounds."""
        out = [-1] * len(self.s)
        r, mask = 0, (1 << len(self.s)) - 1
        running: Running = ()
        while mask:
            bits = self.memo[(min(r, self.last), mask, running)][2]
            if bits < 0:
                running, r = self._advance(running, -bits), r - bits
                continue
            started = [i for i in range(len(self.s)) if bits >> i & 1]
            for i in started:
                out[i] = r
            running = self._advance(tuple(sorted(running + tuple((i, 0) for i in started))))
            mask &= ~bits
            r += 1
        return tuple(out)


def solve_optimal(inst: TinyInstance) -> OptimalSchedule:
    """Exact minimum total latency of ``inst`` and an optimal start schedule.

    Args:
        inst: The instance (at most :data:`MAX_N` requests).

    Returns:
        The optimal total latency and start rounds.
    """
    solver = _Solver(inst)
    waiting = solver.value(0, (1 << len(inst.prompts)) - 1, (), 1 << 60)
    starts = solver.starts()
    return OptimalSchedule(waiting + sum(inst.outputs), starts)


def schedule_latency(inst: TinyInstance, starts: Sequence[int]) -> int:
    """Total latency of a start schedule, after checking it is feasible (ValueError otherwise).

    Args:
        inst: The instance.
        starts: Start round of every request.

    Returns:
        Σ (start + o − a).
    """
    a = inst.arrivals or (0,) * len(starts)
    if any(t < x for t, x in zip(starts, a, strict=True)):
        raise ValueError(f"schedule_latency: starts={tuple(starts)} start a request before it arrives ({a})")
    horizon = max(t + o for t, o in zip(starts, inst.outputs, strict=True))
    for r in range(horizon):
        used = sum(s + r - t + 1 for s, o, t in zip(inst.prompts, inst.outputs, starts, strict=True) if t <= r < t + o)
        if used > inst.memory:
            raise ValueError(f"schedule_latency: round {r} uses {used} tokens > M={inst.memory}")
    return sum(t + o - x for t, o, x in zip(starts, inst.outputs, a, strict=True))
