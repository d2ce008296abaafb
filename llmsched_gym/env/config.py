"""Configuration of the Gymnasium environment: engine, slots, action decoding and observation scaling."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from llmsched_gym.env.events import DecisionEvents

DEFAULT_BUDGET_LEVELS: tuple[int, ...] = (64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192)
"""Token-budget levels (multiples of the 64-token GEMM tile) the action chooses from."""

DEFAULT_DEFERRAL_LEVELS: tuple[float, ...] = (0.25, 0.5, 0.75)
"""Knobs mode: defer a decode while this fraction of its TBT target is still left."""

RESIDUAL_BASES: dict[str, str] = {
    "sarathi": "fcfs",
    "sarathi-spf": "spf",
    "sarathi-edf": "edf",
    "sarathi-lcs": "lcs",
    "sarathi-sjf": "sjf",
}
"""-v1 residual mode: base schedulers (registered names) and the admission ordering of the rule that equals them."""

SLOT_ORDERS: tuple[str, ...] = ("arrival", "spf", "edf", "lcs", "sjf")
"""-v1: orders in which waiting requests fill the observation slots (``arrival`` is the rule's ``fcfs``)."""


def _positive(owner: str, name: str, value: float, hint: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: {name}={value!r} must be a positive finite number ({hint})")


@dataclass(frozen=True, slots=True)
class ObservationConfig:
    """Scales of the observation's squashing transforms (see ``docs/env.md`` for the feature table).

    Attributes:
        time_scale_s: Scale of waiting times and TTFT slack: ``x / (|x| + time_scale_s)``.
        tbt_scale_s: Scale of TBT slack and TBT targets.
        len_scale: Token counts are ``log1p(x) / log1p(len_scale)``, clipped to 1.
        rate_window_s: Window of the recent arrival rate.
        rate_scale: Scale of the arrival rate (requests/s).
        iter_scale_s: Scale of the last iteration time.
        service_scale: Scale of a client's service relative to the mean of the clients seen so far.
    """

    time_scale_s: float = 1.0
    tbt_scale_s: float = 0.1
    len_scale: int = 16384
    rate_window_s: float = 10.0
    rate_scale: float = 1.0
    iter_scale_s: float = 0.05
    service_scale: float = 10_000.0

    def __post_init__(self) -> None:
        """Check every scale is positive."""
        for name in ("time_scale_s", "tbt_scale_s", "rate_window_s", "rate_scale", "iter_scale_s", "service_scale"):
            _positive("ObservationConfig", name, getattr(self, name), "a scale in the feature's unit")
        if not isinstance(self.len_scale, int) or self.len_scale < 2:
            raise ValueError(f"ObservationConfig: len_scale={self.len_scale!r} must be an int >= 2, e.g. 16384")


@dataclass(frozen=True, slots=True)
class EnvConfig:
    """Everything that shapes the environment except the workload, the cost model and the reward.

    Attributes:
        slots: Number of request slots ``K`` in the observation (and score action).
        budget_levels: Token-budget levels, strictly increasing.
        chunk_caps: Scores mode: the action carries one chunk cap per slot (needed to express arbitrary plans).
        preempt_below: Scores mode: a running slot request whose score is ``<=`` this is preempted; ``None``
            disables explicit preemption (KV-pressure preemption still applies).
        deferral_levels: Knobs mode: TBT-slack fractions offered as decode-deferral thresholds.
        gpu: GPU name (cost model and KV capacity).
        model: Model name (cost model and KV capacity).
        tp: Tensor-parallel degree.
        num_blocks: KV pool size in blocks; ``None`` derives it from ``gpu`` and ``model``.
        block_size: Tokens per KV block.
        watermark: KV watermark fraction (exposed to schedulers through the view).
        allocation: Engine allocation mode, ``"prompt"`` or ``"on_demand"``.
        restart_mode: Engine restart mode, ``"recompute"`` or ``"full"``.
        max_steps: Truncate after this many decisions (``None``: no limit).
        max_time_s: Truncate once simulated time reaches this (``None``: no limit).
        sample_dt: Period of the engine's time series (KV use, per-client service) used by the summary.
        observation: Scales of the observation encoder.
        events: -v1: the events that end a held decision.
        default_budget: -v1: the token budget of the zero action (Sarathi-Serve's chunk size, 512).
        max_num_seqs: -v1 knobs/residual rule: cap on requests holding KV (Sarathi-Serve's 128).
        base: -v1 residual mode: the base scheduler the action adjusts (see :data:`RESIDUAL_BASES`).
        slot_order: -v1: which waiting requests fill the slots: ``"arrival"``, ``"spf"`` (shortest prompt),
            ``"edf"`` (earliest TTFT deadline), ``"lcs"`` (least client service), ``"sjf"`` (shortest predicted
            output); ``None`` uses the mode's own order (residual: the base's admission order; others: arrival).
        hold_below: -v1 scores mode: a slot value ``<=`` this holds the request (above it: serve).
        defer_below: -v1 residual mode: a running decode whose slot value is ``<=`` this is deferred (it runs only
            with the budget left after prefills).
        compiled: -v1: hold rule decisions (``residual``, ``priority``, ``knobs``) in compiled code
            (:mod:`llmsched_gym.env.held_compiled`; same episodes, several times faster) whenever the cost model
            has a compiled form; ``False``: the Python reference, one ``engine.step`` per iteration.
    """

    slots: int = 32
    budget_levels: tuple[int, ...] = DEFAULT_BUDGET_LEVELS
    chunk_caps: bool = True
    preempt_below: float | None = -0.9
    deferral_levels: tuple[float, ...] = DEFAULT_DEFERRAL_LEVELS
    gpu: str = "H100-80GB"
    model: str = "Llama-2-7B"
    tp: int = 1
    num_blocks: int | None = None
    block_size: int = 16
    watermark: float = 0.01
    allocation: str = "prompt"
    restart_mode: str = "recompute"
    max_steps: int | None = 100_000
    max_time_s: float | None = None
    sample_dt: float | None = 1.0
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    events: DecisionEvents = field(default_factory=DecisionEvents)
    default_budget: int = 512
    max_num_seqs: int = 128
    base: str = "sarathi"
    slot_order: str | None = None
    hold_below: float = -0.5
    defer_below: float = -0.5
    compiled: bool = True

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value and a fix."""
        if not isinstance(self.slots, int) or self.slots < 1:
            raise ValueError(f"EnvConfig: slots={self.slots!r} must be an int >= 1 (default 32)")
        object.__setattr__(self, "budget_levels", tuple(int(x) for x in self.budget_levels))
        levels = self.budget_levels
        if not levels or levels[0] < 1 or any(b <= a for a, b in itertools.pairwise(levels)):
            raise ValueError(f"EnvConfig: budget_levels={levels!r} must be positive and strictly increasing")
        if self.preempt_below is not None and not -1.0 <= self.preempt_below < 0.0:
            raise ValueError(f"EnvConfig: preempt_below={self.preempt_below!r} must be in [-1, 0) or None")
        object.__setattr__(self, "deferral_levels", tuple(float(x) for x in self.deferral_levels))
        if any(not 0.0 < x < 1.0 for x in self.deferral_levels):
            raise ValueError(f"EnvConfig: deferral_levels={self.deferral_levels!r} must lie in (0, 1), e.g. 0.5")
        if self.num_blocks is not None and self.num_blocks < 1:
            raise ValueError(f"EnvConfig: num_blocks={self.num_blocks!r} must be >= 1 or None (derive from gpu)")
        if self.block_size < 1 or self.tp < 1:
            raise ValueError(f"EnvConfig: block_size={self.block_size} and tp={self.tp} must be >= 1")
        if self.allocation not in ("prompt", "on_demand"):
            raise ValueError(f"EnvConfig: allocation={self.allocation!r} must be 'prompt' or 'on_demand'")
        if self.restart_mode not in ("recompute", "full"):
            raise ValueError(f"EnvConfig: restart_mode={self.restart_mode!r} must be 'recompute' or 'full'")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"EnvConfig: max_steps={self.max_steps!r} must be >= 1 or None")
        if self.max_time_s is not None:
            _positive("EnvConfig", "max_time_s", self.max_time_s, "simulated seconds, or None")
        if self.sample_dt is not None:
            _positive("EnvConfig", "sample_dt", self.sample_dt, "simulated seconds, or None")
        self._check_v1()

    def _check_v1(self) -> None:
        if not isinstance(self.default_budget, int) or self.default_budget < 1:
            raise ValueError(f"EnvConfig: default_budget={self.default_budget!r} must be an int >= 1 (default 512)")
        if not isinstance(self.max_num_seqs, int) or self.max_num_seqs < 1:
            raise ValueError(f"EnvConfig: max_num_seqs={self.max_num_seqs!r} must be an int >= 1 (default 128)")
        if self.base not in RESIDUAL_BASES:
            raise ValueError(f"EnvConfig: base={self.base!r} must be one of {sorted(RESIDUAL_BASES)}")
        if self.slot_order is not None and self.slot_order not in SLOT_ORDERS:
            raise ValueError(f"EnvConfig: slot_order={self.slot_order!r} must be one of {SLOT_ORDERS} or None")
        low = -1.0 if self.preempt_below is None else self.preempt_below
        if not low < self.hold_below < 0.0:
            raise ValueError(f"EnvConfig: hold_below={self.hold_below!r} must lie in (preempt_below, 0), e.g. -0.5")
        if not -1.0 <= self.defer_below < 0.0:
            raise ValueError(f"EnvConfig: defer_below={self.defer_below!r} must lie in [-1, 0), e.g. -0.5")
        if not isinstance(self.events, DecisionEvents):
            raise ValueError(f"EnvConfig: events={self.events!r} must be a DecisionEvents")
