"""The scheduler registry: names to lazy ``"module:Class"`` entries with preset arguments.

Adding a scheduler touches only this file (plus its module). ``llmsched_gym`` never imports
``baselines`` at import time: an entry is imported when it is built.
"""

from __future__ import annotations

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


REGISTRY: Mapping[str, SchedulerEntry] = MappingProxyType(
    {
        "vllm-v1": SchedulerEntry(
            "baselines.vllm_v1:VLLMV1", "vLLM V1: one token budget, chunked prefill, on-demand KV, FCFS"
        ),
        "sarathi": SchedulerEntry(
            "baselines.sarathi:SarathiServe", "Sarathi-Serve: decode-first stall-free batching, chunked prefill, FCFS"
        ),
        "sarathi-spf": SchedulerEntry(
            "baselines.sarathi:SarathiServe",
            "Sarathi-Serve with shortest-prompt-first admission",
            {"order": "spf"},
        ),
    }
)


def list_schedulers() -> dict[str, str]:
    """Registered names and their one-line descriptions."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def make_scheduler(name: str, **kwargs: Any) -> Scheduler:
    """Build a registered scheduler; ``kwargs`` override the preset's arguments."""
    try:
        entry = REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown scheduler {name!r}; registered: {', '.join(sorted(REGISTRY))}") from None
    module_name, _, cls_name = entry.target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    scheduler: Scheduler = cls(**{**entry.kwargs, **kwargs})
    scheduler.name = name
    return scheduler
