"""The v1 rule: Sarathi-Serve's stall-free batching with a pluggable admission order, budget and decode deferral.

Knobs-v1 and residual-v1 actions do not pick a batch; they set the parameters of this rule, which then builds
every iteration's batch until the next decision event. With the default parameters (FCFS, the 512-token budget,
no deferral, no priority changes) it is exactly Sarathi-Serve (``baselines/sarathi.py``; tested against the native
scheduler, per-request results bitwise), and with ``ordering="spf"`` exactly ``sarathi-spf``. Per iteration:

1. Running requests oldest first (by id). Every decode that is not deferred gets one token; while a decode needs a
   KV block that is not free, the youngest unprocessed running request is recompute-preempted (or the decode itself,
   when none is left); preempted requests go back to the front of the queue.
2. Every ongoing partial prefill gets ``min(pending, budget - used)`` tokens.
3. Waiting requests in the admission order (below) get ``min(pending, budget - used)`` tokens with the blocks of
   their whole pending prefill, until one does not fit above the watermark, ``max_num_seqs`` requests hold KV, or
   the budget is used up. A request that can never fit above the watermark is rejected.
4. Deferred decodes (least TBT slack first) fill the budget left, each only if its block is free. When nothing
   else runs, the deferred decodes run as in step 1 (preempting if they must), so deferral never stalls the engine.

Admission order: the queue (arrivals at the back, preempted requests at the front) stably sorted by the ordering's
key, then stably re-sorted by ``rank - priority * span`` when the decision sets per-request priorities (residual
actions): a priority of +1 moves a request ahead of the whole queue, -1 behind it, 0 leaves it in place.

Orderings (:data:`ORDERINGS`): ``fcfs`` (queue order), ``spf`` (shortest prompt first, as Sarathi-Serve's
``order="spf"``), ``edf`` (earliest TTFT deadline ``arrival + slo_ttft``), ``lcs`` (least client service, VTC's
counter: first-time prompt tokens + 2 x output tokens), ``sjf`` (shortest predicted output first; the prompt length
breaks ties and stands in for requests without a prediction).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.env._rule_kernels import decode_pass, weigh
from llmsched_gym.env.features import PRIORITY_FEATURES, request_features

ORDERINGS: tuple[str, ...] = ("fcfs", "spf", "edf", "lcs", "sjf")
"""Admission orderings of the rule, in action-index order."""

UNBOUNDED_REPEAT = 1 << 30
_NO_PRIORITY: Mapping[int, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RuleParams:
    """One decision's parameters of the rule (held until the next decision event).

    Attributes:
        budget: Token budget per iteration.
        ordering: Index into :data:`ORDERINGS`.
        defer_theta: Defer every decode that still has more than this fraction of its TBT target left
            (``1 - (now - last token) / tbt``; requests without a target are always deferrable); ``< 0``: off.
        deferred: Running requests whose decodes are deferred explicitly (residual actions).
        priority: Per-request priority changes in ``[-1, 1]`` (residual actions); absent ids are 0.
        max_num_seqs: Cap on requests holding KV.
        weights: Priority weights of the request features (:data:`PRIORITY_FEATURES`; priority actions): every
            waiting request's priority change is ``clip(features @ weights, -1, 1)``, recomputed each iteration;
            a running decode whose change is ``<= defer_below`` is deferred.
        defer_below: See ``weights``.
    """

    budget: int = 512
    ordering: int = 0
    defer_theta: float = -1.0
    deferred: frozenset[int] = frozenset()
    priority: Mapping[int, float] = field(default_factory=lambda: _NO_PRIORITY)
    max_num_seqs: int = 128
    weights: tuple[float, ...] = ()
    defer_below: float = -0.5

    def __post_init__(self) -> None:
        """Validate the parameters."""
        if self.budget < 1:
            raise ValueError(f"RuleParams: budget={self.budget} must be >= 1 (e.g. 512)")
        if not 0 <= self.ordering < len(ORDERINGS):
            raise ValueError(f"RuleParams: ordering={self.ordering} must index {ORDERINGS}")
        if self.max_num_seqs < 1:
            raise ValueError(f"RuleParams: max_num_seqs={self.max_num_seqs} must be >= 1 (default 128)")
        if self.weights and len(self.weights) != len(PRIORITY_FEATURES):
            raise ValueError(f"RuleParams: weights has {len(self.weights)} entries; give one per PRIORITY_FEATURES")


class RuleQueue:
    """The FCFS waiting queue the rule keeps across iterations and decisions (Sarathi-Serve's ``WaitingQueue``).

    Arrivals join at the back, the engine's overflow evictions and the rule's own preemptions at the front. Each
    arrival is taken in once (ids below :attr:`taken` are never appended again) and an eviction already queued is
    not queued twice, so the queue stays right when a compiled hold hands it back (:meth:`adopt`).
    """

    def __init__(self) -> None:
        self.items: deque[int] = deque()
        self.taken = 0
        """Arrival ids below this have been taken in (queued, or seen as not waiting)."""
        self._synced: tuple[int, int, float, int] = (-1, -1, -1.0, -1)

    def clear(self) -> None:
        """Forget everything (a new episode)."""
        self.items.clear()
        self.taken = 0
        self._synced = (-1, -1, -1.0, -1)

    def sync(self, view: EngineView) -> None:
        """Take in the view's new arrivals (back) and engine evictions (front); idempotent for one view."""
        arrived = view.arrived
        key = (arrived.start, arrived.stop, view.now, view.iterations)
        if key == self._synced:
            return
        self._synced = key
        evicted = view.evicted
        if evicted:
            queued = set(self.items)
            for rid in reversed(evicted):
                if rid not in queued:
                    self.items.appendleft(rid)
        if arrived.stop > self.taken:
            state = view.state
            self.items.extend(r for r in range(max(arrived.start, self.taken), arrived.stop) if state[r] == WAITING)
            self.taken = arrived.stop

    def adopt(self, items: IntArray, taken: int) -> None:
        """Replace the queue by ``items`` (queue order), every arrival below ``taken`` taken in (a compiled hold)."""
        self.items = deque(items.tolist())
        self.taken = taken
        self._synced = (-1, -1, -1.0, -1)

    def push_front(self, ids: list[int]) -> None:
        """Put ``ids`` at the front, keeping their order."""
        for rid in reversed(ids):
            self.items.appendleft(rid)

    def __len__(self) -> int:
        return len(self.items)

    def remove(self, ids: list[int]) -> None:
        """Drop admitted or rejected requests."""
        if ids:
            gone = set(ids)
            self.items = deque(r for r in self.items if r not in gone)


def ordering_key(name: str, view: EngineView, ids: IntArray, service: FloatArray) -> np.ndarray:
    """The sort key of ``ids`` under ordering ``name`` (smaller first).

    ``service`` holds the per-client VTC service (used by ``lcs``).
    """
    if name == "spf":
        return view.prompt[ids]
    if name == "edf":
        return view.arrival[ids] + view.slo_ttft[ids]
    if name == "lcs":
        clients = view.client[ids]
        known = clients < service.size
        return np.where(known, service[np.minimum(clients, service.size - 1)], 0.0)
    if name == "sjf":
        pred = view.predicted[ids]
        return np.where(pred >= 0, pred, view.prompt[ids]).astype(np.float64) * 1e7 + view.prompt[ids]
    raise ValueError(f"ordering {name!r} has no key; choose one of {ORDERINGS}")


def admission_order(queue: RuleQueue, params: RuleParams, view: EngineView, service: FloatArray) -> list[int]:
    """The waiting requests in the order the rule admits them (see the module docstring)."""
    items = list(queue.items)
    if len(items) < 2:
        return items
    name = ORDERINGS[params.ordering]
    if name != "fcfs":
        ids = np.fromiter(items, dtype=np.int64, count=len(items))
        keys = ordering_key(name, view, ids, service)
        items = ids[np.argsort(keys, kind="stable")].tolist()
    prio = params.priority
    if prio:
        span = float(len(items))
        keys2 = np.array([i - prio.get(r, 0.0) * span for i, r in enumerate(items)])
        items = [items[i] for i in np.argsort(keys2, kind="stable").tolist()]
    elif any(params.weights):
        ids = np.fromiter(items, dtype=np.int64, count=len(items))
        delta = np.clip(weigh(request_features(view, ids, service), np.asarray(params.weights)), -1.0, 1.0)
        keys2 = np.arange(len(items)) - delta * len(items)
        items = ids[np.argsort(keys2, kind="stable")].tolist()
    return items


def _defer_mask(view: EngineView, order: IntArray, params: RuleParams) -> np.ndarray:
    """Which running requests of ``order`` have their decodes deferred (explicitly or by the TBT-slack rule)."""
    mask = np.zeros(order.size, dtype=np.bool_)
    if params.deferred:
        mask |= np.isin(order, np.fromiter(params.deferred, dtype=np.int64, count=len(params.deferred)))
    if params.defer_theta >= 0.0:
        slack = 1.0 - (view.now - view.last_token[order]) / view.slo_tbt[order]
        mask |= slack > params.defer_theta
    return mask


def _decode_pass(
    view: EngineView, order: IntArray, params: RuleParams, free: int
) -> tuple[list[int], list[int], list[int], list[int], int]:
    """Step 1 of the rule: ``(decodes, partials, deferred, preempted, free)`` (one compiled pass)."""
    dec, par, dfr, pre, free = decode_pass(
        order, _defer_mask(view, order, params), view.prompt, view.generated, view.computed, view.blocks,
        view.block_size, free,
    )  # fmt: skip
    return dec.tolist(), par.tolist(), dfr.tolist(), pre.tolist(), int(free)


@dataclass(slots=True)
class _Batch:
    """A plan under construction."""

    budget: int
    free: int
    used: int
    active: int
    tokens: dict[int, int] = field(default_factory=dict)
    rejects: list[tuple[int, str]] = field(default_factory=list)


def _may_admit(view: EngineView, queue: RuleQueue, params: RuleParams, b: _Batch) -> bool:
    """Whether step 3 can admit or reject anything (skipping it then saves ordering the queue)."""
    if not queue.items:
        return False
    if b.used < b.budget and b.active < params.max_num_seqs:
        return True
    ids = np.fromiter(queue.items, dtype=np.int64, count=len(queue.items))
    need = -(-(view.prompt[ids] + view.generated[ids]) // view.block_size) - view.blocks[ids]
    return bool((need > view.total_blocks - view.watermark_blocks).any())  # a rejection still happens


def _admit(view: EngineView, queue: RuleQueue, order: list[int], params: RuleParams, b: _Batch) -> None:
    """Step 3 of the rule: admissions in ``order`` (removed from the queue)."""
    taken: list[int] = []
    usable = view.total_blocks - view.watermark_blocks
    for rid in order:
        blocks = view.admission_blocks(rid)
        if blocks > usable:
            b.rejects.append((rid, f"needs {blocks} KV blocks, more than the pool holds above the watermark"))
            taken.append(rid)
            continue
        chunk = min(view.pending(rid), max(b.budget - b.used, 0))
        if chunk == 0 or b.active + 1 > params.max_num_seqs or b.free - blocks < view.watermark_blocks:
            break
        taken.append(rid)
        b.tokens[rid] = chunk
        b.used += chunk
        b.free -= blocks
        b.active += 1
    queue.remove(taken)


def _fill_deferred(view: EngineView, deferred: list[int], b: _Batch) -> None:
    """Step 4 of the rule: deferred decodes, least TBT slack first, while budget and blocks last."""
    if not deferred:
        return
    slack = [float(view.last_token[r]) + float(view.slo_tbt[r]) for r in deferred]
    bs = view.block_size
    for i in np.argsort(slack, kind="stable").tolist():
        if b.used >= b.budget:
            break
        rid = deferred[i]
        need = max(0, -(-(int(view.computed[rid]) + 1) // bs) - int(view.blocks[rid]))
        if need > b.free:
            continue
        b.free -= need
        b.tokens[rid] = 1
        b.used += 1


def rule_plan(view: EngineView, queue: RuleQueue, params: RuleParams, service: FloatArray) -> BatchPlan:
    """One iteration's batch under ``params`` (the queue must have been synced with ``view``)."""
    running = np.sort(view.running)
    if params.weights and running.size:
        delta = weigh(request_features(view, running, service), np.asarray(params.weights))
        slow = frozenset(running[delta <= params.defer_below].tolist())
        params = dataclasses.replace(params, deferred=params.deferred | slow) if slow else params
    decodes, partials, deferred, preempted, free = _decode_pass(view, running, params, view.free_blocks)
    b = _Batch(params.budget, free, len(decodes), running.size - len(preempted))
    for rid in partials:
        chunk = min(view.pending(rid), max(b.budget - b.used, 0))
        if chunk > 0:
            b.tokens[rid] = chunk
            b.used += chunk
    if _may_admit(view, queue, params, b):
        _admit(view, queue, admission_order(queue, params, view, service), params, b)
    if deferred and not decodes and not b.tokens:  # nothing else runs: deferral must not stall the engine
        plain = dataclasses.replace(params, defer_theta=-1.0, deferred=frozenset())
        decodes, _, _, more, b.free = _decode_pass(view, np.asarray(deferred, dtype=np.int64), plain, b.free)
        preempted += more
    else:
        _fill_deferred(view, deferred, b)
    ids = np.array(decodes + list(b.tokens), dtype=np.int64)
    tokens = np.ones(ids.size, dtype=np.int64)
    tokens[len(decodes) :] = list(b.tokens.values())
    if preempted:
        queue.push_front(sorted(preempted))
        return BatchPlan(ids, tokens, preempt=tuple(preempted), reject=tuple(b.rejects))
    stable = params.defer_theta < 0.0 and not deferred and not any(params.weights)  # weights: time-varying order
    open_queue = len(queue) == 0 or params.ordering != 0 or bool(params.priority) or any(params.weights)
    return BatchPlan(
        ids,
        tokens,
        reject=tuple(b.rejects),
        repeat=UNBOUNDED_REPEAT if stable else 1,
        arrival_sensitive=open_queue and b.used < b.budget,
    )


class RuleDecision:
    """A held decision of the rule: ``params`` applied at every iteration until the next decision event.

    Args:
        params: The decision's parameters.
        queue: The rule's queue (owned by the decoder or scheduler; persists across decisions).
        service: Per-client VTC service (read by the ``lcs`` ordering; updated in place by the env's tracker).
    """

    __slots__ = ("params", "queue", "service")

    def __init__(self, params: RuleParams, queue: RuleQueue, service: FloatArray) -> None:
        self.params = params
        self.queue = queue
        self.service = service

    def plan(self, view: EngineView) -> BatchPlan:
        """Sync the queue with the view's events and build the iteration's batch."""
        self.queue.sync(view)
        return rule_plan(view, self.queue, self.params, self.service)


class RuleScheduler:
    """The v1 rule as a scheduler (registered as ``sarathi-edf``, ``sarathi-lcs``, ``sarathi-sjf``).

    With ``ordering="fcfs"`` or ``"spf"`` it makes exactly Sarathi-Serve's and ``sarathi-spf``'s decisions. The
    ``lcs`` ordering counts each client's service from the view (first-time prompt tokens + 2 x emitted tokens).

    Args:
        ordering: One of :data:`ORDERINGS`.
        budget: Token budget per iteration (Sarathi-Serve's chunk size).
        max_num_seqs: Cap on requests holding KV.
        defer_theta: Decode deferral threshold (``< 0``: off); see :class:`RuleParams`.
    """

    requirements = EngineRequirements(allocation="prompt")

    def __init__(self, ordering: str = "fcfs", budget: int = 512, max_num_seqs: int = 128, defer_theta: float = -1.0):
        if ordering not in ORDERINGS:
            raise ValueError(f"RuleScheduler: ordering={ordering!r} must be one of {ORDERINGS}")
        self.params = RuleParams(budget, ORDERINGS.index(ordering), defer_theta, max_num_seqs=max_num_seqs)
        self.name = f"rule-{ordering}"
        self.queue = RuleQueue()
        self._service: FloatArray = np.zeros(0)

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the queue."""
        self.queue.clear()

    def schedule(self, view: EngineView) -> BatchPlan:
        """One iteration of the rule."""
        self.queue.sync(view)
        if self.params.ordering == ORDERINGS.index("lcs"):
            self._service = client_service(view)
        return rule_plan(view, self.queue, self.params, self._service)


def client_service(view: EngineView) -> FloatArray:
    """Per-client VTC service so far: first-time prompt tokens + 2 x emitted tokens of every arrived request."""
    n = view.n_arrived
    if n == 0:
        return np.zeros(0)
    clients = view.client[:n]
    weights = view.prompt_done[:n] + 2.0 * view.emitted[:n]
    return np.bincount(clients, weights=weights).astype(np.float64)
