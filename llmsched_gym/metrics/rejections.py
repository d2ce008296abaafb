"""Why requests were rejected: the engine's reasons grouped by kind, with a count and an example each."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmsched_gym.simulate import SimulationResult

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class RejectionGroup:
    """Rejected requests that share a reason (numbers aside).

    Attributes:
        kind: The reason with its numbers replaced by ``N`` (``"can never fit: needs N KV blocks ..."``).
        count: How many requests.
        example_id: The workload id of one of them.
        example: Its full reason.
    """

    kind: str
    count: int
    example_id: int
    example: str


def rejection_groups(res: SimulationResult) -> list[RejectionGroup]:
    """The run's rejections grouped by reason, largest group first (empty when none were rejected)."""
    groups: dict[str, list[tuple[int, str]]] = {}
    ext = res.columns["ext_id"]
    for rid, reason in sorted(res.reject_reason.items()):
        groups.setdefault(_NUMBER.sub("N", reason), []).append((int(ext[rid]), reason))
    out = [RejectionGroup(kind, len(items), items[0][0], items[0][1]) for kind, items in groups.items()]
    return sorted(out, key=lambda g: -g.count)
