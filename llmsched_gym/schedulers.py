"""The scheduler registry: names to lazy ``"module:Class"`` entries with preset arguments.

Adding a scheduler touches only this file (plus its module). ``llmsched_gym`` never imports
``baselines`` at import time: an entry is imported when it is built.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from llmsched_gym.core.protocols import Scheduler
from llmsched_gym.errors import UnknownNameError


@dataclass(frozen=True, slots=True)
class SchedulerEntry:
    """A registered scheduler.

    Attributes:
        target: ``"module:Class"`` of the implementation.
        description: One line shown by ``llmsched schedulers``.
        kwargs: Preset constructor arguments (user arguments override them).
    """

    target: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


# The WAIT and MC-SF paper presets restart evicted requests from scratch (spec §1.3). The alpha-protection
# baselines keep recompute: with full restarts they can cycle forever in small pools (clear, refill, overflow,
# clear); pass restart_mode="full" to reproduce the paper's model on its own memory sizes.


def _e(target: str, description: str, **kwargs: Any) -> SchedulerEntry:
    return SchedulerEntry(target, description, MappingProxyType(kwargs))


REGISTRY: Mapping[str, SchedulerEntry] = MappingProxyType(
    {
        # vLLM / Orca / Sarathi-Serve family (spec §3–§6)
        "vllm-v0": _e("baselines.vllm_v0:VLLMV0", "vLLM V0: prefill-first, whole prompts, decodes stall (spec §3)"),
        "vllm-fcfs-threshold": _e("baselines.vllm_v0:VLLMV0", "vLLM V0 as the MC-SF paper's FCFS baseline (§12.3)"),
        "vllm-v1": _e("baselines.vllm_v1:VLLMV1", "vLLM V1: one token budget, chunked prefill, on-demand KV (spec §4)"),
        "orca": _e("baselines.orca:Orca", "Orca: iteration-level FCFS, full prompts, max-length reservation (§5)"),
        "sarathi": _e("baselines.sarathi:SarathiServe", "Sarathi-Serve: decode-first stall-free chunked batching (§6)"),
        "sarathi-spf": _e(
            "baselines.sarathi:SarathiServe", "Sarathi-Serve with shortest-prompt-first admission (§6)", order="spf"
        ),
        # SLAI / RAD (spec §7–§8)
        "slai": _e("baselines.slai:SLAI", "SLAI: critical decodes by last schedulable time, SPF prefills (§7)"),
        "slai-fcfs-fixed": _e(
            "baselines.slai:SLAI",
            "SLAI ablation: FCFS prefills, fixed offset 10",
            fcfs=True,
            fixed_offset=10.0,
            user_priority=False,
        ),
        "slai-spf-fixed": _e(
            "baselines.slai:SLAI",
            "SLAI ablation: SPF prefills, fixed offset 10",
            fixed_offset=10.0,
            user_priority=False,
        ),
        "slai-spf-dynamic": _e(
            "baselines.slai:SLAI", "SLAI ablation: SPF prefills, dynamic offset, no user priority", user_priority=False
        ),
        "rad": _e("baselines.rad:RAD", "RAD (project reconstruction): tile-aligned prefill/decode mode cycles (§8)"),
        "rad-hybrid": _e("baselines.rad:RADHybrid", "Sarathi with a tile-aligned budget; not the paper's RAD (§8)"),
        # VTC family (spec §9)
        "vtc": _e("baselines.vtc:VTC", "VTC: least virtual-token-counter client first, S-LoRA runtime (§9.3)"),
        "vtc-weighted": _e("baselines.vtc:VTC", "Weighted VTC: charges divided by client weight (§9.5)", weighted=True),
        "vtc-predict": _e(
            "baselines.vtc:VTC",
            "VTC charging a per-client moving-average output prediction (§9.5)",
            predictor="moving_average",
        ),
        "vtc-oracle": _e("baselines.vtc:VTC", "VTC charging the true output length (§9.5)", predictor="oracle"),
        "vtc-profile": _e("baselines.vtc:VTC", "VTC with the profiled cost h(n_p, n_q) (§9.5)", cost="profile"),
        "lcf": _e("baselines.vtc:VTC", "Least counter first without the counter lift (§9.5)", lift="none"),
        "fcfs-vtc-runtime": _e("baselines.vtc:VTC", "FCFS admission on the VTC runtime (§9.5)", ordering="fcfs"),
        "rpm-5": _e("baselines.vtc:RPM", "FCFS with a 5 requests-per-minute per-client limit (§9.5)", limit=5),
        "rpm-20": _e("baselines.vtc:RPM", "FCFS with a 20 requests-per-minute per-client limit (§9.5)", limit=20),
        "rpm-30": _e("baselines.vtc:RPM", "FCFS with a 30 requests-per-minute per-client limit (§9.5)", limit=30),
        "vtc-chunked": _e("baselines.vtc_chunked:VTCChunked", "VTC ordering on the Sarathi-Serve engine (§9.4)"),
        # WAIT / Nested WAIT (spec §10–§11)
        "wait": _e(
            "baselines.wait:WAIT",
            "WAIT: per-type thresholds, hold until eligible, 1-s release (§10)",
            restart_mode="full",
        ),
        "wait-modified": _e(
            "baselines.wait:WAIT",
            "Modified WAIT: allowance-based release (§10.3)",
            hold="allowance",
            restart_mode="full",
        ),
        "wait-no-wait": _e(
            "baselines.wait:WAIT", "WAIT caps without waiting for thresholds (§10.3)", hold="none", restart_mode="full"
        ),
        "nested-wait": _e(
            "baselines.nested_wait:NestedWAIT",
            "Nested WAIT: segment gates for unknown lengths (§11)",
            restart_mode="full",
        ),
        # MC-SF and its baselines (spec §12)
        "mcsf": _e(
            "baselines.mcsf:MCSF",
            "MC-SF: shortest predicted first with a future-memory check (§12.2)",
            restart_mode="full",
        ),
        "mc-benchmark": _e(
            "baselines.mcsf:MCSF", "MC-SF's check with arrival order (§12.3)", order="arrival", restart_mode="full"
        ),
        "alpha-greedy": _e("baselines.mcsf:AlphaGreedy", "alpha-protection greedy: clear all on overflow (§12.3)"),
        "alpha-beta-clear": _e(
            "baselines.mcsf:AlphaGreedy",
            "alpha-protection beta-clearing: clear each with probability beta (§12.3)",
            beta=0.2,
        ),
    }
)


PREFIXES: Mapping[str, str] = MappingProxyType({})
"""Name schemes routed to a factory: ``"scheme:ARG"`` calls ``PREFIXES[scheme]`` (a lazy ``"module:function"``)
with ``ARG`` and the keyword arguments, e.g. ``"policy": "llmsched_gym.policy:load_scheduler"`` for
``--scheduler policy:PATH``. Empty today; a scheme is one entry here."""


def list_schedulers() -> dict[str, str]:
    """Registered names and their one-line descriptions."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def resolve_scheduler(name: str) -> str:
    """The registered spelling of ``name`` (case-insensitive, ``_`` equals ``-``).

    A name using a registered scheme (``scheme:ARG``, see :data:`PREFIXES`) is returned as it is.

    Raises:
        UnknownNameError: Neither; the message suggests the closest registered name.
    """
    scheme, sep, _ = name.partition(":")
    if sep and scheme.strip().lower() in PREFIXES:
        return name
    wanted = _key(name)
    for registered in REGISTRY:
        if _key(registered) == wanted:
            return registered
    close = difflib.get_close_matches(wanted, list(REGISTRY), n=1, cutoff=0.6)
    schemes = f", or a scheme {', '.join(s + ':...' for s in PREFIXES)}" if PREFIXES else ""
    choices = f"did you mean {close[0]!r}?" if close else f"registered: {', '.join(REGISTRY)}{schemes}"
    raise UnknownNameError(f"unknown scheduler {name!r} ({choices}; see `llmsched schedulers`)")


def scheduler_class(name: str) -> type:
    """The class of a registered scheduler (imports its module)."""
    module_name, _, cls_name = REGISTRY[resolve_scheduler(name)].target.partition(":")
    cls: type = getattr(importlib.import_module(module_name), cls_name)
    return cls


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def make_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """Build a registered scheduler; ``kwargs`` override the preset's arguments.

    Names are case-insensitive; ``scheme:ARG`` names go to the scheme's factory (:data:`PREFIXES`).
    """
    canonical = resolve_scheduler(name)
    scheme, sep, arg = canonical.partition(":")
    if sep and canonical not in REGISTRY:
        built: Scheduler = _load(PREFIXES[scheme.strip().lower()])(arg, **kwargs)
        return built
    entry = REGISTRY[canonical]
    scheduler: Scheduler = _load(entry.target)(**{**entry.kwargs, **kwargs})
    scheduler.name = canonical
    return scheduler
