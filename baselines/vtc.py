"""VTC: fair LLM serving by virtual token counters, on the S-LoRA/LightLLM router runtime.

Paper: Sheng et al., "Fairness in Serving Large Language Models", OSDI'24 (arXiv 2401.00588),
Algorithm 2 (lines 7–13 counter lift, line 24 prefill charge, line 30 decode charge), §4.2–4.4
(general cost, weights, length prediction), §5.1, App. B. Artifact: ``Ying1123/VTC-artifact``,
``slora/server/router/{req_queue,vtc_req_queue,vtc_pred_len_req_queue,vtc_oracle_req_queue,
lcf_req_queue,lshare_req_queue,manager}.py``. Spec: ``docs/specs/baselines.md`` §9.1–9.3, §9.5.

A client's counter starts at 0 when it is first seen and is charged (divided by the request weight
when ``weighted``) ``h(p, 0)`` when a request is admitted and ``h(p, j) - h(p, j-1)`` for the decode
step run with ``j`` tokens generated; with the linear ``h = w_p·n_p + w_q·n_q`` that is ``w_p·p`` and
then ``w_q`` per decode step (the prefill's token is not charged). A client arriving with nothing
waiting is lifted to the minimum counter of the clients in the queue or, with ``lift="paper"`` and an
empty queue, to the current counter of the last client that left it. Runtime (``manager.py``): with
nothing running an admission round runs; admitted prompts form a prefill-only iteration; otherwise
every running request decodes, and once ``max_wait_tokens`` decode iterations have passed since the
last admission a round is attempted before every iteration until one admits. A round repeatedly
takes the oldest request of the minimum-counter client (ties: first seen) while the worst case of
every running and tentative request generating up to its bound stays below the pool, at most
``running_max_req_size`` run and the round's prompts fit ``batch_max_tokens``; the first failure ends
the round. There is no preemption.

Deviations from the paper, the artifact and the spec:
    * Spec §9.3 says admission is attempted "once every 10 decode iterations"; the artifact (followed
      here) retries before every iteration after the 10th until a round admits.
    * The memory check counts KV blocks: ``max_k Σ_{i≤k} ceil((cur_i + rem_k) / bs) < total blocks``
      (the paper presets use ``block_size=1``, where it is the artifact's token check exactly).
    * Output bound: the request's ``max_tokens``, else ``max_new_tokens`` (1024 = the artifact's
      ``max_req_total_len - max_req_input_len``), or the true length (``max_tokens_from="oracle"``,
      what the artifact's clients send). ``batch_max_tokens=None`` is ``max(pool tokens // 6, 3072)``.
    * Requests that could never pass the check alone, or whose prompt exceeds ``batch_max_tokens``,
      are rejected on arrival (the artifact would hold them forever).
    * Safety net, never used when bounds hold: if a bound under-estimates and a decode does not fit,
      the newest running requests are recompute-preempted (``safety_preemptions``) and return to the
      front of their client's queue, and a round with nothing running admits its first request
      unchecked. Re-prefill is not charged; the token it emits is charged as a decode.
    * Decode charges are applied when a plan is made; iterations the engine fast-forwards are charged
      at the next call. The artifact's extra charge in iterations where a request finishes is not
      copied (spec §9.1).
    * Predictors (``vtc-predict``, ``vtc-oracle``) as the artifact: ``h(p, pred)`` at admission, decode
      steps with ``j > pred`` charged, ``h(p, o) - h(p, pred)`` refunded at completion if ``o < pred``
      (so an exact prediction costs ``w_q`` more than plain VTC). The shared predictor rounds the
      moving average to an integer (the artifact keeps a float); oracle noise is its ``noisy`` kind.
    * Weights come from each request's ``weight`` column (the artifact keeps one per adapter).
    * RPM counts, as ``lshare_req_queue.py``, the client's accepted requests that arrived at most
      ``window_s`` before the new one; it runs FCFS on this runtime.
    * LoRA adapters, aborts and the artifact's adapter-memory term are out of scope.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from baselines._queue import decode_block_needs
from baselines._vtc_common import (
    ClientQueues,
    CountersMixin,
    ServiceCharger,
    check_fair_options,
    grown,
    worst_case_blocks,
)
from baselines.predictors import PREDICTORS, OutputPredictor, PredictorConfig
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class VTCConfig:
    """VTC runtime parameters (spec §9.3, §9.5; artifact defaults).

    Attributes:
        weighted: Divide charges by the request weight (``vtc-weighted``).
        predictor: ``None``, or an output-length predictor kind charged at admission
            (``"moving_average"`` for ``vtc-predict``, ``"oracle"`` for ``vtc-oracle``).
        noise: Relative noise of the oracle prediction (uniform ±noise, paper App. B.3 uses 0.5).
        cost: ``"linear"`` (``w_p·n_p + w_q·n_q``) or ``"profile"`` (:data:`PROFILE_COEFFS`).
        lift: ``"paper"``, ``"code"`` or ``"none"`` (LCF).
        ordering: ``"vtc"`` (minimum counter) or ``"fcfs"`` (arrival order, ``fcfs-vtc-runtime``).
        w_p: Price of a prompt token.
        w_q: Price of an output token.
        max_wait_tokens: Decode iterations between admission attempts while requests run.
        batch_max_tokens: Cap on one round's prompt tokens; ``None`` = ``max(pool tokens // 6, 3072)``.
        running_max_req_size: Cap on running requests.
        max_tokens_from: ``"request"`` (``max_tokens``, else ``max_new_tokens``) or ``"oracle"``.
        max_new_tokens: Output bound of requests without ``max_tokens``.
    """

    weighted: bool = False
    predictor: str | None = None
    noise: float = 0.0
    cost: str = "linear"
    lift: str = "paper"
    ordering: str = "vtc"
    w_p: float = 1.0
    w_q: float = 2.0
    max_wait_tokens: int = 10
    batch_max_tokens: int | None = None
    running_max_req_size: int = 1000
    max_tokens_from: str = "request"
    max_new_tokens: int = 1024

    def __post_init__(self) -> None:
        """Validate parameters."""
        check_fair_options("VTCConfig", self.lift, self.cost, self.w_p, self.w_q)
        if self.predictor is not None and self.predictor not in PREDICTORS:
            raise ValueError(f"VTCConfig: predictor={self.predictor!r} must be None or one of {', '.join(PREDICTORS)}")
        if not 0.0 <= self.noise < 1.0 or (self.noise > 0 and self.predictor != "oracle"):
            raise ValueError(f"VTCConfig: noise={self.noise} must be in [0, 1) and needs predictor='oracle'")
        if self.ordering not in ("vtc", "fcfs"):
            raise ValueError(f"VTCConfig: ordering={self.ordering!r} must be 'vtc' or 'fcfs'")
        if self.max_tokens_from not in ("request", "oracle"):
            raise ValueError(f"VTCConfig: max_tokens_from={self.max_tokens_from!r} must be 'request' or 'oracle'")
        for name in ("max_wait_tokens", "running_max_req_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"VTCConfig: {name}={getattr(self, name)} must be >= 1")
        if self.batch_max_tokens is not None and self.batch_max_tokens < 1:
            raise ValueError(f"VTCConfig: batch_max_tokens={self.batch_max_tokens} must be >= 1 or None (auto)")


class VTC(CountersMixin):
    """The VTC family on the S-LoRA/LightLLM runtime; see the module docstring.

    Registered as ``vtc``, ``vtc-weighted``, ``vtc-predict``, ``vtc-oracle``, ``vtc-profile``, ``lcf``
    and ``fcfs-vtc-runtime``.

    Args:
        weighted: Divide charges by the request weight.
        predictor: Output-length predictor kind charged at admission, or ``None``.
        cost: ``"linear"`` or ``"profile"``.
        lift: ``"paper"``, ``"code"`` or ``"none"``.
        ordering: ``"vtc"`` or ``"fcfs"``.
        **options: Further :class:`VTCConfig` fields (``noise``, ``w_p``, ``w_q``, ``max_wait_tokens``,
            ``batch_max_tokens``, ``running_max_req_size``, ``max_tokens_from``, ``max_new_tokens``).
    """

    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        weighted: bool = False,
        predictor: str | None = None,
        cost: str = "linear",
        lift: str = "paper",
        ordering: str = "vtc",
        **options: Any,
    ) -> None:
        self.config = VTCConfig(weighted, predictor, cost=cost, lift=lift, ordering=ordering, **options)
        self.name = "vtc" if ordering == "vtc" else "fcfs-vtc-runtime"
        cfg = self.config
        self.queues = ClientQueues(lift, ordering)
        self.charger = ServiceCharger(cost, cfg.w_p, cfg.w_q, weighted, predictor is not None)
        kind = "noisy" if cfg.noise > 0 else cfg.predictor
        self.predictor = None if kind is None else OutputPredictor(PredictorConfig(kind, eps=cfg.noise or 0.5))
        self.reset()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear counters, queues, charges, predictor state and statistics."""
        self.queues.clear()
        self.charger.clear()
        if self.predictor is not None:
            self.predictor.reset(seed)
        self._bound: IntArray = _EMPTY
        self._rows: IntArray = _EMPTY
        self._ref: tuple[int, int, int] | None = None  # (a row, its emitted when planned, iterations counted)
        self._since = 0
        self.safety_preemptions = 0

    # ---- one decision --------------------------------------------------------------------
    def schedule(self, view: EngineView) -> BatchPlan:
        """Admission round (prefill-only iteration) when due and successful, else one decode iteration."""
        self._reconcile(view)
        rejects = self._take_arrivals(view)
        running = view.running
        if len(self.queues) and (running.size == 0 or self._since >= self.config.max_wait_tokens):
            admitted = self._admission_round(view, running)
            if admitted:
                self._since, self._ref = 0, None
                ids = np.asarray(admitted, dtype=np.int64)
                return BatchPlan(ids, view.pending_array(ids), reject=tuple(rejects))
        if running.size == 0:
            return BatchPlan.of(reject=rejects)
        return self._decode_plan(view, running, rejects)

    def _reconcile(self, view: EngineView) -> None:
        """Count and charge the decode iterations the last plan ran, close finished requests.

        Idempotent (:meth:`counters` may call it between decisions): the plan charged its first
        iteration, the rest of a fast-forwarded stretch is charged here once.
        """
        self.charger.ensure(view.n_arrived)
        if self._ref is not None:
            rid, planned, counted = self._ref
            k = int(view.emitted[rid]) - planned
            if k > max(counted, 1):
                self.charger.charge_decodes(view, self._rows, k - max(counted, 1), self.queues)
            self._since += k - counted
            self._ref = (rid, planned, k)
        fin = view.finished
        if fin and self.predictor is not None:
            closed = self.charger.close(view, fin, self.queues)
            if closed:
                self.predictor.observe(view, tuple(closed))

    def _take_arrivals(self, view: EngineView) -> list[tuple[int, str]]:
        rejects: list[tuple[int, str]] = []
        for rid in view.evicted:
            self.queues.push_front(int(view.client[rid]), [rid])
        arrived = view.arrived
        if not len(arrived):
            return rejects
        self._bound = grown(self._bound, view.n_arrived)
        state, client = view.state, view.client
        for rid in arrived:
            if state[rid] != WAITING:
                continue
            reason = self._arrival_reject(view, rid)
            if reason is None:
                self.queues.arrive(int(client[rid]), rid)
            else:
                rejects.append((rid, reason))
        return rejects

    def _batch_cap(self, view: EngineView) -> int:
        cap = self.config.batch_max_tokens
        return cap if cap is not None else max(view.total_blocks * view.block_size // 6, 3072)

    def _arrival_reject(self, view: EngineView, rid: int) -> str | None:
        """Set the request's output bound; a reason if it could never be admitted, else ``None``."""
        cfg = self.config
        if cfg.max_tokens_from == "oracle":
            bound = view.oracle_output_len(rid)
        else:
            bound = int(view.max_tokens[rid]) if view.max_tokens[rid] > 0 else cfg.max_new_tokens
        self._bound[rid] = bound
        p = int(view.prompt[rid])
        need = view.blocks_for(p + bound)
        if need >= view.total_blocks:
            return f"worst case {need} KV blocks (prompt {p}, bound {bound}) never below the pool ({view.total_blocks})"
        if p > self._batch_cap(view):
            return f"prompt {p} exceeds batch_max_tokens={self._batch_cap(view)}"
        return None

    # ---- admission -----------------------------------------------------------------------
    def _admission_round(self, view: EngineView, running: IntArray) -> list[int]:
        """Admit min-counter clients' oldest requests until the first check fails (artifact order)."""
        cfg = self.config
        if running.size >= cfg.running_max_req_size:
            return []
        gen = view.generated[running]
        cur = view.prompt[running] + gen
        rem = np.maximum(self._bound[running] - gen - 1, 0)
        admitted: list[int] = []
        used, cap = 0, self._batch_cap(view)
        while (client := self.queues.pick()) is not None:
            rid = self.queues.waiting[client][0]
            pend, g = view.pending(rid), int(view.generated[rid])
            cur2 = np.concatenate((cur, [int(view.prompt[rid]) + g + 1]))
            rem2 = np.concatenate((rem, [max(int(self._bound[rid]) - g - 1, 0)]))
            forced = running.size == 0 and not admitted
            fits = used + pend <= cap and cur2.size <= cfg.running_max_req_size
            if not forced and not (fits and worst_case_blocks(cur2, rem2, view.block_size) < view.total_blocks):
                break
            self.queues.pop(client)
            admitted.append(rid)
            cur, rem, used = cur2, rem2, used + pend
            self._charge_admission(view, rid, pend)
        return admitted

    def _charge_admission(self, view: EngineView, rid: int, pend: int) -> None:
        ids = np.array([rid], dtype=np.int64)
        if self.predictor is not None and self.charger.hw[rid] == 0:
            self.charger.pred[rid] = self.predictor.predict(view, rid)
        self.charger.charge_plan(view, ids, np.array([pend], dtype=np.int64), self.queues)

    # ---- decoding ------------------------------------------------------------------------
    def _decode_plan(self, view: EngineView, running: IntArray, rejects: list[tuple[int, str]]) -> BatchPlan:
        """Every running request decodes (prefills always complete in their admission iteration)."""
        rows, victims = self._fit_decodes(view, running)
        self.charger.charge_decodes(view, rows, 1, self.queues)
        self._rows = rows
        self._ref = (int(rows[0]), int(view.emitted[rows[0]]), 0)
        cfg = self.config
        if victims or (len(self.queues) and self._since >= cfg.max_wait_tokens):
            repeat = 1
        else:
            repeat = cfg.max_wait_tokens - self._since if len(self.queues) else UNBOUNDED_REPEAT
        ones = np.ones(rows.size, dtype=np.int64)
        return BatchPlan(rows, ones, preempt=tuple(victims), reject=tuple(rejects), repeat=repeat)

    def _fit_decodes(self, view: EngineView, running: IntArray) -> tuple[IntArray, list[int]]:
        """All running requests; the safety net preempts the newest ones if a decode would not fit."""
        needs = decode_block_needs(view, running)
        total, free = int(needs.sum()), view.free_blocks
        if total <= free:
            return running.copy(), []
        keep = running.size
        victims: list[int] = []
        while total > free and keep > 1:
            keep -= 1
            rid = int(running[keep])
            victims.append(rid)
            total -= int(needs[keep])
            free += int(view.blocks[rid])
        for rid in reversed(victims):  # oldest victim ends up first in its client's queue
            self.queues.push_front(int(view.client[rid]), [rid])
        self.safety_preemptions += len(victims)
        return running[:keep].copy(), victims


class RPM(VTC):
    """FCFS on the VTC runtime with a per-client request-rate limit (``rpm-R``, spec §9.5).

    A request is rejected on arrival when its client already had ``limit`` accepted requests
    arrive within the last ``window_s`` seconds (artifact ``lshare_req_queue.py``).

    Args:
        limit: Requests per window per client.
        window_s: Window length in seconds (60 in the paper).
        **options: :class:`VTCConfig` fields other than ``ordering``.
    """

    def __init__(self, limit: int = 20, window_s: float = 60.0, **options: Any) -> None:
        if limit < 1:
            raise ValueError(f"RPM: limit={limit} must be >= 1 requests per window (paper: 5, 20, 30)")
        if not window_s > 0:
            raise ValueError(f"RPM: window_s={window_s} must be > 0 (paper: 60)")
        self.limit, self.window_s = limit, window_s
        self._recent: dict[int, deque[float]] = {}
        super().__init__(ordering="fcfs", **options)
        self.name = f"rpm-{limit}"

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the runtime state and the per-client arrival history."""
        super().reset(seed=seed)
        self._recent = {}

    def _arrival_reject(self, view: EngineView, rid: int) -> str | None:
        t = float(view.arrival[rid])
        recent = self._recent.setdefault(int(view.client[rid]), deque())
        while recent and t - recent[0] > self.window_s:
            recent.popleft()
        if len(recent) >= self.limit:
            return f"rate limit: client {int(view.client[rid])} sent {self.limit} requests within {self.window_s:g} s"
        reason = super()._arrival_reject(view, rid)
        if reason is None:
            recent.append(t)
        return reason
