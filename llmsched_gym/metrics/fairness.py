"""Per-client service and fairness (VTC, Sheng et al. OSDI'24 §3 and §5.1).

Service uses the VTC cost: 1 per input token and 2 per output token (first-time prefill tokens
and emitted tokens; recomputation is not service). Sampled every ``sample_dt`` simulated seconds.

* Service difference at a sample time: among clients backlogged then (a request waiting or
  running), the spread (max − min) of the service each received in the preceding window
  (``window_s``, default 60 s as in the VTC plots); summarised by its max and mean over time.
* Jain's index over clients' total service: (Σx)² / (n·Σx²), 1 = perfectly equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmsched_gym.simulate import SimulationResult


@dataclass(frozen=True, slots=True)
class FairnessSummary:
    """Fairness figures of a run.

    Attributes:
        clients: Number of clients.
        service_per_client: Total VTC service received per client.
        max_service_diff: Max over time of the windowed service spread among backlogged clients.
        mean_service_diff: Mean over time of the same spread.
        jain_index: Jain's index over clients' total service.
    """

    clients: int
    service_per_client: tuple[float, ...]
    max_service_diff: float
    mean_service_diff: float
    jain_index: float


def jain_index(x: np.ndarray) -> float:
    """Jain's fairness index of non-negative allocations (nan for an empty or all-zero input)."""
    if x.size == 0 or not np.any(x > 0):
        return math.nan
    return float(x.sum() ** 2 / (x.size * np.square(x).sum()))


def service_series(res: SimulationResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample times, cumulative service per client (times × clients) and backlog flags.

    Single-client runs have no per-client columns (the engine records them only with several clients).
    """
    rec = res.recorder
    if not rec.samples:
        return np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0), dtype=bool)
    times = np.array([s[0] for s in rec.samples])
    if not rec.client_service:  # single-client run: the engine keeps no per-client series
        return times, np.zeros((times.size, 0)), np.zeros((times.size, 0), dtype=bool)
    width = max(v.size for v in rec.client_service)
    service = np.zeros((times.size, width))
    backlog = np.zeros((times.size, width), dtype=bool)
    for i, (sv, bl) in enumerate(zip(rec.client_service, rec.client_backlogged, strict=True)):
        service[i, : sv.size] = sv
        backlog[i, : bl.size] = bl
    return times, service, backlog


def windowed_service_diff(res: SimulationResult, window_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample times and the service spread among backlogged clients over the preceding window."""
    times, service, backlog = service_series(res)
    if times.size == 0:
        return times, times
    back = np.searchsorted(times, times - window_s, side="left")
    window = service - service[back]
    diffs = np.zeros(times.size)
    for i in range(times.size):
        active = window[i, backlog[i]]
        if active.size >= 2:
            diffs[i] = active.max() - active.min()
    return times, diffs


def fairness_summary(res: SimulationResult, window_s: float = 60.0) -> FairnessSummary | None:
    """Fairness of a run, or ``None`` when there is a single client."""
    c = res.columns
    clients = c["client"]
    if clients.size == 0 or int(clients.max()) == 0:
        return None
    total = np.bincount(clients, weights=c["prompt_done"] + 2.0 * c["emitted"])
    _, diffs = windowed_service_diff(res, window_s)
    return FairnessSummary(
        clients=int(total.size),
        service_per_client=tuple(float(x) for x in total),
        max_service_diff=float(diffs.max()) if diffs.size else math.nan,
        mean_service_diff=float(diffs.mean()) if diffs.size else math.nan,
        jain_index=jain_index(total),
    )
