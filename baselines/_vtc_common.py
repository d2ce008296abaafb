"""Shared pieces of the VTC family (Sheng et al., OSDI'24).

Per-client queues with virtual token counters and the counter lift (Algorithm 2), service charging,
and the worst-case memory check of the S-LoRA runtime. Used by :mod:`baselines.vtc` and
:mod:`baselines.vtc_chunked`.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.view import EngineView

PROFILE_COEFFS = (0.21001891, 0.10075395, 0.0039868, 0.00324733, 1.14601454)
"""Artifact ``req_queue.py::cost_func_profile`` (paper App. B.2 scaled by 1/10): a, b, c, d, e of
``h = a·n_p + b·n_q + c·n_p·n_q + d·n_q² + e``."""
LIFTS = ("paper", "code", "none")
_EMPTY = np.zeros(0, dtype=np.int64)


def check_fair_options(where: str, lift: str, cost: str, w_p: float, w_q: float) -> None:
    """Validate the options VTC and VTC-chunked share; raise ``ValueError`` naming the fix."""
    if lift not in LIFTS:
        raise ValueError(f"{where}: lift={lift!r} must be 'paper' (Alg. 2), 'code' (artifact) or 'none' (LCF)")
    if cost not in ("linear", "profile"):
        raise ValueError(f"{where}: cost={cost!r} must be 'linear' or 'profile' (App. B.2)")
    if not (w_p >= 0 and w_q >= 0 and w_p + w_q > 0):
        raise ValueError(f"{where}: w_p={w_p}, w_q={w_q} must be >= 0 and not both 0 (paper: 1 and 2)")


class ClientQueues:
    """Per-client FIFOs of waiting request ids with VTC counters and the counter lift (§9.2).

    Args:
        lift: ``"paper"``, ``"code"`` or ``"none"``.
        ordering: ``"vtc"`` (minimum counter, ties to the client seen first) or ``"fcfs"`` (oldest head).
    """

    def __init__(self, lift: str = "paper", ordering: str = "vtc") -> None:
        self.lift, self.ordering = lift, ordering
        self.counters: dict[int, float] = {}  # insertion order = first seen
        self.rank: dict[int, int] = {}
        self.waiting: dict[int, deque[int]] = {}  # only clients with waiting requests
        self.last_left: int | None = None
        self._n = 0

    def clear(self) -> None:
        """Forget every client, counter and request."""
        self.counters.clear()
        self.rank.clear()
        self.waiting.clear()
        self.last_left = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _see(self, client: int) -> None:
        if client not in self.counters:
            self.counters[client] = 0.0
            self.rank[client] = len(self.rank)

    def arrive(self, client: int, rid: int) -> None:
        """Queue an arriving request, lifting its client's counter first if it had nothing waiting."""
        self._see(client)
        q = self.waiting.get(client)
        if q is None:
            self._lift(client)
            q = self.waiting[client] = deque()
        q.append(rid)
        self._n += 1

    def _lift(self, client: int) -> None:
        if self.lift == "none":
            return
        if self.waiting:
            floor = min(self.counters[c] for c in self.waiting)
        elif self.lift == "paper" and self.last_left is not None:
            floor = self.counters[self.last_left]
        else:
            return
        self.counters[client] = max(self.counters[client], floor)

    def push_front(self, client: int, rids: list[int]) -> None:
        """Return requests to the front of their client's queue (first of ``rids`` ends up first)."""
        self._see(client)
        self.waiting.setdefault(client, deque()).extendleft(reversed(rids))
        self._n += len(rids)

    def pick(self) -> int | None:
        """The client to serve next, or ``None`` when nothing waits."""
        if not self.waiting:
            return None
        if self.ordering == "fcfs":
            return min(self.waiting, key=lambda c: self.waiting[c][0])
        return min(self.waiting, key=lambda c: (self.counters[c], self.rank[c]))

    def pop(self, client: int) -> int:
        """Dispatch the oldest request of ``client``; the client leaves the queue with its last one."""
        q = self.waiting[client]
        rid = q.popleft()
        self._n -= 1
        if not q:
            del self.waiting[client]
            self.last_left = client
        return rid

    def add(self, clients: IntArray, amounts: FloatArray | None = None, scale: float = 1.0) -> None:
        """Add ``scale`` times each row's amount (default 1) to its client's counter."""
        if clients.size == 1:
            self.counters[int(clients[0])] += scale * (1.0 if amounts is None else float(amounts[0]))
            return
        sums = np.bincount(clients, weights=amounts)
        for c in np.flatnonzero(sums).tolist():
            self.counters[c] += scale * float(sums[c])


class ServiceCharger:
    """What each request has been charged, as its prompt high-water mark and emitted tokens.

    A request's cumulative charge is ``[hw > 0]·h(hw, pred) + h(p, max(e - 1, pred)) - h(p, pred)``
    (``e`` emitted tokens, ``e >= 1``), divided by its weight when ``weighted``, minus the completion
    refund. Charging is monotone in ``hw`` and ``e``: re-prefill after a preemption is never charged.

    Args:
        cost: ``"linear"`` or ``"profile"``.
        w_p: Price of a prompt token (linear cost).
        w_q: Price of an output token (linear cost).
        weighted: Divide charges by the request's weight.
        predicts: Whether predictions (``pred``) will be set; without them linear decode charges are counted.
    """

    def __init__(
        self, cost: str = "linear", w_p: float = 1.0, w_q: float = 2.0, weighted: bool = False, predicts: bool = False
    ) -> None:
        self.cost, self.w_p, self.w_q, self.weighted, self.predicts = cost, w_p, w_q, weighted, predicts
        self.clear()

    def clear(self) -> None:
        """Forget every request."""
        self.hw, self.units, self.pred = _EMPTY.copy(), _EMPTY.copy(), _EMPTY.copy()

    def ensure(self, n: int) -> None:
        """Make room for request ids below ``n``."""
        self.hw, self.units, self.pred = grown(self.hw, n), grown(self.units, n), grown(self.pred, n)

    def h(self, x: np.ndarray, y: np.ndarray) -> FloatArray:
        """The cost ``h(n_p, n_q)`` (vectorised)."""
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        if self.cost == "linear":
            out: FloatArray = self.w_p * xf + self.w_q * yf
            return out
        a, b, c, d, e = PROFILE_COEFFS
        prof: FloatArray = a * xf + b * yf + c * xf * yf + d * yf * yf + e
        return prof

    def _total(self, p: IntArray, hw: IntArray, e: IntArray, pred: IntArray) -> FloatArray:
        if self.cost == "linear":  # hw, e, pred >= 0: [hw > 0]·pred = min(hw, 1)·pred
            lin: FloatArray = self.w_p * hw + self.w_q * (np.minimum(hw, 1) * pred + np.maximum(e - 1 - pred, 0))
            return lin
        prompt = np.where(hw > 0, self.h(hw, pred), 0.0)
        decode = np.where(e >= 1, self.h(p, np.maximum(e - 1, pred)) - self.h(p, pred), 0.0)
        out: FloatArray = prompt + decode
        return out

    def charge_to(self, view: EngineView, ids: IntArray, hw: IntArray, units: IntArray, queues: ClientQueues) -> None:
        """Raise the charged state of ``ids`` to at least ``(hw, units)`` and charge the difference."""
        if ids.size == 0:
            return
        p, pred = view.prompt[ids], self.pred[ids]
        old_hw, old_e = self.hw[ids], self.units[ids]
        new_hw, new_e = np.maximum(old_hw, hw), np.maximum(old_e, units)
        delta = self._total(p, new_hw, new_e, pred) - self._total(p, old_hw, old_e, pred)
        self.hw[ids], self.units[ids] = new_hw, new_e
        if self.weighted:
            delta = delta / view.weight[ids]
        if np.any(delta != 0.0):
            queues.add(view.client[ids], delta)

    def charge_plan(self, view: EngineView, ids: IntArray, n: IntArray, queues: ClientQueues) -> None:
        """Charge what one iteration of ``{ids: n}`` serves: new prompt tokens and the token it emits."""
        comp, gen, p = view.computed[ids], view.generated[ids], view.prompt[ids]
        samples = n == p + gen - comp
        self.charge_to(view, ids, np.minimum(comp + n, p), np.where(samples, gen + 1, view.emitted[ids]), queues)

    def charge_decodes(self, view: EngineView, ids: IntArray, k: int, queues: ClientQueues) -> None:
        """Charge ``k`` more decode steps of each of ``ids`` (rows whose charge is up to date)."""
        if self.cost != "linear" or self.predicts:
            self.charge_to(view, ids, self.hw[ids], self.units[ids] + k, queues)
            return
        self.units[ids] += k
        queues.add(view.client[ids], 1.0 / view.weight[ids] if self.weighted else None, self.w_q * k)

    def charge_actual(self, view: EngineView, ids: IntArray, queues: ClientQueues) -> None:
        """Charge the progress the view shows beyond what was charged (fast-forwarded stretches)."""
        self.charge_to(view, ids, np.minimum(view.computed[ids], view.prompt[ids]), view.emitted[ids], queues)

    def close(self, view: EngineView, finished: tuple[int, ...], queues: ClientQueues) -> list[int]:
        """Refund over-predicted output of newly finished requests; returns the ids closed now (once each)."""
        fresh = [r for r in finished if self.pred[r] >= 0]
        if not fresh:
            return fresh
        ids = np.asarray(fresh, dtype=np.int64)
        o, pred, p = view.emitted[ids], self.pred[ids], view.prompt[ids]
        self.pred[ids] = -1  # closed
        delta = np.where(o < pred, self.h(p, o) - self.h(p, pred), 0.0)
        if self.weighted:
            delta = delta / view.weight[ids]
        if np.any(delta != 0.0):
            queues.add(view.client[ids], delta)
        return fresh


def grown(arr: IntArray, n: int) -> IntArray:
    """``arr`` zero-padded to at least ``n`` entries (capacity doubles)."""
    if n <= arr.size:
        return arr
    out: IntArray = np.zeros(max(n, 2 * arr.size, 64), dtype=arr.dtype)
    out[: arr.size] = arr
    return out


def worst_case_blocks(cur: IntArray, rem: IntArray, block_size: int) -> int:
    """Peak KV blocks if every request runs to its bound: ``max_k Σ_{i≤k} ceil((cur_i + rem_k) / bs)``.

    Rows are sorted by remaining tokens, descending (artifact ``_can_add_new_req``); the ceiling is
    split as ``ceil((c + r) / bs) = a + A + [b + B >= bs]`` with ``c = a·bs + b`` and
    ``r + bs - 1 = A·bs + B`` so the whole check is ``O(n·bs)``.
    """
    order = np.argsort(-rem, kind="stable")
    c, r = cur[order], rem[order]
    k = np.arange(1, c.size + 1)
    if block_size == 1:
        return int((np.cumsum(c) + r * k).max())
    if c.size <= 64:  # small batches: the n x n table of ceilings is cheapest
        table = (c[:, None] + r[None, :] + (block_size - 1)) // block_size  # table[i, k] = ceil((c_i + r_k) / bs)
        return int(np.cumsum(table, axis=0).diagonal().max())
    a, b = np.divmod(c, block_size)
    big_a, big_b = np.divmod(r + block_size - 1, block_size)
    ge = np.zeros((c.size, block_size + 1), dtype=np.int64)
    ge[np.arange(c.size), b] = 1
    ge = np.cumsum(np.cumsum(ge[:, ::-1], axis=1)[:, ::-1], axis=0)  # ge[k, t] = #{i <= k: b_i >= t}
    carry = ge[k - 1, block_size - big_b]
    return int((np.cumsum(a) + k * big_a + carry).max())


class CountersMixin:
    """``counters()`` for VTC schedulers that keep :class:`ClientQueues` and reconcile fast-forwarded charges."""

    queues: ClientQueues

    def _reconcile(self, view: EngineView) -> None:
        raise NotImplementedError

    def counters(self, view: EngineView | None = None) -> dict[int, float]:
        """A copy of the per-client virtual token counters (first-seen order).

        Args:
            view: If given, first charge iterations the engine fast-forwarded since the last plan.
        """
        if view is not None:
            self._reconcile(view)
        return dict(self.queues.counters)
